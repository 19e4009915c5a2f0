"""A named connection's SQLAlchemy engine, and errors turned into one line that never holds its URL."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from nbprod.core.errors import NbprodError
from nbprod.core.project import PYPROJECT
from nbprod.sql.queries import check_connection


class SqlError(NbprodError):
    """A database problem a user can fix (connection, query, frame vs table), on one line."""


@dataclass
class Opened:
    name: str
    engine: object          # sqlalchemy.Engine
    secrets: tuple[str, ...]  # the URL and its password: scrubbed from every message


def open_engine(root: Path, name: str, where: str | Path = PYPROJECT) -> Opened:
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    spec = check_connection(root, name, where)
    if spec.url_env:
        raw = os.environ.get(spec.url_env)
        if not raw:
            raise SqlError(f"connection {name!r} reads its URL from the environment variable {spec.url_env}, "
                           "which is not set", PYPROJECT,
                           fix=f"export {spec.url_env}=dialect+driver://user:password@host/database before the run")
    else:
        raw = spec.url
    try:
        url = make_url(raw)
    except (ArgumentError, ValueError):
        source = f"the environment variable {spec.url_env}" if spec.url_env else f"connection {name!r}"
        raise SqlError(f"{source} does not hold a valid SQLAlchemy URL", PYPROJECT,
                       fix="write it as dialect+driver://user:password@host:port/database") from None
    secrets = tuple(s for s in (raw, url.password and str(url.password)) if s)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:" \
            and not Path(url.database).is_absolute():
        url = url.set(database=str(Path(root) / url.database))  # relative to the project, not the cwd
    try:
        engine = create_engine(url)
        if url.get_backend_name() == "sqlite":
            _transactional_ddl(engine)
    except Exception as exc:  # noqa: BLE001 - a missing driver or a bad option: one line without the URL
        raise SqlError(f"connection {name!r}: {scrub(first_line(exc), secrets)}", PYPROJECT,
                       fix="install the database driver (for PostgreSQL: pip install 'psycopg[binary]')") from None
    return Opened(name, engine, secrets)


def _transactional_ddl(engine) -> None:
    """Python's sqlite3 commits before DDL and begins transactions itself: let SQLAlchemy's BEGIN
    start them, so a CREATE TABLE by a failed stage is rolled back with its rows (SQLAlchemy's
    documented recipe for pysqlite)."""
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _no_implicit(dbapi_connection, record) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(connection) -> None:
        connection.exec_driver_sql("BEGIN")


def first_line(exc: BaseException) -> str:
    original = getattr(exc, "orig", None) or exc
    text = str(original).strip().splitlines()
    return text[0] if text else type(original).__name__


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def connect(opened: Opened):
    """An open connection, or one line saying the database cannot be reached (its message, no URL)."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        return opened.engine.connect()
    except SQLAlchemyError as exc:
        raise SqlError(f"cannot reach database {opened.name!r}: {scrub(first_line(exc), opened.secrets)}", PYPROJECT,
                       fix="start the database, or correct the host, port, user or password in the connection's "
                           "URL") from None


def database_error(opened: Opened, exc: BaseException, doing: str) -> SqlError:
    """The database's own message (first line, URL and password removed) as a SqlError."""
    from sqlalchemy.exc import DBAPIError

    while not isinstance(exc, DBAPIError) and isinstance(exc.__cause__, DBAPIError):
        exc = exc.__cause__  # pandas.read_sql's DatabaseError wraps SQLAlchemy's
    message = scrub(first_line(exc), opened.secrets)
    return SqlError(f"{doing} failed on {opened.name!r}: {message}", None,
                    fix="correct the SQL or the table (the message is the database's)")
