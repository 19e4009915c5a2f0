"""The DVC internals nbprod relies on (execution/dvcadapter.py), pinned by reading DVC's own code: a
DVC release that changes them fails here. What running through the adapter leaves: tests/func."""

from __future__ import annotations

import inspect
import re
import tomllib

import pytest

from helpers.paths import REPO
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


def test_a_project_dvc_cannot_open_is_a_user_error(tmp_path):
    from nbprod.core.errors import NbprodError

    with pytest.raises(NbprodError, match="DVC cannot open the project"):
        dvcadapter.open_repo(tmp_path)
