"""What nbprod relies on inside DVC (nbprod.execution.dvcadapter), pinned: each test names the DVC
piece it checks, so a DVC release that changes one fails here first, with the step to re-check."""

from __future__ import annotations

import inspect
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from helpers.paths import BIN, REPO

from nbprod.execution import dvcadapter

ROOT = REPO


def _source(obj) -> str:
    return " ".join(inspect.getsource(obj).split())  # whitespace-insensitive


def test_dvc_is_the_major_version_pyproject_pins():
    import dvc

    pin = next(d for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
               if d.startswith("dvc"))
    assert re.fullmatch(r"dvc>=3\.\d+,<4", pin), pin
    assert dvc.__version__.split(".")[0] == "3", f"DVC {dvc.__version__} is outside {pin}"


def test_private_command_helpers_keep_their_shape():
    from dvc.stage import run

    assert list(inspect.signature(run._make_cmd).parameters) == ["executable", "cmd"]
    assert list(inspect.signature(run._enforce_cmd_list).parameters) == ["cmd"]
    assert list(inspect.signature(run.prepare_kwargs).parameters)[:1] == ["stage"]
    assert run._make_cmd("/bin/bash", "echo hi") == ["/bin/bash", "--noprofile", "--norc", "-c", "echo hi"]
    assert run._make_cmd("/usr/bin/zsh", "x") == ["/usr/bin/zsh", "--no-rcs", "-c", "x"]
    assert run._make_cmd("/bin/sh", "x") == ["/bin/sh", "-c", "x"]
    assert run._make_cmd(None, "x") == "x"
    assert run._enforce_cmd_list("a\nb") == ["a", "b"] and run._enforce_cmd_list(["a"]) == ["a"]
    assert "DVC_ROOT" in _source(run.prepare_kwargs) and "DVC_STAGE" in _source(run.prepare_kwargs)


def test_the_steps_of_stage_run_that_the_adapter_mirrors():
    from dvc.stage import Stage
    from dvc.stage import run

    reproduce = _source(Stage.reproduce)
    assert "self.changed(allow_missing, upstream)" in reproduce, "Stage.reproduce: re-check dvcadapter.unchanged"
    stage_run = _source(Stage.run)
    for step in ("self.remove_outs(ignore_remove=False, force=False)",
                 "not out.use_cache for out in self.outs if not (out.is_metric or out.is_plot)",
                 "self.save( allow_missing=allow_missing, run_cache=not no_commit and not no_cache_outs, )",
                 "self.commit(allow_missing=allow_missing)"):
        assert step in stage_run, f"Stage.run changed ({step!r}): re-check dvcadapter.prepare_to_run/record"
    run_stage = _source(run.run_stage)
    for step in ("stage.repo.stage_cache.restore(stage", "except RunCacheNotFoundError:", "stage.save_deps()"):
        assert step in run_stage, f"dvc.stage.run.run_stage changed ({step!r}): re-check dvcadapter.prepare_to_run"
    assert list(inspect.signature(Stage.changed).parameters) == ["self", "allow_missing", "upstream"]
    assert list(inspect.signature(Stage.save).parameters) == ["self", "allow_missing", "run_cache"]
    from dvc.dvcfile import ProjectFile

    assert "self.dvcfile.dump(self, **kwargs)" in _source(Stage.dump)
    assert "update_pipeline" in inspect.signature(ProjectFile.dump).parameters, "re-check write_lock_entry"


def test_planning_functions_exist():
    from dvc.repo import lock_repo  # noqa: F401 - dvcadapter.locked
    from dvc.repo.reproduce import collect_stages, get_active_graph, plan_repro

    assert list(inspect.signature(plan_repro).parameters)[:3] == ["graph", "stages", "pipeline"] or \
        "downstream" in inspect.signature(plan_repro).parameters
    assert callable(collect_stages) and callable(get_active_graph)


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


def test_a_project_dvc_cannot_open_is_a_user_error(tmp_path):
    from nbprod.core.errors import NbprodError

    with pytest.raises(NbprodError, match="DVC cannot open the project"):
        dvcadapter.open_repo(tmp_path)


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
