"""Databases as sources and sinks with a real SQLite file: literal queries found at compile, snapshot
stages and rerun semantics, rollback of a snapshot, write transactions, the database log, bad input."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from helpers.commands import nbprod, run
from helpers.notebooks import load_nb, save_nb

QUERY_CELL = "patients = nbprod.sql.read("


@pytest.fixture(scope="module")
def sql_template(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("sqltemplate")
    nbprod("init", "proj", "--template", "sql", cwd=base)
    return base / "proj"


@pytest.fixture
def sql_project(sql_template, tmp_path) -> Path:
    target = tmp_path / "proj"
    shutil.copytree(sql_template, target, symlinks=True)
    return target


@pytest.fixture(scope="module")
def sql_ran(sql_template, tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("sqlran") / "proj"
    shutil.copytree(sql_template, target, symlinks=True)
    nbprod("run", "--no-report", cwd=target)
    run("git", "add", "-A", cwd=target)
    run("git", "commit", "-q", "-m", "first run", cwd=target)
    return target


@pytest.fixture
def ran(sql_ran, tmp_path) -> Path:
    target = tmp_path / "proj"
    shutil.copytree(sql_ran, target, symlinks=True)
    return target


def execute(root: Path, *statements: str) -> None:
    with sqlite3.connect(root / "data" / "warehouse.sqlite") as connection:
        for statement in statements:
            connection.execute(statement)


def rows(root: Path, query: str) -> list[tuple]:
    with sqlite3.connect(root / "data" / "warehouse.sqlite") as connection:
        return connection.execute(query).fetchall()


def ran_stages(done) -> list[str]:
    """Stages the run's summary table says ran (nbprod stages only)."""
    return [line.split("│")[1].strip() for line in done.stdout.splitlines()
            if line.count("│") > 3 and line.split("│")[2].strip() == "ran"]


def edit_cell(root: Path, marker: str, old: str, new: str) -> None:
    path = root / "notebooks" / "train.ipynb"
    nb = load_nb(path)
    cell = next(c for c in nb["cells"] if marker in "".join(c["source"]))
    source = "".join(cell["source"])
    assert old in source
    cell["source"] = source.replace(old, new)
    save_nb(path, nb)


def test_compile_makes_a_snapshot_stage_per_literal_query(sql_project):
    dvc = (sql_project / "dvc.yaml").read_text()
    pipeline = json.loads(nbprod("pipeline", cwd=sql_project).stdout)
    specs = sorted((sql_project / ".nbprod" / "sql").glob("*.json"))
    assert len(specs) == 2
    for spec_file in specs:
        spec = json.loads(spec_file.read_text())
        assert spec["conn"] == "warehouse" and spec["params"]["split"] in ("train", "holdout")
        assert f"cmd: nbprod db snapshot {spec_file.stem}\n" in dvc
        assert f"- {spec['snapshot']}\n" in dvc
    assert dvc.count("always_changed: true") == 2
    score = next(s for s in pipeline["stages"] if s["name"] == "score")
    assert score["tables"] == [{"conn": "warehouse", "table": "scores", "mode": "replace", "key": []}]
    nbprod("compile", "--check", cwd=sql_project)  # deterministic


@pytest.mark.parametrize("code, words", [
    ('q = "SELECT 1"\nx = nbprod.sql.read(q, conn="warehouse")', "the query is not a string literal"),
    ('x = nbprod.sql.read("SELECT 1", conn=name)', "conn= is not a string literal"),
    ('x = nbprod.sql.read("SELECT * FROM t WHERE a = :a", conn="warehouse", params={"a": C})',
     "params= is not a literal dict"),
    ('nbprod.sql.write(x, table, conn="warehouse")', "the table name is not a string literal"),
    ('nbprod.sql.write(x, "t", conn="warehouse", mode="upsert")', 'needs key='),
    ('from nbprod import sql\nx = sql.read("SELECT 1", conn="warehouse")', "imported under another name"),
    ('x = nbprod.sql.read("SELECT 1", conn="nowhere")', "connection 'nowhere' is not declared"),
])
def test_unfollowable_sql_is_refused_at_compile(sql_project, code, words):
    edit_cell(sql_project, QUERY_CELL, "import os\n", code + "\nimport os\n")
    before = (sql_project / "dvc.yaml").read_bytes()
    done = nbprod("compile", cwd=sql_project, check=False)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert "notebooks/train.ipynb cell 4" in lines[0] and words in lines[0] and "Fix:" in lines[0]
    assert (sql_project / "dvc.yaml").read_bytes() == before


