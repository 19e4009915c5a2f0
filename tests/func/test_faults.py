"""Faults during a run: afterwards a fresh ``nbprod run`` gives the outputs of an uninterrupted run.

Each fault hits the second of two stages of a small real pipeline (real DVC, Papermill, kernels):
a failing cell, a kernel that dies (``os._exit``, memory exhaustion under ``setrlimit``),
``kill -9`` of ``nbprod run``, Ctrl-C, and a full disk while the stage writes its output. After
each: dvc.lock and generated files are whole, the faulted stage is not reported up to date, the
source notebook is unchanged, no process of the run is left behind, and the next run recovers.
Every wait is bounded, so a hang fails the test instead of stalling the suite.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import uuid
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from helpers.commands import nbprod
from helpers.paths import BIN
from helpers.projects import fault_outputs
from helpers.waiting import wait_for

pytestmark = pytest.mark.slow  # every test here runs, breaks and reruns the pipeline


def _env(fault: str, marker: Path | None = None, token: str | None = None) -> dict:
    env = {"NBPROD_TEST_FAULT": fault, "NBPROD_TEST_TOKEN": token or uuid.uuid4().hex}
    if marker is not None:
        env["NBPROD_TEST_MARKER"] = str(marker)
    return env


def _processes_with(token: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if f"NBPROD_TEST_TOKEN={token}".encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _assert_whole_and_not_stale(root: Path, source: bytes) -> None:
    assert (root / "notebooks/work.ipynb").read_bytes() == source, "the source notebook changed"
    leftovers = [p for p in root.rglob(".*.tmp") if ".git" not in p.parts]
    assert leftovers == [], f"half-written temporary files left: {leftovers}"
    if (root / "dvc.lock").exists():
        YAML(typ="safe", pure=True).load((root / "dvc.lock").read_text(encoding="utf-8"))  # whole YAML
    for generated in [root / "dvc.yaml", *sorted((root / ".nbprod/stages").glob("*.ipynb")),
                      *sorted((root / "reports").glob("*.ipynb")), *sorted((root / "metrics").glob("*.json"))]:
        text = generated.read_text(encoding="utf-8")
        if generated.suffix in (".ipynb", ".json"):
            json.loads(text)  # whole JSON: never half a file
    states = {s["name"]: s["state"] for s in json.loads(nbprod("status", "--json", cwd=root).stdout)}
    assert states["second"] != "up to date", "a stage that did not finish is reported up to date"


def _recover(root: Path, fault_reference: dict, source: bytes) -> None:
    done = nbprod("run", "--no-report", cwd=root, check=False, timeout=300, env=_env(""))
    assert done.returncode == 0, done.stdout + done.stderr
    assert fault_outputs(root) == fault_reference
    states = {s["name"]: s["state"] for s in json.loads(nbprod("status", "--json", cwd=root).stdout)}
    assert set(states.values()) == {"up to date"}
    assert (root / "notebooks/work.ipynb").read_bytes() == source


@pytest.mark.parametrize("fault, says", [
    ("raise", "RuntimeError: injected failure"),
    ("exit", "second"),
    ("oom", "MemoryError"),
])
def test_failing_or_dying_kernel_then_fresh_run(fault_copy, fault_reference, fault, says):
    source = (fault_copy / "notebooks/work.ipynb").read_bytes()
    done = nbprod("run", "--no-report", cwd=fault_copy, check=False, timeout=300, env=_env(fault))
    assert done.returncode == 1, done.stdout + done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("nbprod: ") and says in last and "Traceback" not in last, done.stderr
    assert (fault_copy / "notebooks/first.txt").read_text() == fault_reference["first.txt"]
    _assert_whole_and_not_stale(fault_copy, source)
    _recover(fault_copy, fault_reference, source)


def _start_run(root: Path, fault: str, marker: Path, token: str) -> subprocess.Popen:
    # Its own session, as a terminal gives a foreground job: Ctrl-C goes to the whole group.
    return subprocess.Popen([str(BIN / "nbprod"), "run", "--no-report"], cwd=root, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, **_env(fault, marker, token)})


@pytest.mark.parametrize("how", ["kill -9", "Ctrl-C"])
def test_interrupted_run_then_fresh_run(fault_copy, fault_reference, tmp_path, how):
    source = (fault_copy / "notebooks/work.ipynb").read_bytes()
    marker, token = tmp_path / "second.started", uuid.uuid4().hex
    process = _start_run(fault_copy, "hang", marker, token)
    try:
        wait_for(lambda: marker.exists() or process.poll() is not None, 240, "stage 'second' to start")
        assert process.poll() is None, process.communicate()
        if how == "kill -9":
            os.kill(process.pid, signal.SIGKILL)
        else:
            os.killpg(process.pid, signal.SIGINT)
        out, err = process.communicate(timeout=120)
        if how == "Ctrl-C":
            assert process.returncode == 130, out + err
            assert err.strip().splitlines()[-1] == "nbprod: interrupted", err
        # Nothing the run started may go on writing into the project after it is gone (after
        # kill -9 the stage process notices its run is gone: nbprod.execution.lifeline).
        wait_for(lambda: not _processes_with(token), 60, "the run's stage and kernel to stop")
        _assert_whole_and_not_stale(fault_copy, source)
        _recover(fault_copy, fault_reference, source)
    finally:
        for pid in _processes_with(token):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if process.poll() is None:
            process.kill()
            process.communicate()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_full_disk_while_writing_an_output(fault_base, fault_reference, tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(disk)],
                             capture_output=True).returncode == 0
    root = disk / "proj"
    try:
        shutil.copytree(fault_base, root, symlinks=True)
        source = (root / "notebooks/work.ipynb").read_bytes()
        if mounted:
            # A 48 MB disk: the stage's 64 MB output fills it (ENOSPC) part way through.
            done = nbprod("run", "--no-report", cwd=root, check=False, timeout=300, env=_env("bigwrite"))
        else:  # no mount without root: a file-size limit stands in for the full disk (EFBIG/SIGXFSZ)
            done = _run_with_fsize_limit(root, 32 << 20)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "Traceback" not in done.stderr.strip().splitlines()[-1]
        _assert_whole_and_not_stale(root, source)
        if mounted:
            subprocess.run(["mount", "-o", "remount,size=512m", str(disk)], check=True)
        _recover(root, fault_reference, source)
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(disk)], check=False)


def _run_with_fsize_limit(root: Path, limit: int):
    import resource

    def limit_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run([str(BIN / "nbprod"), "run", "--no-report"], cwd=root, capture_output=True, text=True,
                          timeout=300, preexec_fn=limit_files, env={**os.environ, **_env("bigwrite")})
