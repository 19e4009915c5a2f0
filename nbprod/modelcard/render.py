"""A model card as blocks (paragraphs, tables, lists, the team's own Markdown), written once as an
offline HTML page and once as Markdown. Sections follow Mitchell et al. 2019, with the lineage and
environment nbprod can prove added at the end."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from html import escape

from ..explain.names import read_recorded
from ..fairness.compare import fairness_line
from .facts import CardFacts

TOP_FEATURES = 15


@dataclass
class Table:
    head: list[str]
    rows: list[list[str]]
    css: list[str] = field(default_factory=list)   # one class per row ("fail", "pass", "")


@dataclass
class Written:
    markdown: str           # the team's own text from model-card.md


@dataclass
class Section:
    title: str
    blocks: list = field(default_factory=list)    # str (a paragraph), list[str] (a list), Table, Written


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return "—" if value is None else str(value)


def _written(facts: CardFacts, key: str, missing: str) -> list:
    text = facts.written.get(key)
    if text:
        return [Written(text)]
    where = f"a '## {key.capitalize()}' section of" if facts.written_source else "a"
    return [f"Not written yet: {missing} Add {where} model-card.md at the project root; the card of each version "
            "takes it from that version's commit."]


def _gates(facts: CardFacts) -> Table:
    rows, css = [], []
    override = facts.approval.get("override")
    for gate in facts.approval.get("gates") or []:
        state = {True: "passed", False: "FAILED", None: "not checked"}[gate.get("passed")]
        if gate.get("passed") is False and override:
            state = "FAILED, overridden"
        rows.append([gate.get("gate", "?"), state, _fmt(gate.get("value")), _fmt(gate.get("threshold")),
                     gate.get("note", "")])
        css.append("fail" if gate.get("passed") is False else "pass" if gate.get("passed") else "")
    return Table(["gate", "result", "value", "threshold", "note"], rows, css)


def _metrics(facts: CardFacts) -> Table:
    rows = []
    for file, values in sorted(facts.metrics.items()):
        for name, value in (values or {}).items():
            if name.startswith(("fairness.", "importance.", "drift.")):
                continue  # shown in their own sections
            rows.append([file, name, _fmt(value)])
    return Table(["file", "metric", "value"], rows)


def _data(files, what: str) -> list:
    blocks: list = []
    for data in files:
        if data.rows is None:
            blocks.append(f"{data.path} (md5 {data.md5}): {data.note or 'not readable'}; its size and columns "
                          "are unknown here.")
            continue
        blocks.append(f"{data.path}: {data.rows} rows, {len(data.columns)} columns; md5 {data.md5}; "
                      f"schema hash (column names and dtypes) {data.schema_hash}.")
        blocks.append(Table(["column", "dtype"], [[c, t] for c, t in data.columns]))
    return blocks or [f"dvc.lock names no {what} for the model's stage."]


def _fairness(facts: CardFacts) -> list:
    fairness = facts.approval.get("fairness")
    if not fairness:
        return ["This version's pipeline did not audit fairness by group (nbprod.fairness)."]
    groups = fairness.get("groups") or {}
    metrics = sorted({m for values in groups.values() for m in values if m != "size"})
    rows = [[g, _fmt(v.get("size")), *(_fmt(v.get(m)) for m in metrics)] for g, v in groups.items()]
    blocks = [fairness_line(fairness) + "."] if fairness_line(fairness) else []
    if fairness.get("too_small"):
        blocks.append("Too small to judge: " + ", ".join(fairness["too_small"]) + ".")
    return blocks + [Table(["group", "size", *metrics], rows)]


def _explanations(facts: CardFacts) -> list:
    shares = read_recorded(facts.metrics)
    if not shares:
        return ["This version's pipeline recorded no explanations (call nbprod.explain(model, X_test, y_test) "
                "in its evaluation stage)."]
    top = list(shares.items())[:TOP_FEATURES]
    rest = len(shares) - len(top)
    lead = " and ".join(f for f, _ in top[:2])
    blocks = [f"The model relies mostly on {lead}; the shares below are each feature's part of its total "
              "importance (mean |SHAP| where shap explained the model, else permutation importance)."]
    blocks.append(Table(["rank", "feature", "share"], [[str(n), f, f"{s:.1%}"] for n, (f, s) in enumerate(top, 1)]))
    if rest:
        blocks.append(f"{rest} more features carry {sum(list(shares.values())[TOP_FEATURES:]):.1%} together.")
    return blocks


def _drift(facts: CardFacts) -> list:
    drift = {n: v for values in facts.metrics.values() for n, v in (values or {}).items() if n.startswith("drift.")}
    if not drift:
        return ["No drift measurement was recorded with this version (nbprod.drift)."]
    drifted = sorted(n.split(".")[1] for n, v in drift.items() if n.endswith(".drifted") and v)
    head = f"Share of drifted columns at approval: {_fmt(drift.get('drift.share'))}"
    head += f" ({', '.join(drifted)})." if drifted else "; no column drifted."
    rows = [[n, _fmt(v)] for n, v in sorted(drift.items()) if not n.endswith(".drifted")]
    return [head, Table(["drift metric", "value"], rows)]


def sections(facts: CardFacts) -> list[Section]:
    a = facts.approval
    approved = (f"Approved by {a.get('by', '?')} on {str(a.get('when', facts.date))[:19].replace('T', ' ')}"
                + (f" (candidate {a['candidate']})" if a.get("candidate") else "")
                + (f": {a['note']}" if a.get("note") else "") + ".")
    if a.get("action") == "kept":
        approved = f"Registered by {a.get('by', '?')} as the working state kept: {a.get('note', '')}."
    gates_line = ("It passed every gate." if a.get("gates_passed") else
                  f"It FAILED a gate and was approved OVERRIDING it: {a.get('override')}." if a.get("override")
                  else "No gate results were recorded.")
    status = ("It is the version in production." if facts.in_production == facts.version else
              f"The version in production now is {facts.in_production}." if facts.in_production else
              "No version is in production now.")
    history = [f"{e.get('action', 'assign')} by {e.get('by', '?')} at {str(e.get('when', e['date']))[:19]} "
               f"({e['tag']})" for e in facts.assignments]
    details = Section("Model details", [
        f"{facts.model} {facts.version}, registered as git tag {facts.tag} on commit {facts.commit}.",
        approved, gates_line, status,
        f"Model file {facts.model_path}, md5 {facts.model_md5} (checked against the version's dvc.lock).",
        Table(["parameter", "value"], [[k, _fmt(v)] for k, v in facts.params.items()]),
    ] + ([["Production assignments: " + h for h in history]] if history else []))
    return [
        details,
        Section("Intended use", _written(facts, "intended use", "who should use this model, for what, and what "
                                                                "it is not for.")),
        Section("Factors", _written(facts, "factors", "the groups, instruments and environments that matter.")
                + ["Groups audited: see Quantitative analyses."]),
        Section("Metrics", ["Metrics recorded by the pipeline on its evaluation data, and the gates of "
                            "[tool.nbprod.gates] they were checked against at approval.", _gates(facts),
                            _metrics(facts)]),
        Section("Evaluation data", _data(facts.evaluation, "evaluation data") + _drift(facts)),
        Section("Training data", _data(facts.training, "training data") + (
            [Table(["data contract", "sha256"], [[p, h] for p, h in sorted(facts.schemas.items())])]
            if facts.schemas else ["No data contract (schemas/*.yaml) was recorded at approval."])),
        Section("Quantitative analyses", [Written("### Fairness by group")] + _fairness(facts)
                + [Written("### Explanations")] + _explanations(facts)),
        Section("Ethical considerations", _written(facts, "ethical considerations", "risks, sensitive data and "
                                                                                     "mitigations.")),
        Section("Caveats and recommendations", _written(facts, "caveats and recommendations",
                                                        "known limits and advice for users.")),
        Section("Lineage and environment", [
            f"Commit {facts.commit}; each stage's inputs and outputs with the hashes its dvc.lock recorded:",
            Table(["stage", "input or output", "md5"],
                  [[s.name, f"{kind} {p}", h] for s in facts.stages
                   for kind, files in (("in", s.deps), ("out", s.outs)) for p, h in files.items()]),
            "Environment: python {python}, packages sha256 {sha}.".format(
                python=(a.get("environment") or {}).get("python", "?"),
                sha=(a.get("environment") or {}).get("packages_sha256", "?")),
        ] + ([["Pinned: " + p for p in facts.packages]] if facts.packages else [])),
    ]


def _html_block(block) -> str:
    if isinstance(block, str):
        return f"<p>{escape(block)}</p>"
    if isinstance(block, list):
        return "<ul>" + "".join(f"<li>{escape(item)}</li>" for item in block) + "</ul>"
    if isinstance(block, Written):
        import mistune

        return mistune.create_markdown(escape=True)(block.markdown)
    head = "".join(f"<th>{escape(h)}</th>" for h in block.head)
    rows = "".join(f"<tr class='{block.css[i] if i < len(block.css) else ''}'>"
                   + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for i, row in enumerate(block.rows))
    return f"<table><tr>{head}</tr>{rows or f'<tr><td colspan={len(block.head)}>none</td></tr>'}</table>"


STYLE = """body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:60rem;color:#222;line-height:1.45}
table{border-collapse:collapse;margin:.6rem 0}td,th{border:1px solid #ccc;padding:.25rem .6rem;text-align:left}
th{background:#f3f3f3}tr.fail td{background:#fde8e8}tr.pass td{background:#e8f6ea}
nav a{margin-right:.8rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem}"""


def to_html(facts: CardFacts, parts: list[Section]) -> str:
    title = f"Model card: {facts.model} {facts.version}"
    nav = "".join(f"<a href='#s{i}'>{escape(s.title)}</a>" for i, s in enumerate(parts))
    body = "".join(f"<section id='s{i}'><h2>{escape(s.title)}</h2>{''.join(_html_block(b) for b in s.blocks)}"
                   "</section>" for i, s in enumerate(parts))
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title><style>{STYLE}</style>"
            f"</head><body><h1>{escape(title)}</h1><nav>{nav}</nav>{body}<p><small>Made by nbprod card from the "
            "registry tags, the version's commit and the DVC cache; sections after Mitchell et al. 2019, "
            "Model Cards for Model Reporting.</small></p></body></html>\n")


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_block(block) -> str:
    if isinstance(block, str):
        return block
    if isinstance(block, list):
        return "\n".join(f"- {item}" for item in block)
    if isinstance(block, Written):
        return block.markdown
    lines = ["| " + " | ".join(_md_cell(h) for h in block.head) + " |", "|" + " --- |" * len(block.head)]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
    return "\n".join(lines)


def to_markdown(facts: CardFacts, parts: list[Section]) -> str:
    out = [f"# Model card: {facts.model} {facts.version}"]
    for section in parts:
        out.append(f"## {section.title}")
        out += [_md_block(b) for b in section.blocks]
    return "\n\n".join(out) + "\n"