def test_bad_connections_are_one_line_without_the_secret(sql_project):
    pyproject = sql_project / "pyproject.toml"
    text = pyproject.read_text()
    pyproject.write_text(text.replace('warehouse = { url = "sqlite:///data/warehouse.sqlite" }',
                                      'warehouse = { url_env = "NBPROD_TEST_WAREHOUSE" }'))
    query = next(p.stem for p in (sql_project / ".nbprod" / "sql").glob("*.json"))
    done = nbprod("db", "snapshot", query, cwd=sql_project, check=False, env={"NBPROD_TEST_WAREHOUSE": ""})
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "NBPROD_TEST_WAREHOUSE, which is not set" in done.stderr
    secret_url = "postgresql+psycopg://nbprod:s3cr3t-pw@127.0.0.1:9/nowhere"
    done = nbprod("db", "snapshot", query, cwd=sql_project, check=False, env={"NBPROD_TEST_WAREHOUSE": secret_url})
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "cannot reach database 'warehouse'" in done.stderr and "s3cr3t-pw" not in done.stderr + done.stdout
    pyproject.write_text(text.replace('warehouse = { url = "sqlite:///data/warehouse.sqlite" }',
                                      f'warehouse = {{ url = "{secret_url}" }}'))
    done = nbprod("compile", cwd=sql_project, check=False)
    assert done.returncode == 2 and "holds a password" in done.stderr and "s3cr3t-pw" not in done.stderr
    pyproject.write_text(text)
    execute(sql_project, "DROP TABLE patients")
    done = nbprod("db", "snapshot", query, cwd=sql_project, check=False)
    assert done.returncode == 2 and "no such table: patients" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_writes_in_a_stage_wait_for_its_end_even_a_new_table(sql_project, monkeypatch):
    """Inside a stage run (NBPROD_ROOT set) nothing, not even CREATE TABLE, is visible before commit."""
    import pandas as pd

    import nbprod.sql as nbsql

    monkeypatch.chdir(sql_project)
    monkeypatch.setenv("NBPROD_ROOT", str(sql_project))
    monkeypatch.setenv("DVC_STAGE", "score")
    frame = pd.DataFrame({"id": [1, 2], "score": [0.5, 0.25]})
    assert nbsql.write(frame, "fresh", conn="warehouse", mode="replace") == 2
    tables = "SELECT name FROM sqlite_master WHERE type = 'table'"
    assert ("fresh",) not in rows(sql_project, tables)
    nbsql.commit()
    assert rows(sql_project, "SELECT * FROM fresh ORDER BY id") == [(1, 0.5), (2, 0.25)]
    nbsql.write(pd.DataFrame({"id": [2, 3], "score": [0.75, 1.0]}), "fresh", conn="warehouse",
                     mode="upsert", key=["id"])
    nbsql.commit()
    assert rows(sql_project, "SELECT * FROM fresh ORDER BY id") == [(1, 0.5), (2, 0.75), (3, 1.0)]
    log = nbprod("db", "log", "fresh", cwd=sql_project).stdout
    assert "table created" in log and "2 rows written" in log and "2 rows upserted (3 rows now)" in log
    assert "stage score" in log


