"""Lifecycle actions take the project's run lock: a retrain is a run, and an approval or a rollback
must not change tags and the working tree under a run that is writing outputs.

The refusal is ``nbprod run``'s own one-line message (``another nbprod run is in progress (pid N)``),
whether the action came from the CLI or from the JupyterLab panel.
"""

from __future__ import annotations

import functools
from typing import TypeVar
from collections.abc import Callable

Action = TypeVar("Action", bound=Callable)


def under_run_lock(action: Action) -> Action:
    """Run ``action(project, ...)`` holding ``project``'s run lock; refuse at once if a run holds it."""

    @functools.wraps(action)
    def locked(project, *args, **kwargs):
        from ..execution.run import RunLock

        with RunLock(project):
            return action(project, *args, **kwargs)

    return locked  # type: ignore[return-value]


def is_run_lock_refusal(error: Exception) -> bool:
    """True for the NbprodError that RunLock raises (the server answers it with 409, not 400)."""
    return str(getattr(error, "path", "") or "").endswith("run.lock")
