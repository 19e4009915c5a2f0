"""Two runs side by side (git revisions, DVC experiment names, or ``workspace``): metrics with deltas,
params that differ, per-stage durations. Printed as a terminal table and written as an HTML page."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

import yaml

from ..core.errors import NbprodError
from ..core.project import METRICS_DIR, REPORTS_DIR
from ..core.stagerun import StageRun
from ..executed.scraps import is_number
from .history import git, git_prefix, read_blobs
from .pipeline_view import locked_outs
from .style import page
from .svg import format_duration, format_number

WORKSPACE = "workspace"


@dataclass
class Side:
    """One of the two compared runs and the files it had."""

    ref: str
    kind: str  # "git", "experiment" or "workspace"
    commit: str | None
    metrics: dict[str, dict] = field(default_factory=dict)  # stage -> {name: value}
    params: dict[str, object] = field(default_factory=dict)  # flattened params.yaml
    durations: dict[str, float | None] = field(default_factory=dict)  # stage -> seconds

    @property
    def label(self) -> str:
        if self.kind == "workspace" or not self.commit:
            return self.ref
        return self.ref if self.commit.startswith(self.ref) else f"{self.ref} ({self.commit[:8]})"


@dataclass
class Comparison:
    a: Side
    b: Side

    def metric_rows(self) -> list[tuple[str, str, object, object, float | None]]:
        """``(stage, metric, a, b, b - a)`` for every metric either side has."""
        rows = []
        for stage in sorted(set(self.a.metrics) | set(self.b.metrics)):
            ma, mb = self.a.metrics.get(stage, {}), self.b.metrics.get(stage, {})
            for name in sorted(set(ma) | set(mb)):
                va, vb = ma.get(name), mb.get(name)
                delta = vb - va if is_number(va) and is_number(vb) else None
                rows.append((stage, name, va, vb, delta))
        return rows

    def param_rows(self) -> list[tuple[str, object, object]]:
        """``(key, a, b)`` for each param whose value differs (or exists on one side only)."""
        keys = sorted(set(self.a.params) | set(self.b.params))
        missing = object()
        rows = []
        for key in keys:
            va, vb = self.a.params.get(key, missing), self.b.params.get(key, missing)
            if va != vb:
                rows.append((key, None if va is missing else va, None if vb is missing else vb))
        return rows

    def duration_rows(self) -> list[tuple[str, float | None, float | None]]:
        stages = sorted(set(self.a.durations) | set(self.b.durations))
        return [(s, self.a.durations.get(s), self.b.durations.get(s)) for s in stages]


def _flatten(data, prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
    else:
        flat[prefix[:-1]] = data
    return flat


def _resolve(root: Path, ref: str) -> tuple[str, str | None]:
    if ref == WORKSPACE:
        return "workspace", None
    done = git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if done.returncode == 0:
        return "git", done.stdout.decode().strip()
    # DVC keeps experiments as refs/exps/<baseline[:2]>/<baseline[2:]>/<name>.
    refs = git(root, "for-each-ref", "--format=%(refname) %(objectname)", "refs/exps")
    for line in refs.stdout.decode().splitlines():
        name, _, commit = line.partition(" ")
        if name.rsplit("/", 1)[-1] == ref:
            return "experiment", commit
    raise NbprodError(f"{ref!r} is neither a git revision nor a DVC experiment", root,
                      fix="give a commit, branch or tag, an experiment name from 'dvc exp list', or 'workspace'")


class _Files:
    """Reads project files as they were at a commit, or in the work tree."""

    def __init__(self, root: Path, commit: str | None):
        self.root, self.commit = root, commit
        self.prefix = git_prefix(root) or ""

    def read(self, rel: str) -> bytes | None:
        if self.commit is None:
            path = self.root / rel
            return path.read_bytes() if path.is_file() else None
        return read_blobs(self.root, [f"{self.commit}:{self.prefix}{rel}"])[0]

    def list(self, folder: str, suffix: str) -> list[str]:
        if self.commit is None:
            base = self.root / folder
            return sorted(p.name for p in base.glob(f"*{suffix}")) if base.is_dir() else []
        done = git(self.root, "ls-tree", "--name-only", self.commit, f"{self.prefix}{folder}/")
        return sorted(Path(n).name for n in done.stdout.decode().splitlines() if n.endswith(suffix))


def _cache_dirs(root: Path) -> list[Path]:
    dirs = [root / ".dvc" / "cache"]
    for name in ("config.local", "config"):
        config = root / ".dvc" / name
        if config.is_file():
            match = re.search(r"^\s*dir\s*=\s*(.+)$", config.read_text(), re.M)
            if match:
                dirs.insert(0, (root / ".dvc" / match.group(1).strip()).resolve())
    return dirs


def _from_cache(root: Path, md5: str) -> bytes | None:
    for base in _cache_dirs(root):
        for path in (base / "files" / "md5" / md5[:2] / md5[2:], base / md5[:2] / md5[2:]):
            if path.is_file():
                return path.read_bytes()
    return None


def _duration(raw: bytes | None) -> float | None:
    if raw is None:
        return None
    try:
        meta = json.loads(raw).get("metadata", {})
    except ValueError:
        return None
    record = StageRun.from_metadata(meta.get("nbprod"), "")
    value = record.duration if record is not None else (meta.get("papermill") or {}).get("duration")
    return float(value) if is_number(value) else None


def load_side(root: Path, ref: str) -> Side:
    kind, commit = _resolve(root, ref)
    files = _Files(root, commit)
    side = Side(ref=ref, kind=kind, commit=commit)
    for name in files.list(METRICS_DIR, ".json"):
        try:
            data = json.loads(files.read(f"{METRICS_DIR}/{name}") or b"null")
        except ValueError:
            continue
        if isinstance(data, dict):
            side.metrics[name[:-5]] = {k: v for k, v in data.items() if is_number(v)}
    params = yaml.safe_load(files.read("params.yaml") or b"") or {}
    side.params = _flatten(params)
    lock = yaml.safe_load(files.read("dvc.lock") or b"") or {}
    for stage in (lock.get("stages") or {}):
        executed = f"{REPORTS_DIR}/{stage}.ipynb"
        raw = None
        if commit is None:
            path = root / executed
            raw = path.read_bytes() if path.is_file() else None
        else:
            # Executed notebooks live in DVC: find this revision's copy in the cache by its hash.
            for out in locked_outs(lock, stage):
                if out.get("path") == executed and out.get("md5"):
                    raw = _from_cache(root, str(out["md5"]))
            raw = raw or files.read(executed)
        side.durations[stage] = _duration(raw)
    return side


def compare(project, a: str, b: str) -> Comparison:
    """Compare run ``a`` with run ``b`` of ``project``."""
    root = Path(project.root)
    if git_prefix(root) is None:
        raise NbprodError("is not in a git repository, so there are no revisions to compare", root,
                          fix="run 'git init' and commit a run first")
    return Comparison(load_side(root, a), load_side(root, b))


def _fmt(value) -> str:
    return "—" if value is None else (format_number(value) if is_number(value) else str(value))


def _delta(delta: float | None) -> tuple[str, str]:
    if delta is None:
        return "", ""
    if delta == 0:
        return "0", "same"
    return ("+" if delta > 0 else "") + format_number(delta), "up" if delta > 0 else "down"


def print_comparison(comparison: Comparison, console=None) -> None:
    """The comparison as rich tables on the terminal."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    a, b = comparison.a.label, comparison.b.label
    table = Table(title=f"Metrics: {a} → {b}")
    for column in ("stage", "metric", a, b, "delta"):
        table.add_column(column, justify="right" if column in (a, b, "delta") else "left")
    for stage, name, va, vb, delta in comparison.metric_rows():
        text, kind = _delta(delta)
        style = {"up": "green", "down": "red"}.get(kind, "")
        table.add_row(stage, name, _fmt(va), _fmt(vb), f"[{style}]{text}[/]" if style else text)
    console.print(table)
    params = comparison.param_rows()
    if params:
        ptable = Table(title="Params that differ")
        for column in ("param", a, b):
            ptable.add_column(column)
        for key, va, vb in params:
            ptable.add_row(key, _fmt(va), _fmt(vb))
        console.print(ptable)
    else:
        console.print("Params: identical")
    dtable = Table(title="Stage durations")
    for column in ("stage", a, b):
        dtable.add_column(column, justify="left" if column == "stage" else "right")
    for stage, da, db in comparison.duration_rows():
        dtable.add_row(stage, format_duration(da), format_duration(db))
    console.print(dtable)


