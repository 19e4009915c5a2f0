"""What one stage run was, read from its executed notebook: ``metadata.nbprod`` and Papermill's metadata."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .cellerror import failed_cell_index, printed_error
from ..core.stagerun import RecordStatus, StageRun
from .scraps import DisplayScrap, numeric_metrics, read_scraps

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
class ExecutedStage:
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
        return self.status == RecordStatus.FAILED


def _first_line(source: Any) -> str:
    text = "".join(source) if isinstance(source, list) else (source or "")
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:80]
    return ""


def failing_cell(nb: dict) -> int | None:
    """Index of the first code cell that failed, with or without an ``error`` output (nbprod.executed.cellerror)."""
    return failed_cell_index(nb)


def _printed_error(nb: dict, index: int | None) -> dict | None:
    """The failed cell's error as the kernel reported or printed it (runs without nbprod's record of it)."""
    if index is None:
        return None
    ename, evalue = printed_error(nb["cells"][index])
    return {"cell": None, "ename": ename, "evalue": evalue} if ename or evalue else None


def read_notebook_json(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def run_from_notebook(nb: dict, executed_path: Path, stage: str | None = None) -> ExecutedStage:
    """The run described by an executed notebook (its run record first, Papermill's metadata as fallback)."""
    meta = nb.get("metadata", {}) or {}
    record = StageRun.from_metadata(meta.get("nbprod"), stage or Path(executed_path).stem)
    pm = meta.get("papermill") or {}
    error_index = failing_cell(nb)
    status = record.status.value if record else None
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
    if record is None:  # not run by nbprod exec: what Papermill recorded
        return ExecutedStage(stage=stage or Path(executed_path).stem, executed_path=Path(executed_path),
                        notebook=pm.get("input_path"), status=status, started=pm.get("start_time"),
                        ended=pm.get("end_time"), duration=pm.get("duration"),
                        params=dict(pm.get("parameters") or {}), error=_printed_error(nb, error_index),
                        error_cell=error_index, cells=cells, scraps=read_scraps(nb))
    return ExecutedStage(
        stage=record.stage,
        executed_path=Path(executed_path),
        notebook=record.notebook or pm.get("input_path"),
        status=status,
        started=record.started or pm.get("start_time"),
        ended=record.ended or pm.get("end_time"),
        duration=record.duration if record.duration is not None else pm.get("duration"),
        commit=record.commit,
        dirty=record.dirty,
        params=record.params,
        python=record.python,
        packages=record.packages,
        error=asdict(record.error) if record.error else _printed_error(nb, error_index),
        error_cell=error_index,
        cells=cells,
        scraps=read_scraps(nb),
    )


def load_run(executed_path: Path, stage: str | None = None) -> ExecutedStage:
    return run_from_notebook(read_notebook_json(executed_path), executed_path, stage)
