"""What nbprod relies on inside DVC (nbprod.execution.dvcadapter), run for real: a stage recorded through
the adapter leaves what `dvc repro` leaves, and commands run in the user's shell as DVC runs them. The
pieces read from DVC's code: tests/unit/test_dvcadapter.py."""

from __future__ import annotations

import inspect
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers.paths import BIN

from nbprod.execution import dvcadapter


def _source(obj) -> str:
    return " ".join(inspect.getsource(obj).split())  # whitespace-insensitive, as in tests/unit/test_dvcadapter.py


DVC_YAML = """stages:
  first:
    cmd: echo one > one.txt
    outs: [one.txt]
  second:
    cmd: cat one.txt one.txt > two.txt
    deps: [one.txt]
    outs: [two.txt]
"""


def _repo(folder: Path) -> Path:
    folder.mkdir()
    subprocess.run([str(BIN / "dvc"), "init", "--no-scm", "-q"], cwd=folder, check=True)
    (folder / "dvc.yaml").write_text(DVC_YAML)
    return folder


def test_running_through_the_adapter_leaves_what_dvc_repro_leaves(tmp_path, monkeypatch):
    ours, theirs = _repo(tmp_path / "ours"), _repo(tmp_path / "theirs")
    monkeypatch.chdir(ours)  # as nbprod run, which runs in the project
    subprocess.run([str(BIN / "dvc"), "repro", "-q"], cwd=theirs, check=True, capture_output=True)

    repo = dvcadapter.open_repo(ours)
    try:
        with dvcadapter.locked(repo):
            plan = dvcadapter.plan(repo, [], downstream=False)
            assert [s.name for s in plan.stages] == ["first", "second"]
            assert [u.name for u in plan.upstream[plan.stages[1]]] == ["first"]
            for stage in plan.stages:
                assert dvcadapter.needs_command(stage) and not dvcadapter.unchanged(stage, plan.upstream[stage])
                assert dvcadapter.prepare_to_run(stage, force=False) is False  # empty run cache
                run = dvcadapter.commands(stage)
                assert run.cwd == ours and run.env["DVC_STAGE"] == stage.addressing
                assert run.env["PATH"].startswith(str(BIN))
                for argv in run.argv:
                    subprocess.run(argv, cwd=run.cwd, env=run.env, check=True)
                dvcadapter.commit_stage(stage)
            for stage in plan.stages:
                dvcadapter.write_lock_entry(stage)
    finally:
        repo.close()
    assert (ours / "dvc.lock").read_text() == (theirs / "dvc.lock").read_text()
    assert (ours / "two.txt").read_text() == "one\none\n"

    # Unchanged now; and with its output gone, the run cache restores it without running the command.
    (ours / "two.txt").unlink()
    repo = dvcadapter.open_repo(ours)
    try:
        with dvcadapter.locked(repo):
            plan = dvcadapter.plan(repo, ["second"], downstream=False)
            first, second = plan.stages
            assert dvcadapter.unchanged(first, plan.upstream[first])
            assert not dvcadapter.unchanged(second, plan.upstream[second])
            assert dvcadapter.prepare_to_run(second, force=False) is True
            dvcadapter.commit_stage(second)
    finally:
        repo.close()
    assert (ours / "two.txt").read_text() == "one\none\n"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_commands_use_the_users_shell_as_dvc_does(tmp_path, monkeypatch):
    folder = _repo(tmp_path / "p")
    monkeypatch.setenv("SHELL", shutil.which("bash"))
    repo = dvcadapter.open_repo(folder)
    try:
        stage = dvcadapter.plan(repo, ["first"], downstream=False).stages[0]
        assert dvcadapter.commands(stage).argv == ((shutil.which("bash"), "--noprofile", "--norc", "-c",
                                                    "echo one > one.txt"),)
    finally:
        repo.close()


def test_passed_values_are_hard_linked_into_the_cache_and_other_outputs_copied(tmp_path, monkeypatch):
    """dvcadapter.record: Output.commit links when the cache's first link type is ``hardlink``, and
    Stage.commit(filter_info=PATH) commits that one output; a DVC release changing either fails here."""
    from dvc.output import Output
    from dvc.stage import Stage

    commit = _source(Output.commit)
    assert 'hardlink = relink and next(iter(self.cache.cache_types), None) == "hardlink"' in commit, \
        "Output.commit changed how it picks hard links: re-check dvcadapter._hardlinks"
    assert "for out in self.filter_outs(filter_info)" in _source(Stage.commit), "re-check dvcadapter.record"
    root = tmp_path / "repo"
    root.mkdir()
    subprocess.run([str(BIN / "dvc"), "init", "--no-scm", "-q"], cwd=root, check=True)
    (root / "dvc.yaml").write_text("stages:\n  make:\n    cmd: mkdir -p .nbprod/data/nb/make/v && echo passed > "
                                   ".nbprod/data/nb/make/v/value.npy && echo mine > mine.txt\n    outs:\n"
                                   "      - .nbprod/data/nb/make/v\n      - mine.txt\n")
    monkeypatch.chdir(root)
    repo = dvcadapter.open_repo(root)
    try:
        with dvcadapter.locked(repo):
            (stage,) = dvcadapter.plan(repo, [], downstream=False).stages
            dvcadapter.prepare_to_run(stage, force=False)
            for argv in dvcadapter.commands(stage).argv:
                subprocess.run(argv, cwd=root, check=True)
            dvcadapter.commit_stage(stage)
            dvcadapter.write_lock_entry(stage)
            assert repo.cache.local.cache_types == ["reflink", "copy"]  # the project's setting is left as it was
    finally:
        repo.close()
    passed, mine = root / ".nbprod/data/nb/make/v/value.npy", root / "mine.txt"
    assert passed.stat().st_nlink == 2 and oct(passed.stat().st_mode & 0o777) == "0o444"
    assert mine.stat().st_nlink == 1
    status = subprocess.run([str(BIN / "dvc"), "status", "-q"], cwd=root, capture_output=True, text=True)
    assert status.returncode == 0, status.stdout
