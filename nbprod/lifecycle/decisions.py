"""Human decisions on the registry: approve or reject a candidate, roll production back to a version.
Each is an annotated git tag recording who, when, why and the evidence."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..core.errors import NbprodError
from ..fairness.compare import approval_record
from ..core.project import Project
from ..core import gitrepo
from . import registry, workspace
from .candidates import Candidate, load_candidate, write_record
from .settings import load_config
from .exclusive import under_run_lock


@dataclass
class Promotion:
    version: registry.Version
    assignment_tag: str
    kept: registry.Version | None = None      # the working state registered before it was replaced
    previous: str | None = None               # the version in production before


def _failed_gates(candidate: Candidate) -> list[str]:
    return [f"{g['gate']} (got {g['value']:.4g}, threshold {g['threshold']:.4g})" if g.get("threshold") is not None
            else f"{g['gate']} ({g.get('note', 'no value')})"
            for g in candidate.record.get("gates", []) if g.get("passed") is False]


def _decided(root: Path, model: str, candidate: Candidate) -> str | None:
    for version in registry.versions(root, model):
        if version.commit == candidate.commit:
            return f"approved as {version.version}"
    for event in registry.rejections(root, model):
        if event.commit == candidate.commit:
            return "rejected"
    return None


@under_run_lock
def approve(project: Project, candidate_id: str, by: str, note: str = "", override: str | None = None,
            checkout: bool = False, identity: dict | None = None, policy: dict | None = None) -> Promotion:
    """``identity``: how the approver was authenticated (the JupyterLab panel), kept in the record.
    ``policy``: the rule and evidence when no human approved (``nbprod learn``'s auto_approve); it
    never overrides a failed gate."""
    root = project.root
    gitrepo.require_repo(root)
    config = load_config(project)
    candidate = load_candidate(root, candidate_id)
    _require_text(by, "--by", "the name of the person approving")
    decided = _decided(root, config.model_name, candidate)
    if decided and decided != "rejected":
        raise NbprodError(f"candidate {candidate_id} was already {decided}", "git tags",
                          fix="run 'nbprod history' to see it; use 'nbprod rollback VERSION' to return to it")
    failed = _failed_gates(candidate)
    if failed and not override:
        raise NbprodError(f"candidate {candidate_id} failed gates: {'; '.join(failed)}", candidate_id,
                          fix="approve with --override REASON to promote it anyway, or 'nbprod reject' it")
    if override is not None:
        _require_text(override, "--override", "why the failed gates are acceptable")
    if policy is not None and (failed or override):
        raise NbprodError(f"candidate {candidate_id} cannot be approved by policy: a gate failed", candidate_id,
                          fix="a human decides: nbprod approve ID --by NAME --override REASON, or nbprod reject")
    if checkout:
        gitrepo.require_unlocked_index(root, "nothing was approved")  # before any tag: never half an approval
        _refuse_unsaved(root)
        workspace.require_cached(root, candidate.commit)
    previous = registry.current(root, config.model_name)
    when = registry.now()
    record = {"action": "approve", "by": by, "when": when, "note": note, "candidate": candidate_id,
              "gates": candidate.record.get("gates", []), "gates_passed": not failed, "override": override,
              "metrics": candidate.record.get("metrics", {}), "previous": previous.version if previous else None,
              "model_path": config.model_path, "model_md5": candidate.record.get("model_md5"),
              "environment": candidate.record.get("environment"), **_identity(identity),
              "fairness": approval_record(candidate.record), "schemas": _schema_hashes(root, candidate.commit),
              **({"approved_by": "policy", "policy": policy} if policy is not None else {})}
    kept = _keep_if_unregistered(root, config.model_name, by, when, f"approval of {candidate_id}") if checkout \
        else None
    version = registry.register(root, config.model_name, candidate.commit, record)
    tag = registry.assign(root, config.model_name, version, record)
    write_record(root, candidate, status=f"approved as {version.version}")
    if checkout:
        _restore(root, version)
    return Promotion(version, tag, kept, previous.version if previous else None)


@under_run_lock
def reject(project: Project, candidate_id: str, by: str, note: str, identity: dict | None = None) -> str:
    root = project.root
    gitrepo.require_repo(root)
    config = load_config(project)
    candidate = load_candidate(root, candidate_id)
    _require_text(by, "--by", "the name of the person rejecting")
    _require_text(note, "--note", "why the candidate is rejected")
    decided = _decided(root, config.model_name, candidate)
    if decided:
        raise NbprodError(f"candidate {candidate_id} was already {decided}", "git tags",
                          fix="run 'nbprod history' to see the decision")
    record = {"action": "reject", "by": by, "when": registry.now(), "note": note, "candidate": candidate_id,
              "gates": candidate.record.get("gates", []), "gates_passed": candidate.passed,
              "metrics": candidate.record.get("metrics", {}), **_identity(identity)}
    tag = registry.reject(root, config.model_name, candidate_id, candidate.commit, record)
    write_record(root, candidate, status="rejected")
    return tag


@under_run_lock
def rollback(project: Project, version_text: str | None, by: str, note: str = "",
             identity: dict | None = None) -> Promotion:
    """Restore a version's code, params, data, model and environment lock into the working tree and
    assign it to production again; the working state is first registered as a version if it is new."""
    root = project.root
    gitrepo.require_repo(root)
    config = load_config(project)
    model = config.model_name
    _require_text(by, "--by", "the name of the person rolling back")
    current = registry.current(root, model)
    if version_text:
        target = registry.find_version(root, model, version_text)
    else:
        target = _previous_prod(root, model, current)
    gitrepo.require_unlocked_index(root, "nothing was rolled back")
    _refuse_unsaved(root)
    workspace.require_cached(root, target.commit)
    when = registry.now()
    kept = _keep_if_unregistered(root, model, by, when, f"rollback to {target.version}")
    record = {"action": "rollback", "by": by, "when": when, "note": note,
              "from": current.version if current else None, "to": target.version,
              "kept": kept.version if kept else None, "model_path": config.model_path, **_identity(identity)}
    mismatched = _restore(root, target)
    if mismatched:
        raise NbprodError(f"restored outputs differ from {target.version}'s dvc.lock: {', '.join(mismatched)}",
                          "dvc.lock", fix="run 'dvc pull' and 'nbprod rollback' again")
    tag = registry.assign(root, model, target, record)
    return Promotion(target, tag, kept, current.version if current else None)


def _previous_prod(root: Path, model: str, current: registry.Version | None) -> registry.Version:
    for event in reversed(registry.assignments(root, model)):
        if event.version and (current is None or event.version != current.version):
            return registry.find_version(root, model, event.version)
    raise NbprodError(f"model {model!r} has no earlier production version to roll back to", "git tags",
                      fix="name a version: nbprod rollback VERSION (see 'nbprod history')")


def _keep_if_unregistered(root: Path, model: str, by: str, when: str, reason: str) -> registry.Version | None:
    tree = workspace.state_tree(root)
    for version in registry.versions(root, model):
        if workspace.tree_of(root, version.commit) == tree:
            return None
    commit = gitrepo.commit_tree(root, tree, gitrepo.git(root, "rev-parse", "HEAD"),
                                 f"nbprod: working state kept before {reason}")
    return registry.register(root, model, commit, {"action": "kept", "by": by, "when": when,
                                                    "note": f"working state kept before {reason}"})


def _refuse_unsaved(root: Path) -> None:
    lost = workspace.unsaved_outputs(root)
    if lost:
        raise NbprodError(f"{lost[0]} changed since the last run and is not in the DVC cache; restoring would lose it",
                          lost[0], fix="run 'nbprod run' (or 'dvc commit') first, then try again")


def _restore(root: Path, version: registry.Version) -> list[str]:
    return workspace.restore(root, version.commit)


def _schema_hashes(root: Path, commit: str) -> dict[str, str]:
    """SHA-256 of each data contract (schema file) the version's stages validate against."""
    import hashlib

    from ..contracts.schemas import is_schema_path
    from ..core.dvccache import parse_lock

    stages = parse_lock(gitrepo.show_file(root, commit, "dvc.lock"))
    hashes = {}
    for path in sorted({dep for stage in stages.values() for dep in stage.deps if is_schema_path(dep)}):
        data = gitrepo.show_file(root, commit, path)
        if data is not None:
            hashes[path] = hashlib.sha256(data).hexdigest()
    return hashes


def _identity(identity: dict | None) -> dict:
    return {"identity": identity} if identity else {}


def _require_text(value: str | None, option: str, what: str) -> None:
    if not value or not value.strip():
        raise NbprodError(f"{option} is empty", option, fix=f"give {option} with {what}")
