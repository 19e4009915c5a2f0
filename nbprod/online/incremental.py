"""``nbprod learn``: the production version's model, updated on the labelled feedback of its own
window, becomes a candidate version (a commit whose dvc.lock names the new model bytes, put in the
DVC cache), gated like any other and approved by policy or left for a human decision.

The candidate commit's parent is the production version's commit; only the model output of its
dvc.lock changes, so its code, params, data and the stages that scored the parent stay as they were
(``dvc status`` shows those scoring stages as stale: they describe the parent's model).
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import yaml

from nbprod.core.errors import NbprodError
from nbprod.core.project import Project

POLICY_BY = "nbprod learn (policy auto_approve)"


@dataclass
class Learned:
    candidate: object                   # lifecycle.candidates.Candidate
    decision: str                       # "approved by policy as vX" | "held for a human: REASONS"
    approved: object | None = None      # lifecycle.decisions.Promotion when approved by policy


def learn(project: Project, note: str = "", echo=lambda text: None) -> Learned:
    """Learn, register the candidate, then decide by policy (the approval takes the run lock itself)."""
    from nbprod.online.settings import load_online_settings

    settings = load_online_settings(project.root)
    candidate = _learn_candidate(project, note, settings, echo)
    return _decide(project, candidate, settings)


def _parent_since(root: Path, model: str, version: str) -> datetime:
    """When ``version`` last went into production: its window starts there."""
    from nbprod.lifecycle import registry

    events = [e for e in registry.assignments(root, model) if e.version == version]
    when = events[-1].record.get("when") or events[-1].date
    return datetime.fromisoformat(when)


def _learn_candidate(project: Project, note: str, settings, echo):
    from nbprod.lifecycle.exclusive import under_run_lock

    return under_run_lock(_learn_locked)(project, note, settings, echo)


def _learn_locked(project: Project, note: str, settings, echo):
    from nbprod.core import gitrepo
    from nbprod.core.dvccache import cache_dir
    from nbprod.lifecycle import registry
    from nbprod.lifecycle.candidates import REF_PREFIX, Candidate, candidate_ids, write_record
    from nbprod.lifecycle.gates import check_gates, gates_passed
    from nbprod.lifecycle.settings import load_config
    from nbprod.online.learner import drift_share, learner_of, prequential, quality
    from nbprod.online.window import labelled_window
    from nbprod.serve.loaded import first_frame
    from nbprod.serve.loader import artifact_files, load_model, resolve

    root = project.root
    gitrepo.require_repo(root)
    config = load_config(project)
    parent = registry.current(root, config.model_name)
    if parent is None:
        raise NbprodError(f"nothing is in production for model {config.model_name!r}", "git tags",
                          fix="approve a first version (nbprod retrain, nbprod approve) before 'nbprod learn'")
    info = resolve(root, config.model_name)
    model = load_model(root, info)
    learner_of(model, info.model_path)          # refuse a model that cannot learn before reading any log
    features = [str(f) for f in getattr(model, "feature_names_in_", [])]
    if not features:
        raise NbprodError(f"the model of {info.tag} has no feature_names_in_ (trained without column names)",
                          info.model_path, fix="train it on a DataFrame so served rows can be put in its columns")
    since = _parent_since(root, config.model_name, parent.version)
    window = labelled_window(root, parent.version, since, features)
    if window.rows < settings.min_rows:
        raise NbprodError(f"{parent.version} has {window.rows} labelled row(s) with logged inputs since it went "
                          f"into production ({since.isoformat()}); min_rows is {settings.min_rows}", "pyproject.toml",
                          fix="wait for more outcomes, or lower [tool.nbprod.online] min_rows")
    _refuse_relearning(root, config.model_name, parent.version, window.sha256)
    echo(f"learning from {window.rows} labelled rows of {parent.version} ({window.first} to {window.last})")
    learned = prequential(model, window.frame, window.outcome, settings.batch_size, info.model_path)
    classes = getattr(learner_of(model, info.model_path)[0], "classes_", None)
    live = {f"live.{k}": v for k, v in quality(_typed(window.outcome, classes), _typed(window.prediction, classes),
                                                   window.probabilities, classes).items()}
    scored = _holdout_scores(root, info, features, model, learned.model, classes)
    held_out = {"holdout": scored[0]} if scored else {}
    parent_held_out = {"holdout": scored[1]} if scored else {}
    gates = check_gates([*config.gates, *settings.gates],
                        {"online": _gate_view(learned.metrics, "online."), **held_out},
                        {"live": _gate_view(live, "live."), **parent_held_out})
    training = first_frame(root, info.training, features)
    share, drifted = drift_share(training, window.frame) if training is not None else (1.0, ["(no training data)"])
    model_md5, files = _store_model(cache_dir(root), info.model_md5,
                                    artifact_files(cache_dir(root), info.model_path, info.model_md5), learned.model)
    number = max((int(i[1:]) for i in candidate_ids(root) if i[1:].isdigit()), default=0) + 1
    candidate_id = f"c{number}"
    record = {"candidate": candidate_id, "model": config.model_name, "created": registry.now(), "base": parent.commit,
              "kind": "online", "note": note,
              "parent": {"version": parent.version, "commit": parent.commit, "model_md5": info.model_md5},
              "window": {**window.describe(), "since": since.isoformat(), "batch_size": settings.batch_size,
                         "batches": learned.batches},
              "metrics": {"online": learned.metrics, **held_out}, "parent_live": live,
              "parent_holdout": scored[1] if scored else None,
              "champion": {"version": parent.version, "commit": parent.commit,
                           "metrics_on_holdout": {"live": live, **parent_held_out},
                           "scored": "its live figures on the same window" + (
                               " and its own holdout" if scored else ""), "same_holdout": True},
              "drift": {"share": share, "features": drifted, "max_drift_share": settings.max_drift_share},
              "gates": [g.to_dict() for g in gates], "gates_passed": gates_passed(gates),
              "model_path": info.model_path, "model_md5": model_md5,
              "environment": parent.record.get("environment")}
    commit = _version_commit(root, parent.commit, info.model_path, model_md5, files,
                             f"nbprod learn: candidate {candidate_id} of {config.model_name}, {parent.version} "
                             f"updated on its feedback\n\n{registry.RECORD_MARKER}\n"
                             f"{json.dumps(record, indent=1, sort_keys=True)}\n")
    gitrepo.set_ref(root, REF_PREFIX + candidate_id, commit)
    candidate = Candidate(candidate_id, commit, record)
    write_record(root, candidate)
    return candidate


def _holdout_scores(root: Path, info, features: list[str], parent_model, model, classes) -> tuple[dict, dict] | None:
    """``holdout.*`` figures of the learned model and of the parent on the parent's own holdout (the
    clean rows its scoring stage read), when it has exactly one column besides the features (the label)."""
    from nbprod.online.learner import quality
    from nbprod.serve.loaded import first_frame

    frame = first_frame(root, info.holdout, features)
    labels = [c for c in frame.columns if c not in features] if frame is not None else []
    if len(labels) != 1 or not len(frame):
        return None
    truth = _typed(frame[labels[0]].tolist(), classes)

    def figures(which) -> dict:
        proba = which.predict_proba(frame[features]).tolist() if hasattr(which, "predict_proba") else None
        done = quality(truth, which.predict(frame[features]).tolist(), proba, classes)
        return {f"holdout.{k}": v for k, v in done.items()}

    return figures(model), figures(parent_model)


def _refuse_relearning(root: Path, model: str, version: str, sha256: str) -> None:
    """The same parent and the same rows give the same candidate again: name the one waiting instead."""
    from nbprod.lifecycle.candidates import candidate_ids, load_candidate
    from nbprod.lifecycle.registry import rejections

    rejected = {e.commit for e in rejections(root, model)}
    for candidate_id in candidate_ids(root):
        candidate = load_candidate(root, candidate_id)
        r = candidate.record
        if r.get("kind") == "online" and r.get("parent", {}).get("version") == version and \
                r.get("window", {}).get("sha256") == sha256 and candidate.commit not in rejected:
            raise NbprodError(f"candidate {candidate_id} already learned these {r['window']['rows']} rows of "
                              f"{version} (window sha256 {sha256[:12]})", "nbprod learn",
                              fix=f"decide on it (nbprod approve {candidate_id} --by NAME, or nbprod reject "
                                  f"{candidate_id}), or wait for new outcomes")


def _typed(values: list, classes) -> list:
    if classes is None:
        return values
    kind = type(classes[0].item() if hasattr(classes[0], "item") else classes[0])
    return [kind(v) for v in values]


def _gate_view(figures: dict, prefix: str) -> dict:
    """A gate may name ``accuracy`` or ``online.accuracy``: both find the learned model's figure (and the
    parent's live one as its champion base)."""
    view = {k.removeprefix(prefix): v for k, v in figures.items()}
    view.update({f"online.{k}": v for k, v in list(view.items())})
    return view


