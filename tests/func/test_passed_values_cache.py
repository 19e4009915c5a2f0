"""A DataFrame passed between stages is one file on disk, hard-linked into the DVC cache, and every
restore (dvc checkout of an older dvc.lock, a rerun) still gives back the exact bytes of each run."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from helpers.commands import nbprod, run
from helpers.paths import BIN
from helpers.projects import flow_project

CELLS = [
    (["shared"], "import numpy as np\nimport pandas as pd"),
    (["parameters"], "scale = 2.0"),
    (["stage:make"], "frame = pd.DataFrame({'x': np.arange(30_000) * scale, 'y': np.arange(30_000) % 7})"),
    (["stage:use"], "import nbprod\nnbprod.record('total', float(frame['x'].sum() + frame['y'].sum()))"),
]


def _passed(root: Path) -> Path:
    files = list((root / ".nbprod" / "data").glob("*/make/frame/value.*"))
    assert len(files) == 1, files
    return files[0]


def _cache_object(root: Path, md5: str) -> Path:
    return root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]


def _lock_dir_hash(root: Path) -> str:
    lock = yaml.safe_load((root / "dvc.lock").read_text(encoding="utf-8"))
    return next(o["md5"] for o in lock["stages"]["make"]["outs"] if o["path"].endswith("/frame"))


def _digest(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.mark.slow  # three runs and two checkouts of a real project
def test_a_passed_frame_is_linked_into_the_cache_and_every_version_restores_exactly(tmp_path):
    root = flow_project(tmp_path / "proj", CELLS)
    nbprod("run", "--no-report", cwd=root)
    value = _passed(root)
    assert value.name == "value.arrow"
    first_bytes, first_dir = value.read_bytes(), _lock_dir_hash(root)
    listing = json.loads(_cache_object(root, first_dir).read_text())
    cached = _cache_object(root, listing[0]["md5"])
    # one copy on disk: the workspace file is the cache object, read-only (DVC protects links)
    assert os.stat(value).st_ino == os.stat(cached).st_ino and os.stat(value).st_nlink == 2
    assert oct(os.stat(value).st_mode & 0o777) == "0o444"
    # the executed notebooks, the user's outputs: DVC's configured link type (a copy here)
    report = root / "reports" / "make.ipynb"
    assert os.stat(report).st_nlink == 1
    run("git", "add", "-A", cwd=root)
    run("git", "commit", "-qm", "first", cwd=root)

    # A second version: the rerun replaces the file; the first version's cache object is untouched.
    params = root / "params.yaml"
    params.write_text(params.read_text().replace("scale: 2.0", "scale: 3.0"))
    nbprod("run", "--no-report", cwd=root)
    second_bytes = _passed(root).read_bytes()
    assert second_bytes != first_bytes
    assert _digest(cached) == listing[0]["md5"] and cached.read_bytes() == first_bytes
    assert subprocess.run([str(BIN / "dvc"), "status"], cwd=root, capture_output=True, text=True,
                          check=True).stdout.strip() == "Data and pipelines are up to date."

    # Back to the first version: dvc checkout restores its exact bytes; forward again, the second's.
    run("git", "checkout", "-q", "HEAD", "--", "dvc.lock", "params.yaml", cwd=root)
    run(BIN / "dvc", "checkout", "-q", cwd=root)
    assert _passed(root).read_bytes() == first_bytes
    params.write_text(params.read_text().replace("scale: 2.0", "scale: 3.0"))
    nbprod("run", "--no-report", cwd=root)  # DVC's run cache restores the second version
    assert _passed(root).read_bytes() == second_bytes
    # a damaged workspace copy (removed) comes back from the cache, bytes identical
    _passed(root).unlink()
    run(BIN / "dvc", "checkout", "-q", cwd=root)
    assert _passed(root).read_bytes() == second_bytes
