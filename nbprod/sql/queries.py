"""What compile knows about a stage's SQL: literal queries (each one a snapshot stage) and the
tables it writes; and the ``[tool.nbprod.connections]`` table. Standard library only."""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from nbprod.core.errors import NbprodError
from nbprod.core.project import PYPROJECT, SQL_DIR, read_config

MODES = ("append", "replace", "upsert")
SNAPSHOT_CMD = re.compile(r"^nbprod db snapshot [0-9a-f]{16}$")
QUERY_ID = re.compile(r"^[0-9a-f]{16}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Query:
    """A literal query of ``nbprod.sql.read``: its result is snapshotted to a DVC-tracked Parquet file."""

    conn: str
    text: str
    params_json: str = "{}"   # the bound parameters, as sorted JSON (hashable)

    @property
    def params(self) -> dict:
        return json.loads(self.params_json)

    @property
    def id(self) -> str:
        return query_id(self.conn, self.text, self.params)

    @property
    def stage_name(self) -> str:
        return f"sql-{self.id}"

    @property
    def spec_file(self) -> str:
        return f"{SQL_DIR}/{self.id}.json"

    @property
    def snapshot_file(self) -> str:
        return f"{SQL_DIR}/{self.id}.parquet"

    def to_dict(self) -> dict:
        return {"conn": self.conn, "query": self.text, "params": self.params, "snapshot": self.snapshot_file,
                "snapshot_stage": self.stage_name}


@dataclass(frozen=True)
class TableWrite:
    """A table a stage writes with ``nbprod.sql.write``: the stage's output, outside DVC."""

    conn: str
    table: str
    mode: str = "append"
    key: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict:
        return {"conn": self.conn, "table": self.table, "mode": self.mode, "key": list(self.key)}


def query_id(conn: str, text: str, params: dict) -> str:
    """The same id at compile time and in the kernel: a hash of connection, query text and params."""
    blob = json.dumps([conn, text, params], sort_keys=True, ensure_ascii=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ConnectionSpec:
    name: str
    url_env: str | None = None   # the variable holding the SQLAlchemy URL (secrets only there)
    url: str | None = None       # a URL without secrets (an SQLite file of the project)


def connections(root: Path) -> dict[str, ConnectionSpec]:
    """``[tool.nbprod.connections]``: NAME = {url_env = "VAR"} or {url = "sqlite:///data/x.sqlite"}."""
    table = read_config(root).get("connections", {})
    where = "[tool.nbprod.connections]"
    if not isinstance(table, dict):
        raise NbprodError(f"{where} must be a table", PYPROJECT, fix='write [tool.nbprod.connections] '
                          'then warehouse = { url_env = "WAREHOUSE_URL" }')
    result = {}
    for name, entry in table.items():
        if not isinstance(entry, dict) or set(entry) - {"url_env", "url"} or len(entry) != 1:
            raise NbprodError(f"{where} {name} must hold exactly one of url_env or url", PYPROJECT,
                              fix=f'write {name} = {{ url_env = "{name.upper()}_URL" }} and put the URL in that '
                                  'environment variable')
        env, url = entry.get("url_env"), entry.get("url")
        if env is not None and not (isinstance(env, str) and _ENV_NAME.fullmatch(env)):
            raise NbprodError(f"{where} {name} url_env must be an environment variable name", PYPROJECT,
                              fix=f'write {name} = {{ url_env = "{name.upper()}_URL" }}')
        if url is not None:
            if not isinstance(url, str) or not url:
                raise NbprodError(f"{where} {name} url must be a string", PYPROJECT,
                                  fix=f'write {name} = {{ url = "sqlite:///data/{name}.sqlite" }}')
            try:
                secret = urlsplit(url).password
            except ValueError:
                secret = None
            if secret is not None:
                # Never echo the URL: it holds a password that must now be considered leaked.
                raise NbprodError(f"{where} {name} url holds a password, which must not be in git", PYPROJECT,
                                  fix=f'remove it, change that password, and write {name} = '
                                      f'{{ url_env = "{name.upper()}_URL" }} with the URL in that variable')
        result[name] = ConnectionSpec(name, env, url)
    return result


def check_connection(root: Path, name: str, where: str | Path, cell: int | None = None) -> ConnectionSpec:
    known = connections(root)
    if name not in known:
        listed = ", ".join(sorted(known)) or "none"
        raise NbprodError(f"connection {name!r} is not declared in [tool.nbprod.connections] of {PYPROJECT} "
                          f"(declared: {listed})", where, cell,
                          fix=f'add {name} = {{ url_env = "{name.upper()}_URL" }} under [tool.nbprod.connections]')
    return known[name]


def require_urls(root: Path, names: set[str]) -> None:
    """Before a run starts: every connection its queries use has its URL variable set (named, never shown)."""
    known = connections(root)
    for name in sorted(names):
        spec = known.get(name)
        if spec is not None and spec.url_env and not os.environ.get(spec.url_env):
            raise NbprodError(f"connection {name!r} reads its URL from the environment variable {spec.url_env}, "
                              "which is not set", PYPROJECT,
                              fix=f"export {spec.url_env}=dialect+driver://user:password@host/database before the run")
