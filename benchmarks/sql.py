"""SQL sources (issue 26), on a real PostgreSQL server on 127.0.0.1 (tests/helpers/postgres.py):

- snapshot: ``nbprod db snapshot ID`` (the command of a generated snapshot stage) on a 1,000,000 x 10
  query, against a script doing ``pandas.read_sql`` + ``to_parquet`` of the same query; both are the
  processes a user would run, alternating, medians.
- no-op: ``nbprod run`` of the sql template's pipeline on PostgreSQL when no row changed (the snapshot
  stages re-query, nothing else runs), against a bare ``SELECT count(*), sum(hashtext(...))``
  fingerprint script plus ``dvc repro`` of the same stages without the snapshot stages.

``python -m benchmarks.sql [--tiny] [--repeat N]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
BIN = Path(sys.executable).parent


def _run(*command, cwd: Path, env: dict | None = None) -> float:
    started = time.perf_counter()
    done = subprocess.run([str(c) for c in command], cwd=cwd, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=590)
    if done.returncode != 0:
        raise SystemExit(f"{command} failed:\n{done.stdout}\n{done.stderr}")
    return time.perf_counter() - started


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def _sql(url: str, *statements: str) -> None:
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(sqlalchemy.text(statement))
    engine.dispose()


def _project(work: Path, url: str) -> Path:
    """The sql template, its table moved to PostgreSQL, its URL in WAREHOUSE_URL."""
    import pandas as pd
    import sqlalchemy

    work.mkdir(parents=True, exist_ok=True)
    _run(BIN / "nbprod", "init", "proj", "--template", "sql", cwd=work)
    root = work / "proj"
    pyproject = root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('warehouse = { url = "sqlite:///data/warehouse.sqlite" }',
                                                       'warehouse = { url_env = "WAREHOUSE_URL" }'))
    with sqlite3.connect(root / "data" / "warehouse.sqlite") as connection:
        frame = pd.read_sql("SELECT * FROM patients", connection)
    engine = sqlalchemy.create_engine(url)
    frame.to_sql("patients", engine, index=False, if_exists="replace")
    engine.dispose()
    _run(BIN / "nbprod", "compile", cwd=root)
    return root


BASELINE = """
import sys, pandas as pd, sqlalchemy
engine = sqlalchemy.create_engine(sys.argv[1])
with engine.connect() as connection:
    frame = pd.read_sql(sqlalchemy.text(sys.argv[2]), connection)
frame.to_parquet(sys.argv[3], index=False)
"""

FINGERPRINT = """
import sys, sqlalchemy
engine = sqlalchemy.create_engine(sys.argv[1])
with engine.connect() as connection:
    print(connection.execute(sqlalchemy.text(
        "SELECT count(*), sum(hashtext(p::text)) FROM patients p")).one())
"""


def snapshot_row(work: Path, url: str, rows: int, repeat: int) -> dict:
    import json

    from nbprod.sql.queries import query_id

    columns = ", ".join(f"random() AS c{i}" for i in range(9))
    _sql(url, "DROP TABLE IF EXISTS big",
         f"CREATE TABLE big AS SELECT g AS id, {columns} FROM generate_series(1, {rows}) AS g")
    root = _project(work, url)
    query = "SELECT * FROM big ORDER BY id"
    qid = query_id("warehouse", query, {})
    spec = {"conn": "warehouse", "query": query, "params": {}, "snapshot": f".nbprod/sql/{qid}.parquet",
            "stages": ["bench"]}
    (root / ".nbprod" / "sql" / f"{qid}.json").write_text(json.dumps(spec))
    env = {"WAREHOUSE_URL": url}
    ours, theirs = [], []
    for rep in range(repeat):
        for side in ((0, 1) if rep % 2 else (1, 0)):
            if side:
                ours.append(_run(BIN / "nbprod", "db", "snapshot", qid, cwd=root, env=env))
            else:
                theirs.append(_run(sys.executable, "-c", BASELINE, url, query, work / "baseline.parquet", cwd=root))
    ratio = _median(ours) / _median(theirs)
    return {"scenario": f"snapshot {rows:,} x 10 from PostgreSQL", "nbprod": _median(ours),
            "baseline": _median(theirs), "baseline_is": "read_sql + to_parquet (a python process)",
            "ratio": ratio, "target": "<= 1.3x", "met": ratio <= 1.3}


def noop_rows(work: Path, url: str, repeat: int) -> list[dict]:
    root = _project(work, url)
    env = {"WAREHOUSE_URL": url}
    _run(BIN / "nbprod", "run", cwd=root, env=env)
    ours, repro, prints = [], [], []
    for rep in range(repeat):
        for side in ((0, 1) if rep % 2 else (1, 0)):
            if side:
                ours.append(_run(BIN / "nbprod", "run", cwd=root, env=env))
            else:
                prints.append(_run(sys.executable, "-c", FINGERPRINT, url, cwd=root))
                repro.append(_run(BIN / "dvc", "repro", "--single-item", "train", "score", cwd=root))
    base = _median(prints) + _median(repro)
    ratio = _median(ours) / base
    return [{"scenario": "no-op run, 2 queries on PostgreSQL", "nbprod": _median(ours), "baseline": base,
             "baseline_is": "count(*) fingerprint + dvc repro (no snapshot stages)", "ratio": ratio,
             "target": "<= 1.5x", "met": ratio <= 1.5},
            {"scenario": "(the fingerprint alone)", "nbprod": _median(prints), "baseline": _median(repro),
             "baseline_is": "dvc repro of the same stages", "ratio": _median(prints) / _median(repro),
             "target": "-", "met": True}]


def main(argv: list[str] | None = None) -> int:
    from helpers import postgres as pgserver

    from .__main__ import machine

    parser = argparse.ArgumentParser(prog="python -m benchmarks.sql")
    parser.add_argument("--tiny", action="store_true", help="10,000 rows, one repetition: the smoke test")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    if not pgserver.available():
        print("benchmarks.sql: PostgreSQL is not installed (make postgres); skipped")
        return 0
    print("machine:", machine())
    repeat = 1 if args.tiny else args.repeat
    work = Path(tempfile.mkdtemp(prefix="nbprod-bench-sql-"))
    try:
        with pgserver.postgres() as server:
            rows = [snapshot_row(work / "a", server.url, 10_000 if args.tiny else 1_000_000, repeat)]
            rows += noop_rows(work / "b", server.url, repeat)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for row in rows:
        print(f"{row['scenario']:40} nbprod {row['nbprod']:7.2f}s  baseline {row['baseline']:7.2f}s "
              f"({row['baseline_is']})  {row['ratio']:.2f}x  target {row['target']}  "
              f"{'met' if row['met'] else 'NOT MET'}")
    return 0 if all(r["met"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