@pytest.mark.slow
def test_a_changed_row_reruns_exactly_its_readers_and_rollback_restores_the_snapshot(ran):
    train_rows = rows(ran, "SELECT count(*) FROM patients WHERE split = 'train'")[0][0]
    done = nbprod("run", "--no-report", cwd=ran)
    assert ran_stages(done) == []  # the snapshots re-queried; the same rows keep their DVC hashes
    execute(ran, "UPDATE patients SET mean_radius = 30 WHERE id = 4")  # a holdout row: only score reads it
    assert ran_stages(nbprod("run", "--no-report", cwd=ran)) == ["score"]
    execute(ran, "UPDATE patients SET mean_radius = 31 WHERE id = 5")  # a training row: train, then score
    assert ran_stages(nbprod("run", "--no-report", cwd=ran)) == ["train", "score"]
    run("git", "add", "-A", cwd=ran)
    run("git", "commit", "-q", "-m", "second run", cwd=ran)

    import pandas as pd

    spec = next(json.loads(p.read_text()) for p in (ran / ".nbprod" / "sql").glob("*.json")
                if json.loads(p.read_text())["params"]["split"] == "train")
    snapshot = ran / spec["snapshot"]
    assert pd.read_parquet(snapshot).set_index("id").loc[5, "mean_radius"] == 31
    assert len(pd.read_parquet(snapshot)) == train_rows
    lineage = nbprod("lineage", "notebooks/models", cwd=ran).stdout
    assert f"input {spec['snapshot']}" in lineage and "(from stage sql-" in lineage
    from nbprod.lifecycle import workspace

    first = run("git", "rev-list", "HEAD", cwd=ran).stdout.split()[1]  # the commit of the first run
    workspace.restore(ran, first)  # what nbprod rollback restores a version's files and outputs with
    assert pd.read_parquet(snapshot).set_index("id").loc[5, "mean_radius"] != 31
    assert "snapshot" not in run("git", "status", "--short", cwd=ran).stdout


@pytest.mark.slow
def test_schema_change_is_named_in_status_and_db_log(ran):
    execute(ran, "ALTER TABLE patients ADD COLUMN age TEXT", "ALTER TABLE patients DROP COLUMN worst_radius")
    states = {s["name"]: s for s in json.loads(nbprod("status", "--json", cwd=ran).stdout)}
    for name in ("train", "score"):
        assert states[name]["state"] == "changed" and "data" in states[name]["reasons"]
        assert "patients: column `age` added (TEXT)" in states[name]["details"]
        assert "patients: column `worst_radius` dropped" in states[name]["details"]
    edit_cell(ran, QUERY_CELL, 'features = [c for c in patients.columns if c not in ("id", "diagnosis", "split")]',
              'features = [c for c in patients.columns if c not in ("id", "diagnosis", "split", "age")]')
    nbprod("run", "--no-report", cwd=ran)
    log = nbprod("db", "log", "patients", cwd=ran).stdout.splitlines()
    assert "table first seen" in log[0] and "stage train" in log[0] and "commit " in log[0]
    changed = [l for l in log if "column `age` added (TEXT)" in l]
    assert changed and all("run 20" in l for l in changed)
    assert any("column `worst_radius` dropped" in l for l in log)
    assert log.index(changed[0]) > 0  # oldest first
    everything = json.loads(nbprod("db", "log", "--json", cwd=ran).stdout)
    scores = [e for e in everything if e["table"] == "warehouse.scores"]
    assert scores[0]["event"].startswith("table created") and "142 rows written" in scores[1]["event"]
    assert any("142 rows replaced" in e["event"] for e in scores[2:])
    assert json.loads(nbprod("status", "--json", cwd=ran).stdout)[0]["state"] == "up to date"


@pytest.mark.slow
def test_a_failing_write_stage_leaves_the_table_unchanged(ran):
    before = rows(ran, "SELECT * FROM scores ORDER BY id")
    edit_cell(ran, 'nbprod.sql.write(scores', 'nbprod.record("roc_auc"',
              'raise RuntimeError("after the write")\nnbprod.record("roc_auc"')
    execute(ran, "UPDATE patients SET mean_radius = 30 WHERE id = 4")
    done = nbprod("run", "--no-report", cwd=ran, check=False)
    assert done.returncode == 1 and "RuntimeError: after the write" in done.stderr
    assert rows(ran, "SELECT * FROM scores ORDER BY id") == before
    edit_cell(ran, 'nbprod.sql.write(scores', 'raise RuntimeError("after the write")\n', "")
    edit_cell(ran, 'nbprod.sql.write(scores', 'scores = pd.DataFrame({"id": holdout["id"], ',
              'scores = pd.DataFrame({"id": holdout["id"], "extra": 1, ')
    done = nbprod("run", "--no-report", cwd=ran, check=False)
    assert done.returncode == 1
    line = next(l for l in done.stderr.splitlines() if "stage 'score' failed" in l)
    assert "the frame's column(s) extra are not in table scores (its columns: id, score)" in line
    assert rows(ran, "SELECT * FROM scores ORDER BY id") == before
