"""The kernel pool (nbprod.execution.kernelpool): a stage's kernel forked from the run's warm zygote is a fresh
kernel in every way a stage can observe, and its results are bit for bit those of a new process.

Each test runs the same real pipeline twice: with the pool (the default) and with
``kernel_pool = false`` (every kernel a new process, as before the pool existed).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from helpers.commands import nbprod, run
from helpers.notebooks import code_notebook, load_nb

pytestmark = pytest.mark.slow  # every test here runs pipelines with forked and launched kernels

OBSERVE = r'''import gc, json, os, random, sys
import numpy as np

def observe(stage):
    """What a stage can see of its kernel, written to STAGE.json."""
    from ipykernel.kernelapp import IPKernelApp

    app = IPKernelApp.instance()
    ip = get_ipython()
    facts = {
        "cwd": os.getcwd(),
        "executable": sys.executable,
        "argv0": sys.argv[0],
        "argv": [a for a in sys.argv[1:] if not a.endswith(".json")],  # minus the connection file
        "path": sys.path,
        "env": {k: v for k, v in os.environ.items() if not k.startswith("NBPROD_") and k != "JPY_PARENT_PID"},
        "parent_pid_env_is_the_stage_process": os.environ["JPY_PARENT_PID"] == str(app.parent_handle),
        "session_leader": os.getsid(0) == os.getpid(),
        "user_names": sorted(k for k in ip.user_ns if not k.startswith("_")),
        "history": ip.history_manager.hist_file,
        "gc_enabled": gc.isenabled(),
        "flags": str(sys.flags),
        "mpl_backend": os.environ.get("MPLBACKEND"),
        "numpy_draw": float(np.random.rand()),
        "random_draw": random.random(),
    }
    os.write(1, f"fd-level output of {stage}\n".encode())
    with open(f"{stage}.json", "w") as handle:
        json.dump(facts, handle, indent=1, sort_keys=True)
'''
LOCAL_HELPER = "VALUE = 'from the notebook folder'\n"


def _project(root: Path, pool_settings: str) -> Path:
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "pool"\nversion = "0"\n\n[tool.nbprod]\n'
                                         f'notebooks = ["notebooks"]\n{pool_settings}', encoding="utf-8")
    (root / "notebooks").mkdir()
    (root / "notebooks" / "helpers.py").write_text(LOCAL_HELPER, encoding="utf-8")
    cells = [(["shared"], OBSERVE),
             (["stage:first", "outs:first.json"], "observe('first')"),
             (["stage:second", "outs:second.json"], "observe('second')\nimport helpers\nprint(helpers.VALUE)")]
    (root / "notebooks" / "observe.ipynb").write_text(json.dumps(code_notebook(cells), indent=1), encoding="utf-8")
    run("git", "init", "-q", cwd=root)
    run("dvc", "init", "-q", cwd=root)
    run("git", "add", "-A", cwd=root)
    run("git", "commit", "-q", "-m", "pipeline", cwd=root)
    return root


def _facts(root: Path, stage: str) -> dict:
    return json.loads((root / "notebooks" / f"{stage}.json").read_text(encoding="utf-8"))


def _kernel(root: Path, stage: str) -> dict:
    return load_nb(root / "reports" / f"{stage}.ipynb")["metadata"]["nbprod"]["kernel"]


def _outputs(root: Path, stage: str) -> list:
    cells = load_nb(root / "reports" / f"{stage}.ipynb")["cells"]
    return [[(o.get("name"), o.get("text")) for o in c.get("outputs", [])] for c in cells if c["cell_type"] == "code"]


@pytest.fixture(scope="module")
def observed(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("pool")
    roots = {"pool": _project(base / "pool", ""), "fresh": _project(base / "fresh", "kernel_pool = false\n")}
    for root in roots.values():
        nbprod("run", "--no-report", cwd=root, timeout=300)
    return roots


def test_stages_get_forked_kernels_with_their_imports_preloaded(observed):
    for stage in ("first", "second"):
        kernel = _kernel(observed["pool"], stage)
        assert kernel["start"] == "forked from the run's kernel pool", kernel
        assert "numpy" in kernel["preloaded"]
        assert _kernel(observed["fresh"], stage) == {"start": "new process"}


def test_a_forked_kernel_is_what_a_new_kernel_process_would_be(observed):
    for stage in ("first", "second"):
        forked, fresh = _facts(observed["pool"], stage), _facts(observed["fresh"], stage)
        for facts in (forked, fresh):
            assert facts.pop("parent_pid_env_is_the_stage_process") is True
            assert facts.pop("session_leader") is True
            del facts["numpy_draw"], facts["random_draw"]
        # Same working directory, interpreter, arguments, sys.path, environment, empty namespace,
        # IPython settings and matplotlib backend; only the project folder differs between the two.
        normalised = json.loads(json.dumps(forked).replace(str(observed["pool"]), str(observed["fresh"])))
        assert normalised == fresh
        # The kernel's own fd-level output reaches the executed notebook as it does from a new process.
        assert _outputs(observed["pool"], stage) == _outputs(observed["fresh"], stage)


def test_forked_kernels_get_fresh_random_seeds(observed):
    first, second = _facts(observed["pool"], "first"), _facts(observed["pool"], "second")
    assert first["numpy_draw"] != second["numpy_draw"]  # numpy's global generator was reseeded
    assert first["random_draw"] != second["random_draw"]


def test_modules_of_the_notebook_folder_are_never_preloaded(observed):
    assert "helpers" not in _kernel(observed["pool"], "second")["preloaded"]
    outputs = ["".join(text) for cell in _outputs(observed["pool"], "second") for _, text in cell if text]
    assert "from the notebook folder\n" in outputs


def test_a_failed_preload_falls_back_to_new_kernel_processes(tmp_path):
    root = _project(tmp_path / "proj", 'preload = ["nbprod_no_such_module"]\n')
    nbprod("run", "--no-report", cwd=root, timeout=300)
    for stage in ("first", "second"):
        kernel = _kernel(root, stage)
        assert kernel["start"] == "new process"
        assert "preloading nbprod_no_such_module failed" in kernel["pool"]
        assert _facts(root, stage)["cwd"] == str(root / "notebooks")


def _lock_outs(root: Path) -> dict:
    lock = YAML(typ="safe").load((root / "dvc.lock").read_text(encoding="utf-8"))
    outs = {}
    for stage in lock["stages"].values():
        for out in stage.get("outs", []):
            if not out["path"].startswith("reports/"):  # executed notebooks hold run timestamps
                outs[out["path"]] = out.get("md5")
    return outs


def test_the_example_pipeline_gives_bit_identical_results_with_and_without_the_pool(project, tmp_path):
    fresh = tmp_path / "fresh"
    shutil.copytree(project, fresh, symlinks=True)
    pyproject = fresh / "pyproject.toml"
    pyproject.write_text(re.sub(r"\[tool\.nbprod\]\n", "[tool.nbprod]\nkernel_pool = false\n",
                                pyproject.read_text(encoding="utf-8")), encoding="utf-8")
    for root in (project, fresh):
        nbprod("run", "--no-report", cwd=root, timeout=300)
    assert _kernel(project, "train")["start"] == "forked from the run's kernel pool"
    assert {"pandas", "sklearn"} <= set(_kernel(project, "train")["preloaded"])
    assert _kernel(fresh, "train")["start"] == "new process"
    outs = _lock_outs(project)
    assert outs and outs == _lock_outs(fresh)
    for stage in ("prepare", "train", "evaluate"):
        metrics = f"metrics/{stage}.json"
        assert (project / metrics).read_bytes() == (fresh / metrics).read_bytes()
