"""Which model version to serve and its verified bytes: the version comes from the registry tags
(``MODEL#prod#N``, or one named by the operator), the artifact from the DVC cache by the hash that
approval recorded, checked before anything is unpickled. Also the version's training data (for the
request contract) and holdout (for the smoke prediction), read from the cache the same way.

Trust: unpickling runs code. Only cache entries named by a registry tag's dvc.lock are unpickled,
and only when their bytes hash to that name, so whoever may create tags in this repository (and
write its DVC cache) decides what code the server runs.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import NbprodError
from ..core.project import STAGES_DIR
from ..core import gitrepo
from ..lifecycle import registry
from ..core.dvccache import cache_dir, object_path, parse_lock

SCHEMAS_DIR = "schemas"
BUNDLE_SUBJECT = "Unpacked nbprod bundle of "   # the first commit nbprod unpack writes
PULL_FIX = "run 'dvc pull' (or 'dvc fetch') so the cache holds this version, then start again"


@dataclass(frozen=True)
class DataRef:
    path: str
    md5: str


@dataclass
class ModelVersion:
    """A registered version as serve sees it: where its model is and what it was built from."""
    name: str
    version: str
    commit: str
    tag: str
    model_path: str
    model_md5: str
    training: list[DataRef] = field(default_factory=list)
    holdout: list[DataRef] = field(default_factory=list)
    schemas: list[DataRef] = field(default_factory=list)  # declared schemas of the training data (deps)
    record: dict = field(default_factory=dict)          # the registration tag's record (approval)
    assignment: dict = field(default_factory=dict)      # the prod assignment's record, when in prod

    def describe(self) -> dict:
        approval = {k: self.record.get(k) for k in ("action", "by", "when", "note", "candidate", "override")
                    if k in self.record}
        assigned = {k: self.assignment.get(k) for k in ("action", "by", "when", "note", "from", "to")
                    if k in self.assignment}
        return {"name": self.name, "version": self.version, "commit": self.commit, "tag": self.tag,
                "model": {"path": self.model_path, "md5": self.model_md5},
                "training_data": [{"path": d.path, "md5": d.md5} for d in self.training],
                "holdout": [{"path": d.path, "md5": d.md5} for d in self.holdout],
                "schemas": [{"path": d.path, "md5": d.md5} for d in self.schemas],
                "metrics": self.record.get("metrics", {}), "approval": approval, "assignment": assigned}


def prod_tags(root: Path, model: str) -> tuple[str, ...]:
    """The names of the model's tags: one cheap git call, compared between polls to see a change."""
    from gto.constants import name_to_tag

    out = gitrepo.git(root, "for-each-ref", "--format=%(refname)", f"refs/tags/{name_to_tag(model)}*")
    return tuple(sorted(out.split()))


def resolve(root: Path, model: str, version_text: str | None = None) -> ModelVersion:
    """The version in production (or ``version_text``) with its model hash, checked against its dvc.lock."""
    gitrepo.require_repo(root)
    assignment: dict = {}
    if version_text:
        version = registry.find_version(root, model, version_text)
    else:
        history = registry.assignments(root, model)
        version = registry.current(root, model)
        if version is None:
            bundle = _unpacked_bundle(root, model)
            if bundle is not None:
                return bundle
            raise NbprodError(f"nothing is in production for model {model!r}", "git tags",
                              fix="approve a candidate (nbprod approve ID --by NAME) or serve one with --version")
        assignment = history[-1].record
    return _at_commit(root, model, version.version, version.commit, version.tag, version.record, assignment)


def _at_commit(root: Path, model: str, version: str, commit: str, tag: str, record: dict,
               assignment: dict) -> ModelVersion:
    lock = parse_lock(gitrepo.show_file(root, commit, "dvc.lock"), f"dvc.lock of {tag}")
    model_path = record.get("model_path") or assignment.get("model_path") or _config_model_path(root)
    producer = next((s for s in lock.values() if model_path in s.outs), None)
    if producer is None:
        raise NbprodError(f"{tag}'s dvc.lock has no output {model_path}", f"dvc.lock of {tag}",
                          fix="set [tool.nbprod] model to the model's output, or serve another version")
    locked = producer.outs[model_path]
    recorded = record.get("model_md5")
    if recorded and recorded != locked:
        raise NbprodError(f"{tag} records model hash {recorded} but its dvc.lock says {locked}",
                          f"git tag {tag}", fix="the tag or dvc.lock was altered; serve another version")
    holdout = [DataRef(p, h) for s in lock.values() if model_path in s.deps
               for p, h in s.deps.items() if p != model_path and not p.startswith(STAGES_DIR + "/")]
    training = [DataRef(p, h) for p, h in producer.deps.items()
                if not p.startswith(STAGES_DIR + "/") and not _is_schema(p)]
    # The schema the training data was validated against: a dep of the training stage, or of the
    # stage that wrote the training data (where nbprod.validate usually runs).
    schemas = [DataRef(p, h) for p, h in producer.deps.items() if _is_schema(p)]
    if not schemas:
        paths = {d.path for d in training}
        schemas = [DataRef(p, h) for s in lock.values() if paths & set(s.outs)
                   for p, h in s.deps.items() if _is_schema(p)]
    return ModelVersion(model, version, commit, tag, model_path, locked, training, _unique(holdout),
                        _unique(schemas), record, assignment)


