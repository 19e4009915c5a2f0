"""The pipeline model: tagged notebooks -> stages, their params, files and data edges, as a DAG."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .analysis import CodeFacts, CodeSyntaxError, analyse_code, literal_assignments
from .carry import (
    CarriedDefinition,
    CarriedImport,
    assigned_names,
    binds_after,
    definition_only_names,
    definition_statements,
    import_only_names,
    loaded_names,
    nested_definitions,
)
from ..core.errors import NbprodError
from .notebook import cell_source, cell_tags, read_notebook
from ..core.project import GENERATED_DIR, METRICS_DIR, PASSED_DIR, REPORTS_DIR, STAGES_DIR, Project
from nbprod.sql.queries import Query, TableWrite, check_connection
from .rlang import is_r, r_literal_assignments, r_names
from .tags import TagError, parse_cell_tags

GENERATED_PREFIXES = (GENERATED_DIR + "/", REPORTS_DIR + "/", METRICS_DIR + "/")


@dataclass
class Cell:
    number: int  # 1-based position in the source notebook, as JupyterLab users count
    source: str
    facts: CodeFacts | None = None


@dataclass
class Stage:
    name: str
    notebook: str                     # project-relative path of the source notebook
    section: str                      # params.yaml section of that notebook
    cells: list[Cell] = field(default_factory=list)
    tag_cell: int | None = None       # the cell carrying stage:NAME (None for a whole-notebook stage)
    after: list[tuple[str, int]] = field(default_factory=list)   # (stage, cell that said so)
    deps: list[str] = field(default_factory=list)
    outs: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)
    params: list[str] = field(default_factory=list)              # keys of its section it reads
    inputs: dict[str, str] = field(default_factory=dict)         # variable -> producing stage
    outputs: list[str] = field(default_factory=list)             # variables later stages read
    upstream: list[str] = field(default_factory=list)
    carried: list[CarriedImport] = field(default_factory=list)  # imports of earlier stages it uses
    carried_definitions: list[CarriedDefinition] = field(default_factory=list)  # def/class of earlier stages
    # carried definitions that read an input when they run (name -> that input): defined after the inputs load
    late_definitions: dict[str, str] = field(default_factory=dict)
    queries: list[Query] = field(default_factory=list)           # literal nbprod.sql.read queries
    tables: list[TableWrite] = field(default_factory=list)       # tables nbprod.sql.write writes

    @property
    def first_cell(self) -> int:
        return self.tag_cell or (self.cells[0].number if self.cells else 1)

    @property
    def stage_notebook(self) -> str:
        return f"{STAGES_DIR}/{self.name}.ipynb"

    @property
    def executed_notebook(self) -> str:
        return f"{REPORTS_DIR}/{self.name}.ipynb"

    @property
    def metrics_file(self) -> str:
        return f"{METRICS_DIR}/{self.name}.json"

    def artifact(self, variable: str) -> str:
        """Where a variable this stage passes on is stored (extension chosen at run time)."""
        folder = Path(self.notebook).with_suffix("").as_posix().replace("/", "__")
        return f"{PASSED_DIR}/{folder}/{self.name}/{variable}"

    @property
    def artifact_dir(self) -> str:
        return self.artifact("").rstrip("/")


@dataclass
class NotebookSpec:
    path: str
    section: str
    params: dict[str, object]
    params_cell: Cell | None
    shared: list[Cell]
    stages: list[Stage]
    kernel: str = "python3"           # the notebook's own kernelspec name, else [tool.nbprod] kernel
    language: str = "python"          # "python", or "r" (no Python analysis; file edges only)


@dataclass
class Pipeline:
    project: Project
    notebooks: list[NotebookSpec]

    @property
    def stages(self) -> list[Stage]:
        return [s for nb in self.notebooks for s in nb.stages]

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        known = ", ".join(s.name for s in self.stages) or "none"
        raise NbprodError(f"no stage named {name!r} (stages: {known})", self.project.root / "dvc.yaml",
                          fix="run 'nbprod status' to list the stages")

    def notebook_of(self, stage: Stage) -> NotebookSpec:
        return next(nb for nb in self.notebooks if nb.path == stage.notebook)

    def order(self) -> list[Stage]:
        """Stages in a topological order that keeps notebook order where the DAG allows."""
        by_name = {s.name: s for s in self.stages}
        done: list[str] = []
        seen: set[str] = set()

        def visit(stage: Stage) -> None:
            if stage.name in seen:
                return
            seen.add(stage.name)
            for up in stage.upstream:
                visit(by_name[up])
            done.append(stage.name)

        for stage in self.stages:
            visit(stage)
        return [by_name[n] for n in done]

    def downstream(self, names: set[str]) -> set[str]:
        result = set(names)
        changed = True
        while changed:
            changed = False
            for stage in self.stages:
                if stage.name not in result and result & set(stage.upstream):
                    result.add(stage.name)
                    changed = True
        return result

    def to_dict(self) -> dict:
        return {
            "root": str(self.project.root),
            "stages": [
                {"name": s.name, "notebook": s.notebook, "section": s.section,
                 "cells": [c.number for c in s.cells], "tag_cell": s.tag_cell,
                 "after": [a for a, _ in s.after], "deps": s.deps, "outs": s.outs, "metrics": s.metrics,
                 "plots": s.plots, "params": [f"{s.section}.{p}" for p in s.params],
                 "inputs": s.inputs, "outputs": s.outputs, "upstream": s.upstream,
                 "carried_imports": [c.to_dict() for c in s.carried],
                 "carried_definitions": [d.to_dict() for d in s.carried_definitions],
                 "queries": [q.to_dict() for q in s.queries], "tables": [t.to_dict() for t in s.tables],
                 "executed_notebook": s.executed_notebook, "report": f"{REPORTS_DIR}/{s.name}.html"}
                for s in self.order()
            ],
            "carried_definitions": self.carried_definitions(),
        }

    def carried_definitions(self) -> list[dict]:
        """Each definition carried between stages once, with the stages it is carried into."""
        into: dict[tuple[str, CarriedDefinition], list[str]] = {}
        for stage in self.order():
            for item in stage.carried_definitions:
                into.setdefault((stage.notebook, item), []).append(stage.name)
        ordered = sorted(into.items(), key=lambda entry: (entry[0][0], entry[0][1].cell, entry[0][1].line))
        return [{**item.to_dict(), "notebook": notebook, "into": stages} for (notebook, item), stages in ordered]


def slug(text: str) -> str:
    name = re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-_")
    name = re.sub(r"^[^a-z]+", "", name)
    return name[:64]


def load_pipeline(project: Project) -> Pipeline:
    """Read every source notebook and build the validated pipeline; raise NbprodError on bad input."""
    specs = [_read_spec(project, path) for path in project.notebooks()]
    pipeline = Pipeline(project, specs)
    _check_unique_names(pipeline)
    _link_data(pipeline)
    _link_files_and_order(pipeline)
    return pipeline


def _read_spec(project: Project, path: Path) -> NotebookSpec:
    rel = project.rel(path)
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in rel):
        raise NbprodError(f"file name {rel!r} holds a control character (a newline or tab)", rel,
                          fix="rename the notebook with printable characters only")
    nb = read_notebook(path, rel)
    section = slug(path.stem)
    if not section:
        raise NbprodError(f"notebook name {path.stem!r} gives no usable stage or params name", rel,
                          fix="rename the notebook to start with a letter, e.g. train.ipynb")
    kernel, language = _kernel_of(nb, project, rel)
    r_notebook = is_r(language)
    params_cell: Cell | None = None
    params: dict[str, object] = {}
    shared: list[Cell] = []
    stages: list[Stage] = []
    pending: list[tuple[Cell, object]] = []  # untagged cells before the first stage:NAME
    current: Stage | None = None
    for number, raw in enumerate(nb["cells"], start=1):
        if raw["cell_type"] != "code":
            continue
        try:
            tags = parse_cell_tags(cell_tags(raw))
        except TagError as exc:
            raise NbprodError(exc.message, rel, number, fix=exc.fix) from None
        cell = Cell(number, cell_source(raw))
        has_io = tags.after or tags.deps or tags.outs or tags.metrics or tags.plots
        if tags.role in ("parameters", "shared", "skip") and has_io:
            raise NbprodError(f"a {tags.role} cell cannot carry after:/deps:/outs:/metrics:/plots: tags", rel,
                              number, fix="move those tags to a cell of the stage they belong to")
        if tags.role == "skip":
            continue
        if tags.role == "parameters":
            if params_cell is not None:
                raise NbprodError(f"second parameters cell (the first is cell {params_cell.number})", rel,
                                  number, fix="merge the parameters into one cell")
            try:
                values, bad = (r_literal_assignments if r_notebook else literal_assignments)(cell.source)
            except (MemoryError, RecursionError):
                raise _too_deep(rel, number) from None
            if bad is not None and r_notebook:
                line, text = bad
                raise NbprodError(
                    f"parameters cell line {line} is not a literal assignment: {text[:60]!r}", rel, number,
                    fix="keep only NAME <- value lines (numbers, strings, TRUE/FALSE, NULL, c(...) vectors) "
                        "and move other code to a stage cell")
            if bad is not None:
                line, text = bad
                raise NbprodError(
                    f"parameters cell line {line} is not a literal assignment: {text[:60]!r}", rel, number,
                    fix="keep only NAME = value lines (numbers, strings, booleans, None, lists, dicts) "
                        "and move other code to a stage cell")
            params_cell, params = cell, values
            continue
        # R code is not analysed as Python: the names it mentions pick its params; no data edges.
        cell.facts = CodeFacts(reads=r_names(cell.source)) if r_notebook else _facts(cell, rel)
        if tags.role == "shared":
            shared.append(cell)
            continue
        if tags.role == "stage":
            current = Stage(tags.stage, rel, section, tag_cell=number)
            stages.append(current)
            for early, early_tags in pending:
                _attach(current, early, early_tags, path, project)
            pending = []
        if current is None:
            pending.append((cell, tags))
        else:
            _attach(current, cell, tags, path, project)
    if not stages:
        name = section
        whole = Stage(name, rel, section)
        for cell, tags in pending:
            _attach(whole, cell, tags, path, project)
        stages.append(whole)
    for cell in shared:  # a shared cell runs at the top of every stage: each depends on its schemas
        for stage in stages:
            _schema_deps(stage, cell, path, project)
            _sql_io(stage, cell, path, project)
    spec = NotebookSpec(rel, section, params, params_cell, shared, stages, kernel=kernel, language=language)
    _stage_params(spec)
    return spec


def _kernel_of(nb: dict, project: Project, rel: str) -> tuple[str, str]:
    """The kernel a notebook's stages run in, and its language.

    Python notebooks run in ``[tool.nbprod] kernel``: which Python kernel Lab last used (a personal
    venv kernel, say) is not part of the pipeline, so switching it reruns nothing and CI need not have
    it. A notebook in another language (R) runs in the kernel its own metadata names."""
    metadata = nb.get("metadata") if isinstance(nb.get("metadata"), dict) else {}
    spec = metadata.get("kernelspec") if isinstance(metadata.get("kernelspec"), dict) else {}
    info = metadata.get("language_info") if isinstance(metadata.get("language_info"), dict) else {}
    language = next((v for v in (spec.get("language"), info.get("name")) if isinstance(v, str) and v), "python")
    language = "r" if is_r(language) else language.lower()
    own = spec.get("name") if isinstance(spec.get("name"), str) and spec.get("name") else None
    name = own if own and language != "python" else project.kernel
    if name != project.kernel:  # the project's default is checked where it starts (no cost on the hot path)
        installed = installed_kernels()
        if name not in installed:
            how = ("install IRkernel (Debian: apt-get install r-cran-irkernel; or in R: "
                   "install.packages('IRkernel'); IRkernel::installspec())" if language == "r" else
                   f"install it (python -m ipykernel install --user --name {name}) ")
            raise NbprodError(f"kernel {name!r} named by this notebook is not installed "
                              f"(installed: {', '.join(sorted(installed)) or 'none'})", rel,
                              fix=f"{how.strip()}, or pick an installed kernel in the notebook")
    return name, language


def installed_kernels() -> set[str]:
    """Names of the kernel specs Jupyter can start here (cached for the process)."""
    global _INSTALLED
    if _INSTALLED is None:
        from jupyter_client.kernelspec import KernelSpecManager

        _INSTALLED = set(KernelSpecManager().find_kernel_specs()) | {"python3"}
    return _INSTALLED


_INSTALLED: set[str] | None = None


def _facts(cell: Cell, rel: str) -> CodeFacts:
    try:
        return analyse_code(cell.source)
    except CodeSyntaxError as exc:
        raise NbprodError(f"line {exc.lineno} is not valid Python ({exc.msg})", rel, cell.number,
                          fix="correct the code, or tag the cell 'skip' to leave it out of the pipeline") from None
    except (MemoryError, RecursionError):  # CPython's parser gives up on very deep nesting
        raise _too_deep(rel, cell.number) from None


def _too_deep(rel: str, number: int) -> NbprodError:
    return NbprodError("code is nested too deeply for Python to parse", rel, number,
                       fix="split the expression into smaller steps, or tag the cell 'skip'")


def _attach(stage: Stage, cell: Cell, tags, notebook: Path, project: Project) -> None:
    stage.cells.append(cell)
    stage.after.extend((name, cell.number) for name in tags.after)
    for kind in ("deps", "outs", "metrics", "plots"):
        for value in getattr(tags, kind):
            getattr(stage, kind).append(_project_path(value, kind, notebook, cell.number, project))
    _schema_deps(stage, cell, notebook, project)
    _sql_io(stage, cell, notebook, project)


_TABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?")


def _sql_io(stage: Stage, cell: Cell, notebook: Path, project: Project) -> None:
    """A literal ``nbprod.sql.read`` query becomes a snapshot the stage depends on (a DVC-tracked
    Parquet file, re-queried every run); a ``nbprod.sql.write`` table becomes the stage's output."""
    rel_nb = project.rel(notebook)
    for call in cell.facts.sql if cell.facts else ():
        if call.problem:
            fix = ('write nbprod.sql.read("SELECT ... WHERE x = :x", conn="NAME", params={"x": 1}) with the query, '
                   'connection and params as literals (import nbprod; call nbprod.sql.read)' if call.kind == "read"
                   else 'write nbprod.sql.write(df, "TABLE", conn="NAME", mode="append") with literal table, '
                        'connection, mode and key')
            raise NbprodError(f"line {call.line}: compile cannot follow this nbprod.sql.{call.kind} call: "
                              f"{call.problem}", rel_nb, cell.number, fix=fix)
        check_connection(project.root, call.conn, rel_nb, cell.number)
        if call.kind == "read":
            query = Query(call.conn, call.text, json.dumps(call.params, sort_keys=True, default=str))
            if query not in stage.queries:
                stage.queries.append(query)
            if query.snapshot_file not in stage.deps:
                stage.deps.append(query.snapshot_file)
            continue
        if not _TABLE.fullmatch(call.text):
            raise NbprodError(f"line {call.line}: table name {call.text!r} is not a plain name", rel_nb,
                              cell.number, fix="use letters, digits and _ (optionally schema.table)")
        table = TableWrite(call.conn, call.text, call.mode, tuple(call.key))
        if table not in stage.tables:
            stage.tables.append(table)


