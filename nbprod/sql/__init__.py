"""``nbprod.sql``: SQL queries as versioned stage inputs and tables written in one transaction.

Standard library at import; SQLAlchemy, pandas and pyarrow load on the first call.
"""

from __future__ import annotations


def read(query: str, conn: str, params: dict | None = None):
    """The rows of a literal query as a DataFrame. Inside a stage run they come from the snapshot
    DVC versions (``nbprod db snapshot``); in an interactive kernel, from the database."""
    from nbprod.sql.io import read as _read

    return _read(query, conn, params)


def write(df, table: str, conn: str, mode: str = "append", key: list[str] | None = None) -> int:
    """Write ``df`` to ``table`` (append, replace or upsert on ``key``); return the rows written.
    Inside a stage run the transaction commits only when the whole stage succeeded."""
    from nbprod.sql.io import write as _write

    return _write(df, table, conn, mode, key)


def commit() -> None:
    """Commit the stage's pending table writes and log them (the generated last cell calls it)."""
    from nbprod.sql.io import commit as _commit

    _commit()
