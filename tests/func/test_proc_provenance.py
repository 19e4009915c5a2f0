"""nbprod.core.proc running real processes (git, stopping a process group) and nbprod.core.provenance's package
listing against importlib.metadata and pip. Tool lookup and names: tests/unit/test_proc_provenance.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from importlib import metadata

from helpers.waiting import wait_for
from nbprod.core import proc, provenance


def test_git_wrapper(tmp_path):
    assert proc.git_output(tmp_path, "rev-parse", "HEAD") is None  # not a repository: None, no exception
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    assert proc.git_output(tmp_path, "rev-parse", "--is-inside-work-tree") == "true"
    done = proc.git(tmp_path, "hash-object", "--stdin", input=b"x", text=False)
    assert done.returncode == 0 and len(done.stdout.strip()) == 40


def test_stop_group_stops_children_and_kills_what_ignores_sigint(tmp_path):
    # A parent that ignores SIGINT, with a child that ignores it too: both must be gone afterwards.
    code = ("import signal, subprocess, sys, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
            "child = subprocess.Popen([sys.executable, '-c', 'import signal, time; "
            "signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(60)'])\n"
            "print(child.pid, flush=True)\ntime.sleep(60)")
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                               start_new_session=True)
    child = int(process.stdout.readline())
    code = proc.stop_group(process, grace=0.5)
    assert code == -signal.SIGKILL
    wait_for(lambda: not _alive(child), 10, "the child to end with its process group", every=0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_listing_agrees_with_importlib_metadata():
    listed = provenance.installed_packages()
    expected: dict[str, str] = {}
    for dist in metadata.distributions():  # the first found wins, as for imports
        expected.setdefault(provenance.canonical_name(dist.metadata.get("Name") or ""), dist.version)
    expected.pop("", None)
    assert listed == dict(sorted(expected.items()))
    key = provenance.key_packages()
    assert list(key) == [n for n in provenance.KEY_PACKAGES if n in key]
    assert all(listed[name] == version for name, version in key.items())
    captured = provenance.capture()
    assert captured["packages"] == listed
    assert captured["packages_sha256"] == provenance.packages_hash(listed)