def _schema_deps(stage: Stage, cell: Cell, notebook: Path, project: Project) -> None:
    """A literal schema path given to ``nbprod.validate`` is a dep: editing the schema reruns the stage."""
    from ..contracts.schemas import resolve_schema

    rel_nb = project.rel(notebook)
    for line, literal in cell.facts.schemas if cell.facts else ():
        if literal is None:
            raise NbprodError(f"line {line}: compile cannot tell which schema file nbprod.validate reads here "
                              "(the path is an expression, or nbprod or validate is imported under another "
                              "name), so the stage would not rerun when the schema changes", rel_nb, cell.number,
                              fix='write import nbprod and nbprod.validate(df, "schemas/NAME.yaml") '
                                  'with the path as a string literal')
        try:
            path = resolve_schema(literal, notebook.parent, project.root)
        except NbprodError as exc:
            raise NbprodError(f"line {line}: {exc.message}", rel_nb, cell.number, fix=exc.fix) from None
        if not path.is_relative_to(project.root):
            raise NbprodError(f"line {line}: schema {literal!r} is outside the project", rel_nb, cell.number,
                              fix="keep schema files under the project's schemas/ folder")
        rel = path.relative_to(project.root).as_posix()
        if rel not in stage.deps:
            stage.deps.append(rel)


