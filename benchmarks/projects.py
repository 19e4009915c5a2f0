"""Generated projects the scenarios run on: real git, real DVC, real notebooks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    local = BIN / name
    return str(local) if local.exists() else name


def sh(*command, cwd: Path, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in command], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, command))} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


def notebook(cells: list[tuple[list[str], str]]) -> dict:
    return {
        "cells": [{"cell_type": "code", "execution_count": None, "metadata": {"tags": tags} if tags else {},
                   "outputs": [], "source": source} for tags, source in cells],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                     "language_info": {"name": "python"}},
        "nbformat": 4, "nbformat_minor": 5,
    }


def write_notebook(path: Path, nb: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb, indent=1) + "\n", encoding="utf-8")


def new_project(root: Path, notebooks: dict[str, dict]) -> Path:
    """A git + DVC project whose pipeline is the given notebooks (name -> notebook JSON)."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        '[project]\nname = "bench"\nversion = "0"\n\n[tool.nbprod]\nnotebooks = ["notebooks"]\nkernel = "python3"\n',
        encoding="utf-8")
    for name, nb in notebooks.items():
        write_notebook(root / "notebooks" / f"{name}.ipynb", nb)
    sh("git", "init", "-q", cwd=root)
    sh(tool("dvc"), "init", "-q", cwd=root)
    sh(tool("dvc"), "config", "core.autostage", "false", cwd=root)
    return root


def stages_notebook(count: int, body: str = "x = 1", prefix: str = "s", independent: bool = True) -> dict:
    """``count`` stages of ``body`` each; independent stages share no variables."""
    return notebook([([f"stage:{prefix}{i:03d}"], body) for i in range(count)])


def chain_notebook(count: int, body: str = "x = 1", prefix: str = "s") -> dict:
    """``count`` stages of ``body``, each after the one before (``after:`` tags: no data passed)."""
    return notebook([([f"stage:{prefix}{i:03d}"] + ([f"after:{prefix}{i - 1:03d}"] if i else []), body)
                     for i in range(count)])


def git_commit_all(root: Path) -> None:
    sh("git", "add", "-A", cwd=root)
    sh("git", "-c", "user.name=bench", "-c", "user.email=bench@nbprod.invalid", "commit", "-q", "-m", "bench",
       cwd=root)


def nbprod_template(base: Path) -> Path:
    """The example project of ``nbprod init``, made once per benchmark run; scenarios copy it."""
    root = base / "example-template"
    if not root.exists():
        sh(tool("nbprod"), "init", root.name, cwd=base)
    return root


def copy_project(template: Path, target: Path) -> Path:
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(template, target, symlinks=True)
    return target


def plain_script(root: Path) -> tuple[Path, Path]:
    """The pipeline's code as one Python script, cells in notebook order (``skip`` cells left out).

    Returns the script and the folder to run it in (the notebooks' folder, as their paths assume).
    """
    from nbprod.notebooks.pipeline import load_pipeline
    from nbprod.core.project import load_project

    project = load_project(root)
    order: list[str] = []
    for stage in load_pipeline(project).order():  # notebooks in the order the pipeline needs them
        if stage.notebook not in order:
            order.append(stage.notebook)
    parts = []
    folders = set()
    for rel in order:
        path = root / rel
        nb = json.loads(path.read_text(encoding="utf-8"))
        folders.add(path.parent)
        for cell in nb["cells"]:
            tags = cell.get("metadata", {}).get("tags", [])
            if cell["cell_type"] == "code" and "skip" not in tags:
                source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
                parts.append(source)
    if len(folders) != 1:
        raise RuntimeError("the plain-script baseline expects the notebooks in one folder")
    script = root / "pipeline_script.py"
    script.write_text("\n\n".join(parts) + "\n", encoding="utf-8")
    return script, folders.pop()


def papermill_peer(root: Path) -> None:
    """Turn a compiled nbprod project into the hand-written peer: the same stage notebooks, deps and
    outs, but each stage's cmd is a plain ``papermill`` call (what a user writes without nbprod)."""
    import yaml

    from nbprod.notebooks.pipeline import load_pipeline
    from nbprod.core.project import load_project

    sh(tool("nbprod"), "compile", cwd=root)
    pipeline = load_pipeline(load_project(root))
    doc = yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8"))
    stages = {}
    for stage in pipeline.order():
        entry = doc["stages"][stage.name]
        cwd = Path(stage.notebook).parent.as_posix() or "."
        stages[stage.name] = {
            "cmd": f"mkdir -p {Path(stage.executed_notebook).parent.as_posix()} && "
                   f"papermill --no-progress-bar -k python3 --cwd {cwd} {stage.stage_notebook} "
                   f"{stage.executed_notebook}",
            "deps": entry.get("deps", []),
            "outs": entry.get("outs", []),
            **({"plots": entry["plots"]} if entry.get("plots") else {}),
        }
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}, sort_keys=False), encoding="utf-8")
    (root / "pyproject.toml").unlink()  # no nbprod project any more: plain DVC + papermill


def mark_up_to_date(root: Path) -> None:
    """Record every stage as done without running 100 kernels: write plausible outputs, then let
    DVC record them (``dvc commit``). A no-op run of either tool then has nothing to do."""
    sh(tool("nbprod"), "compile", cwd=root)
    for stage_nb in sorted((root / ".nbprod" / "stages").glob("*.ipynb")):
        (root / "reports").mkdir(exist_ok=True)
        (root / "metrics").mkdir(exist_ok=True)
        shutil.copyfile(stage_nb, root / "reports" / stage_nb.name)
        (root / "metrics" / f"{stage_nb.stem}.json").write_text("{}\n", encoding="utf-8")
    sh(tool("dvc"), "commit", "--force", "-q", cwd=root)
    git_commit_all(root)


def many_cells_notebook(cells: int, per_stage: int = 20) -> dict:
    """``cells`` code cells in stages of ``per_stage``; each stage reads the previous stage's variable."""
    content = [([], "import math")]
    stage = 0
    for i in range(1, cells):
        if (i - 1) % per_stage == 0:
            previous = f"total_{stage - 1}" if stage else "1"
            content.append(([f"stage:part{stage:03d}"], f"total_{stage} = {previous} + 1"))
            stage += 1
        else:
            content.append(([], f"value_{i} = math.sqrt({i}) + total_{stage - 1}\ntotal_{stage - 1} += value_{i}"))
    nb = notebook(content)
    nb["cells"][0]["metadata"] = {"tags": ["shared"]}
    return nb
