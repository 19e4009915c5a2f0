"""Stage status and last results for the panel, computed outside the user's kernel.

Status runs as an ``nbprod status --json`` subprocess rather than calling ``pipeline_status`` in
the kernel: in process it imports DVC and hundreds of modules, and keeps their memory in the kernel for
its whole life (the subprocess costs the kernel about as much time and a small fraction of the memory:
benchmarks/README.md); it also opens DVC's repository, which an interrupted kernel
could leave locked, and compiles the pipeline: none of that belongs in the user's process.
Metrics and links come from files the runs wrote (``metrics/<stage>.json``, ``reports/``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from nbprod.core.project import METRICS_DIR, REPORTS_DIR


@dataclass
class StageRow:
    """One line of the panel: the stage's status and why, its last metrics and its files."""

    name: str
    state: str                                      # "up to date" | "changed" | "never run" | "failed" | ...
    reasons: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    notebook: str | None = None                     # project-relative executed notebook
    report: str | None = None                       # project-relative HTML report

    def why(self) -> str:
        if self.state == "changed" and self.reasons:
            return "changed: " + ", ".join(self.reasons)
        return self.state


class StatusError(Exception):
    """``nbprod status`` refused; the message is its one-line error."""


def stage_status(root: Path, timeout: float = 120) -> list[dict]:
    """``nbprod status --json`` in the project root: [{name, state, reasons, details}]."""
    return _json_of(["status", "--json"], root, timeout)


def stage_names(root: Path, timeout: float = 60) -> list[str]:
    """The stages in pipeline order from ``nbprod pipeline`` (no DVC: it works while a run holds DVC's lock)."""
    return [s["name"] for s in _json_of(["pipeline"], root, timeout)["stages"]]


def _json_of(arguments: list[str], root: Path, timeout: float):
    """The JSON an ``nbprod`` command prints, run in the project root; its one-line error otherwise."""
    command = "nbprod " + " ".join(arguments)
    try:
        done = subprocess.run([sys.executable, "-m", "nbprod", *arguments], check=False, cwd=root,
                              capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout,
                              env={k: v for k, v in os.environ.items() if k != "NBPROD_EVENTS"})
    except subprocess.TimeoutExpired:
        raise StatusError(f"{command} took more than {timeout:.0f} s") from None
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise StatusError(lines[-1] if lines else f"{command} exited with status {done.returncode}")
    try:
        return json.loads(done.stdout)
    except ValueError:
        raise StatusError(f"{command} printed no JSON") from None


def last_metrics(root: Path, stage: str) -> dict:
    try:
        data = json.loads((root / METRICS_DIR / f"{stage}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def stage_rows(root: Path, statuses: list[dict]) -> list[StageRow]:
    rows = []
    for entry in statuses:
        name = entry["name"]
        notebook = f"{REPORTS_DIR}/{name}.ipynb"
        report = f"{REPORTS_DIR}/{name}.html"
        rows.append(StageRow(name, entry["state"], list(entry.get("reasons") or []), list(entry.get("details") or []),
                             last_metrics(root, name),
                             notebook if (root / notebook).is_file() else None,
                             report if (root / report).is_file() else None))
    return rows


def status_table(rows: list[StageRow]) -> str:
    """The plain-text panel, for front ends that do not render widgets."""
    head = ("stage", "state", "metrics")
    lines = [(r.name, r.why(), metrics_line(r.metrics)) for r in rows]
    widths = [max(len(x[i]) for x in [head, *lines]) for i in range(3)]
    out = ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in [head, *lines]]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def metrics_line(metrics: dict, shown: int = 4) -> str:
    """The first ``shown`` metrics by name, and how many more there are."""
    if not metrics:
        return "-"
    items = sorted(metrics.items())
    text = ", ".join(f"{k}={number(v)}" for k, v in items[:shown])
    return text + (f" (+{len(items) - shown})" if len(items) > shown else "")


def number(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