def _project_path(value: str, kind: str, notebook: Path, number: int, project: Project) -> str:
    rel_nb = project.rel(notebook)
    resolved = os.path.normpath(os.path.join(notebook.parent.resolve(), value))
    root = str(project.root)
    if resolved != root and not resolved.startswith(root + os.sep):
        raise NbprodError(f"path in '{kind}:{value}' points outside the project", rel_nb, number,
                          fix="give a path relative to the notebook's folder that stays inside the project")
    real = os.path.realpath(resolved)
    if real != root and not real.startswith(root + os.sep):
        raise NbprodError(f"path in '{kind}:{value}' leads outside the project through a symlink", rel_nb, number,
                          fix="copy the data into the project instead of linking to it")
    rel = Path(resolved).relative_to(project.root).as_posix()
    if rel == ".":
        raise NbprodError(f"path in '{kind}:{value}' is the project folder itself", rel_nb, number,
                          fix="name a file or folder inside the project")
    if rel.startswith(GENERATED_PREFIXES) or rel.split("/")[0] in (".git", ".dvc", GENERATED_DIR):
        raise NbprodError(f"path in '{kind}:{value}' is inside a folder nbprod or git manages ({rel})", rel_nb,
                          number, fix="keep your data outside .nbprod/, reports/, metrics/, .git and .dvc")
    return rel


