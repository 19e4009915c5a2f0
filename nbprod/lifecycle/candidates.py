"""``nbprod retrain``: run the pipeline as a candidate in a git worktree (the user's files untouched),
score it on the champion's holdout, check the gates, and leave it waiting for a human decision.

A candidate is a commit (parent: HEAD) kept under ``refs/nbprod/candidates/ID``; its outputs are in the
project's DVC cache, shared with the worktree. The record and comparison report are written to
``.nbprod/candidates/ID/`` (ignored by git).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..core.errors import NbprodError
from ..execution.events import EVENTS_ENV, emit
from ..core.proc import tool, tool_env
from ..core.project import CANDIDATES_DIR, STAGES_DIR, Project
from ..core.stagerun import EventKind
from . import environment, registry
from ..core import gitrepo
from .settings import LifecycleConfig, load_config, metrics_files, read_dvc_yaml, read_metrics
from ..core.dvccache import cache_dir, dvc, materialize, parse_lock
from .exclusive import under_run_lock
from .gates import check_gates, gates_passed

REF_PREFIX = "refs/nbprod/candidates/"


@dataclass
class Candidate:
    id: str
    commit: str
    record: dict

    @property
    def passed(self) -> bool:
        return bool(self.record.get("gates_passed"))


def candidate_ids(root: Path) -> list[str]:
    out = gitrepo.git(root, "for-each-ref", "--format=%(refname)", REF_PREFIX)
    ids = [line[len(REF_PREFIX):] for line in out.splitlines() if line]
    return sorted(ids, key=lambda i: int(i[1:]) if i[1:].isdigit() else 0)


def load_candidate(root: Path, candidate_id: str) -> Candidate:
    commit = gitrepo.rev_parse(root, REF_PREFIX + candidate_id)
    if commit is None:
        known = ", ".join(candidate_ids(root)) or "none yet; run 'nbprod retrain'"
        raise NbprodError(f"no candidate {candidate_id!r} (candidates: {known})", CANDIDATES_DIR,
                          fix="pass one of the listed candidate ids")
    message = gitrepo.git(root, "log", "-1", "--format=%B", commit)
    return Candidate(candidate_id, commit, registry.parse_tag_message(message))


def parse_overrides(root: Path, assignments: list[str]) -> dict[str, object]:
    """``section.key=value`` pairs for params.yaml; values are YAML scalars."""
    params = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8")) if (root / "params.yaml").is_file() \
        else {}
    result = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        section, dot, name = key.partition(".")
        if not sep or not dot or not isinstance(params, dict) or name not in (params.get(section) or {}):
            raise NbprodError(f"--set {item!r} does not name a parameter in params.yaml", "params.yaml",
                              fix="write --set SECTION.KEY=VALUE with a key listed in params.yaml, e.g. model.C=0.5")
        result[key] = yaml.safe_load(value)
    return result


@under_run_lock
def retrain(project: Project, overrides: list[str] | None = None, note: str = "",
            keep_worktree: bool = False, echo=lambda text: None) -> Candidate:
    """Progress goes to ``echo`` and, inside a run's events file (``NBPROD_EVENTS``, as the JupyterLab
    panel starts it), as ``retrain_step`` events; the candidate's pipeline run writes its stage events there."""
    echo = _announcing(echo)
    root = project.root
    gitrepo.require_repo(root)
    config = load_config(project)
    values = parse_overrides(root, overrides or [])
    champion = registry.current(root, config.model_name)
    existing = candidate_ids(root)
    number = max((int(i[1:]) for i in existing if i[1:].isdigit()), default=0) + 1
    candidate_id = f"c{number}"
    base = gitrepo.git(root, "rev-parse", "HEAD")
    work = gitrepo.git_dir(root) / gitrepo.PRIVATE_DIR / "worktrees" / candidate_id
    if work.exists():
        gitrepo.remove_worktree(root, work)
        shutil.rmtree(work, ignore_errors=True)
    echo(f"candidate {candidate_id}: preparing a worktree from {base[:10]} and your working changes")
    gitrepo.add_worktree(root, work, base)
    ok = False
    try:
        overlaid = _overlay(root, work)
        _share_cache(root, work)
        data_sources = _current_data(root, work)
        if values:
            _set_params(work / "params.yaml", values)
        environment.write_capture(work)
        echo(f"candidate {candidate_id}: running the pipeline")
        _run(work, candidate_id)
        candidate_metrics = _metrics(work)
        champion_info = None
        champion_metrics = None
        if champion is not None:
            champion_info, champion_metrics = _score_champion(root, work, config, champion, candidate_id, echo)
            champion_info["metrics_on_holdout"] = champion_metrics
        results = check_gates(config.gates, candidate_metrics, champion_metrics)
        passed = gates_passed(results)
        lock = parse_lock((work / "dvc.lock").read_text(encoding="utf-8"))
        model_md5 = next((s.outs[config.model_path] for s in lock.values() if config.model_path in s.outs), None)
        env = json.loads((work / environment.CAPTURE_FILE).read_text(encoding="utf-8"))
        record = {"candidate": candidate_id, "model": config.model_name, "created": registry.now(), "base": base,
                  "note": note, "params_set": values, "files_from_working_tree": overlaid, "data_sources": data_sources,
                  "metrics": candidate_metrics, "model_path": config.model_path, "model_md5": model_md5,
                  "champion": champion_info, "gates": [r.to_dict() for r in results], "gates_passed": passed,
                  "environment": {"python": env["python"], "packages_sha256": env["packages_sha256"]}}
        gitrepo.git(work, "add", "-A", "--", ".")
        gitrepo.git(work, *gitrepo.identity_args(work), "commit", "-q", "--allow-empty", "-F", "-",
                    input=f"nbprod candidate {candidate_id} of {config.model_name}\n\n"
                          f"{registry.RECORD_MARKER}\n{json.dumps(record, indent=1, sort_keys=True)}\n")
        commit = gitrepo.git(work, "rev-parse", "HEAD")
        gitrepo.set_ref(root, REF_PREFIX + candidate_id, commit)
        ok = True
    finally:
        if ok and not keep_worktree:
            gitrepo.remove_worktree(root, work)
    candidate = Candidate(candidate_id, commit, record)
    write_record(root, candidate)
    emit(EventKind.RETRAIN_END, candidate=candidate_id, gates_passed=passed)
    return candidate


