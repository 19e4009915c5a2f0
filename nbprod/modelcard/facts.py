"""What a model card says about one registered version, read from its registry tag records, its
commit (dvc.lock, params.yaml, model-card.md, requirements.lock) and the DVC cache (training and
evaluation data). Nothing comes from the working tree, so an old version's card can be made after
later versions are in production."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..core import gitrepo
from ..lifecycle import registry
from ..core.dvccache import parse_lock

CARD_SOURCE = "model-card.md"
LOCK_FILE = "requirements.lock"
# The headings of a team's model-card.md that fill the card's sections of the same name.
WRITTEN = ("intended use", "factors", "ethical considerations", "caveats and recommendations")
KEY_PACKAGES = ("scikit-learn", "pandas", "numpy", "shap", "fairlearn", "xgboost", "lightgbm", "torch", "nbprod")


@dataclass
class DataFile:
    path: str
    md5: str
    rows: int | None = None
    columns: list[tuple[str, str]] = field(default_factory=list)   # (name, dtype)
    note: str = ""            # why rows and columns are unknown

    @property
    def schema_hash(self) -> str | None:
        """SHA-256 of the column names and dtypes, in order (changes when the schema does)."""
        if not self.columns:
            return None
        return hashlib.sha256(json.dumps(self.columns).encode()).hexdigest()


@dataclass
class StageFacts:
    name: str
    deps: dict[str, str]
    outs: dict[str, str]


@dataclass
class CardFacts:
    model: str
    version: str
    commit: str
    tag: str
    date: str
    approval: dict                     # the registration tag's record (approve / kept)
    assignments: list[dict]            # prod assignments of this version (approve, rollback), oldest first
    in_production: str | None          # the version in production now
    written: dict[str, str]            # model-card.md sections by heading (lowercase)
    written_source: str | None
    params: dict
    model_path: str
    model_md5: str
    training: list[DataFile]
    evaluation: list[DataFile]
    schemas: dict[str, str]            # data contract path -> sha256 (recorded at approval)
    stages: list[StageFacts]
    packages: list[str]                # key pinned packages from requirements.lock at the commit
    metrics: dict[str, dict] = field(default_factory=dict)


def split_sections(text: str) -> dict[str, str]:
    """``## Heading`` sections of model-card.md by lowercase heading; text under no known heading
    belongs to intended use."""
    sections: dict[str, list[str]] = {}
    current = "intended use"
    for line in text.splitlines():
        match = re.match(r"^#{1,3}\s+(.*?)\s*#*\s*$", line)
        if match:
            heading = match.group(1).strip().lower()
            if heading in WRITTEN:
                current = heading
                continue
            if line.startswith("# ") and current == "intended use" and not sections:
                continue  # the document's own title
        sections.setdefault(current, []).append(line)
    return {k: "\n".join(v).strip() for k, v in sections.items() if "\n".join(v).strip()}


def _frame_facts(root: Path, ref) -> DataFile:
    from ..serve.loader import read_frame

    found = DataFile(ref.path, ref.md5)
    try:
        frame = read_frame(root, ref)
    except Exception as exc:  # noqa: BLE001 - not in the cache or any unreadable file: the card says so
        found.note = str(exc).split("\n")[0]
        return found
    if frame is None:
        found.note = "not a Parquet or CSV file"
        return found
    found.rows = len(frame)
    found.columns = [(str(c), str(t)) for c, t in frame.dtypes.items()]
    return found


def _packages(root: Path, commit: str) -> list[str]:
    data = gitrepo.show_file(root, commit, LOCK_FILE)
    if data is None:
        return []
    pins = [line.strip() for line in data.decode(errors="replace").splitlines()
            if line.strip() and not line.startswith("#")]
    return [p for p in pins if re.split(r"[=<>~ ;\[]", p, maxsplit=1)[0].lower().replace("_", "-") in KEY_PACKAGES]


def gather(root: Path, model: str, version_text: str) -> CardFacts:
    """Every fact of ``model@version_text``'s card (NbprodError when the version is unknown)."""
    from ..serve.loader import resolve

    version = registry.find_version(root, model, version_text)
    info = resolve(root, model, version.version)
    assignments = [e.record | {"tag": e.tag, "date": e.date} for e in registry.assignments(root, model)
                   if e.version == version.version]
    current = registry.current(root, model)
    written_text = gitrepo.show_file(root, version.commit, CARD_SOURCE)
    lock = parse_lock(gitrepo.show_file(root, version.commit, "dvc.lock"), f"dvc.lock of {version.tag}")
    # The values each stage ran with, as dvc.lock recorded them; params.yaml when no stage has any.
    params = {key: value for s in lock.values() for values in s.params.values() for key, value in values.items()}
    if not params:
        params_text = gitrepo.show_file(root, version.commit, "params.yaml")
        params = (yaml.safe_load(params_text) if params_text else None) or {}
    stages = [StageFacts(s.name, dict(s.deps), dict(s.outs)) for s in lock.values()]
    return CardFacts(
        model, version.version, version.commit, version.tag, version.date, version.record, assignments,
        current.version if current else None,
        split_sections(written_text.decode(errors="replace")) if written_text else {},
        CARD_SOURCE if written_text else None, params or {}, info.model_path, info.model_md5,
        [_frame_facts(root, ref) for ref in info.training], [_frame_facts(root, ref) for ref in info.holdout],
        dict(version.record.get("schemas") or {}), stages, _packages(root, version.commit),
        dict(version.record.get("metrics") or {}))
