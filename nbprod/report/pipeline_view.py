"""The pipeline as the reports see it: stages and their edges, and input hashes from dvc.lock."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import yaml


@dataclass
class StageNode:
    name: str
    upstream: list[str] = field(default_factory=list)
    notebook: str | None = None


def _load_yaml(path: Path) -> dict:
    if not path.is_file():
        return {}
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def _dep_paths(entries) -> list[str]:
    paths = []
    for entry in entries or []:
        if isinstance(entry, str):
            paths.append(entry)
        elif isinstance(entry, dict):
            paths.extend(str(k) for k in entry)
    return paths


def _covers(out: str, dep: str) -> bool:
    out, dep = out.rstrip("/"), dep.rstrip("/")
    return dep == out or dep.startswith(out + "/")


def stages_from_dvc_yaml(root: Path) -> list[StageNode]:
    """Stages in dvc.yaml order, with an edge wherever a stage reads what another writes."""
    stages = (_load_yaml(root / "dvc.yaml").get("stages") or {})
    outs = {name: _dep_paths(spec.get("outs")) + _dep_paths(spec.get("metrics")) + _dep_paths(spec.get("plots"))
            for name, spec in stages.items() if isinstance(spec, dict)}
    nodes = []
    for name, spec in stages.items():
        if not isinstance(spec, dict):
            continue
        deps = _dep_paths(spec.get("deps"))
        upstream = sorted({other for other, paths in outs.items() if other != name
                           for dep in deps for out in paths if _covers(out, dep)})
        nodes.append(StageNode(name=name, upstream=upstream))
    return nodes


def load_stages(project) -> list[StageNode]:
    """The pipeline's stages: what dvc.yaml runs, with edges from both dvc.yaml's files and nbprod's
    own model (which also knows ``after:`` edges and notebooks)."""
    nodes = stages_from_dvc_yaml(Path(project.root))
    core: list[StageNode] = []
    try:
        from ..notebooks.pipeline import load_pipeline  # the core's model, when present

        core = [StageNode(name=s["name"], upstream=list(s.get("upstream") or []), notebook=s.get("notebook"))
                for s in load_pipeline(project).to_dict().get("stages", [])]
    except ImportError:
        pass
    except Exception:  # noqa: BLE001 - a broken source notebook must not stop the reports of what did run
        logging.getLogger(__name__).debug("pipeline model not loaded; edges from dvc.yaml only", exc_info=True)
    by_name = {n.name: n for n in nodes}
    for node in core:
        if node.name in by_name:
            known = by_name[node.name]
            known.upstream = sorted(set(known.upstream) | set(node.upstream))
            known.notebook = known.notebook or node.notebook
        else:
            nodes.append(node)
            by_name[node.name] = node
    return nodes


def locked_deps(root: Path, stage: str, lock: dict | None = None) -> list[tuple[str, str]]:
    """``(path, hash)`` of each dependency of ``stage`` as recorded in dvc.lock."""
    lock = lock if lock is not None else _load_yaml(root / "dvc.lock")
    spec = (lock.get("stages") or {}).get(stage) or {}
    result = []
    for dep in spec.get("deps") or []:
        if isinstance(dep, dict) and "path" in dep:
            digest = dep.get("md5") or dep.get("hash") or dep.get("etag") or ""
            result.append((str(dep["path"]), str(digest)))
    return result


def locked_outs(lock: dict, stage: str) -> list[dict]:
    spec = (lock.get("stages") or {}).get(stage) or {}
    return [o for o in spec.get("outs") or [] if isinstance(o, dict)]


def layers(nodes: list[StageNode]) -> dict[str, int]:
    """Column of each stage in the DAG drawing: one more than its deepest upstream stage."""
    by_name = {n.name: n for n in nodes}
    depth: dict[str, int] = {}

    def visit(name: str, seen: frozenset) -> int:
        if name in depth:
            return depth[name]
        if name in seen:  # a cycle is the compiler's error to report; just stop here
            return 0
        node = by_name.get(name)
        ups = [u for u in (node.upstream if node else []) if u in by_name]
        depth[name] = 1 + max((visit(u, seen | {name}) for u in ups), default=-1)
        return depth[name]

    for node in nodes:
        visit(node.name, frozenset())
    return depth