def _announcing(echo):
    def both(text: str) -> None:
        echo(text)
        emit(EventKind.RETRAIN_STEP, message=text)
    return both


def write_record(root: Path, candidate: Candidate, status: str | None = None) -> Path:
    from .candidate_report import render_comparison

    folder = root / CANDIDATES_DIR / candidate.id
    folder.mkdir(parents=True, exist_ok=True)
    ignore = root / CANDIDATES_DIR / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# nbprod candidate records and reports; the candidates themselves are git refs\n*\n")
    record = dict(candidate.record, commit=candidate.commit)
    if status:
        record["status"] = status
    (folder / "candidate.json").write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    report = folder / "comparison.html"
    report.write_text(render_comparison(record), encoding="utf-8")
    return report


def _overlay(root: Path, work: Path) -> list[str]:
    """Copy the user's uncommitted changes into the worktree, so the candidate is the current state."""
    copied = []
    for rel in gitrepo.changed_paths(root):
        if rel.startswith(CANDIDATES_DIR + "/"):
            continue
        source = root / rel
        if source.is_file():
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, work / rel)
            copied.append(rel)
    for rel in gitrepo.deleted_paths(root):
        (work / rel).unlink(missing_ok=True)
        copied.append(rel)
    return copied


def _current_data(root: Path, work: Path) -> list[str]:
    """Data added with ``dvc add`` is ignored by git, so the worktree lacks it: copy the user's current
    files in and record them (``dvc commit``), so the candidate trains on the data as it is now."""
    sources = []
    for dvc_file in gitrepo.git(root, "ls-files", "-z", "--", "*.dvc").split("\0"):
        if not dvc_file or not (root / dvc_file).is_file():
            continue
        try:
            outs = (yaml.safe_load((root / dvc_file).read_text(encoding="utf-8")) or {}).get("outs") or []
        except yaml.YAMLError:
            raise NbprodError("is not valid YAML", dvc_file, fix="restore it with git or 'dvc add' the data again") \
                from None
        for out in outs:
            rel = (Path(dvc_file).parent / str(out.get("path", ""))).as_posix()
            source, target = root / rel, work / rel
            if source.is_dir():
                shutil.rmtree(target, ignore_errors=True)
                shutil.copytree(source, target)
            elif source.is_file():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)
            else:
                continue
            sources.append(dvc_file)
    if sources:
        dvc(work, "commit", "--force", "--quiet", *sorted(set(sources)))
    return sorted(set(sources))


def _share_cache(root: Path, work: Path) -> None:
    """The worktree uses the project's DVC cache: unchanged stages come from DVC's run cache, and the
    candidate's outputs are kept where approve and rollback find them."""
    local = root / ".dvc" / "config.local"
    text = local.read_text(encoding="utf-8") if local.is_file() else ""
    if "[cache]" not in text:
        text += f"\n[cache]\n    dir = {cache_dir(root)}\n"
    (work / ".dvc" / "config.local").write_text(text, encoding="utf-8")


