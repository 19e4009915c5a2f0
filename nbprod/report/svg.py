"""Inline SVG drawn here, so reports need no JavaScript or network: the pipeline DAG and metric charts."""

from __future__ import annotations

from html import escape

from .pipeline_view import StageNode, layers

STATUS_COLOURS = {
    "ok": ("#e6f4ea", "#1e8e3e"),
    "failed": ("#fce8e6", "#d93025"),
    "not run": ("#f1f3f4", "#80868b"),
    "unknown": ("#f1f3f4", "#80868b"),
}

BOX_W, BOX_H, GAP_X, GAP_Y, PAD = 190, 64, 70, 24, 16


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(seconds, 60)
    if minutes < 60:
        return f"{int(minutes)} min {rest:.0f} s"
    hours, minutes = divmod(minutes, 60)
    return f"{int(hours)} h {int(minutes)} min"


def format_number(value) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return escape(str(value))
    if isinstance(value, int):
        return f"{value:,}"
    if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
        return f"{value:.4g}"
    return f"{value:.4f}".rstrip("0").rstrip(".")


def dag_svg(nodes: list[StageNode], info: dict[str, dict]) -> str:
    """The pipeline left to right, one column per depth; ``info[name]`` has status, duration, href."""
    if not nodes:
        return '<p class="empty">No stages yet.</p>'
    depth = layers(nodes)
    columns: dict[int, list[str]] = {}
    for node in nodes:
        columns.setdefault(depth[node.name], []).append(node.name)
    pos: dict[str, tuple[int, int]] = {}
    for col, names in columns.items():
        for row, name in enumerate(names):
            pos[name] = (PAD + col * (BOX_W + GAP_X), PAD + row * (BOX_H + GAP_Y))
    width = PAD * 2 + (max(columns) + 1) * BOX_W + max(columns) * GAP_X
    height = PAD * 2 + max(len(v) for v in columns.values()) * (BOX_H + GAP_Y) - GAP_Y
    parts = [
        f'<svg class="dag" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="pipeline DAG">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#5f6368"/></marker></defs>',
    ]
    for node in nodes:
        for up in node.upstream:
            if up not in pos:
                continue
            x1, y1 = pos[up][0] + BOX_W, pos[up][1] + BOX_H / 2
            x2, y2 = pos[node.name][0], pos[node.name][1] + BOX_H / 2
            mid = (x1 + x2) / 2
            parts.append(f'<path class="edge" d="M {x1} {y1} C {mid} {y1}, {mid} {y2}, {x2 - 2} {y2}" '
                         'fill="none" stroke="#5f6368" stroke-width="1.5" marker-end="url(#arrow)"/>')
    for node in nodes:
        x, y = pos[node.name]
        meta = info.get(node.name, {})
        status = meta.get("status", "not run")
        fill, stroke = STATUS_COLOURS.get(status, STATUS_COLOURS["unknown"])
        box = (f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="8" fill="{fill}" '
               f'stroke="{stroke}" stroke-width="2"/>'
               f'<text x="{x + 12}" y="{y + 24}" font-weight="600" font-size="15">{escape(node.name)}</text>'
               f'<text x="{x + 12}" y="{y + 46}" font-size="12" fill="{stroke}">{escape(status)}'
               f' · {escape(format_duration(meta.get("duration")))}</text>')
        title = f"<title>{escape(node.name)}: {escape(status)}</title>"
        href = meta.get("href")
        if href:
            parts.append(f'<a href="{escape(href)}" class="stage-node" data-stage="{escape(node.name)}">'
                         f"{title}{box}</a>")
        else:
            parts.append(f'<g class="stage-node" data-stage="{escape(node.name)}">{title}{box}</g>')
    parts.append("</svg>")
    return "".join(parts)


def line_chart_svg(title: str, points: list[tuple[str, float, str]], width: int = 360, height: int = 180) -> str:
    """A small line chart of ``(label, value, tooltip)`` points, oldest first."""
    left, right, top, bottom = 56, 12, 26, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for _, v, _ in points]
    low, high = min(values), max(values)
    if high == low:
        pad = abs(high) * 0.05 or 1.0
        low, high = low - pad, high + pad
    n = len(points)

    def sx(i: int) -> float:
        return left + (plot_w / 2 if n == 1 else i * plot_w / (n - 1))

    def sy(v: float) -> float:
        return top + plot_h - (v - low) / (high - low) * plot_h

    parts = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)} history">',
        f'<text x="{left}" y="16" font-size="13" font-weight="600">{escape(title)}</text>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#bdc1c6"/>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#bdc1c6"/>',
        f'<text x="{left - 6}" y="{top + 4}" font-size="10" text-anchor="end">{format_number(high)}</text>',
        f'<text x="{left - 6}" y="{top + plot_h}" font-size="10" text-anchor="end">{format_number(low)}</text>',
        f'<text x="{sx(0) if n == 1 else left}" y="{height - 8}" font-size="10" '
        f'text-anchor="{"middle" if n == 1 else "start"}">{escape(points[0][0])}</text>',
    ]
    if n > 1:
        parts.append(f'<text x="{left + plot_w}" y="{height - 8}" font-size="10" '
                     f'text-anchor="end">{escape(points[-1][0])}</text>')
    if n > 1:
        path = " ".join(f"{'M' if i == 0 else 'L'} {sx(i):.1f} {sy(v):.1f}" for i, v in enumerate(values))
        parts.append(f'<path d="{path}" fill="none" stroke="#1a73e8" stroke-width="2"/>')
    for i, (_label, value, tip) in enumerate(points):
        parts.append(f'<circle cx="{sx(i):.1f}" cy="{sy(value):.1f}" r="3.5" fill="#1a73e8">'
                     f"<title>{escape(tip)}</title></circle>")
    parts.append("</svg>")
    return "".join(parts)
