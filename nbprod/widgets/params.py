"""A notebook's parameters as the form edits them: read from the parameters cell and params.yaml,
checked with compile's rules, saved back to params.yaml atomically. No ipywidgets here.

A parameter may declare a range in a trailing comment of its line in the parameters cell,
``threshold = 0.5  # range: 0..1`` (read by ``analysis.declared_ranges``); the form then shows a
slider, and both the form and compile refuse values outside it (``compile.check_param_range``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from nbprod.notebooks.analysis import declared_ranges, literal_assignments
from nbprod.notebooks.rlang import is_r, r_literal_assignments
from nbprod.notebooks.compile import check_param_range
from nbprod.core.errors import NbprodError
from nbprod.notebooks.notebook import atomic_write
from nbprod.notebooks.yamlfile import dump_yaml, load_yaml
from nbprod.notebooks.pipeline import NotebookSpec
from nbprod.core.project import Project

# compile's own advice for a parameters cell line that is not a literal (nbprod.notebooks.pipeline).
LITERAL_FIX = ("keep only NAME = value lines (numbers, strings, booleans, None, lists, dicts) "
               "and move other code to a stage cell")


@dataclass
class Param:
    name: str
    default: object                 # the value in the parameters cell
    value: object                   # the value in params.yaml (the default when it has none)
    line: int                       # its line in the parameters cell
    low: float | None = None
    high: float | None = None

    @property
    def kind(self) -> str:
        return _kind(self.default)


@dataclass
class NotebookParams:
    project: Project
    notebook: str                   # project-relative
    section: str                    # its params.yaml section
    cell: int                       # the parameters cell's number
    params: list[Param]
    spec: NotebookSpec

    def get(self, name: str) -> Param:
        return next(p for p in self.params if p.name == name)


def notebook_params(project: Project, notebook: Path) -> NotebookParams:
    """The parameters of ``notebook``, with their current params.yaml values and declared ranges."""
    from nbprod.notebooks.pipeline import load_pipeline

    rel = project.rel(notebook)
    spec = next((s for s in load_pipeline(project).notebooks if s.path == rel), None)
    if spec is None:
        raise NbprodError("is not one of the project's notebooks", rel,
                          fix="open a notebook listed under [tool.nbprod] notebooks")
    if spec.params_cell is None:
        raise NbprodError("has no parameters cell", rel, fix="tag the cell of NAME = value lines 'parameters'")
    section = (_load(project.root / "params.yaml") or {}).get(spec.section) or {}
    lines = spec.params_cell.source.split("\n")
    ranges = declared_ranges(spec.params_cell.source)
    params = []
    for name, default in spec.params.items():
        line = next((i for i, text in enumerate(lines, 1) if re.match(rf"\s*{name}\s*(?:[:=]|<-)", text)), 1)
        low, high = ranges.get(name, (None, None))
        params.append(Param(name, default, section.get(name, default) if isinstance(section, dict) else default,
                            line, low, high))
    return NotebookParams(project, rel, spec.section, spec.params_cell.number, params, spec)


def parse_text(form: NotebookParams, name: str, text: str) -> object:
    """A value typed as text: a Python literal, as in the parameters cell, or YAML (``[a, b]``)."""
    param = form.get(name)
    if param.kind == "a string":
        return text
    values, bad = literal_assignments(f"{name} = {text}")
    if bad is not None and is_r(form.spec.language):  # R's own literals: TRUE, NULL, c(1, 2)
        values, bad = r_literal_assignments(f"{name} <- {text}")
    if bad is None:
        return values[name]
    try:
        from ruamel.yaml import YAML

        value = YAML(typ="safe", pure=True).load(text)
    except Exception:  # noqa: BLE001 - any YAML error means "not a value"
        value = None
    values, bad = literal_assignments(f"{name} = {value!r}") if isinstance(value, (list, dict, bool, int, float)) \
        else ({}, True)
    if bad is None:
        return values[name]
    raise NbprodError(f"parameters cell line {param.line} is not a literal assignment: {f'{name} = {text}'[:60]!r}",
                      form.notebook, form.cell, fix=LITERAL_FIX)


def check(form: NotebookParams, name: str, value: object) -> object:
    """``value`` for ``name`` if the pipeline can run with it; else the one-line error compile would give."""
    param = form.get(name)
    values, bad = literal_assignments(f"{name} = {value!r}")
    if bad is not None:
        raise NbprodError(f"parameters cell line {param.line} is not a literal assignment: "
                          f"{f'{name} = {value!r}'[:60]!r}", form.notebook, form.cell, fix=LITERAL_FIX)
    value = values[name]
    if not _same_kind(param.default, value):
        raise NbprodError(f"{form.section}.{name} is {_kind(value)}, but the parameters cell makes it {param.kind}",
                          "params.yaml", fix=f"give {name} {param.kind}, as line {param.line} of the "
                          f"parameters cell of {form.notebook} does")
    if param.low is not None:
        check_param_range(form.spec, name, value, (param.low, param.high))  # compile's own check and words
    return value


def save(form: NotebookParams, values: dict[str, object]) -> list[str]:
    """Write the changed values to params.yaml in one atomic replace; every value is checked first,
    so a bad one leaves the file as it was. Returns the names that changed."""
    checked = {name: check(form, name, value) for name, value in values.items()}
    # JSON text compares 1 with 1.0 and True with 1 as different, as params.yaml would show them.
    changed = [n for n, v in checked.items() if json.dumps(v) != json.dumps(form.get(n).value, default=str)]
    if not changed:
        return []
    path = form.project.root / "params.yaml"
    doc = _load(path)
    if doc is None:
        from ruamel.yaml.comments import CommentedMap

        doc = CommentedMap()
    section = doc.setdefault(form.section, {})
    if not isinstance(section, dict):
        raise NbprodError(f"section {form.section!r} is not a mapping", "params.yaml",
                          fix=f"make {form.section} a mapping of names to values, or delete it")
    for name in changed:
        section[name] = checked[name]
        form.get(name).value = checked[name]
    atomic_write(path, dump_yaml(doc))
    return changed


def _load(path: Path):
    doc = load_yaml(path)
    if doc is not None and not isinstance(doc, dict):
        raise NbprodError("is not a mapping of sections", "params.yaml", fix="restore params.yaml with git")
    return doc


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return "a number"
    return {str: "a string", list: "a list", dict: "a mapping", type(None): "null"}.get(type(value), "a value")


def _same_kind(default: object, value: object) -> bool:
    if default is None:
        return True  # None in the cell says nothing about the type
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return True  # rate = 1 for rate = 0.1 is fine; n_estimators = 12.5 for 100 is not
    return _kind(default) == _kind(value)
