"""Faults of running processes, injected for real: the disk full under the feedback (outcome) log of a
real ``nbprod serve`` (a real tmpfs), a worker of ``nbprod serve --workers 2`` SIGKILLed under load, and
a Dask worker then the scheduler restarted during ``nbprod run --executor dask``. Each case checks what
the user is told and that no file the user or the registry holds changed or was lost (tree_digest of
the project outside the serve log folder, every tag's name, target and message; dvc.lock's entries).

The serving base project: the example pipeline run and committed, candidate c1 approved (v1.0.0).
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
from helpers.paths import BIN
from helpers.projects import flow_project, holdout_records, tree_digest
from helpers.servers import Serve, free_port, metric
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


# A Dask worker and then the scheduler restarted mid-run (a scheduler and two workers as real processes).
DASK_CELLS = [
    (["stage:first"],
     "import pathlib, time\ntime.sleep(5)\nbase = 21\npathlib.Path('first.txt').write_text(str(base))"),
    (["stage:second"], "import nbprod, time\ntime.sleep(8)\ntotal = base * 2\nnbprod.record('total', total)"),
]


class DaskCluster:
    """``dask scheduler`` and ``dask worker`` (each under its nanny) as process groups on 127.0.0.1;
    the scheduler can be restarted on the same address. Always ``stop()`` it."""

    def __init__(self, tmp: Path, workers: int = 2):
        self.bin, self.tmp, self.port = BIN, tmp, free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.processes: list[subprocess.Popen] = []
        self.scheduler = self.start_scheduler()
        for i in range(workers):
            self._start([self.bin / "dask", "worker", self.address, "--nworkers", "1", "--nthreads", "1",
                         "--host", "127.0.0.1", "--no-dashboard", "--name", f"w{i}",
                         "--local-directory", str(tmp / f"dask-w{i}")], f"w{i}")
        self.wait_for_workers(workers)

    def start_scheduler(self) -> subprocess.Popen:
        self.scheduler = self._start([self.bin / "dask", "scheduler", "--host", "127.0.0.1", "--port",
                                      str(self.port), "--no-dashboard"], f"scheduler-{len(self.processes)}")
        return self.scheduler

    def kill_scheduler(self) -> None:
        os.killpg(self.scheduler.pid, signal.SIGKILL)
        self.scheduler.wait(timeout=30)

    def wait_for_workers(self, count: int, timeout: float = 90) -> None:
        from distributed import Client

        with Client(self.address, timeout=timeout, set_as_default=False) as client:
            client.wait_for_workers(count, timeout=timeout)

    def worker_pids(self) -> dict[str, int]:
        from distributed import Client

        with Client(self.address, timeout=30, set_as_default=False) as client:
            return client.run(os.getpid)

    def _start(self, argv, name: str) -> subprocess.Popen:
        log = open(self.tmp / f"{name}.log", "wb")
        process = subprocess.Popen([str(a) for a in argv], stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in reversed(self.processes):
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait(timeout=30)


def _stage_on_worker(root: Path, stage: str) -> str | None:
    import re

    for log in (root / ".nbprod" / "runs").glob(f"*/stages/{stage}.log"):
        found = re.findall(r"running on Dask worker (\S+)", log.read_text())
        if found:
            return found[-1]
    return None


def test_a_dask_worker_then_the_scheduler_restarted_mid_run(tmp_path):
    """The worker running the first stage is SIGKILLed (its nanny starts a new one, Dask reruns the
    stage), then, while the second stage runs, the scheduler is killed and started again on the same
    address. The run ends either correctly or with one line naming the stage and the cluster; dvc.lock
    holds only whole entries of stages that finished, their outputs match it, the notebook is unchanged,
    and a fresh `nbprod run` gives the right outputs."""
    root = flow_project(tmp_path / "p", DASK_CELLS, "dk")
    notebook = (root / "notebooks" / "flow.ipynb").read_bytes()
    cluster = DaskCluster(tmp_path)
    try:
        run_process = subprocess.Popen([str(BIN / "nbprod"), "run", "--no-report", "--executor", "dask",
                                        "--scheduler", cluster.address], cwd=root, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            address = wait_for(lambda: _stage_on_worker(root, "first"), 90, "the first stage to start on a worker")
            os.kill(cluster.worker_pids()[address], signal.SIGKILL)  # the worker; its nanny starts a new one
            wait_for(lambda: _stage_on_worker(root, "second") or run_process.poll() is not None, 120,
                     "the second stage to start (or the run to end)")
            cluster.kill_scheduler()
            cluster.start_scheduler()
            out, err = run_process.communicate(timeout=240)
        finally:
            if run_process.poll() is None:
                os.killpg(run_process.pid, signal.SIGKILL)
                run_process.wait(30)
        first_log = next((root / ".nbprod" / "runs").glob("*/stages/first.log")).read_text()
        assert first_log.count("running on Dask worker") == 2, first_log  # rerun after the worker's death
        assert "Traceback" not in err, err
        if run_process.returncode == 0:
            assert json.loads((root / "metrics" / "second.json").read_text()) == {"total": 42}
        else:
            assert run_process.returncode == 1, err  # a stage failed (exit 2 is for bad input)
            last = err.strip().splitlines()[-1]  # the lines before it are the run's progress
            assert "stage 'second' could not finish on the Dask cluster" in last, err
            assert "scheduler-connection-lost" in last, err
            for name in ("second.json",):  # never half-written: absent, or whole JSON
                path = root / "metrics" / name
                assert not path.exists() or json.loads(path.read_text()) == {"total": 42}
        import yaml

        lock = yaml.safe_load((root / "dvc.lock").read_text()) if (root / "dvc.lock").exists() else {"stages": {}}
        assert "first" in lock["stages"] and (root / "notebooks" / "first.txt").read_text() == "21"
        if run_process.returncode != 0:
            assert "second" not in lock["stages"]  # a stage that did not finish gets no entry
        status = run("dvc", "status", "--json", "first", cwd=root)
        assert json.loads(status.stdout or "{}") == {}  # the first stage's entry matches its outputs
        assert (root / "notebooks" / "flow.ipynb").read_bytes() == notebook
    finally:
        cluster.stop()
    again = nbprod("run", "--no-report", cwd=root)
    assert again.returncode == 0
    assert json.loads((root / "metrics" / "second.json").read_text()) == {"total": 42}
    assert json.loads(run("dvc", "status", "--json", cwd=root).stdout or "{}") == {}
    assert (root / "notebooks" / "flow.ipynb").read_bytes() == notebook
