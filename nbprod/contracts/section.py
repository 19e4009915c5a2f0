"""Report sections of data contracts: the validation failures table and the drift table with an
inline-SVG overlaid histogram (numbers) or bar chart (categories) per drifted column.

Plain HTML shown as a cell output: the stage report renders it, offline (no scripts, no fetches).
"""

from __future__ import annotations

import html
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas

    from .drift import ColumnDrift, DriftReport
    from .validation import ValidationResult

_STYLE = ("<style>.nbprod-contract table{border-collapse:collapse;font-size:12px;margin:4px 0}"
          ".nbprod-contract th,.nbprod-contract td{border:1px solid #ccc;padding:2px 6px;text-align:left}"
          ".nbprod-contract .bad{color:#b00020;font-weight:bold}.nbprod-contract .ok{color:#1b7a1b}</style>")
_REFERENCE_COLOR, _CURRENT_COLOR = "#4c78a8", "#f58518"
MAX_CHARTS = 12
BINS = 20


def show_html(markup: str) -> None:
    """Display ``markup`` as a cell output when running in IPython; nothing otherwise."""
    ipython = sys.modules.get("IPython")
    if ipython is None or ipython.get_ipython() is None:
        return
    from IPython.display import HTML, display

    display(HTML(markup))


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def validation_html(result: ValidationResult) -> str:
    """The failures table: one row per column and check, with failing rows and first values."""
    from .validation import describe_failure

    rows = [[html.escape(f.column), html.escape(f.check), "whole column" if f.rows is None else str(f.rows),
             html.escape(", ".join(f.values)), html.escape(describe_failure(f))] for f in result.failures]
    title = (f"<p class='bad'>Data contract {html.escape(result.schema)} ({html.escape(str(result.path))}): "
             f"{result.failed_rows} of {result.rows} rows fail {len(result.failures)} check(s)</p>")
    return (f"<div class='nbprod-contract'>{_STYLE}{title}"
            + _table(["column", "check", "failing rows", "first failing values", "summary"], rows) + "</div>")


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if abs(value) < 1e-3 and value != 0 else f"{value:.4f}"


def drift_html(report: DriftReport, reference: pandas.DataFrame | None = None,
               current: pandas.DataFrame | None = None) -> str:
    """The drift table and, when the frames are given, a chart per drifted column."""
    verdict = "drift detected" if report.dataset_drifted else "no data-set drift"
    tested = sum(1 for c in report.columns if c.tested)
    title = (f"<p class='{'bad' if report.dataset_drifted else 'ok'}'>Data drift: {verdict} "
             f"({len(report.drifted_columns)} of {tested} columns drifted, share {report.share:.2f}, "
             f"threshold {report.share_threshold:.2f}; reference {report.reference_rows} rows, "
             f"current {report.current_rows} rows)</p>")
    rows = []
    for c in report.columns:
        mark = "<span class='bad'>yes</span>" if c.drifted else ("no" if c.tested else "-")
        rows.append([html.escape(c.column), c.type, c.test or "-", _number(c.score), _number(c.threshold), mark,
                     html.escape(c.note)])
    charts = ""
    if reference is not None and current is not None:
        drifted = [c for c in report.columns if c.drifted][:MAX_CHARTS]
        charts = "".join(_chart(c, reference, current) for c in drifted)
        if charts:
            charts = (f"<p>Drifted columns: <span style='color:{_REFERENCE_COLOR}'>reference</span> vs "
                      f"<span style='color:{_CURRENT_COLOR}'>current</span> (share of rows)</p>"
                      f"<div style='display:flex;flex-wrap:wrap;gap:8px'>{charts}</div>")
    return (f"<div class='nbprod-contract'>{_STYLE}{title}"
            + _table(["column", "type", "test", "score", "threshold", "drifted", "note"], rows) + charts + "</div>")


def show_drift(report: DriftReport, reference: pandas.DataFrame, current: pandas.DataFrame) -> None:
    show_html(drift_html(report, reference, current))


def _chart(result: ColumnDrift, reference: pandas.DataFrame, current: pandas.DataFrame) -> str:
    import numpy as np

    ref = _series(reference, result.column).dropna()
    cur = _series(current, result.column).dropna()
    if result.type == "numeric":
        from .drift import numbers

        ref_values, cur_values = numbers(ref), numbers(cur)
        ref_values, cur_values = ref_values[np.isfinite(ref_values)], cur_values[np.isfinite(cur_values)]
        low = min(ref_values.min(), cur_values.min())
        high = max(ref_values.max(), cur_values.max())
        edges = np.linspace(low, high if high > low else low + 1, BINS + 1)
        ref_share = np.histogram(ref_values, edges)[0] / len(ref_values)
        cur_share = np.histogram(cur_values, edges)[0] / len(cur_values)
        labels = [f"{edges[0]:.3g}", f"{edges[-1]:.3g}"]
        return _svg(result.column, ref_share, cur_share, labels, overlaid=True)
    ref_counts = ref.astype(str).value_counts(normalize=True)
    cur_counts = cur.astype(str).value_counts(normalize=True)
    categories = list((ref_counts.add(cur_counts, fill_value=0)).sort_values(ascending=False).index[:10])
    return _svg(result.column, ref_counts.reindex(categories, fill_value=0).to_numpy(),
                cur_counts.reindex(categories, fill_value=0).to_numpy(), categories, overlaid=False)


def _series(frame: pandas.DataFrame, name: str) -> pandas.Series:
    for column in frame.columns:
        if str(column) == name:
            return frame[column]
    raise KeyError(name)


def _svg(title: str, ref_share, cur_share, labels: list[str], overlaid: bool) -> str:
    """A 260 x 150 chart: translucent overlaid bars (numbers) or side-by-side bars (categories)."""
    width, height, top, bottom = 260, 150, 18, 22
    plot = height - top - bottom
    n = len(ref_share)
    peak = max(float(max(ref_share, default=0)), float(max(cur_share, default=0)), 1e-12)
    slot = width / max(n, 1)
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' role='img' "
             f"aria-label='{html.escape(title, quote=True)}'>",
             f"<text x='2' y='12' font-size='11'>{html.escape(title)}</text>"]
    for i in range(n):
        for j, (share, color) in enumerate(((ref_share[i], _REFERENCE_COLOR), (cur_share[i], _CURRENT_COLOR))):
            bar = plot * float(share) / peak
            x = i * slot + (0 if overlaid else j * slot / 2)
            w = slot if overlaid else slot / 2
            parts.append(f"<rect x='{x:.1f}' y='{top + plot - bar:.1f}' width='{max(w - 1, 0.5):.1f}' "
                         f"height='{bar:.1f}' fill='{color}' fill-opacity='{0.55 if overlaid else 0.9}'/>")
    if overlaid:
        parts.append(f"<text x='0' y='{height - 6}' font-size='10'>{html.escape(labels[0])}</text>")
        parts.append(f"<text x='{width}' y='{height - 6}' font-size='10' text-anchor='end'>"
                     f"{html.escape(labels[1])}</text>")
    else:
        for i, label in enumerate(labels):
            text = label if len(label) <= 8 else label[:7] + "…"
            parts.append(f"<text x='{i * slot + slot / 2:.1f}' y='{height - 6}' font-size='9' "
                         f"text-anchor='middle'>{html.escape(text)}</text>")
    parts.append("</svg>")
    return "".join(parts)
