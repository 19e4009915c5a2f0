"""Run events: one JSON object per line, appended by every process of a run and read by the UIs."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

EVENTS_ENV = "NBPROD_EVENTS"


def emit(event: str, **fields: object) -> None:
    """Append an event to the run's events file, when this process is part of an ``nbprod run``."""
    path = os.environ.get(EVENTS_ENV)
    if not path:
        return
    line = json.dumps({"event": event, "time": round(time.time(), 3), **fields}, default=str) + "\n"
    # One write() per line on an O_APPEND descriptor: concurrent stages never interleave lines.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode("utf-8"))
    finally:
        os.close(fd)


def read_events(path: Path, offset: int = 0) -> tuple[list[dict], int]:
    """Complete event lines from byte ``offset`` on, and the offset to continue from."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1
    events = []
    for raw in data[:end].splitlines():
        try:
            events.append(json.loads(raw))
        except ValueError:
            continue
    return events, offset + end
