"""Time charts as inline SVG (no JavaScript): lines over records, a threshold line, alert points and
promotion/rollback markers. Tooltips are SVG ``<title>`` elements, which browsers show on hover."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, UTC
from html import escape

from ..report.svg import format_number

PALETTE = ["#1a73e8", "#e8710a", "#188038", "#9334e6", "#d01884", "#12b5cb", "#795548", "#5f6368"]
ALERT, THRESHOLD = "#d93025", "#d93025"
MARKER_COLOURS = {"promoted": "#188038", "rollback": "#e8710a"}
_MAX_DOTS = 200  # beyond this many points a line carries no dots (size), only its alerts


@dataclass
class Series:
    name: str
    points: list[tuple[float, float]]              # (epoch seconds, value), oldest first
    colour: str = PALETTE[0]
    alerts: set[int] = field(default_factory=set)  # indexes of points that alerted


@dataclass
class Marker:
    when: float
    label: str
    kind: str                                      # promoted | rollback


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def time_chart(title: str, series: list[Series], thresholds: list[list[tuple[float, float]]] | None = None,
               markers: list[Marker] | None = None, width: int = 560, height: int = 220) -> str:
    """One chart; each of ``thresholds`` is a (time, limit) line, drawn dashed in red."""
    thresholds = [line for line in thresholds or [] if line]
    left, right, top, bottom = 60, 16, 28, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    times = [t for s in series for t, _ in s.points] + [t for line in thresholds for t, _ in line]
    values = [v for s in series for _, v in s.points] + [v for line in thresholds for _, v in line]
    if not times:
        return f'<p class="empty">{escape(title)}: nothing recorded yet.</p>'
    t0, t1 = min(times), max(times)
    low, high = min(values), max(values)
    if high == low:
        pad = abs(high) * 0.05 or 1.0
        low, high = low - pad, high + pad
    else:
        pad = (high - low) * 0.08
        # shares, scores and durations are never negative: no axis below 0 for them
        low, high = (low - pad if low - pad >= 0 or low < 0 else 0.0), high + pad
    span = (t1 - t0) or 1.0

    def sx(t: float) -> float:
        return left + (plot_w / 2 if t1 == t0 else (t - t0) / span * plot_w)

    def sy(v: float) -> float:
        return top + plot_h - (v - low) / (high - low) * plot_h

    out = [(f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)} over time">'),
           f'<text x="{left}" y="17" font-size="14" font-weight="600">{escape(title)}</text>',
           f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fafafa" stroke="#dadce0"/>']
    for frac in (0, 0.5, 1):
        v = low + (high - low) * frac
        out.append(f'<text x="{left - 6}" y="{sy(v) + 4:.1f}" font-size="11" text-anchor="end">'
                   f'{format_number(round(v, 4))}</text>')
    out.append(f'<text x="{left}" y="{height - 10}" font-size="11">{_day(t0)}</text>')
    if t1 != t0:
        out.append(f'<text x="{left + plot_w}" y="{height - 10}" font-size="11" text-anchor="end">{_day(t1)}</text>')
    for marker in markers or []:
        # a promotion shortly before the first point (the usual: promote, then the next run) is drawn at it
        if t0 - 0.05 * span <= marker.when <= t1:
            x, colour = sx(max(marker.when, t0)), MARKER_COLOURS.get(marker.kind, "#5f6368")
            out.append(f'<g class="marker" data-kind="{marker.kind}"><title>{escape(marker.label)}</title>'
                       f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + plot_h}" stroke="{colour}" '
                       f'stroke-width="2"/><text x="{x + 3:.1f}" y="{top + 12}" font-size="10" fill="{colour}">'
                       f'{escape(marker.label.split(":")[0])}</text></g>')
    for line in thresholds:
        path = " ".join(f"{'M' if i == 0 else 'L'}{sx(t):.1f} {sy(v):.1f}" for i, (t, v) in enumerate(line))
        out.append(f'<path class="threshold" d="{path}" fill="none" stroke="{THRESHOLD}" stroke-width="1.5" '
                   f'stroke-dasharray="5 4"><title>threshold</title></path>')
    for s in series:
        if len(s.points) > 1:
            path = " ".join(f"{'M' if i == 0 else 'L'}{sx(t):.1f} {sy(v):.1f}" for i, (t, v) in enumerate(s.points))
            out.append(f'<path class="line" d="{path}" fill="none" stroke="{s.colour}" stroke-width="2">'
                       f'<title>{escape(s.name)}</title></path>')
        dots = len(s.points) <= _MAX_DOTS
        for i, (t, v) in enumerate(s.points):
            alert = i in s.alerts
            if dots or alert or i == len(s.points) - 1:
                out.append(f'<circle class="{"alert" if alert else "point"}" cx="{sx(t):.1f}" cy="{sy(v):.1f}" '
                           f'r="{4.5 if alert else 3}" fill="{ALERT if alert else s.colour}"><title>'
                           f'{escape(s.name)} {format_number(v)} on {_day(t)}{" (alert)" if alert else ""}'
                           f'</title></circle>')
    out.append("</svg>")
    if len(series) > 1:
        out.append('<p class="legend">' + " ".join(
            f'<span><i style="background:{s.colour}"></i>{escape(s.name)}</span>' for s in series) + "</p>")
    return '<figure class="chartbox">' + "".join(out) + "</figure>"
