"""Finding, starting, following and cancelling runs from a notebook kernel, with no ipywidgets.

A run is found through what every run leaves on disk, whoever started it (this panel, the Lab panel,
a terminal): the run lock (``.nbprod/run.lock`` holds ``pid N`` while a run holds it) and the newest
``.nbprod/runs/<id>/events.jsonl``. Starting reuses the server's ``RunRegistry.start``: the same
``nbprod run --events`` command in a new session, so a kernel restart or interrupt never reaches it.
"""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from nbprod.execution.events import read_events
from nbprod.execution.lifeline import pid_alive
from nbprod.execution.runfolder import EVENTS_FILE
from nbprod.core.project import GENERATED_DIR, RUNS_DIR
from nbprod.core.stagerun import EventKind, StageState
from nbprod.execution.launch import Run, RunRegistry

LOCK_FILE = f"{GENERATED_DIR}/run.lock"


def lock_holder(root: Path) -> int | None:
    """The pid of the live process holding the project's run lock, or None.

    Reads the pid the lock holder wrote instead of trying the flock: trying it would, for an instant,
    make a run that starts at that moment refuse.
    """
    try:
        text = (root / LOCK_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    if not text.startswith("pid "):
        return None
    try:
        pid = int(text.split()[1])
    except (IndexError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def latest_events_file(root: Path) -> Path | None:
    """The events file written last (folders of earlier servers sort apart from today's run ids, and
    an experiment run writes to its own folder too: the newest file is the current run's)."""
    folder = root / RUNS_DIR
    if not folder.is_dir():
        return None
    files = [p for p in folder.glob(f"*/{EVENTS_FILE}") if p.is_file()]
    return max(files, key=lambda p: p.stat().st_mtime_ns, default=None)


@dataclass
class StageProgress:
    """What the events of one run say about one stage."""

    name: str
    state: str = "queued"              # "queued" | "running" | "ran" | "failed"
    cells: int = 0
    cell: int = 0
    duration: float | None = None
    metrics: dict = field(default_factory=dict)
    message: str | None = None
    notebook: str | None = None
    report: str | None = None


@dataclass
class RunProgress:
    """A run's events folded into per-stage progress, in the order they arrived."""

    events_path: Path
    offset: int = 0
    run_id: str | None = None
    stages: list[str] = field(default_factory=list)          # the run's selection, in pipeline order
    progress: dict[str, StageProgress] = field(default_factory=dict)
    ended: bool = False
    ok: bool | None = None
    message: str | None = None

    def read(self) -> bool:
        """Fold the events written since the last call; True when there were any."""
        events, self.offset = read_events(self.events_path, self.offset)
        for event in events:
            self.fold(event)
        return bool(events)

    def fold(self, event: dict) -> None:
        kind = event.get("event")
        if kind == EventKind.RUN_START:
            self.run_id = event.get("run")
            self.stages = list(event.get("stages") or [])
            for name in self.stages:
                self.progress.setdefault(name, StageProgress(name))
        elif kind == EventKind.RUN_END:
            self.ended, self.ok, self.message = True, bool(event.get("ok")), event.get("message")
        elif kind in (EventKind.STAGE_START, EventKind.CELL, EventKind.STAGE_END) and event.get("stage"):
            stage = self.progress.setdefault(event["stage"], StageProgress(event["stage"]))
            if event["stage"] not in self.stages:
                self.stages.append(event["stage"])
            if kind == EventKind.STAGE_START:
                stage.state, stage.cells, stage.cell = StageState.RUNNING, int(event.get("cells") or 0), 0
            elif kind == EventKind.CELL:
                stage.cell = int(event.get("index") or 0)
                stage.cells = int(event.get("cells") or stage.cells)
            else:
                stage.state = event.get("state") or "ran"
                stage.duration = event.get("duration")
                stage.metrics = event.get("metrics") or {}
                stage.message = event.get("message")
                stage.notebook = event.get("notebook")
                stage.report = event.get("report")

    def stopped(self, message: str) -> None:
        """The run's process is gone without writing run_end (Ctrl-C, Cancel, kill): stages it left
        running were interrupted."""
        self.ended, self.ok, self.message = True, False, message
        for stage in self.progress.values():
            if stage.state == "running":
                stage.state = "failed"
                where = f" in cell {stage.cell} of {stage.cells}" if stage.cell else ""
                stage.message = f"stage {stage.name!r} interrupted{where}: {message}"

    def running_stage(self) -> StageProgress | None:
        return next((p for p in self.progress.values() if p.state == "running"), None)

    def summary(self) -> str:
        """One line, as the CLI shows it: stage n/m and cell n/m of the stage that runs."""
        total = len(self.stages)
        if self.ended:
            return "run finished" if self.ok else f"run failed: {self.message or 'see the run log'}"
        current = self.running_stage()
        if current is None:
            done = sum(1 for p in self.progress.values() if p.state in ("ran", "failed"))
            return f"run going: {done}/{total} stages done" if total else "run starting"
        index = self.stages.index(current.name) + 1 if current.name in self.stages else 0
        return f"stage {index}/{total} {current.name}: cell {current.cell}/{current.cells}"


class RunControl:
    """Start, find and cancel the runs of one project from the kernel."""

    def __init__(self, root: Path):
        self.root = root
        self._registry = RunRegistry()
        self._own: Run | None = None   # the run this kernel started, until it takes the lock

    def active_pid(self) -> int | None:
        """The pid of the run going on now (started anywhere), or None."""
        holder = lock_holder(self.root)
        if holder is not None:
            return holder
        if self._own is not None and self._own.running:
            return self._own.pid   # started, not holding the lock yet (Python is still starting)
        return None

    def start(self, stages: list[str] | None = None, from_stage: str | None = None) -> Run:
        """An ordinary ``nbprod run`` in its own session; refuses while a run holds the lock."""
        from nbprod.core.errors import NbprodError

        holder = lock_holder(self.root)
        if holder is not None or (self._own is not None and self._own.running):
            raise NbprodError(f"another nbprod run is in progress (pid {holder or self._own.pid})",
                              LOCK_FILE, fix="wait for it to finish, or cancel it, then run again")
        self._own = self._registry.start(self.root, list(stages or []), from_stage)
        return self._own

    def own_failure(self) -> str | None:
        """Why the run this kernel started ended before writing run_end (e.g. the lock refused it)."""
        run = self._own
        if run is None or run.running:
            return None
        state_log = run.folder / "output.log"
        events, _ = read_events(run.events_path)
        if any(e.get("event") == "run_end" for e in events) or run.returncode in (None, 0):
            return None
        lines = state_log.read_text(encoding="utf-8", errors="replace").strip().splitlines() \
            if state_log.is_file() else []
        return lines[-1] if lines else f"the run exited with status {run.returncode}"

    def own_events(self) -> Path | None:
        """The events file of the run this kernel started, while that run is going."""
        return self._own.events_path if self._own is not None and self._own.running else None

    def cancel(self) -> bool:
        """SIGINT to the running run, as Ctrl-C in its terminal would send."""
        pid = self.active_pid()
        if pid is None:
            return False
        try:
            # Runs started here or by the server lead their own process group; a terminal run leads
            # its shell job. Signal the group only when the run leads it, never a group it merely
            # belongs to (that could be the caller's own).
            if os.getpgid(pid) == pid:
                os.killpg(pid, signal.SIGINT)
            else:
                os.kill(pid, signal.SIGINT)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def reap(self) -> None:
        """Collect the exit status of the run this kernel started, so it leaves no zombie."""
        if self._own is not None and self._own.process is not None:
            try:
                self._own.process.wait(timeout=0)
            except subprocess.TimeoutExpired:
                pass
