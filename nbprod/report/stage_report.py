"""One stage run as an HTML report: a header (what ran, where, on what, how long, what it found) over
the executed notebook rendered by nbconvert."""

from __future__ import annotations

import copy
import json
from html import escape
from pathlib import Path

from ..executed.scraps import SCRAP_MIME_PREFIX, DisplayScrap, is_number
from ..executed.cellerror import describe as describe_error
from ..notebooks.notebook import atomic_write
from .freshness import notebook_digest, report_path, stamp
from .pipeline_view import locked_deps
from ..executed.summary import PAPERMILL_ERROR_TAG, ExecutedStage, run_from_notebook
from .style import CSS
from .svg import format_duration, format_number

TEMPLATES = Path(__file__).parent / "templates"
TEMPLATE_NAME = "nbprod_report"


def cell_anchor(index: int) -> str:
    """The HTML id nbconvert gives the cell we number ``index`` (see ``_prepare``)."""
    return f"cell-id=nbprod-cell-{index}"


def _rows(pairs) -> str:
    return "".join(f"<tr><th>{escape(str(k))}</th><td>{v}</td></tr>" for k, v in pairs)


def _value_html(value) -> str:
    if is_number(value):
        return format_number(value)
    return f"<code>{escape(str(value))}</code>"


def _banner(run: ExecutedStage) -> str:
    if not run.failed:
        return ""
    error = run.error or {}
    what = describe_error(error.get("ename") or "", error.get("evalue") or "")
    where = ""
    if run.error_cell is not None:
        count = next((c.execution_count for c in run.cells if c.index == run.error_cell), None)
        label = f"cell {error['cell']}" if error.get("cell") is not None else f"In [{count}]"
        notebook = f"<code>{escape(run.notebook)}</code> " if run.notebook and error.get("cell") is not None else ""
        where = f' in {notebook}<a href="#{cell_anchor(run.error_cell)}">{escape(label)}</a>'
    link = (f' <a href="#{cell_anchor(run.error_cell)}">Go to the failing cell ↓</a>'
            if run.error_cell is not None else "")
    kept = run.executed_path.name  # beside the report in reports/
    return (f'<div class="banner" role="alert"><strong>This run failed</strong>{where}: '
            f"<code>{escape(what)}</code>.{link} Partially executed notebook: "
            f'<a href="{escape(kept)}"><code>{escape(kept)}</code></a></div>')


def header_html(run: ExecutedStage, root: Path, no_input: bool = False) -> str:
    """The report header: facts of the run, metrics, figures, params, inputs, environment, timings."""
    status = escape(run.status)
    parts = [
        '<div class="nbprod nbprod-header">',
        f'<h1>Stage <code>{escape(run.stage)}</code> '
        f'<span class="status status-{status.replace(" ", "-")}">{status}</span></h1>',
        _banner(run),
    ]
    commit = "—"
    if run.commit:
        commit = f"<code>{escape(run.commit[:12])}</code>"
        if run.dirty:
            commit += ' <span class="status status-failed">dirty work tree</span>'
        elif run.dirty is False:
            commit += ' <span class="muted">(clean)</span>'
    facts = [
        ("Stage", f"<code>{escape(run.stage)}</code>"),
        ("Source notebook", f"<code>{escape(run.notebook or '—')}</code>"),
        ("Git commit", commit),
        ("Started", escape(run.started or "—")),
        ("Ended", escape(run.ended or "—")),
        ("Duration", escape(format_duration(run.duration))),
        ("Python", escape(run.python or "—")),
    ]
    parts.append(f'<div class="grid"><table class="facts">{_rows(facts)}</table>')
    if run.packages:
        pkgs = _rows((name, f"<code>{escape(str(v))}</code>") for name, v in sorted(run.packages.items()))
        parts.append(f'<table class="packages"><tr><th colspan="2">Package versions</th></tr>{pkgs}</table>')
    parts.append("</div>")

    metrics = run.metrics
    if metrics:
        parts.append("<h2>Metrics</h2>" + _metrics_html(metrics))
    others = [(n, v) for n, v in run.scraps.items()
              if n not in metrics and not isinstance(v, DisplayScrap) and not _is_frame(v)]
    if others:
        parts.append("<h2>Recorded values</h2><table>" +
                     _rows((n, _value_html(v)) for n, v in others) + "</table>")
    frames = [(n, v) for n, v in run.scraps.items() if _is_frame(v)]
    for name, frame in frames:
        shown = frame.head(50)
        more = f' <span class="muted">(first 50 of {len(frame)} rows)</span>' if len(frame) > 50 else ""
        parts.append(f"<h2>Table <code>{escape(name)}</code>{more}</h2>" + shown.to_html(border=0))
    figures = run.figures
    if figures:
        imgs = "".join(f'<figure><img alt="{escape(n)}" src="data:image/png;base64,{f.png}">'
                       f"<figcaption>{escape(n)}</figcaption></figure>" for n, f in figures.items())
        parts.append(f'<h2>Figures</h2><div class="figures">{imgs}</div>')

    if run.params:
        parts.append("<h2>Parameters</h2><table class=\"params\">" +
                     _rows((k, _value_html(v)) for k, v in run.params.items()) + "</table>")
    deps = locked_deps(root, run.stage)
    if deps:
        rows = "".join(f"<tr><td><code>{escape(p)}</code></td><td><code>{escape(h)}</code></td></tr>"
                       for p, h in deps)
        parts.append("<h2>Inputs (from dvc.lock)</h2><table class=\"inputs\"><tr><th>Path</th>"
                     f"<th>Hash</th></tr>{rows}</table>")
    timed = [c for c in run.cells if c.duration is not None or c.failed]
    if timed:
        rows = []
        for cell in timed:
            label = f"In [{cell.execution_count}]" if cell.execution_count else f"cell {cell.index}"
            name = f'<a href="#{cell_anchor(cell.index)}">{escape(label)}</a>'
            code = "" if no_input else f"<code>{escape(cell.first_line)}</code>"
            mark = ' <span class="status status-failed">failed</span>' if cell.failed else ""
            rows.append(f'<tr><td>{name}{mark}</td><td>{code}</td>'
                        f'<td class="num">{escape(format_duration(cell.duration))}</td></tr>')
        slowest = max((c.duration or 0 for c in timed), default=0)
        parts.append(f"<h2>Cell durations</h2><details><summary>{len(timed)} cells, slowest "
                     f"{escape(format_duration(slowest))}</summary><table class=\"cells\"><tr><th>Cell</th>"
                     f"<th>First line</th><th>Duration</th></tr>{''.join(rows)}</table></details>")
    parts.append('<p class="muted">Executed notebook: <code>'
                 f"{escape(run.executed_path.name)}</code> · <a href=\"index.html\">all stages</a></p>")
    parts.append('</div><hr class="nbprod-divider">')
    return "".join(parts)


