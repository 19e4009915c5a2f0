"""Plain helpers shared by the tests: running real commands, notebooks as JSON, tree digests.

Tests import them with ``from helpers import ...`` (pytest puts tests/ on sys.path); conftest.py holds
only fixtures.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

# Tests commit to git: give them an identity without touching the user's configuration.
os.environ.setdefault("GIT_AUTHOR_NAME", "nbprod tests")
os.environ.setdefault("GIT_AUTHOR_EMAIL", "tests@nbprod.invalid")
os.environ.setdefault("GIT_COMMITTER_NAME", "nbprod tests")
os.environ.setdefault("GIT_COMMITTER_EMAIL", "tests@nbprod.invalid")
os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
os.environ.pop("NBPROD_EVENTS", None)


def run(*command, cwd: Path, check: bool = True, env: dict | None = None, timeout: float = 600):
    """Run a real command; on unexpected failure show its output in the test report."""
    done = subprocess.run([str(c) for c in command], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"{command} exited {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}")
    return done


def nbprod(*args, cwd: Path, **kwargs):
    return run(BIN / "nbprod", *args, cwd=cwd, **kwargs)


def tree_digest(root: Path) -> dict[str, str]:
    """Hash of every file under root except git/DVC internals: proves that a command changed nothing."""
    digest = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and not rel.startswith((".git/", ".dvc/tmp", ".dvc/cache", ".nbprod/runs/")) \
                and rel != ".nbprod/run.lock":
            digest[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digest


def code_notebook(cells) -> dict:
    """A python3 notebook of code cells, from (tags, source) pairs."""
    return {
        "cells": [{"cell_type": "code", "execution_count": None, "metadata": {"tags": tags}, "outputs": [],
                   "source": source} for tags, source in cells],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                     "language_info": {"name": "python"}},
        "nbformat": 4, "nbformat_minor": 5,
    }


def load_nb(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def save_nb(path: Path, nb: dict) -> None:
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def find_cell(nb: dict, tag: str) -> dict:
    return next(c for c in nb["cells"] if tag in c.get("metadata", {}).get("tags", []))
