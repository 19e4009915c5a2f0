"""The HTML page comparing a candidate with the champion: metrics side by side, gates, what changed."""

from __future__ import annotations

import html
import json

from ..explain.compare import comparison_html as importance_html
from ..fairness.compare import comparison_html


def _fmt(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4f}"
    return html.escape(str(value))


def render_comparison(record: dict) -> str:
    champion = record.get("champion") or {}
    cand = record.get("metrics", {})
    champ = champion.get("metrics_on_holdout", {})
    rows = []
    for file in sorted(set(cand) | set(champ)):
        for name in sorted(set(cand.get(file, {})) | set(champ.get(file, {}))):
            a, b = cand.get(file, {}).get(name), champ.get(file, {}).get(name)
            delta = a - b if isinstance(a, (int, float)) and isinstance(b, (int, float)) else None
            cls = "" if delta is None or delta == 0 else ("up" if delta > 0 else "down")
            rows.append(f"<tr><td>{html.escape(file)}</td><td>{html.escape(name)}</td><td>{_fmt(b)}</td>"
                        f"<td>{_fmt(a)}</td><td class='{cls}'>{_fmt(delta) if delta is not None else '—'}</td></tr>")
    gates = []
    for gate in record.get("gates", []):
        state = {True: "pass", False: "FAIL", None: "not checked"}[gate.get("passed")]
        gates.append(f"<tr class='{state.split()[0].lower()}'><td>{html.escape(gate['gate'])}</td><td>{state}</td>"
                     f"<td>{_fmt(gate.get('value'))}</td><td>{_fmt(gate.get('threshold'))}</td>"
                     f"<td>{html.escape(gate.get('note', ''))}</td></tr>")
    verdict = "passed every gate" if record.get("gates_passed") else "FAILED a gate (approve only with --override)"
    champion_line = (f"Champion in production: {html.escape(str(champion.get('version')))} "
                     f"({html.escape(str(champion.get('commit', ''))[:10])}), {html.escape(champion.get('scored', ''))}"
                     if champion else "No champion in production yet: relative gates are not checked.")
    changed = "".join(f"<li><code>{html.escape(p)}</code></li>" for p in record.get("files_from_working_tree", []))
    params = "".join(f"<li><code>{html.escape(k)} = {html.escape(json.dumps(v))}</code></li>"
                     for k, v in (record.get("params_set") or {}).items())
    cid = html.escape(record.get("candidate", ""))
    # Candidate vs champion group by group, when the pipeline records nbprod.fairness metrics.
    fairness = comparison_html(cand, champ if champion else None)
    # Features whose share of the importance or rank moved, when the pipeline calls nbprod.explain.
    importance = importance_html(cand, champ if champion else None)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Candidate {cid}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
table {{ border-collapse: collapse; margin: 1rem 0; }} td, th {{ border: 1px solid #ccc; padding: .3rem .6rem; }}
th {{ background: #f3f3f3; }} .up {{ color: #176f2c; }} .down {{ color: #a31515; }}
tr.fail td {{ background: #fde8e8; }} tr.pass td {{ background: #e8f6ea; }}
</style></head><body>
<h1>Candidate {cid} of {html.escape(record.get("model", ""))}: {verdict}</h1>
<p>Created {html.escape(record.get("created", ""))} from commit <code>{html.escape(record.get("base", "")[:10])}</code>.
{html.escape(record.get("note", ""))}</p>
<p>{champion_line}</p>
<p>Model <code>{html.escape(str(record.get("model_path", "")))}</code>
md5 <code>{html.escape(str(record.get("model_md5", "")))}</code>;
environment: python {html.escape(str((record.get("environment") or {}).get("python", "?")))}, packages sha256
<code>{html.escape(str((record.get("environment") or {}).get("packages_sha256", "?"))[:16])}</code>.</p>
<h2>Gates</h2>
<table><tr><th>gate</th><th>result</th><th>candidate</th><th>threshold</th><th>note</th></tr>{''.join(gates) or
'<tr><td colspan=5>no gates declared in [tool.nbprod.gates]</td></tr>'}</table>
{fairness}
{importance}
<h2>Metrics</h2>
<table><tr><th>file</th><th>metric</th><th>champion</th><th>candidate</th><th>change</th></tr>{''.join(rows)}</table>
<h2>What the candidate was built from</h2>
<ul>{params or '<li>no parameter overrides</li>'}</ul>
<ul>{changed or '<li>no uncommitted changes: the committed state</li>'}</ul>
<p>Decide with
<code>nbprod approve {cid} --by NAME --note TEXT{"" if record.get("gates_passed") else " --override REASON"}</code>
or <code>nbprod reject {cid} --by NAME --note TEXT</code>.</p>
</body></html>
"""
