"""What a run says about itself, typed: the run record of one stage (``metadata.nbprod`` of each
executed notebook), the states a stage can be in, and the kinds of run events.

``nbprod exec`` writes the record; the reports, lineage, environment drift and the server read it
back with ``StageRun.from_metadata``. The enums are ``str``-valued, so JSON, events and the REST
API carry the same strings as before; the JupyterLab extension gets them from
``extension/src/states.ts``, generated from this module (``python -m nbprod.core.stagerun``) and
checked against it by tests/unit/test_runrecord.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any


class RecordStatus(StrEnum):
    """``metadata.nbprod.status`` of an executed notebook."""

    RUNNING = "running"  # written when the stage starts; left so when the process was killed
    OK = "ok"
    FAILED = "failed"


class StatusState(StrEnum):
    """A stage in ``nbprod status`` (and the server's status endpoint): compared with dvc.lock."""

    UP_TO_DATE = "up to date"
    CHANGED = "changed"
    NEVER_RUN = "never run"


class StageState(StrEnum):
    """A stage in a run (``stage_end`` events, the run summary)."""

    RUNNING = "running"
    RAN = "ran"
    UP_TO_DATE = "up to date"
    FAILED = "failed"
    NOT_RUN = "not run"  # not reached: an upstream stage failed or the run was stopped


class EventKind(StrEnum):
    """The ``event`` field of each line of a run's events.jsonl."""

    RUN_START = "run_start"
    STAGE_START = "stage_start"
    CELL = "cell"
    STAGE_END = "stage_end"
    RUN_END = "run_end"
    RETRAIN_STEP = "retrain_step"  # nbprod retrain: preparing, running or scoring the candidate
    RETRAIN_END = "retrain_end"    # nbprod retrain: the candidate and whether it passed its gates


@dataclass
class StageError:
    """Where a failed stage raised: the source notebook's cell number (None: a generated cell)."""

    cell: int | None
    ename: str
    evalue: str


@dataclass
class StageRun:
    """One run of one stage, as ``nbprod exec`` records it in the executed notebook."""

    stage: str
    notebook: str = ""                       # the source notebook, project-relative
    params: dict[str, Any] = field(default_factory=dict)
    commit: str | None = None                # git HEAD when the stage ran
    dirty: bool | None = None                # tracked files differed from HEAD
    python: str | None = None
    packages: dict[str, str] = field(default_factory=dict)  # provenance.KEY_PACKAGES that are installed
    status: RecordStatus = RecordStatus.RUNNING
    error: StageError | None = None
    started: str | None = None               # ISO 8601, UTC, milliseconds
    ended: str | None = None
    duration: float | None = None            # seconds
    kernel: dict[str, Any] | None = None     # how the kernel was started (forked from the pool or not, and why)
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know, kept as they are

    @property
    def failed(self) -> bool:
        return self.status == RecordStatus.FAILED

    def to_metadata(self) -> dict[str, Any]:
        """The ``metadata.nbprod`` dict (plain JSON types, key order as nbprod has always written it)."""
        meta: dict[str, Any] = {
            "stage": self.stage, "notebook": self.notebook, "params": self.params,
            "git": {"commit": self.commit, "dirty": self.dirty}, "python": self.python,
            "packages": self.packages, "status": self.status.value,
            "error": None if self.error is None else {"cell": self.error.cell, "ename": self.error.ename,
                                                      "evalue": self.error.evalue},
            "started": self.started,
        }
        if self.kernel is not None:
            meta["kernel"] = self.kernel
        if self.ended is not None or self.duration is not None:
            meta["ended"], meta["duration"] = self.ended, self.duration
        meta.update({k: v for k, v in self.extra.items() if k not in meta})
        return meta

    @classmethod
    def from_metadata(cls, meta: dict[str, Any] | None, stage: str | None = None) -> StageRun | None:
        """The record in a notebook's ``metadata.nbprod``; None when it holds none (not executed by
        nbprod). Missing or malformed fields read as unknown rather than failing."""
        if not isinstance(meta, dict) or not (meta.get("stage") or stage) or "status" not in meta:
            return None
        git = meta.get("git") if isinstance(meta.get("git"), dict) else {}
        error = meta.get("error") if isinstance(meta.get("error"), dict) else None
        try:
            status = RecordStatus(meta.get("status"))
        except ValueError:
            status = RecordStatus.RUNNING
        known = {"stage", "notebook", "params", "git", "python", "packages", "status", "error", "started",
                 "ended", "duration", "kernel"}
        return cls(
            stage=str(meta.get("stage") or stage), notebook=meta.get("notebook") or "",
            params=meta.get("params") if isinstance(meta.get("params"), dict) else {},
            commit=git.get("commit"), dirty=git.get("dirty"), python=meta.get("python"),
            packages=meta.get("packages") if isinstance(meta.get("packages"), dict) else {},
            status=status,
            error=None if error is None else StageError(error.get("cell"), str(error.get("ename", "")),
                                                        str(error.get("evalue", ""))),
            started=meta.get("started"), ended=meta.get("ended"), duration=meta.get("duration"),
            kernel=meta.get("kernel") if isinstance(meta.get("kernel"), dict) else None,
            extra={k: v for k, v in meta.items() if k not in known},
        )

    @classmethod
    def from_notebook(cls, nb: dict[str, Any], stage: str | None = None) -> StageRun | None:
        """The record of an executed notebook's JSON (see ``from_metadata``)."""
        return cls.from_metadata((nb.get("metadata") or {}).get("nbprod"), stage)


def read_stage_run(path: Path) -> StageRun | None:
    """The record of the executed notebook at ``path``; None when unreadable or without one."""
    import json

    try:
        nb = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return StageRun.from_notebook(nb, Path(path).stem) if isinstance(nb, dict) else None


STATES_TS = Path(__file__).resolve().parents[2] / "extension" / "src" / "states.ts"


def states_typescript() -> str:
    """``extension/src/states.ts``: these enums as TypeScript string-literal types."""
    lines = ["// Generated by `python -m nbprod.core.stagerun` from nbprod/core/stagerun.py; do not edit.",
             "// tests/unit/test_runrecord.py fails when this file and the Python enums differ.", ""]
    for enum, const, kind in ((StatusState, "STATUS_STATES", "StatusState"),
                              (StageState, "STAGE_STATES", "RunStageState"),
                              (EventKind, "EVENT_KINDS", "EventKind")):
        values = ", ".join(f"'{member.value}'" for member in enum)
        lines += [f"export const {const} = [{values}] as const;",
                  f"export type {kind} = (typeof {const})[number];", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


if __name__ == "__main__":
    STATES_TS.write_text(states_typescript(), encoding="utf-8")
    print(STATES_TS)
