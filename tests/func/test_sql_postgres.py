"""nbprod.sql against a real PostgreSQL server started on 127.0.0.1 (tests/helpers/postgres.py): snapshots
and reruns, a retyped column named in status and db log, the write modes, and a password that never
reaches any file nbprod writes."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from helpers import postgres as pgserver
from helpers.commands import nbprod, run
from helpers.notebooks import load_nb, save_nb

pytestmark = pytest.mark.skipif(not pgserver.available(), reason="PostgreSQL is not installed (make postgres)")


@pytest.fixture(scope="module")
def server():
    with pgserver.postgres() as started:
        yield started


def engine(server):
    import sqlalchemy

    return sqlalchemy.create_engine(server.url)


def execute(server, *statements: str) -> None:
    import sqlalchemy

    eng = engine(server)
    try:
        with eng.begin() as connection:
            for statement in statements:
                connection.execute(sqlalchemy.text(statement))
    finally:
        eng.dispose()


def fetch(server, query: str) -> list[tuple]:
    import sqlalchemy

    eng = engine(server)
    try:
        with eng.connect() as connection:
            return [tuple(r) for r in connection.execute(sqlalchemy.text(query))]
    finally:
        eng.dispose()


@pytest.fixture
def pg_project(tmp_path, server) -> Path:
    """The sql template's project, its warehouse moved to PostgreSQL (URL from WAREHOUSE_URL only)."""
    import pandas as pd

    nbprod("init", "proj", "--template", "sql", cwd=tmp_path)
    root = tmp_path / "proj"
    pyproject = root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('warehouse = { url = "sqlite:///data/warehouse.sqlite" }',
                                                       'warehouse = { url_env = "WAREHOUSE_URL" }'))
    with sqlite3.connect(root / "data" / "warehouse.sqlite") as connection:
        frame = pd.read_sql("SELECT * FROM patients", connection)
    (root / "data" / "warehouse.sqlite").unlink()
    execute(server, "DROP TABLE IF EXISTS patients", "DROP TABLE IF EXISTS scores")
    eng = engine(server)
    try:
        frame.to_sql("patients", eng, index=False)
    finally:
        eng.dispose()
    path = root / "notebooks" / "train.ipynb"
    nb = load_nb(path)
    for cell in nb["cells"]:
        cell["source"] = "".join(cell["source"]).replace('("id", "diagnosis", "split")',
                                                         '("id", "diagnosis", "split", "age")')
    save_nb(path, nb)
    nbprod("compile", cwd=root)
    run("git", "add", "-A", cwd=root)
    run("git", "commit", "-q", "-m", "warehouse on PostgreSQL", cwd=root)
    return root


def ran_stages(done) -> list[str]:
    return [line.split("│")[1].strip() for line in done.stdout.splitlines()
            if line.count("│") > 3 and line.split("│")[2].strip() == "ran"]


