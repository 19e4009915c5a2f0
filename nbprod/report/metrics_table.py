"""The workspace's metrics (``metrics/<stage>.json``) as one table."""

from __future__ import annotations

import json
from pathlib import Path

from ..core.project import METRICS_DIR
from ..executed.scraps import is_number
from .svg import format_number


def read_metrics(root: Path) -> dict[str, dict]:
    """``{stage: {metric: value}}`` from ``metrics/*.json``, numbers only (DVC reads the same files)."""
    folder = Path(root) / METRICS_DIR
    result: dict[str, dict] = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            continue
        if isinstance(data, dict):
            result[path.stem] = {k: v for k, v in data.items() if is_number(v)}
    return result


def print_metrics(metrics: dict[str, dict], console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title="Metrics")
    table.add_column("stage")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for stage, values in metrics.items():
        for name, value in values.items():
            table.add_row(stage, name, format_number(value))
    console.print(table)
