"""The model registry in GTO's git-tag format: ``NAME@vX.Y.Z`` registers a version, ``NAME#prod#N``
assigns it to production. The annotated tag's message holds who, when, why and the gate results.

Rejections are annotated tags outside GTO's grammar (``nbprod-rejected/NAME/CANDIDATE``), so GTO
ignores them while ``nbprod history`` shows them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, UTC
from pathlib import Path

from ..core.errors import NbprodError
from ..core import gitrepo

RECORD_MARKER = "--- nbprod record ---"
PROD = "prod"
REJECT_PREFIX = "nbprod-rejected"
_SEMVER = re.compile(r"^v(\d+)\.(\d+)\.(\d+)$")


@dataclass
class Version:
    model: str
    version: str
    commit: str
    tag: str
    date: str
    record: dict = field(default_factory=dict)

    @property
    def key(self) -> tuple[int, int, int]:
        match = _SEMVER.match(self.version)
        return tuple(int(x) for x in match.groups()) if match else (0, 0, 0)


@dataclass
class Event:
    date: str
    action: str              # approve | rollback | kept | register | reject | assign
    model: str
    tag: str
    commit: str
    version: str | None = None
    stage: str | None = None
    counter: int = 0
    record: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"date": self.date, "action": self.action, "model": self.model, "version": self.version,
                "stage": self.stage, "tag": self.tag, "commit": self.commit, **{
                    k: v for k, v in self.record.items() if k not in ("action",)}}


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def tag_message(headline: str, record: dict) -> str:
    return f"{headline}\n\n{RECORD_MARKER}\n{json.dumps(record, indent=1, sort_keys=True)}\n"


MALFORMED = "malformed"   # key of the record that stands in for a tag message that does not parse
RAW = "raw"


def parse_tag_message(message: str) -> dict:
    """The record a tag message carries: {} for a tag without one (made by GTO itself). A message
    whose record does not parse is shown, not dropped: ``{"malformed": why, "raw": message}``."""
    if RECORD_MARKER not in message:
        return {}
    text = message.split(RECORD_MARKER, 1)[1]
    try:
        record = json.loads(text)
    except ValueError as exc:
        return {MALFORMED: f"not JSON ({exc.msg}, line {exc.lineno})", RAW: message}
    if not isinstance(record, dict):
        return {MALFORMED: f"a JSON {type(record).__name__}, not an object", RAW: message}
    return record


def _tags(root: Path, model: str) -> list[tuple[dict, dict]]:
    from gto.constants import name_to_tag
    from gto.tag import parse_name

    result = []
    for tag in gitrepo.list_tags(root, f"{name_to_tag(model)}*"):
        parsed = parse_name(tag["name"], raise_on_fail=False)
        if parsed and parsed.get("name") == model:
            result.append((tag, parsed))
    return result


def versions(root: Path, model: str) -> list[Version]:
    found = [Version(model, parsed["version"], tag["commit"], tag["name"], tag["date"],
                     parse_tag_message(tag["message"]))
             for tag, parsed in _tags(root, model)
             if parsed.get("action").value == "register"]
    return sorted(found, key=lambda v: v.key)


def find_version(root: Path, model: str, text: str) -> Version:
    wanted = text.split("@", 1)[1] if "@" in text else text
    if not wanted.startswith("v"):
        wanted = "v" + wanted
    for version in versions(root, model):
        if version.version == wanted:
            return version
    known = ", ".join(v.version for v in versions(root, model)) or "none yet"
    raise NbprodError(f"model {model!r} has no version {text!r} (versions: {known})", "git tags",
                      fix="run 'nbprod history' to see the registered versions")


def assignments(root: Path, model: str, stage: str = PROD) -> list[Event]:
    """Assignments of ``stage``, oldest first (by GTO's counter)."""
    by_commit = {v.commit: v for v in versions(root, model)}
    events = []
    for tag, parsed in _tags(root, model):
        if parsed.get("action").value == "assign" and parsed.get("stage") == stage:
            version = by_commit.get(tag["commit"])
            events.append(Event(tag["date"], "assign", model, tag["name"], tag["commit"],
                                version.version if version else None, stage, parsed.get("counter", 0),
                                parse_tag_message(tag["message"])))
    return sorted(events, key=lambda e: e.counter)


def current(root: Path, model: str, stage: str = PROD) -> Version | None:
    history = assignments(root, model, stage)
    if not history or history[-1].version is None:
        return None
    return find_version(root, model, history[-1].version)


def next_version(root: Path, model: str) -> str:
    existing = versions(root, model)
    if not existing:
        return "v1.0.0"
    major, minor, _ = max(v.key for v in existing)
    return f"v{major}.{minor + 1}.0"


def _next_counter(root: Path, model: str) -> int:
    return max((parsed.get("counter", 0) for _, parsed in _tags(root, model)), default=0) + 1


def register(root: Path, model: str, commit: str, record: dict) -> Version:
    for version in versions(root, model):
        if version.commit == commit:
            raise NbprodError(f"commit {commit[:10]} is already registered as {model}@{version.version}", "git tags",
                              fix="assign that version instead (nbprod rollback VERSION)")
    version = next_version(root, model)
    from gto.constants import name_to_tag

    tag = f"{name_to_tag(model)}@{version}"
    gitrepo.create_annotated_tag(root, tag, commit,
                                 tag_message(f"Registering artifact {model} version {version}", record))
    return find_version(root, model, version)


def assign(root: Path, model: str, version: Version, record: dict, stage: str = PROD) -> str:
    from gto.constants import name_to_tag

    tag = f"{name_to_tag(model)}#{stage}#{_next_counter(root, model)}"
    gitrepo.create_annotated_tag(root, tag, version.commit, tag_message(
        f"Assigning stage {stage} to artifact {model} version {version.version}", record))
    return tag


def reject(root: Path, model: str, candidate: str, commit: str, record: dict) -> str:
    tag = f"{REJECT_PREFIX}/{model}/{candidate}"
    if gitrepo.rev_parse(root, f"refs/tags/{tag}"):
        raise NbprodError(f"candidate {candidate} was already rejected", "git tags",
                          fix="run 'nbprod history' to see the decision")
    gitrepo.create_annotated_tag(root, tag, commit, tag_message(f"Rejecting candidate {candidate} of {model}", record))
    return tag


def rejections(root: Path, model: str) -> list[Event]:
    events = []
    for tag in gitrepo.list_tags(root, f"{REJECT_PREFIX}/{model}/*"):
        record = parse_tag_message(tag["message"])
        events.append(Event(tag["date"], "reject", model, tag["name"], tag["commit"], record=record))
    return events


def history(root: Path, model: str) -> list[Event]:
    """Every registration, assignment and rejection of ``model``, in the order they happened."""
    events: list[Event] = []
    for version in versions(root, model):
        record = dict(version.record)
        events.append(Event(version.date, "register", model, version.tag, version.commit, version.version,
                            counter=0, record=record))
    for event in assignments(root, model):
        event.action = event.record.get("action", "assign")
        events.append(event)
    events += rejections(root, model)
    order = {"register": 0, "kept": 0, "reject": 1}
    return sorted(events, key=lambda e: (e.record.get("when") or e.date, order.get(e.action, 2), e.counter))
