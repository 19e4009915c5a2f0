"""The database log: per run, each table read or written (schema, rows, schema hash), and the
history ``nbprod db log`` shows (created, columns added, dropped or retyped, rows written)."""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from nbprod.core.project import DB_LOG


@dataclass
class Column:
    name: str
    type: str
    nullable: bool


@dataclass
class TableEntry:
    """One line of the log: what one stage run saw of, or did to, one table."""

    time: str
    conn: str
    table: str
    op: str                              # "read" | "write"
    stage: str
    run: str | None
    commit: str | None
    columns: list[Column] = field(default_factory=list)
    schema_hash: str = ""
    rows: int = 0                        # the table's row count after the run's read or write
    rows_read: int = 0                   # rows the query returned, for reads
    rows_written: int = 0
    mode: str | None = None              # append | replace | upsert, for writes
    created: bool = False                # the write created the table
    query: str | None = None             # the query id, for reads

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @staticmethod
    def from_dict(raw: dict) -> TableEntry:
        raw = dict(raw)
        raw["columns"] = [Column(**c) for c in raw.get("columns", [])]
        return TableEntry(**raw)


def schema_hash(columns: list[Column]) -> str:
    return hashlib.sha256(json.dumps([asdict(c) for c in columns]).encode()).hexdigest()[:16]


def inspect_table(connection, table: str) -> list[Column] | None:
    """The table's columns (name, type, nullability) as the database reports them; None if absent."""
    from sqlalchemy import inspect

    schema, _, name = table.rpartition(".")
    inspector = inspect(connection)
    if not inspector.has_table(name, schema=schema or None):
        return None
    return [Column(c["name"], str(c["type"]), bool(c.get("nullable", True)))
            for c in inspector.get_columns(name, schema=schema or None)]


def count_rows(connection, table: str) -> int:
    from sqlalchemy import func, select, table as table_clause

    schema, _, name = table.rpartition(".")
    return int(connection.execute(select(func.count()).select_from(table_clause(name, schema=schema or None)))
               .scalar_one())


def tables_in_query(connection, query: str) -> list[str]:
    """Tables of the database that the query names (the words of the query that are table names)."""
    from sqlalchemy import inspect

    words = {w.strip('"').lower() for w in re.findall(r'"[^"]+"|[A-Za-z_][A-Za-z0-9_]*', query)}
    return sorted(t for t in inspect(connection).get_table_names() if t.lower() in words)


def run_context(root: Path) -> tuple[str | None, str | None]:
    """(run id, git commit) of the running stage: the run from its events file, the commit from git."""
    from nbprod.core.proc import git_output

    events = os.environ.get("NBPROD_EVENTS")
    run = Path(events).parent.name if events else None
    try:
        commit = git_output(root, "rev-parse", "HEAD").strip() or None
    except Exception:  # noqa: BLE001 - a project without commits yet
        commit = None
    return run, commit


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def append(root: Path, entries: list[TableEntry]) -> None:
    """One write() of whole lines on an O_APPEND descriptor: concurrent stages never interleave."""
    if not entries:
        return
    path = Path(root) / DB_LOG
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(e.to_json() + "\n" for e in entries).encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def read_log(root: Path) -> list[TableEntry]:
    path = Path(root) / DB_LOG
    if not path.is_file():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entries.append(TableEntry.from_dict(json.loads(line)))
        except (ValueError, TypeError):
            continue  # a line cut by a crash: the others still count
    return entries


def schema_changes(before: list[Column], after: list[Column]) -> list[str]:
    """What changed between two schemas, in words: column `x` added (INTEGER), dropped, became TEXT."""
    old = {c.name: c for c in before}
    new = {c.name: c for c in after}
    changes = [f"column `{n}` added ({new[n].type})" for n in new if n not in old]
    changes += [f"column `{n}` dropped" for n in old if n not in new]
    for name in (n for n in new if n in old):
        if old[name].type != new[name].type:
            changes.append(f"column `{name}` became {new[name].type.lower()} (was {old[name].type.lower()})")
        elif old[name].nullable != new[name].nullable:
            changes.append(f"column `{name}` became {'nullable' if new[name].nullable else 'not nullable'}")
    return changes


@dataclass
class Event:
    entry: TableEntry
    what: str


def history(entries: list[TableEntry], table: str | None = None) -> list[Event]:
    """Events per table, oldest first: created or first seen, schema changes, rows written or read."""
    events: list[Event] = []
    last: dict[tuple[str, str], TableEntry] = {}
    for entry in sorted(entries, key=lambda e: e.time):
        if table is not None and table not in (entry.table, f"{entry.conn}.{entry.table}"):
            continue
        key = (entry.conn, entry.table)
        before = last.get(key)
        shape = f"{len(entry.columns)} columns, schema {entry.schema_hash}"
        if entry.created:
            events.append(Event(entry, f"table created ({shape})"))
        elif before is None:
            events.append(Event(entry, f"table first seen ({shape})"))
        else:
            events += [Event(entry, change) for change in schema_changes(before.columns, entry.columns)]
        if entry.op == "write":
            verb = "written" if entry.created else \
                {"append": "appended", "replace": "replaced", "upsert": "upserted"}.get(entry.mode or "", "written")
            events.append(Event(entry, f"{entry.rows_written} rows {verb} ({entry.rows} rows now)"))
        else:
            events.append(Event(entry, f"read: the query returned {entry.rows_read} of {entry.rows} rows"))
        last[key] = entry
    return events


def last_reads(entries: list[TableEntry]) -> dict[tuple[str, str], TableEntry]:
    """The newest entry of each table (read or written): what a source table looked like last."""
    result: dict[tuple[str, str], TableEntry] = {}
    for entry in sorted(entries, key=lambda e: e.time):
        result[(entry.conn, entry.table)] = entry
    return result
