"""Which HTML reports are out of date. Each report carries, in a ``<meta>`` tag of its head, the hash
of what it was rendered from, so a run re-renders only what changed and a no-op run writes nothing
under ``reports/``.

A stage report depends only on its executed notebook: the header's other input, the stage's deps in
dvc.lock, changes only when the stage is recorded again, which rewrites (or restores from DVC's run
cache) the executed notebook too. The index depends on dvc.yaml and the compiled pipeline, every
executed notebook, every metrics file, which reports exist, and git's last commit of ``metrics/``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from ..core.proc import git
from ..core.project import GENERATED_DIR, METRICS_DIR, REPORTS_DIR

# Bump when what a report shows changes, so reports rendered by an older nbprod are rendered again.
RENDER_VERSION = "1"
META_NAME = "nbprod-rendered-from"
_META = re.compile(rb'<meta name="nbprod-rendered-from" content="([0-9a-f]+)">')
_HEAD_BYTES = 4096  # the tag sits right after <head>


def stamp(html: str, digest: str) -> str:
    """``html`` with the tag saying what it was rendered from, first thing in its head."""
    return html.replace("<head>", f'<head>\n<meta name="{META_NAME}" content="{digest}">', 1)


def rendered_from(path: Path) -> str | None:
    """The hash a report was rendered from, or None (no report, or one without the tag)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(_HEAD_BYTES)
    except OSError:
        return None
    found = _META.search(head)
    return found.group(1).decode() if found else None


def notebook_digest(data: bytes, no_input: bool = False) -> str:
    """What a stage report rendered from the executed notebook ``data`` is stamped with."""
    digest = hashlib.sha256(f"nbprod report {RENDER_VERSION} no_input={no_input}\n".encode())
    digest.update(data)
    return digest.hexdigest()[:32]


def report_path(root: Path, stage: str, no_input: bool = False) -> Path:
    return Path(root) / REPORTS_DIR / (f"{stage}.noinput.html" if no_input else f"{stage}.html")


@dataclass(frozen=True)
class StaleReport:
    stage: str
    executed: Path
    no_input: bool


def stale_stage_reports(root: Path, stages: list[str] | None = None) -> list[StaleReport]:
    """Reports whose executed notebook changed since they were rendered (or that were never rendered).
    A code-free report (``--no-input``) counts only where one was rendered before."""
    root = Path(root)
    folder = root / REPORTS_DIR
    executed = sorted(folder.glob("*.ipynb")) if folder.is_dir() else []
    stale = []
    for path in executed:
        if stages is not None and path.stem not in stages:
            continue
        try:
            data = path.read_bytes()
        except OSError:
            continue
        for no_input in (False, True):
            html = report_path(root, path.stem, no_input)
            if no_input and not html.exists():
                continue
            if rendered_from(html) != notebook_digest(data, no_input):
                stale.append(StaleReport(path.stem, path, no_input))
    return stale


def index_digest(root: Path) -> str:
    """What ``reports/index.html`` is stamped with: a hash of everything it shows."""
    root = Path(root)
    digest = hashlib.sha256(f"nbprod index {RENDER_VERSION}\n".encode())

    def add(label: str, path: Path) -> None:
        try:
            data = path.read_bytes()
        except OSError:
            data = b"<missing>"
        digest.update(f"{label} {len(data)}\n".encode())
        digest.update(data)

    add("dvc.yaml", root / "dvc.yaml")
    add("compiled", root / GENERATED_DIR / "compiled.json")
    reports = root / REPORTS_DIR
    if reports.is_dir():
        for path in sorted(reports.glob("*.ipynb")):
            add(f"executed {path.name}", path)
        shown = sorted(p.name for p in reports.glob("*.html") if p.name != "index.html")
        digest.update(("reports " + " ".join(shown) + "\n").encode())
    metrics = root / METRICS_DIR
    if metrics.is_dir():
        for path in sorted(metrics.glob("*.json")):
            add(f"metrics {path.name}", path)
    last = git(root, "log", "-1", "--format=%H", "--", METRICS_DIR, text=False)
    digest.update(b"history " + last.stdout)
    return digest.hexdigest()[:32]


def index_path(root: Path) -> Path:
    return Path(root) / REPORTS_DIR / "index.html"


def index_stale(root: Path, digest: str | None = None) -> bool:
    return rendered_from(index_path(root)) != (digest or index_digest(root))
