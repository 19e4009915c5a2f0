"""The outcome store: append-only JSON lines beside the prediction log (``outcomes-<pid>.jsonl`` from
``nbprod serve``'s ``POST /feedback``, ``outcomes-import.jsonl`` from ``nbprod feedback import``),
rotated like the prediction log. Each line is one outcome of one predicted row::

    {"time": received ISO-8601 UTC, "request_id": str | "key": str, "row": n, "outcome": value,
     "outcome_time": ISO-8601 UTC (when it became known; default = received), "source": "post"|"import"}

With ``log_inputs = "hash"`` or ``"none"`` a key is stored as ``sha256:<hex>`` (the prediction log
stores the request's key the same way), so joins still work without the raw key on disk. Nothing is
ever rewritten: for the same row, the outcome received last wins when joined.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from nbprod.serve.predlog import PredictionLog

PREFIX = "outcomes-"
IMPORT_FILE = f"{PREFIX}import.jsonl"
_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-")


class OutcomeLog(PredictionLog):
    """The server's outcome writer: the prediction log's queue, thread and rotation, its own file."""

    def __init__(self, folder: Path, max_bytes: int, keep: int, queue_size: int,
                 on_drop: Callable[[], None] = lambda: None):
        super().__init__(folder, max_bytes, keep, queue_size, "none", on_drop)
        self._thread.name = "nbprod-outcomes"
        self.path = folder / f"{PREFIX}{os.getpid()}.jsonl"


@dataclass(frozen=True)
class OutcomeKind:
    """What an outcome must be for the model: one of ``classes``, or a finite number (a regressor)."""
    classes: tuple | None = None

    @property
    def regressor(self) -> bool:
        return self.classes is None

    def validate(self, value) -> tuple[object, str | None]:
        """``value`` as stored (the model's own class value), and why it is not an outcome (or None)."""
        if self.regressor:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                return value, f"must be a finite number for a regressor, got {_shown(value)}"
            return value, None
        if not isinstance(value, bool):
            for known in self.classes:
                if known == value and (type(known) is type(value) or _both_numbers(value, known)):
                    return known, None
        return value, f"{_shown(value)} is not a class the model knows ({', '.join(map(_shown, self.classes))})"

    def coerce(self, value):
        """A CSV/Parquet cell as the model's outcome type ("1" -> 1 for integer classes)."""
        if hasattr(value, "item"):
            value = value.item()
        if isinstance(value, str) and (self.regressor or not all(isinstance(c, str) for c in self.classes)):
            try:
                number = float(value)
            except ValueError:
                return value
            return int(number) if number.is_integer() and not self.regressor else number
        if isinstance(value, float) and not self.regressor and value.is_integer() and \
                all(isinstance(c, int) for c in self.classes):
            return int(value)
        return value


def _both_numbers(a, b) -> bool:
    return isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool)


def _shown(value) -> str:
    return json.dumps(value) if isinstance(value, (str, int, float, bool, type(None))) else type(value).__name__


def hide_key(key: str, inputs_mode: str) -> str:
    """The key as logged: itself with ``log_inputs = "values"``, else its sha256 (privacy modes)."""
    return key if inputs_mode == "values" else "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass
class Rejected:
    index: int
    field: str
    error: str

    def to_dict(self) -> dict:
        return {"index": self.index, "field": self.field, "error": self.error}


def parse_time(value) -> str | None:
    """An ISO-8601 time (naive = UTC) as UTC ISO text, or None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return when.isoformat(timespec="milliseconds")


def outcome_entry(item, index: int, kind: OutcomeKind, inputs_mode: str, source: str, received: str,
                  where: str = "outcomes") -> dict | Rejected:
    """One stored line from one submitted outcome, or why it cannot be stored (naming the field)."""
    at = f"{where}[{index}]"
    if not isinstance(item, dict):
        return Rejected(index, at, "must be an object with request_id (or key) and outcome")
    entry: dict = {"time": received}
    if item.get("request_id") is not None:
        rid = item["request_id"]
        if not isinstance(rid, str) or not 1 <= len(rid) <= 64 or not set(rid) <= _ID_CHARS:
            return Rejected(index, f"{at}.request_id", "must be the request id nbprod serve answered with")
        entry["request_id"] = rid
    elif item.get("key") is not None:
        key = item["key"]
        if not isinstance(key, (str, int)) or isinstance(key, bool):
            return Rejected(index, f"{at}.key", "must be a string or an integer")
        entry["key"] = hide_key(str(key), inputs_mode)
    else:
        return Rejected(index, at, "needs request_id (or key, with key_field under [tool.nbprod.feedback])")
    row = item.get("row", 0)
    if isinstance(row, bool) or not isinstance(row, int) or row < 0:
        return Rejected(index, f"{at}.row", "must be a whole number of 0 or more (the row of the request)")
    entry["row"] = row
    if "outcome" not in item:
        return Rejected(index, f"{at}.outcome", "is missing")
    value, why = kind.validate(item["outcome"])
    if why:
        return Rejected(index, f"{at}.outcome", why)
    entry["outcome"] = value
    when = item.get("time")
    entry["outcome_time"] = received if when is None else parse_time(when)
    if entry["outcome_time"] is None:
        return Rejected(index, f"{at}.time", f"{_shown(when)} is not an ISO-8601 time")
    entry["source"] = source
    return entry


def now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def append_entries(folder: Path, entries: list[dict]) -> Path:
    """Append lines to the import file under an exclusive lock (two imports never interleave lines)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / IMPORT_FILE
    text = "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in entries)
    with open(path, "a", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    return path


def outcome_files(folder: Path) -> list[Path]:
    """Every outcome file, oldest rotation first (so later lines are later outcomes within a file)."""
    def order(path: Path) -> tuple[str, int]:
        stem, _, n = path.name.partition(".jsonl")
        return stem, -int(n[1:]) if n[1:].isdigit() else 0
    return sorted(folder.glob(f"{PREFIX}*.jsonl*"), key=order)