@pytest.mark.slow
def test_postgres_source_reruns_retype_and_no_password_anywhere(pg_project, server):
    env = {"WAREHOUSE_URL": server.url}
    outputs = []
    done = nbprod("run", "--no-report", cwd=pg_project, env=env)
    outputs.append(done)
    assert ran_stages(done) == ["train", "score"]
    assert fetch(server, "SELECT count(*) FROM scores") == [(142,)]
    execute(server, "UPDATE patients SET mean_radius = 30 WHERE id = 4")  # holdout row
    outputs.append(done := nbprod("run", "--no-report", cwd=pg_project, env=env))
    assert ran_stages(done) == ["score"]
    execute(server, "ALTER TABLE patients ADD COLUMN age integer")
    outputs.append(done := nbprod("run", "--no-report", cwd=pg_project, env=env))
    assert sorted(ran_stages(done)) == ["score", "train"]  # the snapshots gained a column
    execute(server, "ALTER TABLE patients ALTER COLUMN age TYPE text")
    outputs.append(status := nbprod("status", "--json", cwd=pg_project, env=env))
    states = {s["name"]: s for s in json.loads(status.stdout)}
    assert states["train"]["state"] == "changed"
    assert "patients: column `age` became text (was integer)" in states["train"]["details"]
    outputs.append(done := nbprod("run", "--no-report", cwd=pg_project, env=env))
    outputs.append(log := nbprod("db", "log", "patients", cwd=pg_project, env=env))
    assert any("column `age` added (INTEGER)" in line for line in log.stdout.splitlines())
    assert any("column `age` became text (was integer)" in line for line in log.stdout.splitlines())
    outputs.append(nbprod("db", "log", cwd=pg_project, env=env))
    outputs.append(unset := nbprod("run", "--no-report", cwd=pg_project, check=False,
                                   env={"WAREHOUSE_URL": ""}))
    assert unset.returncode == 2 and "WAREHOUSE_URL, which is not set" in unset.stderr
    assert len(unset.stderr.strip().splitlines()) == 1
    wrong = server.url.replace(f":{server.port}/", f":{pgserver.free_port()}/")
    execute(server, "UPDATE patients SET mean_radius = 31 WHERE id = 4")
    outputs.append(down := nbprod("run", "--no-report", cwd=pg_project, check=False, env={"WAREHOUSE_URL": wrong}))
    assert down.returncode == 1 and "cannot reach database 'warehouse'" in down.stderr
    password = server.password.encode()
    for output in outputs:
        assert server.password not in output.stdout + output.stderr
    leaked = [p for p in pg_project.rglob("*") if p.is_file() and password in p.read_bytes()]
    assert leaked == []


@pytest.mark.slow
def test_write_modes_are_transactions_and_errors_hold_no_url(pg_project, server, monkeypatch):
    import pandas as pd

    import nbprod.sql as nbsql
    from nbprod.core.errors import NbprodError

    monkeypatch.chdir(pg_project)
    monkeypatch.delenv("NBPROD_ROOT", raising=False)
    monkeypatch.setenv("WAREHOUSE_URL", server.url)
    execute(server, "DROP TABLE IF EXISTS labels")
    frame = pd.DataFrame({"id": [1, 2, 3], "label": ["a", "b", "c"]})
    assert nbsql.write(frame, "labels", conn="warehouse") == 3
    nbsql.write(pd.DataFrame({"id": [3, 4], "label": ["C", "d"]}), "labels", conn="warehouse",
                     mode="upsert", key=["id"])
    assert fetch(server, "SELECT id, label FROM labels ORDER BY id") == [(1, "a"), (2, "b"), (3, "C"), (4, "d")]
    with pytest.raises(NbprodError) as bad:
        nbsql.write(pd.DataFrame({"id": [9], "nope": [1]}), "labels", conn="warehouse", mode="replace")
    assert "the frame's column(s) nope are not in table labels" in str(bad.value)
    with pytest.raises(NbprodError) as typed:  # a type the column refuses: the database's message, rolled back
        nbsql.write(pd.DataFrame({"id": ["x"], "label": ["e"]}), "labels", conn="warehouse", mode="replace")
    assert "writing table labels failed on 'warehouse'" in str(typed.value)
    assert fetch(server, "SELECT count(*) FROM labels") == [(4,)]  # replace rolled back with the failed insert
    nbsql.write(pd.DataFrame({"id": [7], "label": ["z"]}), "labels", conn="warehouse", mode="replace")
    assert fetch(server, "SELECT id, label FROM labels") == [(7, "z")]
    with pytest.raises(NbprodError) as query:
        nbsql.read("SELECT nope FROM labels", conn="warehouse")
    assert 'column "nope" does not exist' in str(query.value)
    for error in (bad, typed, query):
        assert server.password not in str(error.value) and "127.0.0.1" not in str(error.value)
    lines = (pg_project / ".nbprod" / "db" / "log.jsonl").read_text().splitlines()
    assert [json.loads(line)["mode"] for line in lines] == ["append", "upsert", "replace"]
    assert os.environ["WAREHOUSE_URL"] == server.url
    assert shutil.which("nbprod")
