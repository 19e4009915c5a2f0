"""The prediction log: one JSON line per answered request, written by a background thread so that
logging never blocks a request. The queue is bounded; when it is full the entry is dropped and
counted, and so is an entry the disk refused (the file is cut back to its last whole line). Each
worker process writes its own file (``predictions-<pid>.jsonl``), rotated by size into
``predictions-<pid>.jsonl.1`` .. ``.N`` (N = log_keep rotated files, ``.N`` oldest), so no two
processes share a file.

Line format (documented in the README, read by drift monitoring)::

    {"time": ISO-8601 UTC, "request_id": str, "variant": "prod"|"challenger", "shadow": bool,
     "version": "v1.2.0", "model": NAME, "worker": pid, "rows": n, "latency_ms": float,
     "inputs": {field: [values...]}  (or "inputs_sha256": hex, or neither, by log_inputs),
     "predictions": [...], "probabilities": [[...]] (when the model has predict_proba)}
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import threading
from datetime import UTC, datetime
from pathlib import Path
from collections.abc import Callable

FILE_PREFIX = "predictions-"
log = logging.getLogger(__name__)
_STOP = object()


class PredictionLog:
    def __init__(self, folder: Path, max_bytes: int, keep: int, queue_size: int, inputs: str,
                 on_drop: Callable[[], None] = lambda: None):
        self.folder, self.max_bytes, self.keep, self.inputs = folder, max_bytes, keep, inputs
        self.on_drop = on_drop
        self.dropped = 0
        self._failing = False   # the last write failed (logged once until a write succeeds again)
        self.error: str | None = None  # why the last write failed, until a write succeeds again
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._write_loop, name="nbprod-predlog", daemon=True)
        self.path = folder / f"{FILE_PREFIX}{os.getpid()}.jsonl"

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        ignore = self.folder.parent / ".gitignore"
        if self.folder.parent.name == "serve" and not ignore.exists():
            # The log is runtime data: keep it out of git (and out of rollback's kept working state).
            ignore.write_text("*\n", encoding="utf-8")
        self._thread.start()

    def submit(self, entry: dict, body=None, names: tuple[str, ...] = ()) -> None:
        """Queue an entry; never blocks. ``body`` is the validated request (records or columns) whose
        ``names`` fields are logged per ``inputs``, on the writer thread, off the request path."""
        if self.inputs != "none" and body is not None:
            entry["_body"], entry["_names"] = body, names
        try:
            self._queue.put_nowait(entry)
        except queue.Full:
            self.dropped += 1
            self.on_drop()

    def close(self, timeout: float = 5.0) -> None:
        if self._thread.is_alive():
            try:
                self._queue.put(_STOP, timeout=timeout)
            except queue.Full:
                return
            self._thread.join(timeout)

    def _write_loop(self) -> None:
        handle = open(self.path, "ab", buffering=0)
        size = self.path.stat().st_size  # bytes known to be whole lines on disk
        try:
            while True:
                entry = self._queue.get()
                batch: list[bytes] = []
                while entry is not _STOP:
                    line = _line(entry, self.inputs).encode("ascii")  # json escapes the rest
                    batch.append(line)
                    if size + sum(map(len, batch)) >= self.max_bytes:
                        size = self._write(handle, batch, size)
                        batch = []
                        handle.close()
                        self._rotate()
                        handle, size = open(self.path, "ab", buffering=0), 0
                    try:
                        entry = self._queue.get_nowait()
                    except queue.Empty:
                        break
                size = self._write(handle, batch, size)  # once per drained batch: few syscalls
                if entry is _STOP:
                    return
        finally:
            handle.close()

    def _write(self, handle, batch: list[bytes], size: int) -> int:
        """Append whole lines; on a write error (a full disk) cut the file back to its last whole line,
        keep what still fits line by line, count the rest as dropped and go on (space may come back)."""
        if not batch:
            return size
        try:
            return self._append(handle, b"".join(batch), size)
        except OSError as exc:
            error = exc
        for done, line in enumerate(batch):
            try:
                size = self._append(handle, line, size)
            except OSError as exc:
                error, lost = exc, len(batch) - done
                break
        else:
            return size
        if not self._failing:
            log.error("prediction log %s: cannot write (%s); entries are dropped and counted in /metrics "
                      "(nbprod_serve_predlog_dropped) until it can", self.path, error.strerror or error)
        self._failing = True
        self.error = str(error.strerror or error)
        self.dropped += lost
        for _ in range(lost):
            self.on_drop()
        return size

    def _append(self, handle, data: bytes, size: int) -> int:
        """Write all of ``data`` after ``size`` bytes, or cut the file back to ``size`` and raise."""
        try:
            view = memoryview(data)
            while view:
                view = view[handle.write(view):]
        except OSError:
            try:
                os.truncate(self.path, size)
            except OSError:
                log.debug("cannot cut %s back to %d bytes", self.path, size, exc_info=True)
            raise
        if self._failing:
            log.warning("prediction log %s: writing again", self.path)
            self._failing, self.error = False, None
        return size + len(data)

    def _rotate(self) -> None:
        oldest = self.path.with_name(f"{self.path.name}.{self.keep}")
        oldest.unlink(missing_ok=True)
        for n in range(self.keep - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            if older.exists():
                older.rename(self.path.with_name(f"{self.path.name}.{n + 1}"))
        self.path.rename(self.path.with_name(f"{self.path.name}.1"))


def _line(entry: dict, inputs: str) -> str:
    if isinstance(entry.get("time"), float):
        entry["time"] = datetime.fromtimestamp(entry["time"], UTC).isoformat(timespec="milliseconds")
    body, names = entry.pop("_body", None), entry.pop("_names", ())
    if body is not None:
        columns = _columns(body, names)
        if inputs == "hash":
            entry["inputs_sha256"] = hashlib.sha256(json.dumps(columns, sort_keys=True).encode()).hexdigest()
        else:
            entry["inputs"] = columns
    return json.dumps(entry, separators=(",", ":"), allow_nan=True) + "\n"


def _columns(body: dict, names: tuple[str, ...]) -> dict[str, list]:
    """The request's inputs column by column (the shape of a training table), whichever way it came."""
    if isinstance(body.get("columns"), dict):
        return {k: body["columns"][k] for k in names}
    return {k: [r[k] for r in body["records"]] for k in names}


