"""What one stage run was, read from its executed notebook: ``metadata.nbprod`` and Papermill's metadata."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..scraps import DisplayScrap, numeric_metrics, read_scraps

# Markdown cells papermill adds around a failure; the report draws its own banner instead.
PAPERMILL_ERROR_TAG = "papermill-error-cell-tag"


@dataclass
class CellTiming:
    index: int  # position in the executed notebook
    execution_count: int | None
    duration: float | None
    first_line: str
    failed: bool = False


@dataclass
class StageRun:
    stage: str
    executed_path: Path
    notebook: str | None = None
    status: str = "unknown"
    started: str | None = None
    ended: str | None = None
    duration: float | None = None
    commit: str | None = None
    dirty: bool | None = None
    params: dict = field(default_factory=dict)
    python: str | None = None
    packages: dict = field(default_factory=dict)
    error: dict | None = None
    error_cell: int | None = None  # index in the executed notebook of the cell that raised
    cells: list[CellTiming] = field(default_factory=list)
    scraps: dict[str, Any] = field(default_factory=dict)

    @property
    def metrics(self) -> dict[str, int | float]:
        return numeric_metrics(self.scraps)

    @property
    def figures(self) -> dict[str, DisplayScrap]:
        return {n: v for n, v in self.scraps.items() if isinstance(v, DisplayScrap) and v.png}

    @property
    def failed(self) -> bool:
        return self.status == "failed"


def _first_line(source: Any) -> str:
    text = "".join(source) if isinstance(source, list) else (source or "")
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:80]
    return ""


def failing_cell(nb: dict) -> int | None:
    """Index of the first code cell whose outputs hold an error."""
    for index, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") == "code" and any(
            o.get("output_type") == "error" for o in cell.get("outputs", []) or []
        ):
            return index
    return None


def read_notebook_json(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def run_from_notebook(nb: dict, executed_path: Path, stage: str | None = None) -> StageRun:
    """The run described by an executed notebook (nbprod metadata first, Papermill's as fallback)."""
    meta = nb.get("metadata", {}) or {}
    info = meta.get("nbprod") or {}
    pm = meta.get("papermill") or {}
    git = info.get("git") or {}
    error_index = failing_cell(nb)
    status = info.get("status")
    if not status:
        if pm.get("exception") or error_index is not None:
            status = "failed"
        elif pm.get("end_time") or pm.get("duration") is not None:
            status = "ok"
        else:
            status = "unknown"
    cells = []
    for index, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        cpm = (cell.get("metadata") or {}).get("papermill") or {}
        cells.append(CellTiming(
            index=index,
            execution_count=cell.get("execution_count"),
            duration=cpm.get("duration"),
            first_line=_first_line(cell.get("source")),
            failed=index == error_index,
        ))
    return StageRun(
        stage=info.get("stage") or stage or Path(executed_path).stem,
        executed_path=Path(executed_path),
        notebook=info.get("notebook") or pm.get("input_path"),
        status=status,
        started=info.get("started") or pm.get("start_time"),
        ended=info.get("ended") or pm.get("end_time"),
        duration=info.get("duration", pm.get("duration")),
        commit=git.get("commit"),
        dirty=git.get("dirty"),
        params=info.get("params") if info.get("params") is not None else dict(pm.get("parameters") or {}),
        python=info.get("python"),
        packages=info.get("packages") or {},
        error=info.get("error"),
        error_cell=error_index,
        cells=cells,
        scraps=read_scraps(nb),
    )


def load_run(executed_path: Path, stage: str | None = None) -> StageRun:
    return run_from_notebook(read_notebook_json(executed_path), executed_path, stage)
