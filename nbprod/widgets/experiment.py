"""``dvc exp run -S`` started from the parameters form, under nbprod's run lock and with run events.

The form starts ``python -m nbprod.widgets.experiment ROOT RUN_DIR section.key=value ...`` in its own
session (a kernel restart does not end it). This process holds ``.nbprod/run.lock`` for the whole
experiment, so it never races an ``nbprod run``, and points ``NBPROD_EVENTS`` at the run folder, so
the panel follows the experiment's stages as it follows any run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from nbprod.execution.events import EVENTS_ENV, emit
from nbprod.execution.runfolder import EVENTS_FILE, RunFolder


@dataclass
class Experiment:
    """An experiment process started from the form."""

    folder: Path
    process: subprocess.Popen

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def result(self) -> dict | None:
        """{"ok", "message", "name"} once the process wrote it."""
        try:
            return json.loads((self.folder / "result.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None


def start_experiment(root: Path, changes: dict[str, object]) -> Experiment:
    """Start the experiment with ``changes`` ({"section.key": value}) in a new session."""
    folder = RunFolder.create(root).path
    settings = [f"{key}={json.dumps(value)}" for key, value in changes.items()]  # JSON is YAML, as -S reads it
    with open(folder / "output.log", "wb") as log:
        command = [sys.executable, "-m", "nbprod.widgets.experiment", str(root), str(folder), *settings]
        process = subprocess.Popen(command, cwd=root, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    (folder / "pid").write_text(str(process.pid))
    return Experiment(folder, process)


def main(argv: list[str]) -> int:
    from nbprod.core.errors import NbprodError
    from nbprod.execution.run import RunLock
    from nbprod.core.project import load_project

    root, folder, settings = Path(argv[0]), Path(argv[1]), argv[2:]
    project = load_project(root)
    events = folder / EVENTS_FILE
    os.environ[EVENTS_ENV] = str(events)
    # Stage commands are `nbprod exec NAME`: find this interpreter's nbprod even when the kernel's
    # PATH does not hold its bin folder (a kernel started by VS Code or a kernel spec).
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    result: dict = {"ok": False, "message": None, "name": None}
    try:
        with RunLock(project):
            events.touch()
            emit("run_start", run=folder.name, stages=[], experiment=settings)
            dvc = shutil.which("dvc") or "dvc"
            command = [dvc, "exp", "run"]
            for setting in settings:
                command += ["-S", setting]
            done = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False)
            sys.stdout.write(done.stdout + done.stderr)
            result["ok"] = done.returncode == 0
            named = [line for line in done.stdout.splitlines() if "Ran experiment" in line]
            result["name"] = named[-1].split(":", 1)[-1].strip() if named else None
            if not result["ok"]:
                lines = (done.stderr or done.stdout).strip().splitlines()
                result["message"] = lines[-1] if lines else f"dvc exp run exited with status {done.returncode}"
            emit("run_end", run=folder.name, ok=result["ok"], message=result["message"])
    except NbprodError as exc:
        result["message"] = str(exc)
    (folder / "result.json").write_text(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
