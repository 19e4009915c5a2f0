"""``nbprod debug STAGE``: a stage on its own, with its inputs loaded from the DVC cache.

Writes ``nbprod-debug/<stage>.ipynb`` (a visible folder, so JupyterLab opens it): the stage's shared code,
params, inputs and cells, ready to run in JupyterLab; or, with ``console=True``, starts IPython with
everything but the stage's own cells run.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from ..notebooks.carry import DEFINITIONS_TAG, PRELUDE_TAG
from ..notebooks.compile import LOAD_TAG, stage_notebook
from ..core.errors import NbprodError
from ..notebooks.notebook import atomic_write, cell_source, code_cell, dumps_notebook, markdown_cell
from ..notebooks.pipeline import Pipeline, Stage, load_pipeline
from ..core.proc import tool
from ..core.project import DEBUG_DIR, Project
from ..notebooks.rlang import is_r, r_literal


def prepare_debug(project: Project, name: str) -> tuple[Stage, list[dict], dict]:
    """Check out the stage's inputs and return the cells that set the stage up."""
    pipeline = load_pipeline(project)
    stage = pipeline.stage(name)
    _checkout_inputs(project, pipeline, stage)
    spec = pipeline.notebook_of(stage)
    generated = stage_notebook(spec, stage, spec.kernel)
    params = _params_values(project, spec.section, stage)
    folder = Path(stage.notebook).parent.as_posix()
    r_notebook = is_r(spec.language)
    if r_notebook:  # R stages pass data through their deps: files, already checked out above
        setup = ["# nbprod debug: run in the source notebook's folder, as the stage does",
                 f"setwd({r_literal(str(project.root / folder))})"]
    else:
        setup = ["# nbprod debug: run in the source notebook's folder, as the stage does",
                 "import os",
                 "from nbprod.artifacts import project_root as _nbprod_root",
                 f"os.chdir(os.path.join(_nbprod_root(), {folder!r}))"]
    cells = [code_cell("\n".join(setup), ["nbprod-debug"])]
    for cell in generated["cells"][1:]:
        tags = cell["metadata"].get("tags", [])
        if "parameters" in tags:
            from ..notebooks.compile import py_literal

            lines = ["# Parameters from params.yaml"] + [
                f"{k} <- {r_literal(v, k)}" if r_notebook else f"{k} = {py_literal(v)}" for k, v in params.items()]
            cell = code_cell("\n".join(lines), ["parameters"])
        cells.append(cell)
    return stage, cells, generated["metadata"]


def debug_notebook(project: Project, name: str) -> Path:
    stage, cells, metadata = prepare_debug(project, name)
    header = markdown_cell(
        f"**Debugging stage `{stage.name}`** of `{stage.notebook}`: its inputs are loaded from the DVC cache.\n\n"
        "Run the cells to reproduce the stage on its own. Edits here are not compiled: change the source "
        "notebook and run `nbprod run` again.")
    nb = {"cells": [header, *cells], "metadata": {"kernelspec": metadata["kernelspec"],
                                                   "language_info": metadata["language_info"]},
          "nbformat": 4, "nbformat_minor": 4}
    path = project.root / DEBUG_DIR / f"{stage.name}.ipynb"
    text = dumps_notebook(nb)
    if path.exists() and path.read_text(encoding="utf-8") != text:
        # It may hold the user's experiments from the last debug session: keep it beside the new one.
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(path.stat().st_mtime))
        path.rename(path.with_name(f"{stage.name}.{stamp}.ipynb"))
    atomic_write(path, text)
    return path


def debug_console(project: Project, name: str, extra_args: list[str] | None = None) -> int:
    """IPython with the stage's shared code, params and inputs run; the stage's own cells not run."""
    stage, cells, metadata = prepare_debug(project, name)
    if is_r(metadata["kernelspec"].get("language")):
        raise NbprodError(f"stage {name!r} is an R stage; the console is IPython", stage.notebook,
                          fix=f"run 'nbprod debug {name}' (without --console) and open the notebook")
    setup = [cell_source(c) for c in cells
             if set(c["metadata"].get("tags", [])) & {"nbprod-debug", "shared", "parameters", PRELUDE_TAG,
                                                      DEFINITIONS_TAG, LOAD_TAG}]
    loaded = ", ".join(sorted(stage.inputs)) or "none"
    setup.append(f"print('nbprod debug: stage {stage.name}; inputs loaded: {loaded}; "
                 f"its cells are in {stage.notebook}')")
    script = project.root / DEBUG_DIR / f"{stage.name}.py"
    atomic_write(script, "\n\n".join(setup) + "\n")
    command = [sys.executable, "-m", "IPython", "--no-banner", "--no-confirm-exit", "-i", str(script),
               *(extra_args or [])]
    return subprocess.call(command, cwd=project.root)


def _params_values(project: Project, section: str, stage: Stage) -> dict:
    from ruamel.yaml import YAML, YAMLError

    from .stage import check_param

    spec_defaults = {}
    try:  # YAML 1.2, as DVC and `nbprod exec` read it ("yes" stays a string)
        doc = YAML(typ="safe", pure=True).load((project.root / "params.yaml").read_text(encoding="utf-8")) or {}
        spec_defaults = (doc.get(section) if isinstance(doc, dict) else None) or {}
    except (OSError, YAMLError):
        pass
    values = {key: spec_defaults[key] for key in stage.params if key in spec_defaults}
    for key, value in values.items():
        check_param(f"{section}.{key}", value)
    return values


def _checkout_inputs(project: Project, pipeline: Pipeline, stage: Stage) -> None:
    by_name = {s.name: s for s in pipeline.stages}
    needed = sorted({f"{by_name[p].artifact_dir}/{v}" for v, p in stage.inputs.items()})
    missing = [p for p in needed if not any((project.root / p).glob("value.*"))]
    if not missing:
        return
    done = subprocess.run([tool("dvc"), "checkout", *missing], cwd=project.root, capture_output=True, text=True)
    still = [p for p in missing if not any((project.root / p).glob("value.*"))]
    if done.returncode != 0 or still:
        producers = sorted({stage.inputs[Path(p).name] for p in still or missing})
        raise NbprodError(f"inputs of stage {stage.name!r} are not in the DVC cache: {', '.join(still or missing)}",
                          stage.notebook, stage.first_cell,
                          fix=f"run 'nbprod run {' '.join(producers)}' first")


