"""Faults while serving, injected on real processes: the disk full under the feedback (outcome) log of
a real ``nbprod serve`` (a real tmpfs), and a worker of ``nbprod serve --workers 2`` SIGKILLed under
load. Each case checks what the client is told and that no file the user or the registry holds changed
(tree_digest of the project outside the serve log folder, plus every tag's name, target and message).

The base project: the example pipeline run and committed, candidate c1 approved (v1.0.0 in production).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from helpers.commands import nbprod, run
from helpers.projects import holdout_records, tree_digest
from helpers.servers import Serve, metric
from helpers.waiting import wait_for

pytestmark = pytest.mark.slow  # the base project trains and approves a candidate; servers start

LOG_DIR = ".nbprod/serve/predictions"


@pytest.fixture(scope="module")
def served_base(tmp_path_factory, ran_project) -> Path:
    root = tmp_path_factory.mktemp("servefaults") / "proj"
    shutil.copytree(ran_project, root, symlinks=True)
    nbprod("retrain", cwd=root)
    nbprod("approve", "c1", "--by", "tester", "--note", "served", cwd=root)
    return root


@pytest.fixture
def served(served_base, tmp_path) -> Path:
    root = tmp_path / "proj"
    shutil.copytree(served_base, root, symlinks=True)
    return root


def registry_state(root: Path) -> str:
    return run("git", "for-each-ref", "--format=%(refname) %(objectname) %(*objectname) %(contents)",
               "refs/tags", cwd=root).stdout


def user_state(root: Path) -> tuple[dict, str]:
    """The project's files outside the serve log folder (which the server writes), and the registry."""
    digest = {k: v for k, v in tree_digest(root).items() if not k.startswith(".nbprod/serve/")}
    return digest, registry_state(root)


@pytest.fixture
def tmpfs():
    """Mount a tmpfs of a given size on a folder; always unmounted."""
    mounted = []

    def mount(folder: Path, size: int) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()})")
        mounted.append(folder)
        return folder

    yield mount
    for folder in reversed(mounted):
        subprocess.run(["umount", "-l", str(folder)], check=False)


def outcome_lines(folder: Path) -> list[dict]:
    """Every outcome line the server wrote; each must be a whole JSON line (raises on half a line)."""
    lines = []
    for path in sorted(folder.glob("outcomes-*.jsonl*")):
        data = path.read_bytes()
        assert not data or data.endswith(b"\n"), (path, data[-80:])
        lines += [json.loads(line) for line in data.splitlines() if line.strip()]
    return lines


def test_disk_full_under_the_feedback_log(served, tmpfs):
    """The log folder is a real tmpfs. Outcomes posted before the disk fills stay; once the writer has
    hit ENOSPC, POST /feedback answers 503 naming the disk error and asking to send again (resending is
    safe: the last outcome for a row wins), every outcome not written is counted in /metrics, the files
    keep only whole lines, /predict goes on answering, and with space back a resent batch is stored."""
    folder = tmpfs(served / LOG_DIR, 256 * 1024)
    before = user_state(served)
    rows = holdout_records(served, 5)
    with Serve(served, "--poll-interval", "1") as server, httpx.Client(timeout=10) as client:
        ids = []
        for i in range(20):
            r = client.post(f"{server.base}/predict", json={"records": [rows[i % 5]]},
                            headers={"X-Request-Id": f"q{i}"})
            assert r.status_code == 200, r.text
            ids.append(r.json()["request_id"])
        early = [{"request_id": rid, "outcome": 1} for rid in ids[:10]]
        assert client.post(f"{server.base}/feedback", json=early).json() == {"stored": 10, "rejected": []}
        wait_for(lambda: len(outcome_lines(folder)) == 10, 30, "the first outcomes to be written")
        kept = outcome_lines(folder)

        with open(folder / "filler", "wb", buffering=0) as handle:  # other writers fill the volume
            try:
                while True:
                    handle.write(b"\0" * 4096)
            except OSError:
                pass
        late = [{"request_id": rid, "outcome": 0} for rid in ids[10:]]
        answers = []

        def refused() -> bool:  # the first batch is queued before the writer meets the full disk
            answers.append(client.post(f"{server.base}/feedback", json=late))
            return answers[-1].status_code == 503

        wait_for(refused, 30, "POST /feedback to say the outcomes were not stored", every=0.3)
        answer = answers[-1].json()
        assert "No space left on device" in answer["error"] and "send them again" in answer["error"], answer
        assert answer["stored"] == 0
        assert all(a.status_code in (200, 503) for a in answers)
        predicted = client.post(f"{server.base}/predict", json={"records": rows[:2]})
        assert predicted.status_code == 200 and len(predicted.json()["predictions"]) == 2
        assert client.get(f"{server.base}/healthz").status_code == 200
        # Every late outcome is either a whole line (the last bytes of the volume) or counted as dropped.
        submitted = len(late) * len(answers)

        def accounted() -> bool:
            dropped = metric(client.get(f"{server.base}/metrics").text, "nbprod_serve_feedback_dropped_total")
            return dropped > 0 and dropped + len(outcome_lines(folder)) - len(kept) == submitted

        wait_for(accounted, 30, "every refused outcome to be counted in /metrics", every=0.3)
        full = outcome_lines(folder)
        assert full[:10] == kept  # the earlier outcomes are whole and none was lost
        assert all(e["request_id"] in ids[10:] and e["outcome"] == 0 for e in full[10:])

        (folder / "filler").unlink()  # space comes back: the client sends the batch again

        def stored() -> bool:
            return client.post(f"{server.base}/feedback", json=late).status_code == 200 and \
                {e["request_id"] for e in outcome_lines(folder)} >= set(ids)

        wait_for(stored, 30, "the resent outcomes to be stored", every=0.3)
    lines = outcome_lines(folder)
    assert lines[:10] == kept
    last = {e["request_id"]: e["outcome"] for e in lines}
    assert last == {**{rid: 1 for rid in ids[:10]}, **{rid: 0 for rid in ids[10:]}}
    assert user_state(served) == before


