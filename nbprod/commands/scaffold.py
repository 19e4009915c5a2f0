"""``nbprod init``: a working project from templates/: git, DVC with a local default remote, examples."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from ..core.errors import NbprodError
from ..core.proc import git_output, tool

DEFAULT_TEMPLATE = "example"
# Named templates: templates/<name>/ (nbprod/_templates/<name>/ in the wheel), copied over the base
# project (templates/project), so each holds only what differs: notebooks, pyproject.toml, README.md.
# Adding one (a "mixed" R + Python project, say) is that folder, its name here, and one
# force-include line in pyproject.toml.
NAMED_TEMPLATES = ("fairness", "mixed", "sql")
# A template's own set-up script, run once in the new project (the sql template makes its SQLite database).
_SETUP = {"sql": "notebooks/make_warehouse.py"}
_SKIPPED = {"__pycache__", ".ipynb_checkpoints"}


def template_names() -> list[str]:
    return [DEFAULT_TEMPLATE, *NAMED_TEMPLATES]


def named_template_dir(name: str) -> Path:
    here = Path(__file__).resolve().parent.parent  # the nbprod package
    packaged = here / "_templates" / name
    return packaged if packaged.is_dir() else here.parent / "templates" / name


def template_dirs() -> tuple[Path, Path]:
    """(project template, example notebooks), from the wheel or from a source checkout."""
    here = Path(__file__).resolve().parent.parent  # the nbprod package
    packaged = here / "_templates"
    if packaged.is_dir():
        return packaged / "project", packaged / "example"
    return here.parent / "templates" / "project", here.parent / "example_project"


def template_schemas() -> Path:
    """The schema files (data contracts) the example notebooks validate against."""
    here = Path(__file__).resolve().parent.parent  # the nbprod package
    packaged = here / "_templates" / "schemas"
    return packaged if packaged.is_dir() else here.parent / "schemas"


def init_project(path: Path, git: bool = True, template: str = DEFAULT_TEMPLATE) -> Path:
    if template not in template_names():
        raise NbprodError(f"no project template {template!r}", "--template",
                          fix=f"choose one of: {', '.join(template_names())}")
    root = path.resolve()
    if root.exists() and any(root.iterdir()):
        raise NbprodError("already exists and is not empty", path,
                          fix="choose a new folder name; nbprod init never writes into existing work")
    from ..notebooks.pipeline import slug

    name = slug(root.name) or "project"
    project_template, examples = template_dirs()
    root.mkdir(parents=True, exist_ok=True)
    try:
        _copy_template(project_template, root, name)
        if template != DEFAULT_TEMPLATE:
            _copy_template(named_template_dir(template), root, name)
            if template in _SETUP:
                _run(root, sys.executable, str(root / _SETUP[template]))
        else:
            _add_examples(root, examples)
        if git:
            _run(root, "git", "init", "-q")
        _run(root, tool("dvc"), "init", "-q", *([] if git else ["--no-scm"]))
        _run(root, tool("dvc"), "remote", "add", "-d", "-q", "local", str(root / ".dvcstore"))
        _run(root, tool("dvc"), "remote", "modify", "local", "url", "../.dvcstore")
        from ..notebooks.compile import compile_project
        from ..core.project import load_project

        compile_project(load_project(root))
        if git:
            _run(root, "git", "add", "-A")
            _run(root, "git", *_identity(root), "commit", "-q", "-m", "New nbprod project")
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)  # we created it: leave nothing half made
        raise
    return root


def _copy_template(folder: Path, root: Path, name: str) -> None:
    """Every file of a template folder into the project, with ``{{name}}`` filled in."""
    for source in sorted(folder.rglob("*")):
        if source.is_dir() or _SKIPPED & set(source.relative_to(folder).parts):
            continue
        rel = source.relative_to(folder).as_posix()
        rel = {"gitignore": ".gitignore", "dvcignore": ".dvcignore"}.get(rel, rel)
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(source.read_text(encoding="utf-8").replace("{{name}}", name), encoding="utf-8")


def _add_examples(root: Path, examples: Path) -> None:
    """The default template: the example notebooks and the data contracts they validate against."""
    (root / "notebooks").mkdir()
    for notebook in sorted(examples.glob("*.ipynb")):
        shutil.copyfile(notebook, root / "notebooks" / notebook.name)
    # schemas/ sits at the project root, as in this repository: "schemas/NAME.yaml" in a notebook
    # is looked up from the notebook's folder, then from the root (nbprod.contracts.schemas).
    for schema in sorted(template_schemas().glob("*.yaml")):
        (root / "schemas").mkdir(exist_ok=True)
        shutil.copyfile(schema, root / "schemas" / schema.name)


def _identity(root: Path) -> list[str]:
    """A committer identity for the first commit only when git has none configured."""
    if git_output(root, "config", "user.email"):
        return []
    return ["-c", "user.name=nbprod", "-c", "user.email=nbprod@localhost"]


def _run(root: Path, *command: str) -> None:
    done = subprocess.run(command, cwd=root, capture_output=True, text=True, env={**os.environ})
    if done.returncode != 0:
        raise NbprodError(f"'{' '.join(command[:3])}' failed: {(done.stderr or done.stdout).strip()[:300]}", root,
                          fix="check that git and dvc work in this folder")
