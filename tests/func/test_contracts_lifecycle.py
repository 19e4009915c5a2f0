"""Schema files in the model lifecycle: approve records their hashes, lineage names them, rollback
restores them with everything else. Real git, DVC, GTO tags and kernels."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from helpers.commands import nbprod, run

SCHEMA = "schemas/breast_cancer.yaml"
MODEL = ".nbprod/data/notebooks__model/train/model"


@pytest.mark.slow
def test_approve_records_schema_hash_lineage_shows_it_rollback_restores_it(ran_project, tmp_path):
    root = tmp_path / "proj"
    shutil.copytree(ran_project, root, symlinks=True)
    with open(root / "pyproject.toml", "a", encoding="utf-8") as handle:
        handle.write('\n[tool.nbprod.gates]\nroc_auc = ">= 0.9"\n')
    run("git", "commit", "-q", "-am", "gates", cwd=root)
    original = (root / SCHEMA).read_bytes()

    nbprod("retrain", "--json", cwd=root)
    nbprod("approve", "c1", "--by", "alice", "--note", "first", cwd=root)
    approved = next(e for e in json.loads(nbprod("history", "--json", cwd=root).stdout) if e["action"] == "approve")
    record = approved.get("record", approved)
    assert record["schemas"] == {SCHEMA: hashlib.sha256(original).hexdigest()}
    assert f"[schemas: {SCHEMA} {hashlib.sha256(original).hexdigest()[:12]}]" in nbprod("history", cwd=root).stdout

    lineage = nbprod("lineage", MODEL, cwd=root).stdout
    assert f"schema {SCHEMA}" in lineage and "validated in stage prepare; unchanged since the run" in lineage

    # A looser contract, run and committed: lineage of the old model output now states the edit.
    (root / SCHEMA).write_bytes(original.replace(b"less_than_or_equal_to: 28.11", b"less_than_or_equal_to: 40.0"))
    lineage = nbprod("lineage", MODEL, cwd=root, check=False).stdout
    assert "MISMATCH" in lineage and "edited since the run" in lineage
    nbprod("run", "--no-report", cwd=root)
    run("git", "add", "-A", cwd=root)
    run("git", "commit", "-q", "-m", "looser schema", cwd=root)

    nbprod("rollback", "v1.0.0", "--by", "erin", "--note", "back to the reviewed contract", cwd=root)
    assert (root / SCHEMA).read_bytes() == original
