"""``reports/dashboard.html``: one self-contained page for a business reader (inline CSS and SVG, no
JavaScript, no network): latest alerts first, headline metrics over time with their thresholds and
promotion/rollback markers, drift per column, stage durations, and every record with its links."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from datetime import datetime
from html import escape
from pathlib import Path

from ..core.errors import NbprodError
from ..notebooks.notebook import atomic_write
from ..core.project import METRICS_DIR, REPORTS_DIR
from ..report.svg import format_number
from ..core.conditions import Rule
from .charts import PALETTE, Marker, Series, time_chart
from .records import Record, flatten_metrics
from .rules import DURATION, Verdict, value_of

DASHBOARD = f"{REPORTS_DIR}/dashboard.html"
KEY = ('<p class="key"><b style="background:#1a73e8"></b>scheduled runs '
       '<b style="background:#9aa0a6"></b>committed revisions '
       '<b style="border-top:2px dashed #d93025;height:0"></b>threshold '
       '<b style="background:#188038"></b>model promoted <b style="background:#e8710a"></b>rolled back '
       '<span class="state-alert">●</span> alert</p>')
_MAX_TABLE_ROWS = 500

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#202124;background:#fff}
header{padding:18px 28px;border-bottom:1px solid #dadce0}
header h1{margin:0 0 4px;font-size:22px} main{padding:8px 28px 40px;max-width:1240px}
h2{font-size:18px;margin:28px 0 8px} .muted{color:#5f6368}
.verdict{display:inline-block;padding:6px 14px;border-radius:16px;font-weight:600;margin-top:8px}
.verdict.ok{background:#e6f4ea;color:#137333} .verdict.alert{background:#fce8e6;color:#b3261e}
table{border-collapse:collapse;font-size:14px} th,td{padding:6px 10px;border-bottom:1px solid #e8eaed;text-align:left}
th{background:#f8f9fa} td.num{text-align:right;font-variant-numeric:tabular-nums}
.state-alert{color:#b3261e;font-weight:600} .state-ok{color:#137333} .state-not{color:#5f6368}
.charts{display:flex;flex-wrap:wrap;gap:18px} .chart{background:#fff} figure.chartbox{margin:0}
.legend{font-size:12px;margin:2px 0 0 60px;max-width:500px} .legend span{margin-right:12px;white-space:nowrap}
.legend i{display:inline-block;width:12px;height:3px;margin:0 4px 3px 0;vertical-align:middle}
.key{font-size:13px;margin:4px 0 10px}
.key b{display:inline-block;width:14px;height:3px;vertical-align:middle;margin:0 4px}
a{color:#1a73e8}
"""


@dataclass
class Revision:
    when: float
    label: str
    metrics: dict[str, dict]


def headline_metrics(rules: list[Rule], records: list[Record]) -> list[str]:
    """The metrics named by rules (not durations or drift); without such rules, the latest record's."""
    names: list[str] = []
    for rule in rules:
        if not rule.metric.startswith(DURATION) and not _is_drift(rule.metric) and rule.metric not in names:
            names.append(rule.metric)
    if names or not records:
        return names
    latest = records[-1].metrics
    return [n for values in latest.values() for n in values if not _is_drift(n) and not n.startswith("live.")][:6]


DRIFT_FAMILIES = (("drift.", ""), ("served.drift.", "served inputs: "))  # (metric prefix, chart title prefix)


def _is_drift(metric: str) -> bool:
    return metric.rpartition(":")[2].startswith(tuple(prefix for prefix, _ in DRIFT_FAMILIES))


def render_dashboard(root: Path, title: str, records: list[Record], verdicts: list[Verdict], rules: list[Rule],
                     markers: list[Marker], revisions: list[Revision] | None = None,
                     output: Path | None = None) -> Path:
    output = output or root / DASHBOARD
    page = dashboard_html(title, records, verdicts, rules, markers, revisions or [],
                          link_base=os.path.relpath(root / "records", output.parent))
    atomic_write(output, page)
    return output


