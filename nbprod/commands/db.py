"""``nbprod db log [TABLE]`` (what runs did to database tables) and ``nbprod db snapshot ID`` (the
command of a generated SQL snapshot stage): parse arguments, call nbprod.sql, print."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path

from ..core.project import find_project


def register(subparsers) -> None:
    db = subparsers.add_parser("db", help="databases: the log of tables read and written; query snapshots")
    sub = db.add_subparsers(metavar="ACTION")
    db.set_defaults(handler=lambda args: db.print_help() or 2)

    p = sub.add_parser("log", help="history of the tables runs read or wrote, oldest first")
    p.add_argument("table", nargs="?", metavar="TABLE", help="one table (NAME or CONNECTION.NAME)")
    p.add_argument("--json", action="store_true", help="print the events as JSON")
    p.set_defaults(handler=cmd_log)

    p = sub.add_parser("snapshot", help="run a literal query and store its rows for DVC (a stage's command)")
    p.add_argument("query_id", metavar="ID")
    p.set_defaults(handler=cmd_snapshot)


def cmd_snapshot(args: argparse.Namespace) -> int:
    from ..sql.snapshot import snapshot

    project = find_project()
    rows = snapshot(project.root, args.query_id)
    print(f"nbprod: query {args.query_id}: {rows} rows")
    return 0


def production_at(root: Path) -> callable:
    """A function time -> the model version in production then (None without a registry)."""
    try:
        from ..lifecycle import registry
        from ..lifecycle.settings import load_config

        project = find_project(root)
        events = [(_time(e.date), e.version) for e in registry.assignments(root, load_config(project).model_name)]
    except Exception:  # noqa: BLE001 - no registry (no model configured, no tags): the column stays empty
        events = []

    def at(when: str) -> str | None:
        moment, current = _time(when), None
        for date, version in events:
            if date is not None and moment is not None and date <= moment:
                current = version
        return current

    return at


def _time(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else moment.astimezone()


def cmd_log(args: argparse.Namespace) -> int:
    from ..sql.dblog import history, read_log

    project = find_project()
    events = history(read_log(project.root), args.table)
    version_at = production_at(project.root)
    rows = [{"time": e.entry.time, "table": f"{e.entry.conn}.{e.entry.table}", "event": e.what,
             "run": e.entry.run, "stage": e.entry.stage, "commit": e.entry.commit,
             "production": version_at(e.entry.time), "schema_hash": e.entry.schema_hash} for e in events]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    if not rows:
        print("No table in the database log" + (f" named {args.table!r}" if args.table else "") +
              " (a run logs the tables nbprod.sql reads and writes).")
        return 0
    for row in rows:
        print(f"{row['time'][:19].replace('T', ' ')}  {row['table']}  {row['event']}  "
              f"[run {row['run'] or '-'}, stage {row['stage']}, commit {(row['commit'] or '-')[:10]}, "
              f"production {row['production'] or '-'}]")
    return 0
