"""Run ids and run folders: ``.nbprod/runs/<id>/`` holds one run's events, DVC log, stage logs and
kernel-pool log. Made here only, for ``nbprod run`` and for runs the Jupyter server starts, so that a
run started from JupyterLab writes everything into the one folder the server follows."""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from ..core.project import RUNS_DIR

EVENTS_FILE = "events.jsonl"
# New ids: local time, then 6 hex digits. Folders of earlier servers used a "T" between date and time.
_RUN_ID = re.compile(r"^[0-9]{8}[T-][0-9]{6}-[0-9a-f]{6}$")


def new_run_id() -> str:
    """A fresh id; ids sort in the order runs started."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def is_run_id(text: str) -> bool:
    return bool(_RUN_ID.match(text))


@dataclass(frozen=True)
class RunFolder:
    root: Path  # the project
    id: str

    @property
    def path(self) -> Path:
        return self.root / RUNS_DIR / self.id

    @property
    def events(self) -> Path:
        return self.path / EVENTS_FILE

    @property
    def dvc_log(self) -> Path:
        return self.path / "dvc.log"

    @classmethod
    def create(cls, root: Path, run_id: str | None = None) -> RunFolder:
        folder = cls(Path(root), run_id or new_run_id())
        folder.path.mkdir(parents=True, exist_ok=True)
        return folder

    @classmethod
    def of_events(cls, root: Path, events: Path) -> RunFolder | None:
        """The run folder whose events file ``events`` is (the server passes it to ``nbprod run
        --events``), or None for an events file elsewhere."""
        events = Path(events).absolute()
        if events.name != EVENTS_FILE or not is_run_id(events.parent.name):
            return None
        folder = cls(Path(root), events.parent.name)
        return folder if events.parent == folder.path.absolute() else None


def recent_runs(root: Path, limit: int = 10) -> list[str]:
    """Ids of the project's latest runs, newest first."""
    base = Path(root) / RUNS_DIR
    ids = [p.name for p in base.iterdir() if is_run_id(p.name)] if base.is_dir() else []
    return sorted(ids, key=lambda i: i.replace("T", "-"), reverse=True)[:limit]
