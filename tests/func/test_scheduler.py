"""The scheduler's readiness and ordering rules, on a small DVC project of hand-written stages run
by real processes (tests/test_parallel.py checks nbprod stages side by side against dvc repro)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from helpers.paths import BIN

from nbprod.execution.executors import LocalExecutor
from nbprod.execution.scheduler import reproduce
from nbprod.core.project import Project

#   a -> b -> d
#   a -> c -> d
DVC_YAML = """stages:
  a:
    cmd: echo a > a.txt
    outs: [a.txt]
  b:
    cmd: python3 -c "import os, sys; sys.exit(int(os.environ.get('FAIL_B', '0')))" && cat a.txt > b.txt
    deps: [a.txt]
    outs: [b.txt]
  c:
    cmd: cat a.txt c.in > c.txt
    deps: [a.txt, c.in]
    outs: [c.txt]
  d:
    cmd: cat b.txt c.txt > d.txt
    deps: [b.txt, c.txt]
    outs: [d.txt]
"""


class Recording(LocalExecutor):
    """The local executor, noting what the scheduler submits and how many jobs ran at once."""

    def __init__(self, slots: int):
        super().__init__(slots, warm=False)
        self.submitted: list[str] = []
        self.peak = 0

    def submit(self, job) -> None:
        self.submitted.append(job.stage)
        super().submit(job)
        self.peak = max(self.peak, self.running())


def _project(folder: Path) -> Path:
    folder.mkdir()
    subprocess.run([str(BIN / "dvc"), "init", "--no-scm", "-q"], cwd=folder, check=True)
    (folder / "dvc.yaml").write_text(DVC_YAML)
    (folder / "c.in").write_text("c\n")
    return folder


def _reproduce(root: Path, slots: int = 2, **options):
    with Recording(slots) as executor:
        result = reproduce(Project(root=root), executor, root / "run.log", **options)
    return result, executor


@pytest.fixture
def pipeline(tmp_path, monkeypatch) -> Path:
    root = _project(tmp_path / "p")
    monkeypatch.chdir(root)  # as nbprod run, which runs in the project
    return root


def test_stages_start_when_ready_and_the_lock_is_dvc_repros(pipeline, tmp_path):
    result, executor = _reproduce(pipeline)
    assert result.ok and result.failed is None
    assert executor.submitted[0] == "a" and executor.submitted[-1] == "d"  # producers first
    assert sorted(executor.submitted) == ["a", "b", "c", "d"]
    assert executor.peak == 1  # hand-written stages run alone, as under dvc repro
    reference = _project(tmp_path / "reference")
    subprocess.run([str(BIN / "dvc"), "repro", "-q"], cwd=reference, check=True, capture_output=True)
    assert (pipeline / "dvc.lock").read_text() == (reference / "dvc.lock").read_text()


def test_unchanged_stages_are_not_submitted_and_a_change_reruns_only_its_downstream(pipeline):
    _reproduce(pipeline)
    again, executor = _reproduce(pipeline)
    assert again.ok and executor.submitted == []
    lock = (pipeline / "dvc.lock").read_text()

    (pipeline / "c.in").write_text("changed\n")
    changed, executor = _reproduce(pipeline)
    assert changed.ok and executor.submitted == ["c", "d"]  # b and a are up to date: ready at once
    assert (pipeline / "d.txt").read_text() == "a\na\nchanged\n"
    assert (pipeline / "dvc.lock").read_text() != lock


def test_a_failure_starts_nothing_new_and_records_what_finished(pipeline, monkeypatch):
    monkeypatch.setenv("FAIL_B", "3")
    result, executor = _reproduce(pipeline, slots=1)
    assert not result.ok and result.failed == "b" and "b" in (result.message or "")
    assert executor.submitted == ["a", "b"]  # c would have been ready, d never is
    lock = (pipeline / "dvc.lock").read_text()
    assert "\n  a:" in lock and "\n  b:" not in lock and "\n  d:" not in lock


def test_keep_going_runs_what_does_not_need_the_failed_stage(pipeline, monkeypatch):
    monkeypatch.setenv("FAIL_B", "3")
    result, executor = _reproduce(pipeline, slots=1, keep_going=True)
    assert not result.ok and result.failed == "b"
    assert sorted(executor.submitted) == ["a", "b", "c"]  # d needs b
    lock = (pipeline / "dvc.lock").read_text()
    assert "\n  c:" in lock and "\n  d:" not in lock


def test_targets_and_from_stage_select_as_dvc_repro_does(pipeline):
    result, executor = _reproduce(pipeline, targets=["b"])
    assert result.ok and executor.submitted == ["a", "b"]  # b and what it depends on
    (pipeline / "c.in").write_text("again\n")
    result, executor = _reproduce(pipeline, from_stage="c")
    assert result.ok and executor.submitted == ["c", "d"]  # c and its downstream