def _stage_params(spec: NotebookSpec) -> None:
    shared_reads = set().union(*(c.facts.reads for c in spec.shared)) if spec.shared else set()
    for stage in spec.stages:
        reads = set(shared_reads)
        bound: set[str] = set()
        for cell in stage.cells:
            reads |= cell.facts.reads - bound
            bound |= cell.facts.writes
        stage.params = [key for key in spec.params if key in reads]


def _check_unique_names(pipeline: Pipeline) -> None:
    seen: dict[str, Stage] = {}
    sections: dict[str, str] = {}
    for spec in pipeline.notebooks:
        if spec.section in sections:
            raise NbprodError(f"notebook name gives params section {spec.section!r}, as {sections[spec.section]} does",
                              spec.path, fix="rename one of the two notebooks")
        sections[spec.section] = spec.path
        for stage in spec.stages:
            if stage.name in seen:
                other = seen[stage.name]
                raise NbprodError(f"stage name {stage.name!r} is already used in {other.notebook} cell "
                                  f"{other.first_cell}", stage.notebook, stage.first_cell,
                                  fix="give each stage a name used once in the project")
            seen[stage.name] = stage


def _link_data(pipeline: Pipeline) -> None:
    """Variables a stage reads that an earlier stage of the same notebook defines become data edges.

    A stage that changes an input in place (``df["x"] = ..``, ``items.append(..)``, ``fit``) passes
    the changed object on, as "Run All" would see it. A name an earlier stage binds only by import
    statements, or only by ``def``/``class`` statements, is not data: those statements are carried
    into the reading stage (nbprod.notebooks.carry), with what the definitions need, transitively.
    """
    for spec in pipeline.notebooks:
        if len(spec.stages) > 1:
            _check_followable(spec)
        state = _Scope(spec, set().union(*(c.facts.writes for c in spec.shared)) if spec.shared else set())
        where: dict[tuple[str, str], int] = {}   # (stage, name) -> cell that binds it
        for stage in spec.stages:
            bound: set[str] = set()
            own_imports: dict[str, list[CarriedImport]] = {}  # the last binding in this stage wins
            own_definitions: dict[str, CarriedDefinition] = {}
            wanted: list[str] = []
            for cell in stage.cells:
                for name in sorted(cell.facts.reads - bound):
                    if name in state.defined and name not in state.shared and name not in spec.params:
                        if name in state.imported:
                            stage.carried.extend(c for c in state.imported[name] if c not in stage.carried)
                        elif name in state.definitions:
                            wanted.append(name)
                        else:
                            stage.inputs.setdefault(name, state.defined[name].name)
                only = import_only_names(cell.source) if cell.facts.imports else {}
                defs = definition_only_names(cell.source, stage.name, cell.number) \
                    if _DEFINES.search(cell.source) else {}
                for name in cell.facts.writes | cell.facts.mutated:
                    where.setdefault((stage.name, name), cell.number)
                    own_imports.pop(name, None)
                    own_definitions.pop(name, None)
                    if name in only:
                        own_imports[name] = [CarriedImport(text, stage.name, cell.number, line)
                                             for line, text in only[name]]
                    if name in defs:
                        own_definitions[name] = defs[name]
                bound |= cell.facts.writes
            extra_params: set[str] = set()
            if wanted:
                _apply(stage, state.closure(stage, wanted), extra_params)
            state.carry_classes_of_inputs(stage, extra_params)
            if extra_params:
                keep = set(stage.params) | extra_params
                stage.params = [key for key in spec.params if key in keep]
            stage.carried.sort(key=lambda c: (c.cell, c.line))
            stage.carried_definitions.sort(key=lambda d: (d.cell, d.line))
            # A carried function that changes a global in place changes it in the stage that calls it.
            changed = set().union(*(d.changes for d in stage.carried_definitions)) & (set(state.defined) | bound)
            changed |= set().union(*(c.facts.mutated for c in stage.cells))
            state.end_of(stage, bound | changed, own_imports, own_definitions)
        _check_not_redefined(spec)
        by_name = {s.name: s for s in spec.stages}
        for stage in spec.stages:
            for name, producer in stage.inputs.items():
                owner = by_name[producer]
                _check_passable(spec, owner, stage, name, where)
                if name not in owner.outputs:
                    owner.outputs.append(name)
        for stage in spec.stages:
            stage.outputs.sort()