def _is_schema(path: str) -> bool:
    return path.endswith((".yaml", ".yml")) and SCHEMAS_DIR in Path(path).parts[:-1]


def _unpacked_bundle(root: Path, model: str) -> ModelVersion | None:
    """A project made by ``nbprod unpack`` has no registry tags: serve the bundled version (its
    first commit, whose dvc.lock names the model in this project's own cache)."""
    if registry.versions(root, model):
        return None
    subject = gitrepo.git(root, "log", "-1", "--format=%s", "HEAD")
    if not subject.startswith(BUNDLE_SUBJECT):
        return None
    source = subject[len(BUNDLE_SUBJECT):]
    name = source.split()[0]
    version = name.split("@", 1)[1] if name.startswith(f"{model}@") else "unregistered"
    from ..lifecycle.settings import metrics_files, read_metrics

    commit = gitrepo.git(root, "rev-parse", "HEAD")
    files = metrics_files(root, (gitrepo.show_file(root, commit, "dvc.yaml") or b"").decode() or None)
    metrics = read_metrics({f: gitrepo.show_file(root, commit, f) for f in files})
    record = {"action": "bundle", "note": f"unpacked bundle of {source}", "metrics": metrics}
    return _at_commit(root, model, version, commit, f"bundle of {source}", record, {})


def _unique(refs: list[DataRef]) -> list[DataRef]:
    return list(dict.fromkeys(refs))


def _config_model_path(root: Path) -> str:
    from ..lifecycle.settings import load_config
    from ..core.project import load_project

    return load_config(load_project(root)).model_path


def verified_bytes(cache: Path, md5: str, what: str) -> bytes:
    """A cache object's bytes, refused unless they hash to ``md5`` (the name the registry gave)."""
    path = object_path(cache, md5)
    if not path.is_file():
        raise NbprodError(f"the DVC cache lacks {what} ({md5})", path.parent, fix=PULL_FIX)
    data = path.read_bytes()
    if hashlib.md5(data).hexdigest() != md5.removesuffix(".dir"):
        raise NbprodError(f"the DVC cache copy of {what} does not match its hash {md5}", path,
                          fix="the cache is corrupt or was altered: remove that file and run 'dvc pull'")
    return data


def artifact_files(cache: Path, path: str, md5: str) -> dict[str, bytes]:
    """Every file of an output (a file, or a folder's listing) as verified bytes, by relative name."""
    if not md5.endswith(".dir"):
        return {Path(path).name: verified_bytes(cache, md5, path)}
    listing = json.loads(verified_bytes(cache, md5, f"the listing of {path}"))
    return {e["relpath"]: verified_bytes(cache, e["md5"], f"{path}/{e['relpath']}") for e in listing}


def load_model(root: Path, info: ModelVersion) -> object:
    """Unpickle the version's model from verified cache bytes (joblib, as nbprod's data passing stores it)."""
    import joblib

    files = artifact_files(cache_dir(root), info.model_path, info.model_md5)
    name = next((n for n in files if n.endswith((".joblib", ".pkl", ".pickle"))), None)
    if name is None:
        raise NbprodError(f"{info.model_path} of {info.tag} holds no .joblib or .pkl file ({', '.join(files)})",
                          info.model_path, fix="serve a model saved by an nbprod stage (joblib)")
    return joblib.load(io.BytesIO(files[name]))


def read_frame(root: Path, ref: DataRef):
    """A Parquet, Arrow or CSV data file (or the first such file of a folder) as a DataFrame, from the cache."""
    import pandas as pd

    files = artifact_files(cache_dir(root), ref.path, ref.md5)
    for name, data in files.items():
        if name.endswith(".parquet"):
            return pd.read_parquet(io.BytesIO(data))
        if name.endswith(".arrow"):  # a DataFrame passed between stages (nbprod.artifacts)
            return pd.read_feather(io.BytesIO(data))
        if name.endswith(".csv"):
            return pd.read_csv(io.BytesIO(data))
    return None


def schema_file(root: Path, info: ModelVersion) -> tuple[str, bytes] | None:
    """The declared schema of the training data at the version's commit, checked against the hash
    dvc.lock recorded for it; else ``schemas/<training data stem>.yaml`` if the commit has one."""
    for ref in info.schemas:
        data = gitrepo.show_file(root, info.commit, ref.path)
        if data is None:
            continue
        if ref.md5 and hashlib.md5(data).hexdigest() != ref.md5:
            raise NbprodError(f"{ref.path} at {info.tag} does not match the hash its dvc.lock recorded",
                              ref.path, fix="rerun the pipeline (the schema changed after it ran), or serve "
                                            "another version")
        return ref.path, data
    for ref in info.training:
        stem = Path(ref.path).name.split(".")[0]
        for suffix in (".yaml", ".yml"):
            rel = f"{SCHEMAS_DIR}/{stem}{suffix}"
            data = gitrepo.show_file(root, info.commit, rel)
            if data is not None:
                return rel, data
    return None
