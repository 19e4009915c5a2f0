"""The shared fixtures, registered for every test by tests/conftest.py: real temporary projects made with
`nbprod init` (real git, real DVC), the example pipeline run once, the fault pipeline, and a Jupyter
server whose root holds a project and a symlink to one outside it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.commands import nbprod, run
from helpers.notebooks import save_nb
from helpers.projects import fault_notebook, fault_outputs
from helpers.servers import JupyterServer


@pytest.fixture(scope="session")
def template_project(tmp_path_factory) -> Path:
    """One `nbprod init` per session; tests copy it (git history and DVC config included)."""
    base = tmp_path_factory.mktemp("template")
    nbprod("init", "proj", cwd=base)
    return base / "proj"


@pytest.fixture
def project(template_project, tmp_path) -> Path:
    target = tmp_path / "proj"
    shutil.copytree(template_project, target, symlinks=True)
    # The default remote is a relative path, so the copy has its own.
    return target


@pytest.fixture(scope="session")
def ran_project(tmp_path_factory, template_project) -> Path:
    """The example pipeline run once with `nbprod run` and committed; copy it before changing it."""
    base = tmp_path_factory.mktemp("ran")
    target = base / "proj"
    shutil.copytree(template_project, target, symlinks=True)
    nbprod("run", "--no-report", cwd=target)
    run("git", "add", "-A", cwd=target)
    run("git", "commit", "-q", "-m", "run", cwd=target)
    return target


@pytest.fixture
def ran_copy(ran_project, tmp_path) -> Path:
    target = tmp_path / "proj"
    shutil.copytree(ran_project, target, symlinks=True)
    return target


@pytest.fixture(scope="module")
def fault_base(template_project, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("faults") / "proj"
    shutil.copytree(template_project, root, symlinks=True)
    for path in (root / "notebooks").glob("*.ipynb"):
        path.unlink()
    save_nb(root / "notebooks/work.ipynb", fault_notebook())
    nbprod("compile", cwd=root)
    run("git", "add", "-A", cwd=root)
    run("git", "commit", "-q", "-m", "fault pipeline", cwd=root)
    return root


@pytest.fixture(scope="module")
def fault_reference(fault_base, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("reference") / "proj"
    shutil.copytree(fault_base, root, symlinks=True)
    nbprod("run", "--no-report", cwd=root, timeout=300)
    return fault_outputs(root)


@pytest.fixture
def fault_copy(fault_base, tmp_path) -> Path:
    root = tmp_path / "proj"
    shutil.copytree(fault_base, root, symlinks=True)
    return root


@pytest.fixture(scope="module")
def contained_server(tmp_path_factory):
    """A Jupyter server whose root holds proj/ (a project) and escape -> outside/, a whole project
    outside the root; ``.top`` is the folder holding both, for snapshots. One per test module."""
    top = tmp_path_factory.mktemp("contained")
    root = top / "root"
    root.mkdir()
    subprocess.run([sys.executable, "-m", "nbprod", "init", str(root / "proj")], check=True, capture_output=True,
                   timeout=300)
    subprocess.run([sys.executable, "-m", "nbprod", "init", "--no-git", str(top / "outside")], check=True,
                   capture_output=True, timeout=300)
    (root / "escape").symlink_to(top / "outside", target_is_directory=True)
    server = JupyterServer(root, top / "jupyter")
    server.top = top
    yield server
    server.stop()