def dashboard_html(title: str, records: list[Record], verdicts: list[Verdict], rules: list[Rule],
                   markers: list[Marker], revisions: list[Revision], link_base: str = "../records") -> str:
    times = [r.time.timestamp() for r in records]
    latest = verdicts[-1] if verdicts else None
    headline = headline_metrics(rules, records)
    parts = [(f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
              f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
              f"<title>{escape(title)} — monitoring</title><style>{CSS}</style></head><body>"),
             _header(title, records, latest), "<main>",
             _alerts_section(records, verdicts),
             "<h2>Key metrics over time</h2>",
             KEY,
             '<div class="charts" id="metrics">']
    for metric in headline:
        parts.append(_metric_chart(metric, records, times, verdicts, markers, revisions))
    parts.append("</div>")
    parts.append(live_section(records, times, verdicts, markers))
    parts.append(_drift_section(records, times, verdicts))
    parts.append(_durations_section(records, times))
    parts.append(_records_table(records, verdicts, headline, link_base))
    parts.append("</main></body></html>\n")
    return "".join(parts)


def _header(title: str, records: list[Record], latest: Verdict | None) -> str:
    if not records:
        return (f"<header><h1>{escape(title)}</h1><p>No run has been recorded yet: schedule "
                f"<code>nbprod run --record &amp;&amp; nbprod monitor</code>.</p></header>")
    last = records[-1]
    production = last.production
    model = f"model {production['version']} in production" if production else "no model in production yet"
    count = len(latest.alerts) if latest else 0
    verdict = (f'<span class="verdict alert">{count} alert{"s" if count != 1 else ""} in the latest run</span>'
               if count else '<span class="verdict ok">All checks passed in the latest run</span>')
    return (f"<header><h1>{escape(title)}</h1><div class=\"muted\">Latest run {_when(last)} · {escape(model)} · "
            f"{len(records)} recorded run{'s' if len(records) != 1 else ''}</div>{verdict}</header>")


def _when(record: Record) -> str:
    return record.time.strftime("%Y-%m-%d %H:%M UTC")


def _alerts_section(records: list[Record], verdicts: list[Verdict]) -> str:
    rows = []
    for record, verdict in reversed(list(zip(records, verdicts))):
        for alert in verdict.alerts:
            rows.append((record, alert))
        if len(rows) >= 12:  # the newest first; older ones are in the records table below
            break
    if not rows:
        return '<h2>Latest alerts</h2><p class="state-ok" id="alerts">No alerts: every rule holds.</p>'
    body = "".join(
        f"<tr><td>{_when(r)}</td><td>{escape(a.rule)}</td><td class=\"num\">{_num(a.value)}</td>"
        f"<td class=\"num\">{_num(a.threshold)}</td><td>{escape(_plain(a))}</td></tr>" for r, a in rows)
    return ('<h2>Latest alerts</h2><table id="alerts"><thead><tr><th>Run</th><th>Rule</th><th>Value</th>'
            f"<th>Threshold</th><th>In plain words</th></tr></thead><tbody>{body}</tbody></table>")


def _plain(check) -> str:
    if check.value is None or check.threshold is None:
        return check.note or "alert"
    metric, op = check.rule.split(" ")[0], check.rule.split(" ")[1]
    words = {">=": "should be at least", ">": "should be above", "<=": "should be at most", "<": "should be below",
             "==": "should equal"}[op]
    return f"{metric} is {format_number(check.value)}; it {words} {format_number(check.threshold)}"


def _num(value) -> str:
    return "—" if value is None else format_number(value)


def _rule_lines(metric: str, records: list[Record], times: list[float], verdicts: list[Verdict]):
    """Per rule on ``metric``: its threshold over time; and the records where any of them alerted."""
    lines: dict[str, list[tuple[float, float]]] = {}
    alerts: set[int] = set()
    for i, verdict in enumerate(verdicts):
        for check in verdict.checks:
            if check.rule.split(" ")[0] != metric:
                continue
            if check.threshold is not None:
                lines.setdefault(check.rule, []).append((times[i], check.threshold))
            if check.passed is False:
                alerts.add(i)
    return list(lines.values()), alerts


