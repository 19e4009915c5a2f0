"""Source tables compared with the database log: a column added, dropped or retyped since the last
run read the table is a data change of the stages that read it (``nbprod status`` names it)."""

from __future__ import annotations

from pathlib import Path

from nbprod.core.errors import NbprodError
from nbprod.sql.dblog import inspect_table, last_reads, read_log, schema_changes


def schema_drift(root: Path, stages) -> dict[str, list[str]]:
    """Stage name -> what changed in the tables its queries read, since the run that logged them.

    Only stages with literal queries and a logged read are checked; a database that cannot be asked
    is named, never a reason to fail the status."""
    from sqlalchemy.exc import SQLAlchemyError

    from nbprod.sql.engine import connect, database_error, open_engine

    entries = [e for e in read_log(root) if e.op == "read"]
    wanted = [s for s in stages if s.queries]
    if not entries or not wanted:
        return {}
    last = last_reads(entries)
    result: dict[str, list[str]] = {}
    by_conn: dict[str, list] = {}
    for stage in wanted:
        for query in stage.queries:
            tables = sorted({e.table for e in entries if e.query == query.id})
            by_conn.setdefault(query.conn, []).extend((stage.name, t) for t in tables)
    for conn, pairs in by_conn.items():
        try:
            opened = open_engine(root, conn)
        except NbprodError as exc:
            for stage, _ in pairs:
                result.setdefault(stage, []).append(f"cannot check connection {conn!r}: {exc.message}")
            continue
        try:
            with connect(opened) as connection:
                for stage, table in pairs:
                    now = inspect_table(connection, table)
                    if now is None:
                        changes = [f"table `{table}` is gone"]
                    else:
                        changes = [f"{table}: {c}" for c in schema_changes(last[(conn, table)].columns, now)]
                    for change in changes:
                        if change not in result.get(stage, []):
                            result.setdefault(stage, []).append(change)
        except (SQLAlchemyError, NbprodError) as exc:
            message = exc.message if isinstance(exc, NbprodError) else \
                database_error(opened, exc, "checking source tables").message
            for stage, _ in pairs:
                result.setdefault(stage, []).append(message)
        finally:
            opened.engine.dispose()
    return result
