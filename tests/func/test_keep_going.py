"""``nbprod run -k/--keep-going`` (as ``dvc repro --keep-going``): after a failure, stages that do not
depend on the failed one still run; the summary says ran / failed / not run; exit status 1.
Real kernels and DVC."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from helpers.commands import nbprod
from helpers.projects import flow_project

pytestmark = pytest.mark.slow

CELLS = [
    (["stage:ok"], "a = 1"),
    (["stage:broken"], "raise ValueError('bad input')\nb = 2"),
    (["stage:needs"], "c = b + 1"),                                   # reads broken's b
    (["stage:later"], "d = c * 2"),                                   # downstream of needs
    (["stage:other"], "import nbprod\ne = a + 1\nnbprod.record('e', e)"),  # independent of broken
    (["stage:last"], "f = e + 1"),                                    # downstream of other only
]


def _project(root: Path) -> Path:
    return flow_project(root, CELLS, "kg")


def _states(stdout: str) -> dict[str, str]:
    return dict(re.findall(r"│ (\w+)\s+│ (ran|failed|not run|up to date)\s+│", stdout))


@pytest.mark.parametrize("flags", [["-k"], ["--keep-going", "-j", "2"], ["-k", "--dvc-repro"]],
                         ids=["j1", "j2", "dvc-repro"])
def test_keep_going_runs_what_does_not_depend_on_the_failure(tmp_path, flags):
    root = _project(tmp_path / "proj")
    done = nbprod("run", "--no-report", *flags, cwd=root, check=False)
    assert done.returncode == 1, done.stderr
    assert _states(done.stdout) == {"ok": "ran", "broken": "failed", "needs": "not run", "later": "not run",
                                    "other": "ran", "last": "ran"}
    assert "3 ran, 1 failed, 2 not run, 0 up to date" in done.stdout
    assert "stage 'broken' failed in notebooks/flow.ipynb cell 2: ValueError: bad input" in done.stderr
    assert "Traceback" not in done.stderr
    lock = (root / "dvc.lock").read_text(encoding="utf-8")
    for stage in ("ok", "other", "last"):
        assert f"\n  {stage}:" in lock
    for stage in ("broken", "needs", "later"):
        assert f"\n  {stage}:" not in lock
    assert json.loads((root / "metrics" / "other.json").read_text()) == {"e": 2}
    # Fixed, the next run reruns only what failed or did not run.
    nb = json.loads((root / "notebooks" / "flow.ipynb").read_text())
    nb["cells"][1]["source"] = "b = 2"
    (root / "notebooks" / "flow.ipynb").write_text(json.dumps(nb), encoding="utf-8")
    done = nbprod("run", "--no-report", *flags, cwd=root)
    assert _states(done.stdout) == {"ok": "up to date", "broken": "ran", "needs": "ran", "later": "ran",
                                    "other": "up to date", "last": "up to date"}


def test_without_keep_going_the_run_stops_at_the_failure(tmp_path):
    root = _project(tmp_path / "proj")
    done = nbprod("run", "--no-report", cwd=root, check=False)
    assert done.returncode == 1
    states = _states(done.stdout)
    assert states["broken"] == "failed" and states["other"] == "not run" and states["last"] == "not run"