_DEFINES = re.compile(r"^\s*(async\s+def|def|class)\s", re.M)


@dataclass
class _Carry:
    """What carrying some definitions into a stage adds to it."""

    imports: list[CarriedImport] = field(default_factory=list)
    definitions: list[CarriedDefinition] = field(default_factory=list)
    inputs: dict[str, str] = field(default_factory=dict)
    params: set[str] = field(default_factory=set)
    late: dict[str, str] = field(default_factory=dict)  # definition -> the input it reads when it runs


def _apply(stage: Stage, carry: _Carry, params: set[str]) -> None:
    stage.carried.extend(c for c in carry.imports if c not in stage.carried)
    stage.carried_definitions.extend(d for d in carry.definitions if d not in stage.carried_definitions)
    for name, producer in carry.inputs.items():
        stage.inputs.setdefault(name, producer)
    params |= carry.params
    stage.late_definitions.update(_late(stage.carried_definitions, {**stage.late_definitions, **carry.late}))


def _late(definitions: list[CarriedDefinition], late: dict[str, str]) -> dict[str, str]:
    """Definitions that must wait for the inputs: they read one when they run, or need one that does."""
    late = dict(late)
    changed = True
    while changed:
        changed = False
        for item in definitions:
            waits = sorted(n for n in item.at_definition if n in late and n != item.name)
            if item.name not in late and waits:
                late[item.name] = late[waits[0]]
                changed = True
    return late


