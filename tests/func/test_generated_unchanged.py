"""The generated files committed at the repository root (the example project's stage notebooks,
dvc.yaml, params.yaml, .nbprod/compiled.json) are byte for byte what `nbprod compile` produces now
from the committed notebooks: a refactoring that changed them would make every user's stages rerun."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

from helpers.paths import REPO
from nbprod.notebooks.compile import compile_project
from nbprod.core.project import STAGES_DIR, load_project

ROOT = REPO
GENERATED = ["dvc.yaml", "params.yaml", ".nbprod/compiled.json"]


def _committed(target: Path) -> None:
    """The repository as committed (a few MB), so every file the notebooks name is there."""
    archive = subprocess.run(["git", "archive", "--format=tar", "HEAD"], cwd=ROOT,
                             capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")


def _show(path: str) -> bytes:
    return subprocess.run(["git", "show", f"HEAD:{path}"], cwd=ROOT, capture_output=True, check=True).stdout


def test_compiling_the_committed_example_reproduces_the_committed_generated_files(tmp_path):
    stages = subprocess.run(["git", "ls-files", "--", STAGES_DIR], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.split()
    assert stages, "no committed stage notebooks at the repository root"
    _committed(tmp_path)
    result = compile_project(load_project(tmp_path))
    assert result.changed == [], f"compile rewrote {result.changed}"
    generated = sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / STAGES_DIR).glob("*.ipynb"))
    assert generated == sorted(stages)
    for path in [*GENERATED, *stages]:
        assert (tmp_path / path).read_bytes() == _show(path), f"{path} differs from the committed file"
