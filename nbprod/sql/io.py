"""Kernel side of ``nbprod.sql``: reading a query (its snapshot inside a stage run) and writing a
frame to a table in a transaction that commits only when the whole stage succeeded."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from nbprod.artifacts import project_root
from nbprod.core.project import SQL_DIR
from nbprod.sql.engine import Opened, SqlError, connect, database_error, open_engine
from nbprod.sql.queries import MODES, query_id


@dataclass
class _Pending:
    opened: Opened
    connection: object
    transaction: object
    entries: list = field(default_factory=list)


# connection name -> its open transaction, for this kernel's stage (committed by the last cell).
_PENDING: dict[str, _Pending] = {}


def in_stage() -> bool:
    """True inside ``nbprod exec`` (which sets NBPROD_ROOT for the kernel), not in an interactive kernel."""
    return bool(os.environ.get("NBPROD_ROOT"))


def read(query: str, conn: str, params: dict | None = None):
    import pandas as pd

    root = project_root()
    params = dict(params or {})
    if in_stage():
        path = root / SQL_DIR / f"{query_id(conn, query, params)}.parquet"
        if not path.is_file():
            raise SqlError(f"no snapshot of this query on connection {conn!r} at {path.relative_to(root)}", None,
                           fix="give nbprod.sql.read the query, conn and params as literals, then run "
                               "'nbprod compile' and 'nbprod run' (the snapshot stage runs first)")
        return pd.read_parquet(path)
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    opened = open_engine(root, conn)
    try:
        with connect(opened) as connection:
            return pd.read_sql(text(query), connection, params=params or None)
    except (SQLAlchemyError, pd.errors.DatabaseError) as exc:  # pandas wraps the database's error
        raise database_error(opened, exc, "the query") from None
    finally:
        opened.engine.dispose()


def write(df, table: str, conn: str, mode: str = "append", key: list[str] | None = None) -> int:
    import pandas as pd
    from sqlalchemy.exc import SQLAlchemyError

    if mode not in MODES:
        raise SqlError(f"mode {mode!r} is not one of {', '.join(MODES)}", None, fix='use mode="append"')
    key = list(key or [])
    if mode == "upsert" and not key:
        raise SqlError('mode="upsert" needs key=[...] naming the key columns', None,
                       fix='write nbprod.sql.write(df, TABLE, conn=NAME, mode="upsert", key=["id"])')
    if not isinstance(df, pd.DataFrame):
        raise SqlError(f"nbprod.sql.write needs a pandas DataFrame, not {type(df).__name__}", None,
                       fix="pass a DataFrame (pd.DataFrame(...))")
    root = project_root()
    pending = _PENDING.get(conn)
    if pending is None:
        opened = open_engine(root, conn)
        try:
            connection = connect(opened)
            pending = _Pending(opened, connection, connection.begin())
        except SqlError:
            opened.engine.dispose()
            raise
        except SQLAlchemyError as exc:
            opened.engine.dispose()
            raise database_error(opened, exc, f"writing table {table}") from None
        _PENDING[conn] = pending
    try:
        entry = _write_rows(root, pending, df, table, conn, mode, key)
    except SqlError:
        _rollback(conn)
        raise
    except (SQLAlchemyError, pd.errors.DatabaseError) as exc:  # pandas wraps the database's error
        _rollback(conn)
        raise database_error(pending.opened, exc, f"writing table {table}") from None
    pending.entries.append(entry)
    if not in_stage():
        commit()
    return entry.rows_written


def _write_rows(root: Path, pending: _Pending, df, table: str, conn: str, mode: str, key: list[str]):
    from sqlalchemy import and_, bindparam, column, delete, table as table_clause

    from nbprod.sql import dblog

    connection = pending.connection
    schema, _, name = table.rpartition(".")
    before = dblog.inspect_table(connection, table)
    if before is not None:
        _check_frame(df, table, before, connection, key)
    target = table_clause(name, *[column(k) for k in key], schema=schema or None)
    if before is not None and mode == "replace":
        connection.execute(delete(target))
    if before is not None and mode == "upsert" and len(df):
        condition = and_(*[target.c[k] == bindparam(f"nbprod_key_{i}") for i, k in enumerate(key)])
        rows = [{f"nbprod_key_{i}": _plain(v) for i, v in enumerate(values)}
                for values in df[key].itertuples(index=False, name=None)]
        connection.execute(delete(target).where(condition), rows)
    df.to_sql(name, connection, schema=schema or None, if_exists="append", index=False)
    after = dblog.inspect_table(connection, table) or []
    run, commit = dblog.run_context(root)
    return dblog.TableEntry(dblog.now(), conn, table, "write", os.environ.get("DVC_STAGE") or "(interactive)",
                            run, commit, after, dblog.schema_hash(after), dblog.count_rows(connection, table),
                            rows_written=len(df), mode=mode, created=before is None)


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def _check_frame(df, table: str, columns, connection, key: list[str]) -> None:
    """The frame's columns must be the table's (columns with a default or NULL may be left out)."""
    from sqlalchemy import inspect

    schema, _, name = table.rpartition(".")
    known = {c.name for c in columns}
    extra = [str(c) for c in df.columns if c not in known]
    if extra:
        raise SqlError(f"the frame's column(s) {', '.join(extra)} are not in table {table} "
                       f"(its columns: {', '.join(c.name for c in columns)})", None,
                       fix="rename or drop those columns, or ALTER TABLE to add them")
    details = {c["name"]: c for c in inspect(connection).get_columns(name, schema=schema or None)}
    required = [c.name for c in columns if c.name not in df.columns and not c.nullable
                and details[c.name].get("default") is None and details[c.name].get("autoincrement") is not True
                and not details[c.name].get("primary_key")]
    if required:
        raise SqlError(f"the frame lacks column(s) {', '.join(required)} of table {table}, which cannot be NULL",
                       None, fix="add those columns to the frame")
    missing_key = [k for k in key if k not in df.columns]
    if missing_key:
        raise SqlError(f"the frame lacks the key column(s) {', '.join(missing_key)}", None,
                       fix="key= must name columns of the frame")


def _rollback(conn: str) -> None:
    pending = _PENDING.pop(conn, None)
    if pending is None:
        return
    try:
        pending.transaction.rollback()
        pending.connection.close()
    finally:
        pending.opened.engine.dispose()


def commit() -> None:
    from sqlalchemy.exc import SQLAlchemyError

    from nbprod.sql import dblog

    root = project_root()
    for conn in list(_PENDING):
        pending = _PENDING.pop(conn)
        try:
            pending.transaction.commit()
        except SQLAlchemyError as exc:
            raise database_error(pending.opened, exc, "committing the stage's writes") from None
        finally:
            pending.connection.close()
            pending.opened.engine.dispose()
        dblog.append(root, pending.entries)