def _metric_series(metric: str, records: list[Record], times: list[float], alerts: set[int],
                   colour: str = PALETTE[0], name: str | None = None) -> Series:
    points, flagged = [], set()
    for i, record in enumerate(records):
        value = value_of(record, metric)
        if value is not None:
            if i in alerts:
                flagged.add(len(points))
            points.append((times[i], value))
    return Series(name or metric, points, colour, flagged)


def _metric_chart(metric: str, records, times, verdicts, markers, revisions) -> str:
    lines, alerts = _rule_lines(metric, records, times, verdicts)
    series = [_metric_series(metric, records, times, alerts, name=f"{metric} (runs)")]
    committed = []
    for revision in revisions:
        value = _safe_lookup(revision.metrics, metric)
        # commits within the records' time span share the axis; with no records, all of them
        if value is not None and (not times or times[0] <= revision.when <= times[-1]):
            committed.append((revision.when, value))
    if committed:
        series.insert(0, Series(f"{metric} (committed)", committed, "#9aa0a6"))
    return time_chart(metric, series, lines, markers)


def _safe_lookup(metrics: dict[str, dict], metric: str):
    from ..core.errors import NbprodError
    from ..core.conditions import lookup

    try:
        return lookup(metrics, metric, "monitor")
    except NbprodError:
        return None


def live_section(records, times, verdicts, markers) -> str:
    """Live quality (outcomes joined with predictions): realised against ESTIMATED accuracy over time,
    per variant; the latest A/B verdict in words."""
    latest = next((r.live for r in reversed(records) if r.live and r.live.get("metrics")), None)
    if latest is None:
        return ""
    out = ['<h2>Live quality</h2><p class="muted">' + escape(latest.get("note", "")) + ". Estimated figures "
           "come from the logged probabilities alone (before outcomes arrive); the realised ones from the "
           "outcomes.</p>"]
    verdict = latest.get("verdict")
    if verdict:
        out.append(f'<p id="ab-verdict"><b>A/B test:</b> {escape(verdict["text"])}</p>')
    out.append('<div class="charts" id="live">')
    for variant in ("prod", "challenger"):
        for figure in ("accuracy", "roc_auc", "mae"):
            realised, estimated = f"live.{variant}.{figure}", f"live.{variant}.estimated_{figure}"
            lines, alerts = _rule_lines(realised, records, times, verdicts)
            series = [_metric_series(realised, records, times, alerts, name=f"{realised} (realised)"),
                      _metric_series(estimated, records, times, set(), PALETTE[1 % len(PALETTE)],
                                     f"{estimated} (ESTIMATED)")]
            series = [s for s in series if s.points]
            if series:
                out.append(time_chart(f"live {figure}, {variant}", series, lines, markers))
    out.append("</div>")
    return "".join(out)


def _drift_section(records, times, verdicts) -> str:
    names: list[str] = []
    for record in records:
        for values in record.metrics.values():
            names += [n for n in values if _is_drift(n) and n not in names]
    if not names:
        return ""
    out = [('<h2>Data drift</h2><p class="muted">How the data of each run compares with the training data, '
            "as the runs' drift checks recorded it; \"served inputs\" charts compare what the served model "
            "answered (its prediction log, checked by nbprod monitor) with the training data of the version "
            "in production.</p><div class=\"charts\" id=\"drift\">")]
    for prefix, what in DRIFT_FAMILIES:
        family = [n for n in names if n.startswith(prefix)]
        for overall in [n for n in family if "." not in n[len(prefix):] and n[len(prefix):] != "dataset_drifted"]:
            lines, alerts = _rule_lines(overall, records, times, verdicts)
            title = what + ("share of columns that drifted" if overall == prefix + "share" else overall)
            out.append(time_chart(title, [_metric_series(overall, records, times, alerts, name=overall)], lines))
        columns = _moving_columns(records, [n for n in family if "." in n[len(prefix):] and n.endswith(".score")])
        if columns:
            series = [_metric_series(n, records, times, set(), PALETTE[i % len(PALETTE)],
                                     n[len(prefix):-len(".score")]) for i, n in enumerate(columns)]
            out.append(time_chart(f"{what}drift score of the {len(columns)} columns that changed most", series))
    out.append("</div>")
    return "".join(out)