class _Scope:
    """What the stages of one notebook have bound so far, read at the start of each later stage."""

    def __init__(self, spec: NotebookSpec, shared: set[str]) -> None:
        self.spec = spec
        self.shared = shared
        self.defined: dict[str, Stage] = {}
        self.imported: dict[str, list[CarriedImport]] = {}  # name -> the statements its stage bound it by
        self.definitions: dict[str, CarriedDefinition] = {}  # name -> the def/class its stage bound it by
        self.definitions_after: dict[str, dict[str, CarriedDefinition]] = {}  # stage -> definitions then
        self._made_with: dict[tuple[str, str], set[str]] = {}

    def end_of(self, stage: Stage, names: set[str], imports: dict, definitions: dict) -> None:
        for name in names:
            self.defined[name] = stage
            self.imported.pop(name, None)
            self.definitions.pop(name, None)
            if name in imports:
                self.imported[name] = imports[name]
            if name in definitions:
                self.definitions[name] = definitions[name]
        self.definitions_after[stage.name] = dict(self.definitions)

    def closure(self, stage: Stage, names: list[str]) -> _Carry:
        """The definitions ``names`` and everything they need, as ``stage`` would see them in Run All."""
        carry = _Carry()
        todo, seen = list(names), set()
        while todo:
            name = todo.pop(0)
            if name in seen:
                continue
            seen.add(name)
            item = self.definitions[name]
            carry.definitions.append(item)
            for need in sorted(item.at_definition | item.at_call):
                if need in self.shared or need == item.name:
                    continue
                if need in item.at_definition:
                    self._check_not_rebound(item, need, stage)
                if need in self.spec.params:
                    carry.params.add(need)
                elif need not in self.defined:
                    continue  # bound by the stage itself, or nowhere (a NameError in Run All too)
                elif need in self.imported:
                    carry.imports.extend(self.imported[need])
                elif need in self.definitions:
                    todo.append(need)
                else:
                    carry.inputs.setdefault(need, self.defined[need].name)
                    if need in item.at_definition:
                        carry.late.setdefault(item.name, need)
        return carry

    def _check_not_rebound(self, item: CarriedDefinition, need: str, stage: Stage) -> None:
        """A value a definition captured when it ran must still be that value where it is carried."""
        later: tuple[str, int] | None = None
        for other in self.spec.stages:
            if other is stage:
                break
            for cell in other.cells:
                if cell.number == item.cell and need in binds_after(cell.source, item.end):
                    later = (other.name, cell.number)
                elif cell.number > item.cell and need in cell.facts.writes | cell.facts.mutated:
                    later = later or (other.name, cell.number)
        if later is not None:
            raise NbprodError(
                f"line {item.line}: {item.name!r} reads {need!r} when it is defined, and {need!r} is bound again "
                f"or changed later (stage {later[0]!r}, cell {later[1]}), so stage {stage.name!r} would get another "
                f"{item.name!r} than Run All", self.spec.path, item.cell,
                fix=f"bind {need} once, or pass it to {item.name} as an argument")

    def carry_classes_of_inputs(self, stage: Stage, params: set[str]) -> None:
        """Classes a passed value was built with, and functions it holds, are defined before the stage
        loads it (unpickling finds a notebook's class or function by name in the kernel's __main__)."""
        done: set[str] = set()
        while set(stage.inputs) - done:
            for variable in sorted(set(stage.inputs) - done):
                done.add(variable)
                producer = stage.inputs[variable]
                for name in sorted(self._classes_of(producer, variable)):
                    item = self.definitions.get(name)
                    if item is None or self.definitions_after[producer].get(name) != item:
                        continue
                    if item in stage.carried_definitions:
                        self._check_defined_before_inputs(stage, item, variable)
                        continue
                    try:
                        carry = self.closure(stage, [name])
                    except NbprodError:
                        continue  # the stage does not name the class: it may not need it
                    if name not in _late(carry.definitions, {**stage.late_definitions, **carry.late}):
                        _apply(stage, carry, params)

    def _check_defined_before_inputs(self, stage: Stage, item: CarriedDefinition, variable: str) -> None:
        need = stage.late_definitions.get(item.name)
        if need is not None:
            raise NbprodError(
                f"line {item.line}: {item.kind} {item.name!r} reads {need!r} when it is defined, so nbprod defines "
                f"it in stage {stage.name!r} after loading the inputs, yet input {variable!r} was built with it "
                f"and needs it to load", self.spec.path, item.cell,
                fix=f"read {need} inside a method of {item.name} instead, or pass it as an argument")

    def _classes_of(self, producer: str, variable: str) -> set[str]:
        key = (producer, variable)
        if key not in self._made_with:
            known = self.definitions_after[producer]
            classes = {n for n, d in known.items() if d.kind == "class"}
            owner = next(s for s in self.spec.stages if s.name == producer)
            found: set[str] = set()
            if known:
                for cell in owner.cells:
                    if variable in cell.facts.writes | cell.facts.mutated:
                        if classes:
                            found |= loaded_names(cell.source, variable) & classes
                        # A function object kept in the value (g = f): pickled by name, like a class.
                        found |= assigned_names(cell.source, variable) & set(known)
            if variable in owner.inputs:  # changed in place and passed on
                found |= self._classes_of(owner.inputs[variable], variable)
            self._made_with[key] = found
        return self._made_with[key]


