"""Optional imports kept off nbprod's start-up paths (``nbprod exec`` importing Papermill, the report
worker importing nbconvert): modules those processes never use, that cost seconds to import."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

OPTIONAL_IMPORTS = ("pyarrow", "isoduration", "rfc3986_validator", "rfc3339_validator", "rfc3987", "webcolors",
                    "uri_template", "fqdn", "jsonpointer")


@contextmanager
def without_optional_imports() -> Iterator[None]:
    """Import nbformat, Papermill or nbconvert inside this block.

    jsonschema imports rfc3987_syntax only to check the "iri" string format, which notebook schemas
    never use; building its Lark parsers costs seconds per process. Without the module, jsonschema
    skips that one optional checker (an ImportError it expects), nothing else changes; it stays
    blocked. The others are blocked only inside the block, so later imports work as usual:
    Papermill's HDFS handler imports pyarrow (and numpy) for hdfs:// paths only;
    jsonschema's other string-format checkers (arrow and friends) serve format validation, which
    nbformat does not ask for.
    """
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
    blocked = [name for name in OPTIONAL_IMPORTS if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        for name in blocked:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
