"""``nbprod db snapshot ID``: run one literal query and store its result as the Parquet file DVC versions.

The command of each generated ``sql-ID`` stage (``always_changed``: it re-queries every run). The
file's bytes depend only on the rows, so an unchanged result keeps its DVC hash and the stages that
read it are not rerun.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from nbprod.core.errors import NbprodError
from nbprod.notebooks.notebook import atomic_write
from nbprod.core.project import SQL_DIR
from nbprod.sql.queries import QUERY_ID


def load_spec(root: Path, query_id: str) -> dict:
    if not QUERY_ID.fullmatch(query_id):
        raise NbprodError(f"{query_id!r} is not a query id", "dvc.yaml", fix="run 'nbprod compile'")
    path = Path(root) / SQL_DIR / f"{query_id}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise NbprodError("is missing or unreadable", path.relative_to(root).as_posix(),
                          fix="run 'nbprod compile' to regenerate it") from None


def table_bytes(names: list[str], rows: list[tuple]) -> bytes:
    """Parquet bytes of query rows, built column by column with pyarrow (pandas stays unimported:
    on a no-op run its import was most of a snapshot's cost). The same rows give the same bytes. A
    column pyarrow cannot type on its own (SQLite lets one column mix text and numbers; values
    such as UUIDs) is stored as text."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = list(zip(*rows)) if rows else [() for _ in names]
    arrays = []
    for values in columns:
        try:
            arrays.append(pa.array(values))
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arrays.append(pa.array([None if v is None else str(v) for v in values], pa.string()))
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_arrays(arrays, names=list(names)), buffer)
    return buffer.getvalue()


def snapshot(root: Path, query_id: str) -> int:
    """Query, write ``.nbprod/sql/ID.parquet``, log the tables read; return the row count."""
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    from nbprod.sql import dblog
    from nbprod.sql.engine import connect, database_error, open_engine

    root = Path(root)
    spec = load_spec(root, query_id)
    opened = open_engine(root, spec["conn"])
    entries = []
    try:
        with connect(opened) as connection:
            result = connection.execute(text(spec["query"]), spec.get("params") or {})
            names, rows = list(result.keys()), result.fetchall()
            run, commit = dblog.run_context(root)
            for table in dblog.tables_in_query(connection, spec["query"]):
                columns = dblog.inspect_table(connection, table) or []
                entries += [dblog.TableEntry(dblog.now(), spec["conn"], table, "read", stage, run, commit, columns,
                                             dblog.schema_hash(columns), dblog.count_rows(connection, table),
                                             rows_read=len(rows), query=query_id) for stage in spec.get("stages", [])]
    except SQLAlchemyError as exc:
        raise database_error(opened, exc, f"query {query_id} (read by {', '.join(spec.get('stages', []))})") from None
    finally:
        opened.engine.dispose()
    target = root / spec["snapshot"]
    data = table_bytes(names, rows)
    if not target.is_file() or target.read_bytes() != data:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, data)
    dblog.append(root, entries)
    return len(rows)
