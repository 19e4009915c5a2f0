"""Project builders and what tests compare of a project: a one-notebook pipeline, the fault pipeline,
two approved model versions; a digest of the user's files, dvc.lock's entries, a holdout sample."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from helpers.commands import nbprod, run
from helpers.notebooks import code_notebook

MODEL_OBJECT_GLOB = ".dvc/cache/files/md5/*/*"


def tree_digest(root: Path) -> dict[str, str]:
    """Hash of every file under root except git/DVC internals: proves that a command changed nothing."""
    digest = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and not rel.startswith((".git/", ".dvc/tmp", ".dvc/cache", ".nbprod/runs/")) \
                and rel != ".nbprod/run.lock":
            digest[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digest


def flow_project(root: Path, cells, name: str = "flow") -> Path:
    """A committed git + DVC project whose pipeline is one notebook (notebooks/flow.ipynb) of the given
    (tags, source) code cells, compiled."""
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text(f'[project]\nname = "{name}"\nversion = "0"\n\n[tool.nbprod]\n'
                                         'notebooks = ["notebooks"]\nkernel = "python3"\n', encoding="utf-8")
    (root / "notebooks").mkdir()
    (root / "notebooks" / "flow.ipynb").write_text(json.dumps(code_notebook(cells), indent=1), encoding="utf-8")
    run("git", "init", "-q", cwd=root)
    run("dvc", "init", "-q", cwd=root)
    nbprod("compile", cwd=root)
    run("git", "add", "-A", cwd=root)
    run("git", "commit", "-q", "-m", "pipeline", cwd=root)
    return root


def lock_entries(root: Path) -> dict:
    """dvc.lock's stages as data, with the hashes of executed notebooks blanked (they hold run
    timestamps): two runs that recorded the same results compare equal, whatever order they wrote."""
    import yaml

    stages = yaml.safe_load((root / "dvc.lock").read_text(encoding="utf-8"))["stages"]
    for entry in stages.values():
        for out in entry.get("outs", []):
            if re.search(r"reports/[\w-]+\.ipynb$", out["path"]):
                out["md5"], out["size"] = "*", "*"
    return stages


# The fault pipeline (tests/func/test_faults.py, test_concurrency.py; fixtures in fixtures.py).
FAULT_STAGE_TWO = '''import os, pathlib, signal, time
fault = os.environ.get("NBPROD_TEST_FAULT", "")
marker = os.environ.get("NBPROD_TEST_MARKER")
if marker:
    pathlib.Path(marker).write_text(fault)
if fault == "raise":
    raise RuntimeError("injected failure")
if fault == "exit":
    os._exit(3)
if fault == "sigkill":
    os.kill(os.getpid(), signal.SIGKILL)
if fault == "oom":
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
    hog = [bytearray(64 << 20) for _ in range(64)]
if fault == "hang":
    release = os.environ.get("NBPROD_TEST_RELEASE", "")
    deadline = time.monotonic() + 90  # bounded even if nobody stops it
    while time.monotonic() < deadline and not (release and os.path.exists(release)):
        time.sleep(0.2)
size = 64 << 20 if fault == "bigwrite" else 0
with open("second.txt", "w") as out:
    out.write(f"{base * factor}\\n")
    for _ in range(size // (1 << 20)):
        out.write("x" * (1 << 20))
'''


def fault_notebook() -> dict:
    """A two-stage notebook whose second stage fails, dies, hangs or writes a lot as NBPROD_TEST_FAULT says."""
    cells = [("factor = 2", ["parameters"]),
             ("import pathlib\nbase = 21\npathlib.Path('first.txt').write_text(str(base))\n",
              ["stage:first", "outs:first.txt"]),
             (FAULT_STAGE_TWO, ["stage:second", "outs:second.txt"])]
    return {"cells": [{"cell_type": "code", "execution_count": None, "metadata": {"tags": tags}, "outputs": [],
                       "source": source} for source, tags in cells],
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


def fault_outputs(root: Path) -> dict:
    """What a user compares between runs: their files, the metrics, and what dvc.lock records of them."""
    from ruamel.yaml import YAML

    lock = YAML(typ="safe", pure=True).load((root / "dvc.lock").read_text(encoding="utf-8"))
    recorded = {}
    for name, stage in lock["stages"].items():
        recorded[name] = {"deps": {d["path"]: d.get("md5") for d in stage.get("deps", [])},
                          "params": stage.get("params"),
                          "outs": {o["path"]: o.get("md5") for o in stage.get("outs", [])
                                   if not o["path"].startswith("reports/")}}
    return {"first.txt": (root / "notebooks/first.txt").read_text(),
            "second.txt": (root / "notebooks/second.txt").read_text(),
            "metrics": {p.name: p.read_text() for p in sorted((root / "metrics").glob("*.json"))},
            "lock": recorded}


def approve_two_versions(root: Path) -> None:
    """v1.0.0 (C=1.0) approved, then v1.1.0 (C=0.05) approved: prod is v1.1.0."""
    nbprod("retrain", cwd=root)
    nbprod("approve", "c1", "--by", "alice", cwd=root)
    nbprod("retrain", "--set", "model.C=0.05", cwd=root)
    nbprod("approve", "c2", "--by", "bob", "--note", "more regularised", cwd=root)


def holdout_records(root: Path, n: int = 20) -> list[dict]:
    import pandas as pd

    frame = pd.read_parquet(root / "notebooks/data/test.parquet").drop(columns="target")
    return frame.head(n).to_dict("records")