def _set_params(path: Path, values: dict) -> None:
    from ruamel.yaml import YAML

    yaml = YAML()
    doc = yaml.load(path.read_text(encoding="utf-8"))
    for key, value in values.items():
        section, _, name = key.partition(".")
        doc[section][name] = value
    with open(path, "w", encoding="utf-8") as handle:
        yaml.dump(doc, handle)


def _run(work: Path, candidate_id: str) -> None:
    env = tool_env()
    events = env.pop(EVENTS_ENV, None)
    done = subprocess.run([tool("nbprod"), "run", "--no-report",
                           *(["--events", events] if events else [])], cwd=work,
                          capture_output=True, text=True, env=env)
    if done.returncode != 0:
        lines = [l for l in done.stderr.splitlines() if l.startswith("nbprod:")]
        raise NbprodError(f"candidate {candidate_id} failed: {lines[-1] if lines else done.returncode}", work,
                          fix="fix the notebook or data, then run 'nbprod retrain' again (the worktree is kept "
                              "for inspection)")


def _metrics(root: Path) -> dict[str, dict]:
    files = metrics_files(root)
    return read_metrics({f: (root / f).read_bytes() if (root / f).is_file() else None for f in files})


def _holdout(lock_text: bytes | str | None, model_path: str) -> dict[str, dict]:
    """For each stage that reads the model: its other data inputs (the holdout) and their hashes."""
    lock = parse_lock(lock_text)
    result = {}
    for stage in lock.values():
        if model_path in stage.deps:
            result[stage.name] = {p: h for p, h in stage.deps.items()
                                  if p != model_path and not p.startswith(STAGES_DIR + "/")}
    return result


def _score_champion(root: Path, work: Path, config: LifecycleConfig, champion: registry.Version,
                    candidate_id: str, echo) -> tuple[dict, dict]:
    """The champion's metrics on the candidate's holdout: its recorded ones when the holdout data is
    byte-identical, otherwise the champion's model re-scored by the candidate's scoring stages."""
    champion_lock = gitrepo.show_file(root, champion.commit, "dvc.lock")
    yaml_text = gitrepo.show_file(root, champion.commit, "dvc.yaml")
    theirs = _holdout(champion_lock, config.model_path)
    ours = _holdout((work / "dvc.lock").read_bytes(), config.model_path)
    info = {"version": champion.version, "commit": champion.commit, "holdout": ours}
    files = metrics_files(root, yaml_text.decode() if yaml_text else None)
    if ours and theirs == ours:
        info["same_holdout"] = True
        info["scored"] = "recorded metrics (identical holdout data)"
        return info, read_metrics({f: gitrepo.show_file(root, champion.commit, f) for f in files})
    info["same_holdout"] = False
    info["scored"] = "re-scored on the candidate's holdout"
    echo(f"candidate {candidate_id}: holdout data changed; re-scoring champion {champion.version} on it")
    champion_model = next((s.outs[config.model_path] for s in parse_lock(champion_lock).values()
                           if config.model_path in s.outs), None)
    if champion_model is None:
        raise NbprodError(f"champion {champion.version} has no {config.model_path} in its dvc.lock", "pyproject.toml",
                          fix="check [tool.nbprod] model, or register a version that has this output")
    saved = {f: (work / f).read_bytes() for f in metrics_files(work) if (work / f).is_file()}
    cache = cache_dir(root)
    materialize(cache, work, config.model_path, champion_model)
    scoring = list(ours)
    env = tool_env()
    env.pop("NBPROD_EVENTS", None)
    for stage in scoring:
        done = subprocess.run([tool("nbprod"), "exec", stage], cwd=work,
                              capture_output=True, text=True, env=env)
        if done.returncode != 0:
            raise NbprodError(f"re-scoring champion {champion.version} with stage {stage} failed", work,
                              fix="check that the champion's model still loads in the current code")
    rescored = read_metrics({f: gitrepo.show_file(root, champion.commit, f) for f in files})
    doc = read_dvc_yaml(work)
    fresh = _metrics(work)
    for stage in scoring:
        for entry in doc.get("stages", {}).get(stage, {}).get("metrics", []) or []:
            path = next(iter(entry)) if isinstance(entry, dict) else str(entry)
            rescored[path] = fresh.get(path, {})
    for f, data in saved.items():
        (work / f).write_bytes(data)
    dvc(work, "checkout", "--force", "--quiet")
    return info, rescored
