"""Reports rendered off the run's critical path: one worker process per run loads nbconvert once and
renders each stage's report as soon as that stage ends, while the next stages run, then the index.

``ReportWorker`` is the run's side (it only writes lines to the worker's stdin); ``python -m
nbprod.report.worker ROOT`` is the worker. Its protocol, one command a line:
``stage NAME`` renders that stage's out-of-date reports; ``finish`` renders every other
out-of-date report, then the index if it is out of date, and exits. At end of input without
``finish`` (the run was killed) it exits without touching the index.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ..core.project import RUNS_DIR
from ..core.stagerun import EventKind

LOG_NAME = "reports.log"  # in the run's folder, beside dvc.log


class ReportWorker:
    """Feeds a run's events to a report worker process, started when the first stage starts (a run
    with nothing to do never starts one, and writes nothing under ``reports/``)."""

    def __init__(self, project):
        self.project = project
        self.root = Path(project.root)
        self.process: subprocess.Popen | None = None
        self.log = self.root / RUNS_DIR / LOG_NAME  # until the run says its id

    def on_event(self, event: dict) -> None:
        kind = event.get("event")
        if kind == EventKind.RUN_START and event.get("run") and self.process is None:
            self.log = self.root / RUNS_DIR / str(event["run"]) / LOG_NAME
        elif kind == EventKind.STAGE_START:
            self._start()
        elif kind == EventKind.STAGE_END and event.get("stage"):
            self._send(f"stage {event['stage']}")

    def finish(self) -> int:
        """Render what is still out of date and wait for it; returns the worker's exit status (0 when
        there was nothing to do and no worker was needed)."""
        if self.process is None:
            from .freshness import index_stale, stale_stage_reports

            if not stale_stage_reports(self.root) and not index_stale(self.root):
                return 0
            self._start()
        self._send("finish")
        self.process.stdin.close()
        return self.process.wait()

    def close(self) -> None:
        """Stop the worker without finishing (the run was interrupted)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def _start(self) -> None:
        if self.process is not None:
            return
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "nbprod.report.worker", str(self.root)],
                                            stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT,
                                            cwd=self.root, text=True)

    def _send(self, line: str) -> None:
        self._start()
        try:
            self.process.stdin.write(line + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass  # the worker died; finish() reports its exit status


def serve(root: Path, lines) -> None:
    """The worker loop over command lines (see the module docstring)."""
    from ..core.lightimports import without_optional_imports
    from ..core.project import find_project
    from .freshness import index_stale, stale_stage_reports
    from .stage_report import exporter

    with without_optional_imports():  # nbconvert imports nbformat: without jsonschema's costly extras
        _warm_up(exporter())  # nbconvert and its templates load now, while the first stage runs
    for line in lines:
        command, _, argument = line.strip().partition(" ")
        if command == "stage":
            for stale in stale_stage_reports(root, [argument]):
                _render(root, stale)
        elif command == "finish":
            for stale in stale_stage_reports(root):
                _render(root, stale)
            if index_stale(root):
                from .index import render_index

                _logged(root, render_index(find_project(root)))
            return


def _warm_up(html_exporter) -> None:
    """Render an empty notebook: the template compiles and nbformat's validator is built (a
    noticeable part of the first report) before any stage ends."""
    import nbformat

    html_exporter.from_notebook_node(nbformat.reads('{"cells": [], "metadata": {}, "nbformat": 4, '
                                                    '"nbformat_minor": 5}', as_version=4))


def _render(root: Path, stale) -> None:
    from .stage_report import render_stage_report

    try:
        _logged(root, render_stage_report(root, stale.executed, no_input=stale.no_input))
    except FileNotFoundError:
        # DVC relinks outputs from its cache as it records a stage: the notebook may be briefly
        # missing. finish() sweeps every stale report again, so nothing is left behind.
        return


def _logged(root: Path, path: Path) -> None:
    print(f"rendered {path.relative_to(root).as_posix()}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    serve(Path(args[0]), sys.stdin)
    return 0


if __name__ == "__main__":
    sys.exit(main())
