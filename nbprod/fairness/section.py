"""The stage report's fairness section: a table per sensitive feature, a PNG chart of the main metric
per group with its intervals, and a reading in plain words. Shown as the audit cell's outputs."""

from __future__ import annotations

import math
from html import escape

from . import names

STYLE = ("<style>.nbprod-fairness td,.nbprod-fairness th{padding:.2rem .5rem;border:1px solid #ddd;"
         "text-align:right;white-space:nowrap}.nbprod-fairness td:first-child{text-align:left}"
         ".nbprod-fairness tr.small td{color:#888;font-style:italic}</style>")


def _number(value: float | None) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.3f}"


def _cell(group, metric: str) -> str:
    text = _number(group.values.get(metric))
    low, high = group.intervals.get(metric, (None, None))
    if low is not None and math.isfinite(low) and math.isfinite(high):
        text += f" <small>[{low:.3f}, {high:.3f}]</small>"
    return f"<td>{text}</td>"


def table_html(audit) -> str:
    parts = [STYLE, '<div class="nbprod-fairness"><h3>Fairness by group</h3>']
    heads = "".join(f"<th>{escape(names.LABELS[m])}</th>" for m in audit.metrics)
    for view in audit.views:
        rows = []
        for group in view.groups:
            note = "" if group.judged else " (too small to judge)"
            rows.append(f"<tr class='{'' if group.judged else 'small'}'><td>{escape(group.label)}{note}</td>"
                        f"<td>{group.size}</td>{''.join(_cell(group, m) for m in audit.metrics)}</tr>")
        parts.append(f"<table><caption>by {escape(view.feature)}</caption><tr><th>group</th><th>size</th>{heads}</tr>"
                     f"{''.join(rows)}</table>")
    parts.append(f"<p><small>[low, high]: {audit.ci:.0%} bootstrap interval over {audit.n_boot} resamples "
                 f"(seed {audit.seed}); groups under {audit.min_group_size} rows are too small to judge and are "
                 "left out of every comparison.</small></p></div>")
    return "".join(parts)


def chart(audit):
    """A matplotlib Figure (Agg canvas, no pyplot state) of the main metric per group with intervals."""
    from matplotlib.figure import Figure

    view = audit.compared
    groups = list(reversed(view.groups))
    figure = Figure(figsize=(6.4, 1.2 + 0.45 * len(groups)))
    axis = figure.add_subplot()
    for y, group in enumerate(groups):
        value = group.values.get(audit.main, math.nan)
        if not math.isfinite(value):
            continue
        low, high = group.intervals.get(audit.main, (value, value))
        color = "#1f5fa8" if group.judged else "#999999"
        axis.errorbar([value], [y], xerr=[[max(value - low, 0)], [max(high - value, 0)]], fmt="o", color=color,
                      capsize=4, markerfacecolor=color if group.judged else "white")
    axis.set_yticks(range(len(groups)))
    axis.set_yticklabels([g.label + ("" if g.judged else " (too small)") for g in groups])
    judged = [g.values.get(audit.main) for g in view.judged if math.isfinite(g.values.get(audit.main, math.nan))]
    if audit.main == "selection_rate" and judged:
        axis.axvline(0.8 * max(judged), linestyle="--", color="#a31515", linewidth=1,
                     label="four-fifths of the highest rate")
        axis.legend(loc="best", fontsize="small")
    axis.set_xlabel(f"{names.LABELS[audit.main]} ({audit.ci:.0%} bootstrap interval)")
    axis.set_title(f"{_sentence(names.LABELS[audit.main])} by {view.feature}")
    axis.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    return figure


def _spread(audit, metric: str) -> str | None:
    judged = [g for g in audit.compared.judged if math.isfinite(g.values.get(metric, math.nan))]
    if len(judged) < 2:
        return None
    low = min(judged, key=lambda g: g.values[metric])
    high = max(judged, key=lambda g: g.values[metric])
    return (f"{names.LABELS[metric]} ranges from {low.values[metric]:.2f} ({low.label}) "
            f"to {high.values[metric]:.2f} ({high.label})")


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def reading(audit) -> str:
    """One paragraph in plain words."""
    sentences = []
    view = audit.compared
    judged = [g for g in view.judged if math.isfinite(g.values.get("selection_rate", math.nan))]
    if "selection_rate" in audit.metrics and len(judged) >= 2:
        low = min(judged, key=lambda g: g.values["selection_rate"])
        high = max(judged, key=lambda g: g.values["selection_rate"])
        ratio = low.values["selection_rate"] / high.values["selection_rate"] if high.values["selection_rate"] else 0
        verdict = "below it: the groups are selected at clearly different rates" if ratio < 0.8 else "met"
        sentences.append(f"Selection rate for group {low.label} is {ratio:.2f} of group {high.label}'s "
                         f"({low.values['selection_rate']:.2f} vs {high.values['selection_rate']:.2f}); "
                         f"the four-fifths screening threshold is 0.8, so this is {verdict}.")
    errors = [s for s in (_spread(audit, "recall"), _spread(audit, "fpr")) if s]
    if errors:
        eo = audit.aggregates.get("eo_diff")
        tail = f" (equalized odds difference {eo:.2f}; 0 means equal error rates)" if eo is not None else ""
        sentences.append(_sentence("; ".join(errors)) + tail + ".")
    if audit.main not in ("selection_rate", "recall", "fpr"):
        spread = _spread(audit, audit.main)
        if spread:
            sentences.append(_sentence(spread) + ".")
    small = [g for g in view.groups if not g.judged]
    if small:
        listed = ", ".join(f"{g.label} ({g.size} rows)" for g in small)
        sentences.append(f"Too small to judge (under {audit.min_group_size} rows): {listed}; "
                         "their numbers are shown but left out of every comparison.")
    sentences.append(f"Intervals are {audit.ci:.0%} bootstrap intervals over {audit.n_boot} resamples.")
    return " ".join(sentences)


def show(audit) -> None:
    """Display the section as the running cell's outputs (nothing outside IPython)."""
    from ..record import kernel_display, record

    display = kernel_display()
    if display is None:
        return
    from IPython.display import HTML

    display(HTML(table_html(audit)))
    record("fairness.chart", chart(audit))
    display(HTML(f'<p class="nbprod-fairness-reading">{escape(reading(audit))}</p>'))