def _check_not_redefined(spec: NotebookSpec) -> None:
    """A carried definition is the one Run All has: its name is bound by no later stage."""
    order = [s.name for s in spec.stages]
    for stage in spec.stages:
        for item in stage.carried_definitions:
            for other in spec.stages[order.index(item.stage) + 1:]:
                cell = next((c for c in other.cells if item.name in c.facts.writes | c.facts.mutated), None)
                if cell is not None:
                    raise NbprodError(
                        f"line {item.line}: {item.name!r} is carried from stage {item.stage!r} into stage "
                        f"{stage.name!r}, and stage {other.name!r} defines it again (cell {cell.number})",
                        spec.path, item.cell, fix="give one of the two definitions another name")


def _check_followable(spec: NotebookSpec) -> None:
    """Patterns that hide which names a stage defines, in a notebook split into stages."""
    for stage in spec.stages:
        for cell in stage.cells:
            facts = cell.facts
            if facts.star_import:
                raise NbprodError(f"line {facts.star_import}: 'import *' hides which names stage "
                                  f"{stage.name!r} defines", spec.path, cell.number,
                                  fix="import the names you use, or tag the cell 'shared'")
            if facts.global_decl:
                names = ", ".join(repr(n) for n in facts.global_names)
                raise NbprodError(f"line {facts.global_decl}: a function assigns a global ({names}), which nbprod "
                                  f"cannot pass between stages", spec.path, cell.number,
                                  fix="return the value from the function and assign it in the cell")
            if facts.dynamic:
                line, what = facts.dynamic
                raise NbprodError(f"line {line}: {what} defines names nbprod cannot see", spec.path,
                                  cell.number, fix="import the code as a module in a 'shared' cell, "
                                                   "or keep this notebook as one stage")


