"""What the JupyterLab Models panel shows, as plain data read from the registry tags, candidate refs
and dvc.lock: production now, candidates waiting for a decision, the history, and for one version its
lineage and what a rollback to it would change in the working tree. Read only."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from ..core.project import ENVIRONMENT_FILE, STAGES_DIR, Project
from ..core import gitrepo
from . import registry
from .candidates import CANDIDATES_DIR, candidate_ids, load_candidate
from .settings import load_config, metrics_files, read_metrics
from ..core.dvccache import current_md5, parse_lock


@dataclass
class Change:
    """One difference between the working tree (``now``) and a version (``then``)."""

    kind: str            # metric | param | data
    name: str
    now: object
    then: object


@dataclass
class VersionDetails:
    version: str
    commit: str
    tag: str
    date: str
    record: dict
    stage: str | None            # the stage that writes the model
    cmd: str | None
    model_path: str
    model_md5: str | None
    params: dict[str, object]    # SECTION.KEY -> value, as the model's stage ran with them
    inputs: dict[str, str]       # dep path -> md5, as dvc.lock records them
    metrics: dict[str, dict]
    environment: dict | None
    changes: list[Change] = field(default_factory=list)   # what a rollback to this version would change

    def to_dict(self) -> dict:
        return asdict(self)


def version_metrics(root: Path, commit: str) -> dict[str, dict]:
    """The metrics files of dvc.yaml as committed in ``commit``."""
    yaml_text = gitrepo.show_file(root, commit, "dvc.yaml")
    files = metrics_files(root, yaml_text.decode() if yaml_text else None)
    return read_metrics({f: gitrepo.show_file(root, commit, f) for f in files})


def overview(project: Project) -> dict:
    """Production, waiting candidates, versions and history of the project's model."""
    root = project.root
    config = load_config(project)
    model = config.model_name
    versions = registry.versions(root, model)
    prod_events = registry.assignments(root, model)
    current = registry.current(root, model)
    production = None
    if current is not None:
        last = prod_events[-1]
        production = {"version": current.version, "commit": current.commit, "tag": last.tag,
                      "since": last.record.get("when") or last.date, "by": last.record.get("by"),
                      "note": last.record.get("note"), "action": last.record.get("action", "assign"),
                      "identity": last.record.get("identity"), "metrics": version_metrics(root, current.commit)}
    decided = {v.commit for v in versions} | {e.commit for e in registry.rejections(root, model)}
    waiting = []
    for candidate_id in candidate_ids(root):
        candidate = load_candidate(root, candidate_id)
        if candidate.commit in decided or candidate.record.get("model", model) != model:
            continue
        report = f"{CANDIDATES_DIR}/{candidate_id}/comparison.html"
        waiting.append(dict(candidate.record, id=candidate_id, commit=candidate.commit,
                            report=report if (root / report).is_file() else None))
    return {"model": model, "model_path": config.model_path, "gate_metrics": [g.metric for g in config.gates],
            "production": production, "candidates": waiting,
            "versions": [{"version": v.version, "commit": v.commit, "tag": v.tag, "date": v.date,
                          "kind": v.record.get("action", "register"),
                          "in_production": current is not None and v.version == current.version}
                         for v in versions],
            "history": [e.to_dict() for e in registry.history(root, model)]}


def version_details(project: Project, version_text: str) -> VersionDetails:
    """A version's lineage (the model's stage, params, inputs, environment, who registered it) and the
    metrics, params and data hashes that differ from the working tree: what a rollback would change."""
    root = project.root
    config = load_config(project)
    version = registry.find_version(root, config.model_name, version_text)
    lock = parse_lock(gitrepo.show_file(root, version.commit, "dvc.lock"), f"{version.tag}:dvc.lock")
    stage = next((s for s in lock.values() if config.model_path in s.outs), None)
    env_text = gitrepo.show_file(root, version.commit, ENVIRONMENT_FILE)
    environment = version.record.get("environment")
    if environment is None and env_text:
        captured = json.loads(env_text)
        environment = {"python": captured.get("python"), "packages_sha256": captured.get("packages_sha256")}
    metrics = version_metrics(root, version.commit)
    details = VersionDetails(
        version=version.version, commit=version.commit, tag=version.tag, date=version.date, record=version.record,
        stage=stage.name if stage else None, cmd=stage.cmd if stage else None, model_path=config.model_path,
        model_md5=stage.outs[config.model_path] if stage else None,
        params=_flat_params(stage.params) if stage else {}, inputs=dict(stage.deps) if stage else {},
        metrics=metrics, environment=environment)
    details.changes = _changes(root, metrics, lock)
    return details


def _flat_params(params: dict[str, dict]) -> dict[str, object]:
    return {key: value for section in params.values() for key, value in _flatten(section).items()}


def _flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _changes(root: Path, then_metrics: dict[str, dict], then_lock: dict) -> list:
    changes = []
    now_metrics = read_metrics({f: (root / f).read_bytes() if (root / f).is_file() else None for f in then_metrics})
    for file, values in then_metrics.items():
        for name in sorted(set(values) | set(now_metrics.get(file, {}))):
            now, then = now_metrics.get(file, {}).get(name), values.get(name)
            if now != then:
                changes.append(Change("metric", f"{file}:{name}", now, then))
    params_file = root / "params.yaml"
    now_params = _flatten(yaml.safe_load(params_file.read_text(encoding="utf-8")) or {}) if params_file.is_file() \
        else {}
    then_params = {k: v for s in then_lock.values() for k, v in _flat_params(s.params).items()}
    for key in sorted(then_params):
        if now_params.get(key) != then_params[key]:
            changes.append(Change("param", key, now_params.get(key), then_params[key]))
    seen = set()
    for stage in then_lock.values():
        for path, md5 in {**stage.deps, **stage.outs}.items():
            if path in seen or path.startswith(STAGES_DIR + "/"):
                continue
            seen.add(path)
            now = current_md5(root, path, md5)
            if now != md5:
                changes.append(Change("data", path, now, md5))
    return changes
