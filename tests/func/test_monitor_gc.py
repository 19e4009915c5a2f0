"""`nbprod gc` with real git, DVC, kernels and registry: two approved versions, three recorded runs,
retention that removes only what no production lineage needs, `dvc gc` scoped to commits, tags, the
workspace and kept records, old run folders, oversized logs and stale debug notebooks; a dry run
changes nothing; after `gc --apply`, rolling back to the earlier version still works."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from helpers.commands import nbprod, run
from helpers.projects import tree_digest
from nbprod.core.dvccache import cache_dir, current_md5, object_path, parse_lock
from nbprod.monitor.records import list_records, verify_record
from nbprod.core.project import load_project

MODEL = ".nbprod/data/notebooks__model/train/model"
SETTINGS = """
[tool.nbprod.records]
keep_last = 1
keep_days = 0

[tool.nbprod.gc]
keep_runs = 1
max_log_mb = 0.001
debug_days = 7
"""


def cache_files(root: Path) -> set[str]:
    cache = cache_dir(root) / "files"
    return {p.relative_to(cache).as_posix() for p in cache.rglob("*") if p.is_file()}


def model_md5(record) -> str:
    return record.data["model"]["md5"]


@pytest.mark.slow
def test_gc_keeps_what_production_needs_and_rollback_still_works(ran_copy):
    root = ran_copy
    with open(root / "pyproject.toml", "a", encoding="utf-8") as handle:
        handle.write(SETTINGS)
    run("git", "commit", "-qam", "retention", cwd=root)
    nbprod("retrain", cwd=root)
    nbprod("approve", "c1", "--by", "tester", cwd=root)
    nbprod("retrain", "--set", "model.C=0.05", cwd=root)
    nbprod("approve", "c2", "--by", "tester", "--checkout", cwd=root)  # v1.1.0 in prod and in the working tree
    v11_params = (root / "params.yaml").read_text()

    nbprod("run", "--record", "--no-report", cwd=root)                  # A: the v1.1.0 model
    (root / "params.yaml").write_text(v11_params.replace("C: 0.05", "C: 3.0"))
    nbprod("run", "--record", "--no-report", cwd=root)                  # B: a model never promoted
    (root / "params.yaml").write_text(v11_params)
    nbprod("run", "--record", "--no-report", cwd=root)                  # C: newest (from DVC's run cache)
    a, b, c = list_records(load_project(root))
    assert model_md5(a) == model_md5(c) != model_md5(b)
    assert a.production["version"] == "v1.1.0"

    runs = sorted((root / ".nbprod/runs").iterdir())
    (runs[-1] / "big.log").write_text("x" * 4096)
    (root / "nbprod-debug").mkdir(exist_ok=True)
    old = root / "nbprod-debug" / "old_stage.ipynb"
    old.write_text("{}")
    os.utime(old, (time.time() - 30 * 86400,) * 2)
    (root / "nbprod-debug" / "new_stage.ipynb").write_text("{}")

    before, before_cache = tree_digest(root), cache_files(root)
    cache = cache_dir(root)
    b_model = object_path(cache, model_md5(b)).relative_to(cache / "files").as_posix()
    assert b_model in before_cache
    dry = nbprod("gc", cwd=root).stdout
    assert f"keep   record {a.name} (lineage of a model version that was in production)" in dry
    assert "would remove  record" in dry and f"records/{b.name}" in dry and f"records/{c.name}" not in dry
    assert b_model.replace("/", "") in dry.replace("/", "")
    assert "big.log" in dry and "old_stage.ipynb" in dry and "new_stage.ipynb" not in dry
    assert all(f".nbprod/runs/{p.name} " in dry for p in runs[:-1]) and f".nbprod/runs/{runs[-1].name} " not in dry
    assert tree_digest(root) == before and cache_files(root) == before_cache  # a dry run changes nothing

    applied = nbprod("gc", "--apply", cwd=root).stdout
    assert "Removed " in applied
    assert [r.name for r in list_records(load_project(root))] == [a.name, c.name]
    assert all(verify_record(r) == [] for r in list_records(load_project(root)))
    after_cache = cache_files(root)
    assert b_model not in after_cache and after_cache < before_cache
    assert object_path(cache, model_md5(a)).is_file()
    assert sorted(p.name for p in (root / ".nbprod/runs").iterdir()) == [runs[-1].name]
    assert not (runs[-1] / "big.log").exists() and not old.exists()
    assert (root / "nbprod-debug" / "new_stage.ipynb").exists()
    again = nbprod("gc", cwd=root).stdout
    assert "would remove  cache" not in again and "would remove  record" not in again

    # the earlier production version comes back from the cache, every output checked against its dvc.lock
    done = nbprod("rollback", "--by", "tester", "--note", "after gc", cwd=root)
    assert "v1.0.0" in done.stdout
    locked = parse_lock(run("git", "show", "model@v1.0.0:dvc.lock", cwd=root).stdout)["train"].outs[MODEL]
    assert current_md5(root, MODEL, locked) == locked
    assert "C: 1.0" in (root / "params.yaml").read_text()
    assert "prod <- v1.0.0 rolled back by tester from v1.1.0: after gc" in nbprod("history", cwd=root).stdout


@pytest.mark.slow  # three `dvc gc` runs
def test_gc_dry_run_lists_runs_logs_and_stale_files_then_apply_removes_them(project):
    from nbprod.monitor import gc

    runs = project / ".nbprod/runs"
    for name in ("20260101-000000-aaaaaa", "20260102-000000-bbbbbb", "20260103-000000-cccccc"):
        (runs / name).mkdir(parents=True)
        (runs / name / "events.jsonl").write_text(json.dumps({"event": "run_end", "run": name}) + "\n")
    (runs / "20260104-000000-dddddd").mkdir()   # a run in progress: no run_end yet, written just now
    (runs / "20260104-000000-dddddd" / "events.jsonl").write_text('{"event": "run_start"}\n')
    (runs / "20260103-000000-cccccc" / "dvc.log").write_text("x" * 2048)
    (project / ".nbprod/report-worker.log").write_text("y" * 2048)
    emails = project / ".nbprod/monitor"
    emails.mkdir()
    (emails / "old.eml").write_text("Subject: x\n\nold")
    os.utime(emails / "old.eml", (time.time() - 30 * 86400,) * 2)
    (emails / "new.eml").write_text("Subject: x\n\nnew")
    with open(project / "pyproject.toml", "a", encoding="utf-8") as handle:
        handle.write("\n[tool.nbprod.gc]\nkeep_runs = 1\nmax_log_mb = 0.001\n")

    planned = gc.plan(load_project(project))
    listed = {(i.kind, i.path) for i in planned.items if i.kind != "cache"}
    assert listed == {("run", ".nbprod/runs/20260101-000000-aaaaaa"), ("run", ".nbprod/runs/20260102-000000-bbbbbb"),
                      ("log", ".nbprod/runs/20260103-000000-cccccc/dvc.log"), ("log", ".nbprod/report-worker.log"),
                      ("debug", ".nbprod/monitor/old.eml")}
    assert planned.cache_error is None
    done = nbprod("gc", cwd=project)
    assert "would remove  run" in done.stdout and "Run 'nbprod gc --apply'" in done.stdout
    assert (runs / "20260101-000000-aaaaaa").exists()
    nbprod("gc", "--apply", cwd=project)
    assert sorted(p.name for p in runs.iterdir()) == ["20260103-000000-cccccc", "20260104-000000-dddddd"]
    assert not (project / ".nbprod/report-worker.log").exists() and not (emails / "old.eml").exists()
    assert (emails / "new.eml").exists()
