"""Two runs in one project: the second refuses with one clear line while the first holds the lock,
whether the runs come from two terminals or from JupyterLab (the server extension) and a terminal;
the first run then finishes with the outputs of a run that had the project to itself."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from helpers.commands import nbprod
from helpers.paths import BIN
from helpers.projects import fault_outputs, tree_digest
from helpers.waiting import wait_for

pytestmark = pytest.mark.slow  # every test here holds a real run while another one starts

LOCKED = ("nbprod: error: .nbprod/run.lock: another nbprod run is in progress (pid {pid}). "
          "Fix: wait for it to finish, or cancel it, then run again")


def _hold(root: Path, tmp_path: Path) -> tuple[subprocess.Popen, Path, Path]:
    """Start a run whose second stage waits until told to go on."""
    marker, release = tmp_path / "started", tmp_path / "release"
    env = {**os.environ, "NBPROD_TEST_FAULT": "hang", "NBPROD_TEST_MARKER": str(marker),
           "NBPROD_TEST_RELEASE": str(release), "NBPROD_TEST_TOKEN": uuid.uuid4().hex}
    process = subprocess.Popen([str(BIN / "nbprod"), "run", "--no-report"], cwd=root, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    wait_for(lambda: marker.exists() or process.poll() is not None, 240, "the first run's stage to start")
    assert process.poll() is None, process.communicate()
    return process, marker, release


def _lock_holder(root: Path) -> str:
    return (root / ".nbprod/run.lock").read_text().strip().removeprefix("pid ")


def _second_run_refused(root: Path) -> None:
    before = tree_digest(root)
    runs = sorted(p.name for p in (root / ".nbprod/runs").iterdir())
    for command in (("run", "--no-report"), ("run", "--no-report", "second"), ("run", "--no-report", "--force")):
        done = nbprod(*command, cwd=root, check=False, timeout=120)
        assert done.returncode == 2, done.stdout + done.stderr
        assert done.stderr == LOCKED.format(pid=_lock_holder(root)) + "\n"
    assert tree_digest(root) == before
    assert sorted(p.name for p in (root / ".nbprod/runs").iterdir()) == runs, "a refused run left a run record"


def test_second_cli_run_refuses_while_the_first_holds_the_lock(fault_copy, fault_reference, tmp_path):
    process, _, release = _hold(fault_copy, tmp_path)
    try:
        assert _lock_holder(fault_copy) == str(process.pid)
        _second_run_refused(fault_copy)
    finally:
        release.touch()
        out, err = process.communicate(timeout=240)
    assert process.returncode == 0, out + err
    assert fault_outputs(fault_copy) == fault_reference
    # With the lock free again, the next run goes ahead (and finds everything up to date).
    assert nbprod("run", "--no-report", cwd=fault_copy, timeout=240).returncode == 0


@pytest.mark.slow
def test_a_run_from_jupyterlab_and_one_from_the_cli_do_not_corrupt_each_other(fault_base, fault_reference, tmp_path):
    from helpers.servers import JupyterServer, wait_for_run

    import shutil

    root = tmp_path / "root"
    root.mkdir()
    shutil.copytree(fault_base, root / "proj", symlinks=True)
    project = root / "proj"
    marker, release = tmp_path / "started", tmp_path / "release"
    (tmp_path / "jupyter").mkdir()
    os.environ.update(NBPROD_TEST_FAULT="hang", NBPROD_TEST_MARKER=str(marker), NBPROD_TEST_RELEASE=str(release))
    try:
        server = JupyterServer(root, tmp_path / "jupyter")
    finally:
        for key in ("NBPROD_TEST_FAULT", "NBPROD_TEST_MARKER", "NBPROD_TEST_RELEASE"):
            os.environ.pop(key)
    try:
        # JupyterLab starts a run; a terminal run in the same project is refused while it goes on.
        started = server.api("POST", "runs", json={"path": "proj", "stages": []})
        assert started.status_code == 202, started.text
        run_id = started.json()["id"]
        wait_for(marker.exists, 240, "the server's run to reach stage 'second'")
        # Its report of stage 'first' is rendered while 'second' runs: let that legitimate write land
        # before checking that the refused runs change nothing.
        wait_for((project / "reports/first.html").exists, 120, "the report of stage 'first'")
        _second_run_refused(project)
        release.touch()
        events = wait_for_run(server, run_id)
        assert events[-1]["event"] == "run_end" and events[-1]["ok"] is True, events[-3:]
        assert fault_outputs(project) == fault_reference
        # The other way round: a terminal run holds the lock, a run from JupyterLab fails cleanly.
        marker.unlink()
        release.unlink()
        (project / "params.yaml").write_text((project / "params.yaml").read_text().replace("factor: 2", "factor: 3"))
        process, _, release = _hold(project, tmp_path)
        try:
            response = server.api("POST", "runs", json={"path": "proj", "stages": []})
            assert response.status_code == 202, response.text
            state = _server_run_result(server, response.json()["id"])
            assert state["returncode"] == 2
            assert state["message"] == LOCKED.format(pid=process.pid)
        finally:
            release.touch()
            out, err = process.communicate(timeout=240)
        assert process.returncode == 0, out + err
        assert (project / "notebooks/second.txt").read_text() == "63\n"
        states = {s["name"]: s["state"] for s in json.loads(nbprod("status", "--json", cwd=project).stdout)}
        assert set(states.values()) == {"up to date"}
    finally:
        release.touch()
        server.stop()


def _server_run_result(server, run_id: str) -> dict:
    state: dict = {}

    def ended() -> bool:
        state.update(server.api("GET", f"runs/{run_id}/events", params={"path": "proj"}).json())
        return not state["running"]

    wait_for(ended, 120, f"server run {run_id} to end")
    return state
