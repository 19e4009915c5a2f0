"""Run reports: HTML per executed stage notebook, the run index, metrics tables and run comparison.

Import-light on purpose: nbconvert, pandas and rich are imported inside the functions that need them.
"""

from __future__ import annotations

from pathlib import Path

from ..core.errors import NbprodError
from ..core.project import REPORTS_DIR


def executed_notebooks(root: Path, stages: list[str] | None = None) -> dict[str, Path]:
    """The executed notebooks under ``reports/``, by stage name."""
    reports = Path(root) / REPORTS_DIR
    found = {p.stem: p for p in sorted(reports.glob("*.ipynb"))} if reports.is_dir() else {}
    if not stages:
        return found
    missing = [s for s in stages if s not in found]
    if missing:
        raise NbprodError(
            f"no executed notebook for stage(s) {', '.join(missing)}", reports,
            fix="run the stage first ('nbprod run' or 'dvc repro'); executed notebooks are reports/<stage>.ipynb")
    return {s: found[s] for s in stages}


def render_reports(project, stages: list[str] | None = None, no_input: bool = False) -> list[Path]:
    """Render ``reports/<stage>.html`` for each executed stage (and ``.noinput.html`` with ``no_input``),
    then ``reports/index.html``. Returns the paths written, index last."""
    from .index import render_index
    from .stage_report import render_stage_report

    root = Path(project.root)
    written = []
    for _, executed in executed_notebooks(root, stages).items():
        written.append(render_stage_report(root, executed))
        if no_input:
            written.append(render_stage_report(root, executed, no_input=True))
    written.append(render_index(project))
    return written


def compare(project, a: str, b: str):
    """Compare two runs (git revisions or DVC experiment names); see :mod:`nbprod.report.comparison`."""
    from .comparison import compare as _compare

    return _compare(project, a, b)


__all__ = ["render_reports", "compare", "executed_notebooks"]