def _store_model(cache: Path, parent_md5: str, files: dict[str, bytes], model) -> tuple[str, dict[str, bytes]]:
    """Put the updated model's bytes (and, for a folder, its listing) in the DVC cache; returns the hash
    dvc.lock gives the output and its files."""
    import joblib

    from nbprod.core.dvccache import object_path

    name = next(n for n in files if n.endswith((".joblib", ".pkl", ".pickle")))
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    files = {**files, name: buffer.getvalue()}
    entries = []
    for rel, data in files.items():
        md5 = hashlib.md5(data).hexdigest()
        _store(object_path(cache, md5), data)
        entries.append({"md5": md5, "relpath": rel})
    if not parent_md5.endswith(".dir"):
        return entries[0]["md5"], files
    entries.sort(key=lambda e: e["relpath"])
    listing = json.dumps(entries, sort_keys=True).encode()
    model_md5 = hashlib.md5(listing).hexdigest() + ".dir"
    _store(object_path(cache, model_md5), listing)
    return model_md5, files


def _version_commit(root: Path, parent_commit: str, model_path: str, model_md5: str, files: dict[str, bytes],
                    message: str) -> str:
    """The parent's tree with dvc.lock naming the new model output, committed on the parent (through a
    private index: the user's index and working tree are untouched)."""
    from nbprod.core import gitrepo

    lock = yaml.safe_load(gitrepo.show_file(root, parent_commit, "dvc.lock"))
    for stage in lock["stages"].values():
        for out in stage.get("outs") or []:
            if out.get("path") == model_path:
                out["md5"] = model_md5
                out["size"] = sum(len(d) for d in files.values())
                if "nfiles" in out:
                    out["nfiles"] = len(files)
    text = yaml.safe_dump(lock, sort_keys=False)
    with tempfile.TemporaryDirectory() as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        gitrepo.git(root, "read-tree", parent_commit, env=env)
        blob = gitrepo.git(root, "hash-object", "-w", "--stdin", input=text)
        gitrepo.git(root, "update-index", "--cacheinfo", f"100644,{blob},dvc.lock", env=env)
        tree = gitrepo.git(root, "write-tree", env=env)
    return gitrepo.commit_tree(root, tree, parent_commit, message)