def log_files(folder: Path) -> list[Path]:
    """Every log file in a folder, oldest rotation first (for readers such as drift monitoring)."""
    def order(path: Path) -> tuple[str, int]:
        stem, _, n = path.name.partition(".jsonl")
        return stem, -int(n[1:]) if n[1:].isdigit() else 0
    return sorted(folder.glob(f"{FILE_PREFIX}*.jsonl*"), key=order)


def read_log(folder: Path):
    """Yield every entry of a prediction log folder."""
    for path in log_files(folder):
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    yield json.loads(line)


def served_inputs(folder: Path, variant: str | None = "prod", last_rows: int | None = None,
                  since: datetime | None = None):
    """The inputs served (one row per predicted row) as a DataFrame in training column layout, for
    drift against the training data; shadow scorings are left out (they repeat the same inputs).
    ``since`` keeps requests answered at or after that time, ``last_rows`` the newest rows (entries
    are ordered by time, as several workers' files interleave)."""
    import pandas as pd

    entries = [e for e in read_log(folder)
               if "inputs" in e and not e.get("shadow") and (variant is None or e.get("variant") == variant)]
    if since is not None or last_rows is not None:
        timed = [(datetime.fromisoformat(e["time"]), e) for e in entries if isinstance(e.get("time"), str)]
        timed.sort(key=lambda pair: pair[0])
        entries = [e for when, e in timed if since is None or when >= since]
    if last_rows is not None:  # only the newest entries that hold the rows asked for become frames
        kept, rows = [], 0
        for entry in reversed(entries):
            if rows >= last_rows:
                break
            kept.append(entry)
            rows += len(next(iter(entry["inputs"].values()), []))
        entries = kept[::-1]
    # One DataFrame from joined column lists: a frame per entry made long windows slow (benchmarks/README.md).
    columns: dict[str, list] = {}
    total = 0
    for entry in entries:
        inputs = entry["inputs"]
        rows = len(next(iter(inputs.values()), []))
        for name in inputs:
            columns.setdefault(name, [None] * total)
        for name, values in columns.items():
            values.extend(inputs.get(name, [None] * rows))
        total += rows
    frame = pd.DataFrame(columns)
    return frame.tail(last_rows).reset_index(drop=True) if last_rows is not None else frame
