"""Pipeline runs started from the UI: one ``nbprod run`` subprocess per run, followed through its events file."""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from nbprod.execution.events import read_events

RUNS_DIR = ".nbprod/runs"
# Runs this server starts use "T"; runs started with `nbprod run` in a terminal use "-".
_RUN_ID = re.compile(r"^[0-9]{8}[T-][0-9]{6}-[0-9a-f]{6}$")


def is_run_id(text: str) -> bool:
    return bool(_RUN_ID.match(text))


@dataclass
class Run:
    id: str
    root: Path
    process: subprocess.Popen | None  # None for runs of an earlier server

    @property
    def folder(self) -> Path:
        return self.root / RUNS_DIR / self.id

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
        return any(e.get("event") == "run_end" for e in events)

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

    def start(self, root: Path, stages: list[str], from_stage: str | None) -> Run:
        run_id = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)
        run = Run(run_id, root, None)
        run.folder.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "nbprod", "run", "--events", str(run.events_path)]
        if from_stage:
            command += ["--from", from_stage]
        command += stages
        with open(run.folder / "output.log", "wb") as log:
            # Own process group: cancel sends SIGINT to the run and every kernel it started.
            run.process = subprocess.Popen(command, cwd=root, stdout=log, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL, start_new_session=True)
        (run.folder / "pid").write_text(str(run.process.pid))
        self._runs[(root, run_id)] = run
        return run

    def get(self, root: Path, run_id: str) -> Run | None:
        if not is_run_id(run_id):
            return None
        run = self._runs.get((root, run_id))
        if run is None and (root / RUNS_DIR / run_id / "events.jsonl").is_file():
            run = Run(run_id, root, None)
        return run

    def recent(self, root: Path, limit: int = 10) -> list[Run]:
        folder = root / RUNS_DIR
        ids = sorted((p.name for p in folder.iterdir() if is_run_id(p.name)), reverse=True) if folder.is_dir() else []
        return [r for r in (self.get(root, i) for i in ids[:limit]) if r is not None]

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
