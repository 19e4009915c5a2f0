"""Dask scenarios: a real cluster (a `dask scheduler` and two single-thread `dask worker` processes on
127.0.0.1, started and stopped here) against nbprod's own serial and local runs, alternating.

- 8 independent 2-s stages on the 2 workers, against the serial default run (target <= 0.6x);
- per-stage overhead of 20 trivial independent stages on the cluster, against the local executor (target <= 0.3 s).
Both pass `--executor dask --scheduler ADDR`, as their names say.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

from . import projects as P
from .scenarios import Row, Size, median, timed


class _Cluster:
    def __init__(self, work: Path, workers: int = 2):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.address = f"tcp://127.0.0.1:{port}"
        self.processes = [self._start(work, "scheduler", [P.tool("dask"), "scheduler", "--host", "127.0.0.1",
                                                          "--port", str(port), "--no-dashboard"])]
        for i in range(workers):
            self.processes.append(self._start(work, f"worker{i}", [
                P.tool("dask"), "worker", self.address, "--nworkers", "1", "--nthreads", "1", "--host",
                "127.0.0.1", "--no-dashboard", "--local-directory", str(work / f"dask-worker{i}")]))
        from distributed import Client

        with Client(self.address, timeout=60, set_as_default=False) as client:
            client.wait_for_workers(workers, timeout=60)

    @staticmethod
    def _start(work: Path, name: str, argv: list[str]) -> subprocess.Popen:
        log = open(work / f"dask-{name}.log", "wb")
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self) -> None:
        for process in reversed(self.processes):
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait(timeout=30)


def _local_and_dask(work: Path, size: Size, name: str, notebook: dict) -> tuple[float, float]:
    """Median wall times of `nbprod run` (local) and `nbprod run --executor dask` on fresh copies of one
    project, alternating, against a real cluster started for the scenario."""
    template = work / f"{name}-template"
    if not template.exists():
        P.new_project(template, {"flow": notebook})
        P.git_commit_all(template)
    cluster = _Cluster(work)
    try:
        local, remote = [], []
        for rep in range(size.repeat):
            root = P.copy_project(template, work / f"{name}-local-{rep}")
            local.append(timed(P.tool("nbprod"), "run", cwd=root))
            root = P.copy_project(template, work / f"{name}-dask-{rep}")
            remote.append(timed(P.tool("nbprod"), "run", "--executor", "dask", "--scheduler", cluster.address,
                                cwd=root))
    finally:
        cluster.stop()
    return median(local), median(remote)


def dask_parallel(work: Path, size: Size) -> list[Row]:
    count, seconds = (4, 0.5) if size.tiny else (8, 2.0)
    serial_s, remote_s = _local_and_dask(work, size, "dask-parallel",
                                         P.stages_notebook(count, f"import time\ntime.sleep({seconds})"))
    return [Row(f"{count} independent {seconds:g}-s stages: --executor dask, 2 workers", remote_s, serial_s,
                "serial nbprod run", remote_s / serial_s, "<= 0.6x", remote_s / serial_s <= 0.6)]


def dask_overhead(work: Path, size: Size) -> list[Row]:
    count = 5 if size.tiny else 20
    local_s, remote_s = _local_and_dask(work, size, "dask-overhead", P.stages_notebook(count, "x = 1"))
    per_stage = (remote_s - local_s) / count
    return [Row(f"{count} trivial stages: --executor dask vs local, extra per stage", per_stage, 0.3,
                "target", per_stage / 0.3, "<= 0.3 s", per_stage <= 0.3,
                f"local {local_s:.1f} s, dask {remote_s:.1f} s")]