CLIENTS = 3
MAX_REQUESTS = 5_000   # per client: the load is bounded in count as well as in time
MAX_SECONDS = 120


def load(base: str, body: dict, stop: threading.Event, results: list) -> None:
    with httpx.Client(timeout=30) as client:
        started = time.monotonic()
        for _ in range(MAX_REQUESTS):
            if stop.is_set() or time.monotonic() - started > MAX_SECONDS:
                return
            try:  # a new connection each time, so both workers take requests
                response = client.post(f"{base}/predict", json=body, headers={"Connection": "close"})
                results.append((time.time(), response.status_code))
            except httpx.HTTPError as exc:
                results.append((time.time(), repr(exc)))
            time.sleep(0.01)


def workers_of(master: int) -> set[int]:
    """The live child processes of the uvicorn master (its workers and multiprocessing's tracker)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == master and fields[0] != "Z":
            found.add(int(entry.name))
    return found


def answering_workers(base: str, tries: int = 40) -> set[int]:
    pids = set()
    with httpx.Client(timeout=10) as client:
        for _ in range(tries):
            pids.add(client.get(f"{base}/model", headers={"Connection": "close"}).json()["worker"])
    return pids


def test_a_serve_worker_sigkilled_under_load(served):
    """One of two workers is SIGKILLed while three clients send requests: the other worker goes on
    answering, uvicorn's master starts a new worker, at most the requests in flight on the killed
    worker fail, /metrics counts every answered request (the killed worker's included) and shows the
    new worker serving production, and the project and registry are unchanged."""
    before = user_state(served)
    body = {"records": holdout_records(served, 1)}
    with Serve(served, "--workers", "2", "--poll-interval", "1") as server:
        master = server.process.pid
        wait_for(lambda: len(answering_workers(server.base, 10)) == 2, 60, "both workers to answer")
        original = answering_workers(server.base)
        assert len(original) == 2 and original <= workers_of(master)
        stop, results = threading.Event(), []
        clients = [threading.Thread(target=load, args=(server.base, body, stop, results)) for _ in range(CLIENTS)]
        for client in clients:
            client.start()
        try:
            wait_for(lambda: len(results) >= 60, 60, "load to start")
            victim, survivor = sorted(original)
            os.kill(victim, signal.SIGKILL)
            killed_at = time.time()
            new = wait_for(lambda: answering_workers(server.base, 10) - original, 90,
                           "a new worker to answer")
            assert new <= workers_of(master)  # started by the master (uvicorn's supervisor)
            time.sleep(1)
        finally:
            stop.set()
            for client in clients:
                client.join(60)
        metrics_text = httpx.get(f"{server.base}/metrics", timeout=10).text
        now_answering = answering_workers(server.base)
    assert victim not in now_answering and survivor in now_answering and now_answering & new
    ok = [r for r in results if r[1] == 200]
    failed = [r for r in results if r[1] != 200]
    assert len(failed) <= CLIENTS, failed  # only what was in flight on the killed worker
    assert [r for r in ok if r[0] > killed_at], "nobody answered after the kill"
    # The prediction log shows the surviving worker answering between the kill and the new worker.
    entries = [json.loads(line) for path in (served / LOG_DIR).glob("predictions-*.jsonl*")
               for line in path.read_text().splitlines()]
    from datetime import datetime

    after_kill = {e["worker"] for e in entries if datetime.fromisoformat(e["time"]).timestamp() > killed_at}
    assert survivor in after_kill and victim not in after_kill
    # Counters are kept across the kill (the killed worker's values stay in the shared folder).
    counted = metric(metrics_text, "nbprod_serve_requests_total", code="200")
    # (a request the killed worker counted may have died before its answer reached the client)
    assert len(ok) <= counted <= len(ok) + len(failed), (counted, len(ok), len(failed))
    serving = {line.split('pid="')[1].split('"')[0] for line in metrics_text.splitlines()
               if line.startswith("nbprod_serve_model_version{") and line.endswith(" 1.0")}
    assert serving == {str(survivor), *map(str, new)}, metrics_text
    assert user_state(served) == before
