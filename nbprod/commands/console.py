"""Terminal output of the CLI: live progress per stage and per cell, summary and status tables, the
pipeline as text."""

from __future__ import annotations

import sys

from ..core.stagerun import EventKind, StageState, StatusState


class RunView:
    """Progress bars on a terminal (one per running stage, so parallel stages stay accurate); plain
    lines elsewhere, such as CI logs."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self.live = self.console.is_terminal
        self.progress = None
        self.tasks: dict[str, int] = {}
        self.overall = None

    def __enter__(self) -> RunView:
        if self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), console=self.console, transient=True)
            self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()

    def on_event(self, event: dict) -> None:
        kind, stage = event.get("event"), event.get("stage")
        if kind == EventKind.RUN_START:
            stages = event.get("stages", [])
            if self.progress is not None:
                self.overall = self.progress.add_task("pipeline", total=len(stages))
            else:
                self.console.print(f"nbprod: {len(stages)} stages: {', '.join(stages)}")
        elif kind == EventKind.STAGE_START:
            if self.progress is not None:
                self.tasks[stage] = self.progress.add_task(f"  {stage}", total=event.get("cells") or 1)
            else:
                self.console.print(f"nbprod: {stage}: running {event.get('cells')} cells")
        elif kind == EventKind.CELL and self.progress is not None and stage in self.tasks:
            self.progress.update(self.tasks[stage], completed=max(0, event.get("index", 1) - 1))
        elif kind == EventKind.STAGE_END:
            state, duration = event.get("state"), event.get("duration") or 0.0
            if self.progress is not None:
                task = self.tasks.pop(stage, None)
                if task is not None:
                    self.progress.remove_task(task)
                if self.overall is not None:
                    self.progress.advance(self.overall)
                self.console.print(f"{_mark(state)} {stage} {state} in {duration:.1f}s")
            else:
                self.console.print(f"nbprod: {stage}: {state} in {duration:.1f}s")


def _mark(state: str | None) -> str:
    return {StageState.RAN: "[green]✓[/]", StageState.FAILED: "[red]✗[/]"}.get(state or "", "·")


def _headline(metrics: dict, limit: int = 3) -> str:
    # The stage's own metrics first (accuracy), then families (drift.share), then their details.
    ordered = sorted(metrics.items(), key=lambda item: item[0].count("."))
    parts = [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in ordered[:limit]]
    more = len(metrics) - limit
    return ", ".join(parts) + (f" (+{more})" if more > 0 else "")


def print_summary(outcomes) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="nbprod run")
    for column in ("stage", "result", "duration", "metrics"):
        table.add_column(column)
    colours = {StageState.RAN: "green", StageState.FAILED: "red", StageState.UP_TO_DATE: "cyan",
               StageState.NOT_RUN: "yellow"}
    for outcome in outcomes:
        duration = f"{outcome.duration:.1f}s" if outcome.duration is not None else "-"
        colour = colours.get(outcome.state, "white")
        table.add_row(outcome.name, f"[{colour}]{outcome.state}[/]", duration, _headline(outcome.metrics))
    console = Console(file=sys.stdout, width=max(100, Console().width))
    console.print(table)
    counts = {state: sum(1 for o in outcomes if o.state == state) for state in colours}
    if counts["failed"]:  # what a failure cost: ran, failed, and not run because downstream of it
        console.print(f"{counts['ran']} ran, {counts['failed']} failed, {counts['not run']} not run, "
                      f"{counts['up to date']} up to date")


def print_status(statuses) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="nbprod status")
    for column in ("stage", "state", "why"):
        table.add_column(column)
    for status in statuses:
        colour = "green" if status.state == StatusState.UP_TO_DATE else "yellow"
        table.add_row(status.name, f"[{colour}]{status.state}[/]", "; ".join(status.details) or "-")
    Console(file=sys.stdout, width=max(100, Console().width)).print(table)


def pipeline_text(data: dict) -> str:
    """``nbprod pipeline --text``: each stage with what it reads and what compile carries into it, then
    each carried function or class once, with the stages it reaches."""
    lines = [f"nbprod pipeline: {len(data['stages'])} stages"]
    for stage in data["stages"]:
        lines.append(f"{stage['name']}: {stage['notebook']} cells {', '.join(map(str, stage['cells'])) or '-'}"
                     + (f"; after {', '.join(stage['upstream'])}" if stage["upstream"] else ""))
        if stage["params"]:
            lines.append(f"  params: {', '.join(stage['params'])}")
        if stage["inputs"]:
            lines.append("  inputs: " + ", ".join(f"{n} (from {p})" for n, p in sorted(stage["inputs"].items())))
        if stage.get("carried_imports"):
            lines.append("  imports carried: " + "; ".join(f"{' '.join(c['source'].split())} (stage {c['stage']}, "
                                                         f"cell {c['cell']})" for c in stage["carried_imports"]))
        if stage.get("carried_definitions"):
            lines.append("  definitions carried: " + ", ".join(d["name"] for d in stage["carried_definitions"]))
    carried = data.get("carried_definitions") or []
    if carried:
        lines.append("carried definitions (each once, with the stages it is carried into):")
        lines += [f"  {d['kind']} {d['name']}: {d['notebook']} cell {d['cell']} line {d['line']} (stage {d['stage']})"
                  f" -> {', '.join(d['into'])}" for d in carried]
    return "\n".join(lines)
