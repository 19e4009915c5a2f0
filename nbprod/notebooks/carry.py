"""Imports and definitions carried between stages: a cell-level ``import`` statement, ``def`` or
``class`` of an earlier stage that binds a name a later stage of the same notebook uses is repeated, in
source order, in a generated prelude cell of that later stage (as "Run All" would have it bound by then).

Only names that a stage binds by such statements and nothing else are carried: a name also assigned,
bound in an ``if``/``try``, or changed in place keeps today's rules (passed as data, or refused).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from .analysis import analyse_code, definition_needs, sanitize

PRELUDE_TAG = "nbprod-imports"
DEFINITIONS_TAG = "nbprod-definitions"
_BLOCKS = {ast.If: "an if block", ast.Try: "a try block", ast.For: "a for loop", ast.AsyncFor: "a for loop",
           ast.While: "a while loop", ast.With: "a with block", ast.AsyncWith: "a with block"}


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


@dataclass(frozen=True)
class CarriedDefinition:
    """One top-level ``def`` or ``class`` statement (decorators included) copied into a later stage."""

    name: str
    kind: str     # "function" or "class"
    source: str   # the statement as written, decorators first
    stage: str
    cell: int
    line: int     # its first line (the first decorator's) in that cell
    end: int = field(default=0, compare=False)                            # its last line
    at_definition: frozenset[str] = field(default=frozenset(), compare=False)  # names read as it runs
    at_call: frozenset[str] = field(default=frozenset(), compare=False)        # names its bodies read
    changes: frozenset[str] = field(default=frozenset(), compare=False)        # globals they change in place

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "source": self.source, "stage": self.stage,
                "cell": self.cell, "line": self.line}


def _tree(source: str) -> tuple[str, ast.Module] | None:
    code, opaque, _ = sanitize(source)
    if opaque is not None:
        return None
    try:
        return code, ast.parse(code)
    except SyntaxError:
        return None


def definition_statements(source: str, stage: str, cell: int) -> list[CarriedDefinition]:
    """Each ``def``/``class`` statement at the cell's top level, as it would be carried."""
    parsed = _tree(source)
    if parsed is None:
        return []
    lines = source.split("\n")  # the text as written: sanitize keeps line numbers
    found = []
    for node in parsed[1].body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            end = node.end_lineno or node.lineno
            at_definition, at_call, changes = definition_needs(node)
            found.append(CarriedDefinition(
                node.name, "class" if isinstance(node, ast.ClassDef) else "function",
                "\n".join(lines[first - 1:end]).rstrip(), stage, cell, first, end,
                frozenset(at_definition), frozenset(at_call), frozenset(changes)))
    return found


def definition_only_names(source: str, stage: str, cell: int) -> dict[str, CarriedDefinition]:
    """Names the cell binds only through top-level ``def``/``class`` statements (the last one of each
    name); names it also assigns, changes in place or binds on some branches are left out."""
    statements = definition_statements(source, stage, cell)
    if not statements:
        return {}
    lines = sanitize(source)[0].split("\n")
    for item in statements:
        for number in range(item.line, item.end + 1):
            lines[number - 1] = ""
    # Reading a definition's own name inside it (recursion, super) is no change of it.
    rest = analyse_code("\n".join(lines))
    other = rest.writes | rest.mutated | rest.conditional
    return {item.name: item for item in statements if item.name not in other}


def nested_definitions(source: str) -> dict[str, tuple[int, str]]:
    """``name -> (line, block)`` of each ``def``/``class`` inside a top-level if/try/loop/with."""
    parsed = _tree(source)
    if parsed is None:
        return {}
    found: dict[str, tuple[int, str]] = {}

    def walk(node: ast.AST, block: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                found.setdefault(child.name, (child.lineno, block))
            elif not isinstance(child, (ast.Lambda, ast.expr)):
                walk(child, block)

    for node in parsed[1].body:
        if type(node) in _BLOCKS:
            walk(node, _BLOCKS[type(node)])
    return found


def binds_after(source: str, line: int) -> dict[str, int]:
    """Names the cell's top-level statements after ``line`` bind or change in place, with the line of each
    first one."""
    parsed = _tree(source)
    if parsed is None:
        return {}
    found: dict[str, int] = {}
    for node in parsed[1].body:
        if node.lineno > line:
            facts = analyse_code(ast.unparse(node))
            for name in facts.writes | facts.mutated:
                found.setdefault(name, node.lineno)
    return found


def loaded_names(source: str, variable: str) -> set[str]:
    """Every name read by the cell's top-level statements that bind or change ``variable``, bound before
    or not (which classes its value may have been built with)."""
    parsed = _tree(source)
    if parsed is None:
        return set()
    found: set[str] = set()
    for node in parsed[1].body:
        facts = analyse_code(ast.unparse(node))
        if variable in facts.writes | facts.mutated:
            found |= {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return found


def assigned_names(source: str, variable: str) -> set[str]:
    """Names ``variable`` is assigned as they are (``g = f``, ``steps = [f, g]``): the value holds them."""
    parsed = _tree(source)
    if parsed is None:
        return set()
    found: set[str] = set()
    for node in parsed[1].body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == variable for t in node.targets):
            values = [node.value]
            while values:
                value = values.pop()
                if isinstance(value, ast.Name):
                    found.add(value.id)
                elif isinstance(value, (ast.List, ast.Tuple, ast.Set)):
                    values.extend(value.elts)
                elif isinstance(value, ast.Dict):
                    values.extend(v for v in value.values if v is not None)
    return found
