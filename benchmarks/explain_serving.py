"""``python -m benchmarks.explain_serving [--tiny] [--json FILE]``: /predict throughput of ``nbprod serve``
with /explain traffic alongside against /predict alone (issue 29's target: >= 0.9x). One server, one
worker, ``[tool.nbprod.serve] explain = true`` with the default budget; 8 connections of /predict,
batch 1; alongside, one client sends a 5-row /explain every 100 ms. Rounds alternate alone / alongside.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

from . import projects as P
from .__main__ import machine, render
from .loadgen import LoadResult, generate
from .scenarios import Row, Size, median
from .serving import CONNECTIONS, Server, make_project, one_row_body

EXPLAIN_EVERY = 0.1
EXPLAIN_ROWS = 5


def explain_body(root: Path) -> bytes:
    import pandas as pd

    frame = pd.read_parquet(root / "notebooks/data/test.parquet").drop(columns="target")
    return json.dumps({"records": frame.head(EXPLAIN_ROWS).to_dict("records")}).encode()


def _explain_client(url: str, body: bytes, stop: threading.Event, statuses: list[int]) -> None:
    import httpx

    with httpx.Client(timeout=30) as client:
        while not stop.is_set():
            started = time.monotonic()
            statuses.append(client.post(url, content=body, headers={"content-type": "application/json"}).status_code)
            stop.wait(max(0.0, EXPLAIN_EVERY - (time.monotonic() - started)))


def compare(root: Path, requests: int, rounds: int, share: float | None = None) -> list[Row]:
    with open(root / "pyproject.toml", "a", encoding="utf-8") as file:
        file.write("\n[tool.nbprod.serve]\nexplain = true\n" + (f"explain_share = {share}\n" if share else ""))
    body, explaining = one_row_body(root), explain_body(root)
    served = Server([P.tool("nbprod"), "serve", "--port", "{port}"], cwd=root)
    results: dict[str, list[LoadResult]] = {"alone": [], "alongside": []}
    statuses: list[int] = []
    try:
        first = generate(f"{served.url}/explain", explaining, 1, 3, 30)  # warm-up, and a check it answers
        if [s.status for s in first.samples][:1] != [200]:
            raise RuntimeError(f"/explain did not answer 200: {first.summary()}")
        generate(f"{served.url}/predict", body, CONNECTIONS, 200, 30)
        for _ in range(rounds):
            for name in ("alone", "alongside"):
                stop = threading.Event()
                client = threading.Thread(target=_explain_client,
                                          args=(f"{served.url}/explain", explaining, stop, statuses))
                if name == "alongside":
                    client.start()
                try:
                    result = generate(f"{served.url}/predict", body, CONNECTIONS, requests, 120)
                finally:
                    stop.set()
                    if client.is_alive():
                        client.join()
                if result.errors or len(result.ok) != len(result.samples):
                    raise RuntimeError(f"{name}: {result.summary()}")
                results[name].append(result)
    finally:
        served.stop()
    tp = {k: median([r.throughput for r in v]) for k, v in results.items()}
    answered, refused = statuses.count(200), statuses.count(429)
    if answered == 0 or answered + refused != len(statuses):
        raise RuntimeError(f"/explain statuses: {sorted(set(statuses))}")
    per = 1000
    ratio = tp["alongside"] / tp["alone"]
    budget = f"explain_share {share}" if share else "default budget"
    note = (f"{budget}; {tp['alongside']:.0f} vs {tp['alone']:.0f} /predict requests/s; "
            f"/explain ({EXPLAIN_ROWS} rows every "
            f"{EXPLAIN_EVERY * 1000:.0f} ms): {answered} answered, {refused} refused by the budget; {rounds} "
            f"alternating round(s) of {requests} requests; seconds per {per} requests shown")
    return [Row(f"serve: /predict throughput with /explain alongside, {CONNECTIONS} connections", per / tp["alongside"],
                per / tp["alone"], "/predict alone", ratio, ">= 0.9x", ratio >= 0.9, note)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.explain_serving", description=__doc__)
    parser.add_argument("--tiny", action="store_true", help="few requests, one round (smoke test)")
    parser.add_argument("--requests", type=int, default=None, help="/predict requests per round (default 5000)")
    parser.add_argument("--rounds", type=int, default=None, help="alternating rounds (default 3)")
    parser.add_argument("--share", type=float, help="explain_share to serve with (default: the setting's default)")
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
    with tempfile.TemporaryDirectory(prefix="nbprod-bench-explain-") as tmp:
        print("building a project with two approved versions ...", file=sys.stderr, flush=True)
        root = make_project(Path(tmp))
        print("/predict alone and with /explain alongside ...", file=sys.stderr, flush=True)
        rows = compare(root, requests, rounds, args.share)
    print(render(rows, info, size, time.perf_counter() - started))
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "rows": [r.__dict__ for r in rows]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
