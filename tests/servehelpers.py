"""Running ``nbprod serve`` as a real uvicorn process in tests: free loopback port, wait until ready,
always stopped (whole process group); and a project with two approved model versions."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

from helpers import BIN, nbprod

MODEL_OBJECT_GLOB = ".dvc/cache/files/md5/*/*"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Serve:
    """``nbprod serve`` in its own process group; use as a context manager."""

    def __init__(self, root: Path, *args: str, env: dict | None = None, ready_timeout: float = 90):
        self.root, self.port = root, free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = root.parent / f"serve-{self.port}.log"
        self.args, self.env, self.ready_timeout = args, env, ready_timeout
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Serve:
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen([str(BIN / "nbprod"), "serve", "--port", str(self.port), *self.args],
                                        cwd=self.root, stdout=self.log, stderr=subprocess.STDOUT,
                                        env={**os.environ, **(self.env or {})}, start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nbprod serve exited {self.process.returncode}: {self.output()}")
            try:
                if httpx.get(f"{self.base}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"nbprod serve did not answer in {self.ready_timeout} s: {self.output()}")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
            except ProcessLookupError:
                pass
        try:  # worker processes left behind by a killed supervisor
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.log.close()

    def __exit__(self, *exc) -> None:
        self.stop()


def approve_two_versions(root: Path) -> None:
    """v1.0.0 (C=1.0) approved, then v1.1.0 (C=0.05) approved: prod is v1.1.0."""
    nbprod("retrain", cwd=root)
    nbprod("approve", "c1", "--by", "alice", cwd=root)
    nbprod("retrain", "--set", "model.C=0.05", cwd=root)
    nbprod("approve", "c2", "--by", "bob", "--note", "more regularised", cwd=root)


def holdout_records(root: Path, n: int = 20) -> list[dict]:
    import pandas as pd

    frame = pd.read_parquet(root / "notebooks/data/test.parquet").drop(columns="target")
    return frame.head(n).to_dict("records")


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of a Prometheus sample's values whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total