def comparison_html(comparison: Comparison) -> str:
    a, b = escape(comparison.a.label), escape(comparison.b.label)
    rows = []
    for stage, name, va, vb, delta in comparison.metric_rows():
        text, kind = _delta(delta)
        rows.append(f'<tr data-metric="{escape(stage)}.{escape(name)}"><td><code>{escape(stage)}</code></td>'
                    f"<td>{escape(name)}</td><td class=\"num\">{escape(_fmt(va))}</td>"
                    f'<td class="num">{escape(_fmt(vb))}</td><td class="num {kind}">{escape(text)}</td></tr>')
    metrics = (f"<table class=\"metrics\"><tr><th>Stage</th><th>Metric</th><th>{a}</th><th>{b}</th>"
               f"<th>Delta</th></tr>{''.join(rows)}</table>") if rows else '<p class="muted">No metrics.</p>'
    params = comparison.param_rows()
    if params:
        prow = "".join(f"<tr><td><code>{escape(k)}</code></td><td>{escape(_fmt(va))}</td>"
                       f"<td>{escape(_fmt(vb))}</td></tr>" for k, va, vb in params)
        params_html = f"<table class=\"params\"><tr><th>Param</th><th>{a}</th><th>{b}</th></tr>{prow}</table>"
    else:
        params_html = '<p class="muted">The params are identical.</p>'
    drow = "".join(f"<tr><td><code>{escape(s)}</code></td><td class=\"num\">{escape(format_duration(da))}</td>"
                   f"<td class=\"num\">{escape(format_duration(db))}</td></tr>"
                   for s, da, db in comparison.duration_rows())
    durations = f"<table class=\"durations\"><tr><th>Stage</th><th>{a}</th><th>{b}</th></tr>{drow}</table>"

    def who(side: Side) -> str:
        commit = f" <code>{escape(side.commit[:12])}</code>" if side.commit else ""
        return f"<li><strong>{escape(side.label)}</strong>: {escape(side.kind)}{commit}</li>"

    from ..fairness.compare import comparison_html as fairness_html

    # Group by group, when both runs recorded nbprod.fairness metrics ('' otherwise).
    fairness = fairness_html(comparison.b.metrics, comparison.a.metrics, (comparison.a.label, comparison.b.label))
    body = (f"<h1>Compare {a} → {b}</h1><ul>{who(comparison.a)}{who(comparison.b)}</ul>"
            f"<h2>Metrics</h2>{metrics}{fairness}<h2>Params that differ</h2>{params_html}"
            f"<h2>Stage durations</h2>{durations}")
    return page(f"nbprod compare {a} → {b}", body)


def write_comparison_html(comparison: Comparison, out: Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(comparison_html(comparison), encoding="utf-8")
    return out


def default_output(root: Path, a: str, b: str) -> Path:
    safe = lambda ref: re.sub(r"[^A-Za-z0-9._-]+", "_", ref)  # noqa: E731 - a one-line rule, local to this function
    return Path(root) / REPORTS_DIR / f"compare-{safe(a)}-{safe(b)}.html"
