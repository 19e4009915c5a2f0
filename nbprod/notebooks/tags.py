"""The tag schema: the one definition of cell tags, shared by the CLI and the JupyterLab extension.

``SCHEMA`` is exported to ``nbprod/schema/tags.json`` (``python -m nbprod.notebooks.tags``); the extension gets
the same schema from the server's ``/nbprod/api/schema`` endpoint, and tests/func/test_extension_tags.py
runs the extension's TypeScript parser against this one on the same cases.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,63}$"
# Paths in tags: relative, portable characters only, no empty/dot segments. Containment in the
# project is checked separately (see ``check_relative_path``).
PATH_PATTERN = r"^[A-Za-z0-9_.][A-Za-z0-9_.\-/]*$"

SCHEMA: dict = {
    "version": 1,
    "name_pattern": NAME_PATTERN,
    "path_pattern": PATH_PATTERN,
    "tags": [
        {"kind": "parameters", "tag": "parameters", "value": None, "role": True,
         "description": "Papermill's parameters cell: literal assignments that become params.yaml entries."},
        {"kind": "stage", "prefix": "stage:", "value": "name", "role": True,
         "description": "This cell and the untagged cells after it form stage NAME."},
        {"kind": "shared", "tag": "shared", "value": None, "role": True,
         "description": "Imports and helpers, placed at the top of every stage of the notebook."},
        {"kind": "skip", "tag": "skip", "value": None, "role": True,
         "description": "Exploration: never part of a stage."},
        {"kind": "after", "prefix": "after:", "value": "name", "role": False,
         "description": "The cell's stage runs after stage NAME, even without a data edge."},
        {"kind": "deps", "prefix": "deps:", "value": "path", "role": False,
         "description": "A file the cell's stage reads (relative to the notebook's folder)."},
        {"kind": "outs", "prefix": "outs:", "value": "path", "role": False,
         "description": "A file the cell's stage writes; DVC caches and versions it."},
        {"kind": "metrics", "prefix": "metrics:", "value": "path", "role": False,
         "description": "A JSON/YAML metrics file the cell's stage writes."},
        {"kind": "plots", "prefix": "plots:", "value": "path", "role": False,
         "description": "A plot file (image, CSV, JSON) the cell's stage writes."},
    ],
    "rules": [
        "A cell carries at most one of: parameters, stage:NAME, shared, skip.",
        "after:, deps:, outs:, metrics:, plots: apply to the stage the cell belongs to.",
        "Cells before the first stage:NAME tag belong to the first stage.",
        "A notebook without stage:NAME tags is one stage named after the notebook.",
        "Tags that use none of these words are left alone (other tools' tags).",
    ],
}

_PREFIXED = {t["prefix"]: t for t in SCHEMA["tags"] if "prefix" in t}
_FLAGS = {t["tag"]: t for t in SCHEMA["tags"] if "tag" in t}
_RESERVED_WORDS = {t["kind"] for t in SCHEMA["tags"]}
_NAME_RE = re.compile(NAME_PATTERN)
_PATH_RE = re.compile(PATH_PATTERN)


@dataclass
class CellTags:
    """What nbprod reads from one cell's tags."""

    role: str | None = None  # "parameters" | "stage" | "shared" | "skip" | None
    stage: str | None = None
    after: list[str] = field(default_factory=list)
    deps: list[str] = field(default_factory=list)
    outs: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)


class TagError(ValueError):
    """A tag that breaks the schema; the caller adds file and cell."""

    def __init__(self, message: str, fix: str):
        super().__init__(message)
        self.message = message
        self.fix = fix


def is_valid_name(name: str) -> bool:
    # fullmatch: with match, "$" also accepts a trailing newline ("stage:one\n").
    return isinstance(name, str) and bool(_NAME_RE.fullmatch(name))


def check_relative_path(value: str) -> str | None:
    """Return why ``value`` is not a safe project-relative path, or None when it is."""
    if not value:
        return "is empty"
    if value.startswith("/") or re.match(r"^[A-Za-z]:", value) or value.startswith("~"):
        return "is absolute"
    if not _PATH_RE.fullmatch(value):
        return "holds characters outside A-Z a-z 0-9 _ . - /"
    parts = value.split("/")
    if any(p in ("", ".") for p in parts[:-1]) or parts[-1] in ("", "."):
        return "has an empty or '.' segment"
    return None


def parse_cell_tags(tags: list) -> CellTags:
    """Parse one cell's tags; raise TagError on the first tag that breaks the schema."""
    parsed = CellTags()
    for tag in tags:
        if not isinstance(tag, str):
            raise TagError(f"tag {tag!r} is not a string", "make every tag a string")
        if tag in _FLAGS:
            _set_role(parsed, tag)
            continue
        prefix, sep, value = tag.partition(":")
        key = prefix + ":"
        if sep and key in _PREFIXED:
            kind = _PREFIXED[key]["kind"]
            _add_prefixed(parsed, kind, _PREFIXED[key]["value"], value, tag)
            continue
        word = prefix.strip().lower()
        if word in _RESERVED_WORDS or tag.strip().lower() in _FLAGS:
            raise TagError(
                f"tag {tag!r} looks like an nbprod tag but is not one",
                "use one of: parameters, shared, skip, stage:NAME, after:NAME, deps:PATH, "
                "outs:PATH, metrics:PATH, plots:PATH",
            )
    return parsed


def _set_role(parsed: CellTags, role: str, stage: str | None = None) -> None:
    if parsed.role is not None:
        first = f"stage:{parsed.stage}" if parsed.role == "stage" else parsed.role
        second = f"stage:{stage}" if role == "stage" else role
        raise TagError(
            f"cell is tagged both {first!r} and {second!r}",
            "keep one of parameters, stage:NAME, shared, skip on a cell",
        )
    parsed.role = role
    parsed.stage = stage


def _add_prefixed(parsed: CellTags, kind: str, value_kind: str, value: str, tag: str) -> None:
    if value_kind == "name":
        if not is_valid_name(value):
            raise TagError(
                f"{tag!r} has an invalid stage name",
                "use a lowercase name that starts with a letter, with only a-z 0-9 _ - (at most 64)",
            )
        if kind == "stage":
            _set_role(parsed, "stage", value)
        else:
            parsed.after.append(value)
        return
    problem = check_relative_path(value)
    if problem:
        raise TagError(
            f"path in {tag!r} {problem}",
            "give a relative path inside the project, such as data/train.parquet",
        )
    getattr(parsed, kind).append(value)


def export_schema(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(SCHEMA, indent=2, sort_keys=True) + "\n", encoding="utf-8")


SCHEMA_PATH = Path(__file__).parent.parent / "schema" / "tags.json"

if __name__ == "__main__":
    export_schema(SCHEMA_PATH)
    print(SCHEMA_PATH)
