"""``nbprod run --executor dask`` against a real cluster: a `dask scheduler` and two `dask worker`
processes started here on 127.0.0.1 (one process, one thread each), always stopped.

The run's own process stays the only writer of DVC state, so dvc.lock must equal a serial
``dvc repro``'s; workers only run ``nbprod exec`` on the shared project folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from helpers.commands import nbprod, run
from helpers.notebooks import load_nb
from helpers.paths import BIN
from helpers.projects import flow_project
from helpers.servers import free_port
from helpers.waiting import wait_for

pytestmark = pytest.mark.slow

# Two independent branches, then a join: a and b can run on the two workers at once.
CELLS = [
    (["stage:a"], "import time\ntime.sleep(1.5)\nleft = 20"),
    (["stage:b"], "import time\ntime.sleep(1.5)\nright = 22"),
    (["stage:total"], "import nbprod\ntotal = left + right\nnbprod.record('total', total)"),
]


def _wait_for_workers(address: str, count: int, timeout: float = 60) -> None:
    from distributed import Client

    with Client(address, timeout=timeout, set_as_default=False) as client:
        client.wait_for_workers(count, timeout=timeout)


class Cluster:
    """A real scheduler and workers as separate process groups on loopback."""

    def __init__(self, tmp: Path, workers: int = 2):
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.tmp = tmp
        self.processes: list[subprocess.Popen] = []
        self.workers: list[subprocess.Popen] = []
        self._start([BIN / "dask", "scheduler", "--host", "127.0.0.1", "--port", str(self.port),
                     "--no-dashboard"], "scheduler")
        for i in range(workers):
            self.add_worker(f"w{i}")
        if workers:
            _wait_for_workers(self.address, workers)

    def add_worker(self, name: str, env: dict | None = None) -> subprocess.Popen:
        process = self._start([BIN / "dask", "worker", self.address, "--nworkers", "1", "--nthreads", "1",
                               "--host", "127.0.0.1", "--no-dashboard", "--name", name,
                               "--local-directory", str(self.tmp / f"dask-{name}")], name, env)
        self.workers.append(process)
        return process

    def _start(self, argv, name: str, env: dict | None = None) -> subprocess.Popen:
        log = open(self.tmp / f"{name}.log", "wb")
        process = subprocess.Popen([str(a) for a in argv], stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True, env={**os.environ, **(env or {})})
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in reversed(self.processes):
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait(timeout=30)


@pytest.fixture
def cluster(tmp_path):
    started = Cluster(tmp_path)
    try:
        yield started
    finally:
        started.stop()


def _project(root: Path, cells=CELLS) -> Path:
    return flow_project(root, cells, "dk")


def _masked_lock(root: Path) -> str:
    text = (root / "dvc.lock").read_text(encoding="utf-8")
    return re.sub(r"(- path: reports/[a-z]+\.ipynb\n\s+hash: md5\n\s+md5: )\w+(\n\s+size: )\d+", r"\1*\2*", text)


def test_dask_run_records_what_a_serial_dvc_repro_records(cluster, tmp_path):
    serial = _project(tmp_path / "serial")
    remote = tmp_path / "remote"
    shutil.copytree(serial, remote, symlinks=True)
    nbprod("run", "--no-report", "--dvc-repro", cwd=serial)
    done = nbprod("run", "--no-report", "--executor", "dask", "--scheduler", cluster.address, cwd=remote)
    assert "total" in done.stdout
    assert _masked_lock(remote) == _masked_lock(serial)
    assert json.loads((remote / "metrics" / "total.json").read_text()) == {"total": 42}
    # Each stage ran on a worker (its log says which), in a kernel of its own, not a forked one.
    logs = sorted((remote / ".nbprod" / "runs").glob("*/stages/*.log"))
    assert logs and all("running on Dask worker tcp://127.0.0.1:" in p.read_text() for p in logs)
    kernel = load_nb(remote / "reports" / "a.ipynb")["metadata"]["nbprod"].get("kernel", {})
    assert "fork" not in json.dumps(kernel).lower() or "fallback" in json.dumps(kernel).lower()
    # Progress reached the run's events file from the workers, as for local stages.
    events = [json.loads(line) for p in (remote / ".nbprod" / "runs").glob("*/events.jsonl")
              for line in p.read_text().splitlines()]
    assert {e.get("stage") for e in events if e["event"] == "stage_end"} >= {"a", "b", "total"}
    # Each stage ran once, in a process pre-started on its worker or in `nbprod exec`, never both.
    starts = [e["stage"] for e in events if e["event"] == "stage_start"]
    assert sorted(starts) == ["a", "b", "total"]
    # Up to date: nothing reruns on the cluster.
    again = nbprod("run", "--no-report", "--executor", "dask", "--scheduler", cluster.address, cwd=remote)
    assert again.returncode == 0
    assert _masked_lock(remote) == _masked_lock(serial)


def test_unreachable_scheduler_is_one_line_exit_2(tmp_path):
    root = _project(tmp_path / "p")
    before = (root / "dvc.yaml").read_text()
    done = nbprod("run", "--executor", "dask", "--scheduler", f"tcp://127.0.0.1:{free_port()}", cwd=root,
                  check=False)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach the Dask scheduler" in lines[0] and "Traceback" not in done.stderr
    assert (root / "dvc.yaml").read_text() == before and not (root / "dvc.lock").exists()


def test_worker_that_does_not_see_the_project_is_refused(tmp_path):
    """A worker whose file system lacks the project: the sentinel check names it before any stage runs."""
    root = _project(tmp_path / "p")
    cluster = Cluster(tmp_path, workers=0)
    try:
        # A worker in its own mount namespace where the project folder is hidden by an empty tmpfs.
        shadow = cluster._start(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                                 f"mount -t tmpfs none {root} && exec {BIN / 'dask'} worker {cluster.address} "
                                 f"--nworkers 1 --nthreads 1 --host 127.0.0.1 --no-dashboard --name blind"],
                                "blind")
        cluster.workers.append(shadow)
        _wait_for_workers(cluster.address, 1)
        done = nbprod("run", "--executor", "dask", "--scheduler", cluster.address, cwd=root, check=False)
    finally:
        cluster.stop()
    assert done.returncode == 2, done.stderr
    assert "does not see this project" in done.stderr and "tcp://127.0.0.1:" in done.stderr
    assert not (root / "dvc.lock").exists()


def test_worker_killed_mid_stage_is_retried_elsewhere_and_recorded(cluster, tmp_path):
    cells = [(["stage:slow"], "import time, nbprod\ntime.sleep(6)\nnbprod.record('done', 1)")]
    root = _project(tmp_path / "p", cells)
    run_process = subprocess.Popen([str(BIN / "nbprod"), "run", "--no-report", "--executor", "dask",
                                    "--scheduler", cluster.address], cwd=root, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
    log = wait_for(lambda: _stage_log_on_a_worker(root, "slow"), 60, "the stage to start on a worker")
    address = re.search(r"running on Dask worker (\S+)", log.read_text()).group(1)
    from distributed import Client

    with Client(cluster.address, timeout=30, set_as_default=False) as client:
        pid = client.run(os.getpid)[address]
    os.kill(pid, signal.SIGKILL)  # the worker process itself; its nanny starts a new one
    out, err = run_process.communicate(timeout=180)
    assert run_process.returncode == 0, err
    assert json.loads((root / "metrics" / "slow.json").read_text()) == {"done": 1}
    text = log.read_text()
    assert text.count("running on Dask worker") == 2 and address in text  # retried on another worker
    assert "slow" in (root / "dvc.lock").read_text()
    run("dvc", "status", "--quiet", cwd=root)  # dvc.lock consistent with the outputs


def test_cancel_ends_the_remote_stage(cluster, tmp_path):
    """Configured in pyproject.toml, a plain `nbprod run` (as the Lab panel starts it) goes to the cluster;
    the panel's cancel (SIGINT to the run's process group) ends the stage on its worker."""
    cells = [(["stage:sleepy"], "import time\ntime.sleep(120)")]
    root = _project(tmp_path / "p", cells)
    with open(root / "pyproject.toml", "a", encoding="utf-8") as handle:
        handle.write(f'executor = "dask"\n\n[tool.nbprod.dask]\nscheduler = "{cluster.address}"\n')
    run_process = subprocess.Popen([str(BIN / "nbprod"), "run", "--no-report"], cwd=root, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, start_new_session=True)
    wait_for(lambda: _a_cell_started(root), 60, "the stage's first cell to start")
    assert "running on Dask worker" in next((root / ".nbprod" / "runs").glob("*/stages/sleepy.log")).read_text()
    os.killpg(run_process.pid, signal.SIGINT)  # what the panel's cancel and a terminal's Ctrl-C send
    run_process.communicate(timeout=60)
    assert run_process.returncode != 0
    # No stage process or kernel of this project is left on the workers.
    try:
        wait_for(lambda: not _processes_in(root), 20, "the stage's processes on the workers to end")
    except AssertionError:
        pass  # the assert below names them
    assert not _processes_in(root), [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in _processes_in(root)]
    assert not (root / "dvc.lock").exists()


def _stage_log_on_a_worker(root: Path, stage: str) -> Path | None:
    found = list((root / ".nbprod" / "runs").glob(f"*/stages/{stage}.log"))
    return found[0] if found and "running on Dask worker" in found[0].read_text() else None


def _a_cell_started(root: Path) -> bool:
    events = list((root / ".nbprod" / "runs").glob("*/events.jsonl"))
    return bool(events) and '"cell"' in events[0].read_text()


def _processes_in(root: Path) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/cwd").startswith(str(root)):
                    found.append(int(entry))
            except OSError:
                pass
    return found


def test_worker_without_the_stages_module_names_worker_and_module(tmp_path):
    """A worker that lacks a module the stage imports: the run fails naming the worker and the module."""
    cells = [(["stage:uses"], "import helperlib\nvalue = helperlib.VALUE")]
    root = _project(tmp_path / "p", cells)
    cluster = Cluster(tmp_path, workers=0)
    try:
        cluster.add_worker("without")  # the only worker: the stage must land here
        _wait_for_workers(cluster.address, 1)
        done = nbprod("run", "--no-report", "--executor", "dask", "--scheduler", cluster.address, cwd=root,
                      check=False)
    finally:
        cluster.stop()
    assert done.returncode == 1
    assert "helperlib" in done.stderr and "on Dask worker tcp://127.0.0.1:" in done.stderr, done.stderr
    assert not (root / "dvc.lock").exists()  # a failed stage gets no lock entry
