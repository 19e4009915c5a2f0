"""Monitoring scenario: ``nbprod monitor`` over 500 run records (rules checked on every record for the
threshold lines, alerts.json, reports/dashboard.html). Target: under 3 s, a file under 2 MB.

The records are real record folders written by ``create_record`` from one real ``nbprod run`` of the
example project, one per simulated day, with that day's metrics written into the run's metrics files
(accuracy and drift slowly moving); only the dashboard step is timed."""

from __future__ import annotations

import json
import math
import time
from datetime import datetime, timedelta, UTC
from pathlib import Path
from typing import TYPE_CHECKING

from . import projects as P

if TYPE_CHECKING:  # scenarios.py imports this module to register its scenarios
    from .scenarios import Row, Size

RULES = """
[tool.nbprod.monitor]
accuracy = [">= 0.95", ">= median(last 10) - 0.03"]
"drift.share" = "<= 0.3"
"duration.train" = "<= 2 * median(last 10)"
"""


def dashboard_records(work: Path, size: Size) -> list[Row]:
    from nbprod.monitor.records import create_record
    from nbprod.monitor.watch import monitor
    from nbprod.core.project import load_project

    from .scenarios import Row, median

    count = 20 if size.tiny else 500
    root = P.copy_project(P.nbprod_template(work), work / "monitor")
    P.sh(P.tool("nbprod"), "run", "--no-report", cwd=root)
    with open(root / "pyproject.toml", "a", encoding="utf-8") as handle:
        handle.write(RULES)
    P.git_commit_all(root)
    project = load_project(root)
    events = sorted((root / ".nbprod/runs").iterdir())[-1] / "events.jsonl"
    evaluate = json.loads((root / "metrics/evaluate.json").read_text())
    recorded = [p for p in sorted((root / "metrics").glob("*.json")) if "drift.share" in json.loads(p.read_text())]
    drift_file = recorded[0] if recorded else root / "metrics/prepare.json"
    drift = json.loads(drift_file.read_text()) if recorded else {}
    start = datetime(2025, 1, 1, 6, tzinfo=UTC)
    started = time.perf_counter()
    for day in range(count):
        evaluate["accuracy"] = round(0.985 - 0.06 * day / count + 0.004 * math.sin(day), 4)
        (root / "metrics/evaluate.json").write_text(json.dumps(evaluate))
        if drift:
            drift["drift.share"] = round(min(1.0, 0.5 * day / count), 3)
            for key in drift:
                if key.endswith(".score"):
                    drift[key] = max(0.0, drift[key] - 0.001 * day * (hash(key) % 3))
            drift_file.write_text(json.dumps(drift))
        create_record(project, events, when=start + timedelta(days=day))
    recording = (time.perf_counter() - started) / count
    times = []
    for _ in range(size.cheap):
        began = time.perf_counter()
        outcome = monitor(project)
        times.append(time.perf_counter() - began)
    value = median(times)
    megabytes = outcome.dashboard.stat().st_size / 1e6
    met = value < 3.0 and megabytes < 2.0
    return [Row(f"dashboard of {count} records (nbprod monitor, in process)", value, 3.0, "target", value / 3.0,
                "< 3 s, < 2 MB", met, f"{megabytes:.2f} MB; {len(outcome.verdict.checks)} rules per record; "
                f"writing a record {recording * 1000:.0f} ms")]
