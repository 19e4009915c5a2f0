"""Imports carried between stages: a cell-level ``import``/``from ... import`` statement of an earlier
stage that binds a name a later stage of the same notebook uses is repeated, in source order, in a
generated prelude cell of that later stage (as "Run All" would have the module bound by then).

Only names that a stage binds by such statements and nothing else are carried: a name also assigned,
bound in an ``if``/``try``, or changed in place keeps today's rules (passed as data, or refused).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from .analysis import analyse_code, sanitize

PRELUDE_TAG = "nbprod-imports"


@dataclass(frozen=True)
class CarriedImport:
    """One import statement copied into a later stage."""

    source: str   # the statement as written (one or more lines)
    stage: str    # the stage it comes from
    cell: int     # its cell in the source notebook (1-based)
    line: int     # its first line in that cell

    def to_dict(self) -> dict:
        return {"source": self.source, "stage": self.stage, "cell": self.cell, "line": self.line}


def import_statements(source: str) -> list[tuple[int, str, set[str]]]:
    """``(line, statement text, names it binds)`` of each import statement at the cell's top level
    (``from __future__`` ones excepted: they only make sense first in their own cell)."""
    code, opaque, _ = sanitize(source)
    if opaque is not None:
        return []
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    found = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            names = {a.asname or a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__" and not node.level:
            names = {a.asname or a.name for a in node.names if a.name != "*"}
        else:
            continue
        if names:
            found.append((node.lineno, ast.get_source_segment(code, node) or "", names))
    return found


def import_only_names(source: str) -> dict[str, list[tuple[int, str]]]:
    """Names the cell binds only through top-level import statements, with those statements
    ``(line, text)``; names it also binds or changes any other way are left out."""
    statements = import_statements(source)
    if not statements:
        return {}
    # The same cell with its top-level imports blanked out: whatever it still binds, it binds otherwise.
    lines = sanitize(source)[0].split("\n")
    code = sanitize(source)[0]
    tree = ast.parse(code)
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)) and any(node.lineno == s[0] for s in statements):
            for number in range(node.lineno, (node.end_lineno or node.lineno) + 1):
                lines[number - 1] = ""
    rest = analyse_code("\n".join(lines))
    other = rest.writes | rest.mutated | rest.conditional
    result: dict[str, list[tuple[int, str]]] = {}
    for line, text, names in statements:
        for name in names - other:
            result.setdefault(name, []).append((line, text))
    return result
