"""``nbprod status``: each stage up to date or changed, and why (code, params, data, outputs)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..notebooks.compile import compile_project
from ..notebooks.pipeline import Pipeline
from ..core.project import STAGES_DIR, Project
from ..core.stagerun import StatusState


@dataclass
class StageStatus:
    name: str
    state: StatusState
    reasons: list[str] = field(default_factory=list)   # "code" | "params" | "data" | "outputs"
    details: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"name": self.name, "state": self.state, "reasons": self.reasons, "details": self.details}


def pipeline_status(project: Project) -> list[StageStatus]:
    """Status of every stage, counting source edits that are not compiled yet as code changes."""
    preview = compile_project(project, check=True)
    pipeline = preview.pipeline
    stale_code = {s.name for s in pipeline.stages if s.stage_notebook in preview.changed}
    lock = _lock_stages(project)
    dvc_status = _dvc_status(project) if lock else {}
    result = []
    for stage in pipeline.order():
        if stage.name not in lock:
            result.append(StageStatus(stage.name, StatusState.NEVER_RUN, ["never run"]))
            continue
        reasons, details = _reasons(dvc_status.get(stage.name, []))
        if stage.name in stale_code and "code" not in reasons:
            reasons.insert(0, "code")
            details.insert(0, f"{stage.notebook} changed since the last compile")
        result.append(StageStatus(stage.name, StatusState.CHANGED if reasons else StatusState.UP_TO_DATE, reasons,
                                  details))
    _source_schemas(project, pipeline, result)
    _propagate(pipeline, result)
    return result


def _source_schemas(project: Project, pipeline: Pipeline, statuses: list[StageStatus]) -> None:
    """A source table whose schema changed since the last run read it: its readers changed (data)."""
    if not any(s.queries for s in pipeline.stages):
        return  # no database to ask: status costs what it did
    from ..sql.sources import schema_drift

    by_name = {s.name: s for s in statuses}
    for stage, changes in schema_drift(project.root, pipeline.stages).items():
        status = by_name[stage]
        if status.state == StatusState.NEVER_RUN:
            continue
        status.state = StatusState.CHANGED
        if "data" not in status.reasons:
            status.reasons.append("data")
        status.details.extend(changes)


def _propagate(pipeline: Pipeline, statuses: list[StageStatus]) -> None:
    """A stage downstream of a changed stage will rerun too: say so, with the upstream as reason."""
    by_name = {s.name: s for s in statuses}
    for stage in pipeline.order():
        status = by_name[stage.name]
        changed_up = [u for u in stage.upstream if by_name[u].state != StatusState.UP_TO_DATE]
        if changed_up and status.state == StatusState.UP_TO_DATE:
            status.state = StatusState.CHANGED
            status.reasons.append("data")
            status.details.append("upstream " + ", ".join(changed_up) + " will rerun")


def _lock_stages(project: Project) -> set[str]:
    path = project.root / "dvc.lock"
    if not path.exists():
        return set()
    import yaml

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError:
        return set()
    return set((doc.get("stages") or {}).keys())


def _dvc_status(project: Project) -> dict:
    from .dvcadapter import status

    return status(project.root)


def _reasons(entries: list) -> tuple[list[str], list[str]]:
    reasons: list[str] = []
    details: list[str] = []

    def add(reason: str, detail: str) -> None:
        if reason not in reasons:
            reasons.append(reason)
        details.append(detail)

    for entry in entries:
        if isinstance(entry, str):
            add("code", entry)  # "always changed" or a changed command
            continue
        for path, change in (entry.get("changed deps") or {}).items():
            if path.startswith(STAGES_DIR + "/"):
                add("code", f"{path} {change}")
            elif isinstance(change, dict) or path.endswith("params.yaml"):
                keys = ", ".join(sorted(change)) if isinstance(change, dict) else path
                add("params", f"params {keys} {('changed' if isinstance(change, dict) else change)}")
            else:
                add("data", f"{path} {change}")
        for path, change in (entry.get("changed outs") or {}).items():
            add("outputs", f"{path} {change}")
        if entry.get("changed command"):
            add("code", "command changed")
    return reasons, details