def _moving_columns(records: list[Record], names: list[str], count: int = 6) -> list[str]:
    """The per-column drift scores that moved most between the first and the latest record."""
    def moved(name: str) -> float:
        values = [v for v in (value_of(r, name) for r in records) if v is not None]
        return abs(values[-1] - values[0]) if values else 0.0

    return sorted(names, key=moved, reverse=True)[:count]


def _durations_section(records, times) -> str:
    stages: list[str] = []
    for record in records:
        stages += [s for s in record.durations if s not in stages]
    if not stages:
        return ""
    series = [Series(stage, [(times[i], r.durations[stage]) for i, r in enumerate(records) if stage in r.durations],
                     PALETTE[k % len(PALETTE)]) for k, stage in enumerate(stages)]
    return ('<h2>Stage durations</h2><div class="charts" id="durations">'
            + time_chart("duration per stage (seconds)", series) + "</div>")


def _records_table(records, verdicts, headline, link_base) -> str:
    head = "".join(f"<th>{escape(m)}</th>" for m in headline)
    rows = []
    for record, verdict in list(zip(records, verdicts))[::-1][:_MAX_TABLE_ROWS]:
        count = len(verdict.alerts)
        status = (f'<span class="state-alert">{count} alert{"s" if count != 1 else ""}</span>' if count
                  else '<span class="state-ok">ok</span>')
        production = record.production["version"] if record.production else "—"
        values = "".join(f'<td class="num">{_num(value_of(record, m))}</td>' for m in headline)
        links = []
        for stage, info in record.data.get("stages", {}).items():
            for key, label in (("report", "report"), ("notebook", "notebook")):
                if info.get(key):
                    links.append(f'<a href="{escape(link_base)}/{escape(record.name)}/{escape(info[key])}">'
                                 f"{escape(stage)} {label}</a>")
                    break
        rows.append(f'<tr data-record="{escape(record.name)}"><td>{_when(record)}</td><td>{status}</td>'
                    f"<td>{escape(production)}</td>{values}<td>{' · '.join(links)}</td></tr>")
    return (f'<h2>Recorded runs</h2><table id="records"><thead><tr><th>Run</th><th>Status</th><th>Model</th>{head}'
            f"<th>Executed notebooks</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")


def registry_markers(root: Path, model: str) -> list[Marker]:
    """Promotions and rollbacks of ``model`` from its GTO tags."""
    from ..lifecycle import registry

    try:
        events = registry.assignments(root, model)
    except (NbprodError, OSError):  # no git repository: a dashboard without markers
        logging.getLogger(__name__).debug("no registry markers", exc_info=True)
        return []
    markers = []
    for event in events:
        try:
            when = datetime.fromisoformat(event.date).timestamp()
        except ValueError:
            continue
        kind = "rollback" if event.record.get("action") == "rollback" else "promoted"
        markers.append(Marker(when, f"{event.version}: {'rolled back to' if kind == 'rollback' else 'promoted'} "
                                    f"{event.date[:10]}", kind))
    return markers


def git_revisions(root: Path) -> list[Revision]:
    """Metrics as committed, per commit that changed metrics/ (the history reports/index.html shows)."""
    from ..report.history import metric_history

    metrics_dir = root / METRICS_DIR
    stages = sorted(p.stem for p in metrics_dir.glob("*.json")) if metrics_dir.is_dir() else []
    result = []
    for revision in metric_history(root, stages):
        try:
            when = datetime.fromisoformat(revision.date + "T12:00:00+00:00").timestamp()
        except ValueError:
            continue
        result.append(Revision(when, revision.short, {f"{METRICS_DIR}/{s}.json": flatten_metrics(json.dumps(v))
                                                      for s, v in revision.metrics.items()}))
    return result
