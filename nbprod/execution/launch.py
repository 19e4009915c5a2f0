"""Pipeline runs started from the UI: one ``nbprod run`` subprocess per run, followed through its events file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from nbprod.execution.events import read_events
from nbprod.execution.runfolder import RunFolder, is_run_id, recent_runs
from nbprod.core.project import RUNS_DIR  # noqa: F401 - re-exported (nbprod.widgets.runcontrol imports it from here)
from nbprod.core.stagerun import EventKind



@dataclass
class Run:
    id: str
    root: Path
    process: subprocess.Popen | None  # None for runs of an earlier server

    @property
    def folder(self) -> Path:
        return RunFolder(self.root, self.id).path

    @property
    def events_path(self) -> Path:
        return self.folder / "events.jsonl"

    @property
    def running(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        return self._pid_alive() and not self._ended()

    @property
    def pid(self) -> int | None:
        if self.process is not None:
            return self.process.pid
        try:
            return int((self.folder / "pid").read_text())
        except (OSError, ValueError):
            return None

    def _pid_alive(self) -> bool:
        # A run started by an earlier server (its own session) may still be going after a restart.
        from nbprod.execution.lifeline import pid_alive

        pid = self.pid
        return pid is not None and pid_alive(pid)

    def _ended(self) -> bool:
        events, _ = read_events(self.events_path)
        kinds = {e.get("event") for e in events}
        if EventKind.RETRAIN_STEP in kinds:  # a retrain goes on (scoring, committing) after its pipeline run ends
            return EventKind.RETRAIN_END in kinds
        return EventKind.RUN_END in kinds

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()


class RunRegistry:
    """The runs this server started, keyed by project root; older runs are read back from disk."""

    def __init__(self) -> None:
        self._runs: dict[tuple[Path, str], Run] = {}

    def active(self, root: Path) -> Run | None:
        for (run_root, _), run in self._runs.items():
            if run_root == root and run.running:
                return run
        latest = self.recent(root, limit=1)
        return latest[0] if latest and latest[0].running else None

    def start(self, root: Path, stages: list[str], from_stage: str | None, keep_going: bool = False) -> Run:
        arguments = ["run"]
        if keep_going:
            arguments.append("--keep-going")
        if from_stage:
            arguments += ["--from", from_stage]
        return self.launch(root, arguments + stages)

    def launch(self, root: Path, arguments: list[str]) -> Run:
        """Start ``python -m nbprod ARGUMENTS --events <the run's events file>`` (``nbprod run`` or
        ``nbprod retrain``, both of which take the project's run lock) as a run of ``root``."""
        # The folder `nbprod run` will use too (it finds it from --events): one folder per run.
        run = Run(RunFolder.create(root).id, root, None)
        command = [sys.executable, "-m", "nbprod", *arguments[:1], "--events", str(run.events_path), *arguments[1:]]
        with open(run.folder / "output.log", "wb") as log:
            # Own process group: cancel sends SIGINT to the run and every kernel it started.
            run.process = subprocess.Popen(command, cwd=root, stdout=log, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL, start_new_session=True)
        (run.folder / "pid").write_text(str(run.process.pid))
        run.events_path.touch()  # the run exists for every server from now on (its pid is written)
        self._runs[(root, run.id)] = run
        return run

    def get(self, root: Path, run_id: str) -> Run | None:
        if not is_run_id(run_id):
            return None
        run = self._runs.get((root, run_id))
        if run is None and RunFolder(root, run_id).events.is_file():
            run = Run(run_id, root, None)
        return run

    def recent(self, root: Path, limit: int = 10) -> list[Run]:
        return [r for r in (self.get(root, i) for i in recent_runs(root, limit)) if r is not None]

    def cancel(self, run: Run) -> bool:
        if not run.running:
            return False
        try:
            os.killpg(run.pid, signal.SIGINT)
        except (ProcessLookupError, PermissionError, TypeError):
            return False
        return True


def run_state(run: Run, offset: int = 0) -> dict:
    """Events from byte ``offset`` on; when the run died without a run_end event, its last output line."""
    running, returncode = run.running, run.returncode
    events, new_offset = read_events(run.events_path, offset)
    state = {"id": run.id, "running": running, "returncode": returncode, "events": events, "offset": new_offset}
    if not running and returncode not in (None, 0):
        log = run.folder / "output.log"
        lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines() if log.is_file() else []
        state["message"] = lines[-1] if lines else f"the run exited with status {returncode}"
    return state