def _store(path: Path, data: bytes) -> None:
    if path.is_file():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.chmod(0o444)  # DVC keeps cache objects read-only
    tmp.replace(path)


def held_reasons(record: dict, settings) -> list[str]:
    """Why the policy may not approve (empty: it may)."""
    reasons = []
    if not settings.auto_approve:
        reasons.append("[tool.nbprod.online] auto_approve is off")
    failed = [g["gate"] for g in record["gates"] if g.get("passed") is False]
    if failed:
        reasons.append("failed gates: " + "; ".join(failed))
    if not record["gates"]:
        reasons.append("no gates are set ([tool.nbprod.gates]): the policy approves only gated candidates")
    drift = record["drift"]
    if drift["share"] > settings.max_drift_share:
        reasons.append(f"drift since {record['parent']['version']}: {drift['share']:.0%} of features "
                       f"({', '.join(drift['features'][:5])}) above max_drift_share {settings.max_drift_share:.0%}")
    return reasons


def _decide(project: Project, candidate, settings) -> Learned:
    from nbprod.lifecycle.decisions import approve

    reasons = held_reasons(candidate.record, settings)
    if reasons:
        return Learned(candidate, "held for a human: " + "; ".join(reasons))
    policy = {"rule": "[tool.nbprod.online] auto_approve", "gates": candidate.record["gates"],
              "drift_share": candidate.record["drift"]["share"], "max_drift_share": settings.max_drift_share,
              "window": candidate.record["window"], "parent": candidate.record["parent"]["version"]}
    done = approve(project, candidate.id, POLICY_BY, note="approved by policy: every gate passed and drift "
                   "is within max_drift_share", policy=policy)
    return Learned(candidate, f"approved by policy as {done.version.version}", done)