def _check_passable(spec: NotebookSpec, owner: Stage, reader: Stage, name: str,
                    where: dict[tuple[str, str], int]) -> None:
    cell = where.get((owner.name, name), owner.first_cell)
    facts = next((c.facts for c in owner.cells if c.number == cell), None)
    if facts is None:
        return
    if name in facts.imports:
        raise NbprodError(f"stage {reader.name!r} uses {name!r}, imported in stage {owner.name!r}",
                          spec.path, cell, fix="tag the import cell 'shared' so every stage imports it")
    for other in owner.cells:
        if _DEFINES.search(other.source) and name in nested_definitions(other.source):
            line, block = nested_definitions(other.source)[name]
            raise NbprodError(f"line {line}: {name!r} is defined inside {block} in stage {owner.name!r}, so nbprod "
                              f"cannot carry it into stage {reader.name!r}", spec.path, other.number,
                              fix=f"define {name} at the top level of the cell, outside the {block.split()[-1]}")
        statement = next((d for d in definition_statements(other.source, owner.name, other.number)
                          if d.name == name), None) if _DEFINES.search(other.source) else None
        if statement is not None:
            raise NbprodError(f"line {statement.line}: {name!r} is a {statement.kind} of stage {owner.name!r} that "
                              f"the stage also assigns or changes, so nbprod cannot carry it into stage "
                              f"{reader.name!r}", spec.path, other.number,
                              fix=f"define {name} once and leave it unchanged (no assignment to it or its attributes)")
    source = next(c.source for c in owner.cells if c.number == cell)
    if re.search(rf"^\s*(async\s+def|def|class)\s+{re.escape(name)}\b", source, re.M):
        raise NbprodError(f"stage {reader.name!r} uses {name!r}, defined as a function or class in stage "
                          f"{owner.name!r}", spec.path, cell,
                          fix="tag the cell that defines it 'shared' so every stage has it")
    unconditional = set().union(*((c.facts.writes - c.facts.conditional) for c in owner.cells))
    if name in facts.conditional and name not in unconditional:
        raise NbprodError(f"{name!r} is defined on some branches only, and stage {reader.name!r} reads it",
                          spec.path, cell,
                          fix=f"give {name} a value before the if/try (for example {name} = None)")


def _link_files_and_order(pipeline: Pipeline) -> None:
    stages = pipeline.stages
    names = {s.name for s in stages}
    writer: dict[str, Stage] = {}
    for stage in stages:
        for path in stage.outs + stage.metrics + stage.plots:
            if path in writer and writer[path] is not stage:
                other = writer[path]
                raise NbprodError(f"stage {stage.name!r} writes {path}, which stage {other.name!r} "
                                  f"({other.notebook}) also writes", stage.notebook, stage.first_cell,
                                  fix="let one stage write each output file")
            writer[path] = stage
    for path, stage in writer.items():
        for other_path, other in writer.items():
            if other is not stage and other_path.startswith(path + "/"):
                raise NbprodError(f"output {other_path} of stage {other.name!r} lies inside output {path} "
                                  f"of stage {stage.name!r}", other.notebook, other.first_cell,
                                  fix="let outputs of different stages not contain each other")
    for stage in stages:
        upstream: list[str] = []
        for name, number in stage.after:
            if name not in names:
                raise NbprodError(f"'after:{name}' names no stage", stage.notebook, number,
                                  fix="use the name of an existing stage:NAME tag")
            if name == stage.name:
                raise NbprodError(f"stage {name!r} cannot run after itself", stage.notebook, number,
                                  fix="remove the after: tag")
            upstream.append(name)
        upstream.extend(stage.inputs.values())
        for dep in stage.deps:
            for path, producer in writer.items():
                if producer is not stage and (dep == path or dep.startswith(path + "/")):
                    upstream.append(producer.name)
        stage.upstream = sorted(set(upstream) - {stage.name})
    _check_cycles(pipeline)


def _check_cycles(pipeline: Pipeline) -> None:
    by_name = {s.name: s for s in pipeline.stages}
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for up in by_name[name].upstream:
            if state.get(up) == 1:
                cycle = path[path.index(up):] + [up] if up in path else [name, up]
                stage = by_name[name]
                tagged = next((n for a, n in stage.after if a == up), stage.first_cell)
                raise NbprodError(f"dependency cycle: {' -> '.join(reversed(cycle))}", stage.notebook, tagged,
                                  fix="remove an after:/deps: tag so that the stages form no loop")
            if state.get(up) is None:
                visit(up, path + [up])
        state[name] = 2

    for name in by_name:
        if name not in state:
            visit(name, [name])

