"""The one YAML layout of the files nbprod writes and the user may edit too (dvc.yaml, params.yaml):
ruamel's round trip, so comments, quotes and hand-written entries survive every write."""

from __future__ import annotations

import io
from pathlib import Path

from ..core.errors import NbprodError


def round_trip():
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096  # a long value stays on one line, as the user wrote it
    yaml.preserve_quotes = True
    return yaml


def load_yaml(path: Path):
    """The document at ``path`` (None when there is no file), or one line naming the file."""
    if not path.exists():
        return None
    try:
        return round_trip().load(path.read_text(encoding="utf-8"))
    except Exception as exc:  # noqa: BLE001 - ruamel raises many error types; all mean "not valid YAML"
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise NbprodError(f"is not valid YAML{where}", path.name,
                          fix=f"correct {path.name} by hand or restore it with git") from None


def dump_yaml(doc) -> str:
    stream = io.StringIO()
    round_trip().dump(doc, stream)
    return stream.getvalue()
