"""``python -m benchmarks.serving [--tiny] [--json FILE]``: ``nbprod serve`` beside a bare FastAPI app
calling the same model (issue 16's table). One process each on loopback, one worker, 8 connections,
batch size 1, the same load generator, rounds alternating bare / nbprod; then the time for both
workers of ``nbprod serve --workers 2`` to serve a new version after ``nbprod rollback``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from . import projects as P
from .__main__ import machine, render
from .loadgen import LoadResult, generate
from .scenarios import Row, Size, median

CONNECTIONS = 8


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A server process in its own process group, stopped with the whole group."""

    def __init__(self, command: list[str], cwd: Path, env: dict | None = None):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.TemporaryFile()
        command = [c.replace("{port}", str(self.port)) for c in command]
        self.process = subprocess.Popen(command, cwd=cwd, stdout=self.log, stderr=subprocess.STDOUT,
                                        env={**os.environ, **(env or {})}, start_new_session=True)
        self._wait()

    def _wait(self, timeout: float = 120) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"server exited: {self.log.read().decode(errors='replace')[-2000:]}")
            try:
                httpx.post(f"{self.url}/predict", content=b"{}", timeout=2)
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("server did not answer")

    def stop(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.process.pid, sig)
                self.process.wait(15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass


def make_project(work: Path) -> Path:
    """The example project with v1.0.0 (C=1.0) and v1.1.0 (C=0.05) approved; prod is v1.1.0."""
    root = P.nbprod_template(work)
    nb = P.tool("nbprod")
    P.sh(nb, "run", "--no-report", cwd=root)
    P.git_commit_all(root)
    P.sh(nb, "retrain", cwd=root)
    P.sh(nb, "approve", "c1", "--by", "bench", cwd=root)
    P.sh(nb, "retrain", "--set", "model.C=0.05", cwd=root)
    P.sh(nb, "approve", "c2", "--by", "bench", cwd=root)
    return root


def served_model_file(root: Path, target: Path) -> Path:
    """The production model's joblib file, taken from the DVC cache as nbprod serve takes it."""
    from nbprod.core.dvccache import cache_dir
    from nbprod.serve.loader import artifact_files, resolve

    info = resolve(root, "model")
    files = artifact_files(cache_dir(root), info.model_path, info.model_md5)
    target.write_bytes(next(data for name, data in files.items() if name.endswith(".joblib")))
    return target


def one_row_body(root: Path) -> bytes:
    import pandas as pd

    frame = pd.read_parquet(root / "notebooks/data/test.parquet").drop(columns="target")
    return json.dumps({"records": frame.head(1).to_dict("records")}).encode()


def compare(work: Path, root: Path, size: Size, requests: int, rounds: int) -> list[Row]:
    body = one_row_body(root)
    model = served_model_file(root, work / "model.joblib")
    python = str(P.BIN / "python")
    repo = Path(__file__).resolve().parent.parent
    bare = Server([python, "-m", "uvicorn", "benchmarks.bare_app:app", "--port", "{port}", "--log-level", "warning",
                   "--no-access-log"], cwd=repo, env={"BENCH_MODEL": str(model)})
    try:
        served = Server([P.tool("nbprod"), "serve", "--port", "{port}"], cwd=root)
    except BaseException:
        bare.stop()
        raise
    results: dict[str, list[LoadResult]] = {"bare": [], "nbprod": []}
    try:
        for server in (bare, served):
            generate(f"{server.url}/predict", body, CONNECTIONS, 200, 30)  # warm-up
        for _ in range(rounds):
            for name, server in (("bare", bare), ("nbprod", served)):
                result = generate(f"{server.url}/predict", body, CONNECTIONS, requests, 120)
                if result.errors or len(result.ok) != len(result.samples):
                    raise RuntimeError(f"{name}: {result.summary()}")
                results[name].append(result)
    finally:
        served.stop()
        bare.stop()
    tp = {k: median([r.throughput for r in v]) for k, v in results.items()}
    p99 = {k: median([r.percentile(0.99) for r in v]) for k, v in results.items()}
    per = 1000
    note = (f"{tp['nbprod']:.0f} vs {tp['bare']:.0f} requests/s; {rounds} alternating round(s) of {requests} "
            f"requests; prediction log on; seconds per {per} requests shown")
    return [
        Row(f"serve: throughput, {CONNECTIONS} connections, batch 1", per / tp["nbprod"], per / tp["bare"],
            "bare FastAPI app", tp["nbprod"] / tp["bare"], ">= 0.8x", tp["nbprod"] / tp["bare"] >= 0.8, note),
        Row(f"serve: p99 latency, {CONNECTIONS} connections", p99["nbprod"], p99["bare"], "bare FastAPI app",
            p99["nbprod"] / p99["bare"], "<= 1.5x", p99["nbprod"] / p99["bare"] <= 1.5,
            f"{1000 * p99['nbprod']:.1f} vs {1000 * p99['bare']:.1f} ms"),
    ]


def feedback_throughput(root: Path, requests: int, rounds: int) -> list[Row]:
    """/predict alone, then with /feedback traffic alongside, alternating on one nbprod serve."""
    from .feedback import alongside

    served = Server([P.tool("nbprod"), "serve", "--port", "{port}"], cwd=root)
    try:
        body = one_row_body(root)
        generate(f"{served.url}/predict", body, CONNECTIONS, 200, 30)  # warm-up
        return alongside(served.url, body, requests, rounds, CONNECTIONS)
    finally:
        served.stop()


def _tag_watch(root: Path, stop: threading.Event, seen: list) -> None:
    """Record when each new registry tag appears (polling git every 50 ms), the clock the swap runs on."""
    from nbprod.serve.loader import prod_tags

    known = set(prod_tags(root, "model"))
    while not stop.wait(0.05):
        now = set(prod_tags(root, "model"))
        for tag in sorted(now - known):
            if "#prod#" in tag:
                seen.append((tag, time.time()))
        known = now


def swap_time(root: Path, switches: int) -> list[Row]:
    """Seconds from the moment the new prod tag exists until no worker answers with the old version."""
    body = one_row_body(root)
    served = Server([P.tool("nbprod"), "serve", "--port", "{port}", "--workers", "2", "--poll-interval", "1"],
                    cwd=root)
    holder: dict[str, LoadResult] = {}
    times, targets, tagged = [], (["v1.0.0", "v1.1.0"] * switches)[:switches], []
    stop = threading.Event()
    watch = threading.Thread(target=_tag_watch, args=(root, stop, tagged))
    try:
        load = threading.Thread(target=lambda: holder.update(
            r=generate(f"{served.url}/predict", body, 2, 1_000_000, 30 + 15 * switches)))
        load.start()
        watch.start()
        time.sleep(2)
        for target in targets:
            P.sh(P.tool("nbprod"), "rollback", target, "--by", "bench", cwd=root)
            time.sleep(8)
        load.join()
    finally:
        stop.set()
        served.stop()
    if len(tagged) != len(targets):
        raise RuntimeError(f"saw {len(tagged)} prod tags for {len(targets)} rollbacks")
    samples = holder["r"].samples
    for n, (target, (_, done)) in enumerate(zip(targets, tagged)):
        until = tagged[n + 1][1] if n + 1 < len(tagged) else float("inf")
        stale = [s.start - done for s in samples if done <= s.start < until and s.version != target]
        times.append(max(stale, default=0.0))
    worst = max(times)
    return [Row("serve: swap a version on 2 workers", worst, 5.0, "target", worst / 5.0, "<= 5 s", worst <= 5.0,
                f"{switches} rollback(s) under load: last old answer {', '.join(f'{t:.2f}' for t in times)} s "
                f"after the tag; polling every 1 s")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serving", description=__doc__)
    parser.add_argument("--tiny", action="store_true", help="few requests, one round, one swap (smoke test)")
    parser.add_argument("--requests", type=int, default=None, help="requests per round (default 5000)")
    parser.add_argument("--rounds", type=int, default=None, help="alternating rounds (default 3)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    size = Size(tiny=args.tiny, repeat=1)
    requests = args.requests or (300 if args.tiny else 5000)
    rounds = args.rounds or (1 if args.tiny else 3)
    os.environ["PATH"] = str(P.BIN) + os.pathsep + os.environ.get("PATH", "")
    for key, value in (("GIT_AUTHOR_NAME", "bench"), ("GIT_AUTHOR_EMAIL", "bench@nbprod.invalid"),
                       ("GIT_COMMITTER_NAME", "bench"), ("GIT_COMMITTER_EMAIL", "bench@nbprod.invalid")):
        os.environ.setdefault(key, value)
    info = machine()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="nbprod-bench-serve-") as tmp:
        work = Path(tmp)
        print("building a project with two approved versions ...", file=sys.stderr, flush=True)
        root = make_project(work)
        print("throughput and latency ...", file=sys.stderr, flush=True)
        rows = compare(work, root, size, requests, rounds)
        print("/predict with /feedback alongside ...", file=sys.stderr, flush=True)
        rows += feedback_throughput(root, requests, rounds)
        print("hot swap ...", file=sys.stderr, flush=True)
        rows += swap_time(root, 1 if args.tiny else 2)
    elapsed = time.perf_counter() - started
    print(render(rows, info, size, elapsed))
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "rows": [r.__dict__ for r in rows]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
