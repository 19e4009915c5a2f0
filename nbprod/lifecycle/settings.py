"""Lifecycle settings from ``[tool.nbprod]``: which output is the model and what it is called."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..core.errors import NbprodError
from ..core.project import Project, read_config
from .gates import Gate, parse_gates

DEFAULT_MODEL_NAME = "model"


@dataclass
class LifecycleConfig:
    model_path: str                 # project-relative DVC out that is "the model"
    model_name: str                 # the artifact name in the registry (GTO tag prefix)
    gates: list[Gate] = field(default_factory=list)


def load_config(project: Project) -> LifecycleConfig:
    raw = read_config(project.root)
    name = raw.get("model_name", DEFAULT_MODEL_NAME)
    from gto.constants import fullname_re  # GTO's own rule for artifact names

    if not isinstance(name, str) or not fullname_re.match(name):
        raise NbprodError(f"[tool.nbprod] model_name {name!r} is not a valid registry name", "pyproject.toml",
                          fix='use letters, digits, "-" and "_", e.g. model_name = "churn-model"')
    gates = parse_gates(project.gates if project.gates else raw.get("gates", {}))
    return LifecycleConfig(model_path=_model_path(project, raw.get("model")), model_name=name, gates=gates)


def _model_path(project: Project, configured) -> str:
    outs = stage_outs(project.root)
    if configured is not None:
        if not isinstance(configured, str) or not configured:
            raise NbprodError("[tool.nbprod] model must be a path or STAGE.VARIABLE", "pyproject.toml",
                              fix='write model = "train.model" or the path of a DVC out')
        path = configured.strip("/")
        if any(path == o or path.startswith(o + "/") for o in _all(outs)):
            return path
        stage, _, variable = configured.partition(".")
        matches = [o for o in outs.get(stage, []) if variable and o.rstrip("/").split("/")[-1] == variable]
        if len(matches) == 1:
            return matches[0]
        raise NbprodError(f"[tool.nbprod] model = {configured!r} is not an output of any stage in dvc.yaml",
                          "pyproject.toml", fix="name a path listed under outs in dvc.yaml, or STAGE.VARIABLE")
    candidates = [o for o in _all(outs) if o.rstrip("/").split("/")[-1].split(".")[0] == "model"]
    if len(candidates) == 1:
        return candidates[0]
    found = "none" if not candidates else ", ".join(candidates)
    raise NbprodError(f"cannot tell which output is the model (outputs named 'model': {found})", "pyproject.toml",
                      fix='set model = "STAGE.VARIABLE" or model = "PATH" under [tool.nbprod]')


def _all(outs: dict[str, list[str]]) -> list[str]:
    return [o for paths in outs.values() for o in paths]


def read_dvc_yaml(root: Path, text: str | None = None) -> dict:
    path = root / "dvc.yaml"
    if text is None:
        if not path.is_file():
            raise NbprodError("no dvc.yaml", root, fix="run 'nbprod compile' (or 'nbprod run') first")
        text = path.read_text(encoding="utf-8")
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise NbprodError(f"is not valid YAML ({str(exc).splitlines()[0]})", "dvc.yaml",
                          fix="run 'nbprod compile' to regenerate it") from None


def stage_outs(root: Path, text: str | None = None) -> dict[str, list[str]]:
    """Cached outputs of each stage in dvc.yaml (metrics and plots excluded)."""
    doc = read_dvc_yaml(root, text)
    result = {}
    for name, stage in (doc.get("stages") or {}).items():
        result[name] = [_entry_path(e) for e in stage.get("outs", []) or []]
    return result


def metrics_files(root: Path, text: str | None = None) -> list[str]:
    doc = read_dvc_yaml(root, text)
    files = []
    for stage in (doc.get("stages") or {}).values():
        files += [_entry_path(e) for e in stage.get("metrics", []) or []]
    return files


def _entry_path(entry) -> str:
    return next(iter(entry)) if isinstance(entry, dict) else str(entry)


def read_metrics(texts: dict[str, bytes | str | None]) -> dict[str, dict]:
    """{metrics file: {name: number}} from file contents; unreadable files give an empty dict."""
    result = {}
    for path, content in texts.items():
        try:
            data = json.loads(content) if content else {}
        except ValueError:
            data = {}
        result[path] = {k: v for k, v in data.items() if isinstance(v, (int, float)) and not isinstance(v, bool)} \
            if isinstance(data, dict) else {}
    return result
