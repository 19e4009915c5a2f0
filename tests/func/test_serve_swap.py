"""Hot swap with ``nbprod serve --workers 2`` under continuous load: production moves between two
versions six times (rollback to the older, back to the newer: three rounds). No request fails, each
answer's version is one of the two, after the bound every answer has the new version, and the
prediction log shows that both worker processes swapped."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest

from helpers.commands import nbprod
from helpers.projects import approve_two_versions, holdout_records
from helpers.servers import metric, Serve

pytestmark = pytest.mark.slow

BOUND = 5.0          # seconds: the bound for every worker to serve the new version
CLIENTS = 4
MAX_REQUESTS = 20_000  # per client: the loop is bounded in count as well as in time
MAX_SECONDS = 240


@pytest.fixture
def two_versions(ran_project, tmp_path) -> Path:
    root = tmp_path / "proj"
    shutil.copytree(ran_project, root, symlinks=True)
    approve_two_versions(root)
    return root


def load(base: str, body: dict, stop: threading.Event, results: list) -> None:
    with httpx.Client(timeout=30) as client:
        started = time.time()
        for _ in range(MAX_REQUESTS):
            if stop.is_set() or time.time() - started > MAX_SECONDS:
                return
            begin = time.time()
            try:
                # A new connection per request: kept-alive connections could all land on one worker,
                # and then the test could not see every worker answer with the new version.
                response = client.post(f"{base}/predict", json=body, headers={"Connection": "close"})
                results.append((begin, time.time(), response.status_code, response.headers.get("x-model-version")))
            except httpx.HTTPError as exc:
                results.append((begin, time.time(), repr(exc), None))
            time.sleep(0.005)  # continuous, but leave the 2 shared cores to the rollbacks too


def test_every_worker_swaps_on_promotion_and_rollback_under_load(two_versions):
    root = two_versions
    targets = ["v1.0.0", "v1.1.0"] * 3
    with Serve(root, "--workers", "2", "--poll-interval", "1") as s:
        body = {"records": holdout_records(root, 1)}
        stop, results = threading.Event(), []
        clients = [threading.Thread(target=load, args=(s.base, body, stop, results)) for _ in range(CLIENTS)]
        for client in clients:
            client.start()
        switches = []
        try:
            time.sleep(2)
            for target in targets:
                nbprod("rollback", target, "--by", "ops", "--note", "swap test", cwd=root)
                done = time.time()
                time.sleep(BOUND + 1.5)
                switches.append((target, done, time.time()))
        finally:
            stop.set()
            for client in clients:
                client.join(60)
        metrics_text = httpx.get(f"{s.base}/metrics", timeout=10).text

    assert len(results) > 200
    failed = [r for r in results if r[2] != 200]
    assert not failed, failed[:5]
    assert {r[3] for r in results} <= {"v1.0.0", "v1.1.0"}
    swap_times = []
    for target, done, until in switches:
        after_bound = [r for r in results if r[0] >= done + BOUND and r[1] <= until]
        assert after_bound, target
        assert {r[3] for r in after_bound} == {target}, (target, [r for r in after_bound if r[3] != target][:3])
        stale = [r[0] - done for r in results if done <= r[0] < until and r[3] != target]
        swap_times.append(max(stale, default=0.0))
    print(f"last old answer after each switch (s): {[round(t, 2) for t in swap_times]}")

    # Both workers answered with each new version after the bound (the log names the worker).
    entries = [json.loads(line) for path in (root / ".nbprod/serve/predictions").glob("predictions-*.jsonl*")
               for line in path.read_text().splitlines()]
    workers = {e["worker"] for e in entries}
    assert len(workers) == 2
    from datetime import datetime

    for target, done, until in switches:
        window = [e for e in entries if done + BOUND <= datetime.fromisoformat(e["time"]).timestamp() <= until]
        assert {e["version"] for e in window} == {target}
        assert {e["worker"] for e in window} == workers, target
    # Every worker counted its swaps: six per worker, summed over the workers by /metrics.
    assert metric(metrics_text, "nbprod_serve_swaps_total", result="ok") == 2 * len(targets)
    assert metric(metrics_text, "nbprod_serve_swaps_total", result="failed") == 0
    last = targets[-1]
    assert metric(metrics_text, "nbprod_serve_model_version", variant="prod", version=last) == 2
