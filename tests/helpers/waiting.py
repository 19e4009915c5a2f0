"""Waiting for something a real process does: bounded in time and in the number of checks."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(check: Callable[[], T], limit: float, what: str, every: float = 0.2) -> T:
    """Call ``check`` every ``every`` seconds until it returns something true, and return that; after
    ``limit`` seconds, or ``limit / every`` checks (whichever comes first), fail naming ``what``."""
    deadline = time.monotonic() + limit
    for _ in range(max(1, math.ceil(limit / every)) + 1):
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            break
        time.sleep(every)
    raise AssertionError(f"gave up waiting for {what} after {limit:.0f}s")