def _metrics_html(metrics: dict) -> str:
    """Headline metrics as cards (plain names and one-level ones such as ``fairness.dp_ratio`` or
    ``drift.share``); deeper names (``fairness.recall.B``, ``drift.<column>.score``), which run to
    dozens per stage, as one folded table per family, so the headline stays readable."""
    families: dict[str, list[tuple[str, object]]] = {}
    headline = []
    for name, value in metrics.items():
        if name.count(".") >= 2:
            families.setdefault(name.split(".", 1)[0], []).append((name, value))
        else:
            headline.append((name, value))
    html = ""
    if headline:
        html += '<div class="metrics">' + "".join(
            f'<div class="metric" data-metric="{escape(n)}"><div class="name">{escape(n)}</div>'
            f'<div class="value">{format_number(v)}</div></div>' for n, v in headline) + "</div>"
    for family, items in families.items():
        rows = "".join(f'<tr><td>{escape(n)}</td><td data-metric="{escape(n)}">{format_number(v)}</td></tr>'
                       for n, v in items)
        html += (f'<details class="metric-family"><summary>{escape(family)}: {len(items)} more metrics'
                 f'</summary><table>{rows}</table></details>')
    return html


def _is_frame(value) -> bool:
    return type(value).__name__ == "DataFrame" and type(value).__module__.startswith("pandas")


def _prepare(nb: dict) -> dict:
    """A copy to render: stable cell ids for anchors, papermill's error cells and data-only scrap
    outputs (invisible, would leave empty boxes) removed."""
    nb = copy.deepcopy(nb)
    cells = []
    for index, cell in enumerate(nb.get("cells", [])):
        tags = (cell.get("metadata") or {}).get("tags") or []
        if PAPERMILL_ERROR_TAG in tags:
            continue
        cell["id"] = f"nbprod-cell-{index}"
        if cell.get("cell_type") == "code":
            cell["outputs"] = [o for o in cell.get("outputs", []) or []
                               if not (o.get("data") and all(k.startswith(SCRAP_MIME_PREFIX) for k in o["data"]))]
        cells.append(cell)
    nb["cells"] = cells
    nb["nbformat"], nb["nbformat_minor"] = 4, max(5, nb.get("nbformat_minor", 5))
    return nb


# One exporter per process and flavour: building it loads nbconvert's templates (a run's report
# worker renders every stage with the same one).
_EXPORTERS: dict[bool, object] = {}


def exporter(no_input: bool = False):
    """The nbconvert HTML exporter for nbprod's template (built once per process)."""
    if no_input not in _EXPORTERS:
        from nbconvert import HTMLExporter

        _EXPORTERS[no_input] = HTMLExporter(
            template_name=TEMPLATE_NAME,
            extra_template_basedirs=[str(TEMPLATES)],
            exclude_input=no_input,
            exclude_input_prompt=no_input,
            exclude_output_prompt=no_input,
            embed_images=True,
        )
    return _EXPORTERS[no_input]


def render_stage_report(root: Path, executed: Path, no_input: bool = False, out: Path | None = None) -> Path:
    """Write the HTML report of the executed notebook ``executed``; returns its path. The report is
    stamped with the hash of the notebook bytes it was rendered from (see ``freshness``) and
    written atomically: an interrupted render never leaves half a page."""
    import nbformat

    root = Path(root)
    data = Path(executed).read_bytes()  # hashed and rendered from the same bytes
    nb_json = json.loads(data.decode("utf-8"))
    run = run_from_notebook(nb_json, executed)
    title = f"{run.stage} — nbprod report" + (" (no code)" if no_input else "")
    resources = {
        "metadata": {"name": title},
        "nbprod_header": header_html(run, root, no_input),
        "nbprod_css": CSS,
    }
    # reads() rather than from_dict(): it rejoins sources and outputs stored as lists of lines.
    node = nbformat.reads(json.dumps(_prepare(nb_json)), as_version=4)
    body, _ = exporter(no_input).from_notebook_node(node, resources=resources)
    out = out or report_path(root, run.stage, no_input)
    atomic_write(out, stamp(body, notebook_digest(data, no_input)))
    return out
