"""``reports/index.html``: the pipeline as a picture, each stage's last run, and metric history charts."""

from __future__ import annotations

import datetime as _dt
from html import escape
from pathlib import Path

from ..notebooks.notebook import atomic_write
from ..core.project import REPORTS_DIR
from ..executed.scraps import is_number
from .freshness import index_digest, index_path, stamp
from .history import metric_history, workspace_metrics
from .pipeline_view import StageNode, load_stages
from ..executed.summary import ExecutedStage, load_run
from .stage_report import report_path
from .style import page
from .svg import dag_svg, format_duration, format_number, line_chart_svg

HEADLINE_PER_STAGE = 6


def _numeric(metrics: dict | None) -> dict:
    return {k: v for k, v in (metrics or {}).items() if is_number(v)}


def stage_summaries(root: Path, nodes: list[StageNode]) -> dict[str, dict]:
    """Per stage: its last run (if any), status, duration, headline metrics and report links."""
    summaries = {}
    names = [n.name for n in nodes]
    executed = {p.stem: p for p in sorted((root / REPORTS_DIR).glob("*.ipynb"))}
    for name in names + sorted(set(executed) - set(names)):
        run: ExecutedStage | None = load_run(executed[name], name) if name in executed else None
        metrics = _numeric(workspace_metrics(root, name)) or (run.metrics if run else {})
        info = {"status": run.status if run else "not run", "duration": run.duration if run else None,
                "run": run, "metrics": metrics}
        if report_path(root, name).is_file():
            info["href"] = report_path(root, name).name
        if report_path(root, name, no_input=True).is_file():
            info["href_noinput"] = report_path(root, name, no_input=True).name
        summaries[name] = info
    return summaries


def _stage_table(summaries: dict[str, dict]) -> str:
    rows = []
    for name, info in summaries.items():
        status = info["status"]
        run = info["run"]
        link = f'<a href="{escape(info["href"])}">report</a>' if info.get("href") else '<span class="muted">—</span>'
        if info.get("href_noinput"):
            link += f' · <a href="{escape(info["href_noinput"])}">without code</a>'
        metrics = list(info["metrics"].items())[:HEADLINE_PER_STAGE]
        shown = "<br>".join(f'{escape(k)} = <strong data-metric="{escape(k)}">{format_number(v)}</strong>'
                            for k, v in metrics) or '<span class="muted">—</span>'
        commit = ""
        if run and run.commit:
            commit = f"<code>{escape(run.commit[:8])}</code>" + (" (dirty)" if run.dirty else "")
        started = escape(run.started or "") if run else ""
        rows.append(
            f'<tr data-stage="{escape(name)}"><td><code>{escape(name)}</code></td>'
            f'<td><span class="status status-{escape(status.replace(" ", "-"))}">{escape(status)}</span></td>'
            f'<td class="num">{escape(format_duration(info["duration"]))}</td><td>{shown}</td>'
            f"<td>{commit}<br><span class=\"muted\">{started}</span></td><td>{link}</td></tr>")
    return ("<table class=\"stages\"><tr><th>Stage</th><th>Status</th><th>Duration</th><th>Headline metrics</th>"
            f"<th>Last run</th><th>Report</th></tr>{''.join(rows)}</table>")


def _history_charts(root: Path, summaries: dict[str, dict]) -> str:
    stages = list(summaries)
    revisions = metric_history(root, stages)
    parts = []
    for stage in stages:
        names = list(summaries[stage]["metrics"])[:HEADLINE_PER_STAGE]
        if not names:
            # A stage with no metrics now may still have a history worth showing.
            seen: dict[str, None] = {}
            for r in revisions:
                seen.update(dict.fromkeys(_numeric(r.metrics.get(stage))))
            names = list(seen)[:HEADLINE_PER_STAGE]
        charts = []
        for metric in names:
            points = []
            for r in revisions:
                value = (r.metrics.get(stage) or {}).get(metric)
                if is_number(value):
                    points.append((r.short, float(value), f"{r.short} {r.date} {r.subject}: {metric} = {value}"))
            now = summaries[stage]["metrics"].get(metric)
            if is_number(now) and (not points or points[-1][1] != float(now)):
                points.append(("work tree", float(now), f"uncommitted work tree: {metric} = {now}"))
            if points:
                charts.append(line_chart_svg(f"{stage} · {metric}", points))
        if charts:
            parts.append(f'<div class="charts" data-stage="{escape(stage)}">{"".join(charts)}</div>')
    if not parts:
        return '<p class="muted">No metrics committed yet: commit <code>metrics/</code> to build a history.</p>'
    commits = len(revisions)
    return (f'<p class="muted">From {commits} commit{"s" if commits != 1 else ""} that changed '
            f"<code>metrics/</code> (hover a point for the commit).</p>" + "".join(parts))


def render_index(project, out: Path | None = None) -> Path:
    """Write ``reports/index.html`` for ``project`` (atomically, stamped with the hash of what it
    shows: see ``freshness``); returns its path."""
    root = Path(project.root)
    digest = index_digest(root)  # before reading: a change made meanwhile makes the stamp stale
    nodes = load_stages(project)
    summaries = stage_summaries(root, nodes)
    dag = dag_svg(nodes, summaries)
    failed = [n for n, i in summaries.items() if i["status"] == "failed"]
    banner = ""
    if failed:
        links = ", ".join(f'<a href="{escape(summaries[n].get("href", "#"))}">{escape(n)}</a>' for n in failed)
        banner = f'<div class="banner" role="alert"><strong>Failed stages:</strong> {links}</div>'
    generated = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
    body = (
        f"<h1>Pipeline <code>{escape(root.name)}</code></h1>"
        f'<p class="muted">Generated {escape(generated)} by nbprod.</p>{banner}'
        f"<h2>Pipeline</h2>{dag}"
        f"<h2>Stages</h2>{_stage_table(summaries)}"
        f"<h2>Metric history</h2>{_history_charts(root, summaries)}"
    )
    out = out or index_path(root)
    atomic_write(out, stamp(page(f"{escape(root.name)} — nbprod runs", body), digest))
    return out
