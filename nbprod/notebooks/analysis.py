"""Static analysis of cell code: which names a cell reads and binds, and what it cannot follow."""

from __future__ import annotations

import ast
import builtins
import re
from dataclasses import dataclass, field

BUILTINS = frozenset(dir(builtins)) | {"__file__", "__name__", "get_ipython", "display", "In", "Out", "_"}
# Cell magics whose body is still Python (the rest, like %%bash, are opaque to the analysis).
_PYTHON_CELL_MAGICS = {"time", "timeit", "capture", "prun"}
_MUTATING_METHODS = {"append", "extend", "insert", "remove", "pop", "popitem", "clear", "update",
                     "setdefault", "add", "discard", "sort", "reverse", "fit", "partial_fit",
                     "fit_transform", "set_params", "rename_axis", "__setitem__"}
_LINE_MAGIC = re.compile(r"^(\s*)(%|!)")
_ASSIGN_MAGIC = re.compile(r"^(\s*)([A-Za-z_][A-Za-z0-9_]*)\s*=\s*[%!]")
_HELP = re.compile(r"^(\s*)[^#]*\?\s*$")


class CodeSyntaxError(ValueError):
    def __init__(self, lineno: int, msg: str):
        super().__init__(msg)
        self.lineno = lineno
        self.msg = msg


@dataclass
class CodeFacts:
    """What one cell's code does with names, at the notebook's top level."""

    reads: set[str] = field(default_factory=set)        # read before this cell binds them
    writes: set[str] = field(default_factory=set)       # bound at top level
    imports: set[str] = field(default_factory=set)      # bound by import statements
    conditional: set[str] = field(default_factory=set)  # bound on some branches only
    mutated: set[str] = field(default_factory=set)      # changed in place (x[k] = .., x.append(..))
    star_import: int | None = None                      # line of `from m import *`
    global_decl: int | None = None                      # line of a `global` statement in a function
    global_names: list[str] = field(default_factory=list)  # the names that first `global` statement declares
    dynamic: tuple[int, str] | None = None              # (line, what): %run, exec(), eval(), globals()
    opaque_magic: str | None = None                     # a cell magic such as %%bash
    schemas: list[tuple[int, str | None]] = field(default_factory=list)  # nbprod.validate: (line, literal path)
    sql: list[SqlCall] = field(default_factory=list)     # nbprod.sql.read / nbprod.sql.write calls


@dataclass
class SqlCall:
    """One ``nbprod.sql.read`` or ``nbprod.sql.write`` call; ``problem`` says what compile cannot follow."""

    line: int
    kind: str                                   # "read" | "write"
    conn: str | None = None
    text: str | None = None                     # the query (read) or the table (write)
    params: dict | None = None
    mode: str = "append"
    key: list[str] = field(default_factory=list)
    problem: str | None = None


def sanitize(source: str) -> tuple[str, str | None, tuple[int, str] | None]:
    """Turn IPython syntax into plain Python for the analysis; return (code, opaque magic, %run)."""
    lines = source.split("\n")
    first = next((l for l in lines if l.strip()), "")
    if first.lstrip().startswith("%%"):
        magic = first.strip()[2:].split()[0] if first.strip()[2:] else ""
        if magic not in _PYTHON_CELL_MAGICS:
            return "", magic or "%%", None
        lines[lines.index(first)] = ""
    run = None
    out = []
    for number, line in enumerate(lines, start=1):
        stripped = line.lstrip()
        if stripped.startswith("%run") or stripped.startswith("%load"):
            run = run or (number, stripped.split()[0])
        match = _ASSIGN_MAGIC.match(line)
        if match:
            out.append(f"{match.group(1)}{match.group(2)} = None")
        elif _LINE_MAGIC.match(line):
            out.append(_LINE_MAGIC.match(line).group(1) + "pass")
        elif _HELP.match(line) and not stripped.startswith("#"):
            out.append(_HELP.match(line).group(1) + "pass")
        else:
            out.append(line)
    return "\n".join(out), None, run


def analyse_code(source: str) -> CodeFacts:
    code, opaque, run = sanitize(source)
    facts = CodeFacts(opaque_magic=opaque, dynamic=run)
    if opaque is not None:
        return facts
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        raise CodeSyntaxError(exc.lineno or 1, exc.msg) from None
    _walk_block(tree.body, set(), facts)
    for statement in tree.body:
        facts.conditional |= _conditional_binds(statement)
    # A name bound unconditionally anywhere in the cell is not "only on some branches".
    facts.conditional -= {n for s in tree.body if not isinstance(s, (ast.If, ast.Try, ast.While))
                          for n in _top_level_binds(s)}
    return facts


def _walk_block(statements: list, bound: set[str], facts: CodeFacts) -> None:
    """Visit statements in execution order so a read counts as free only before its binding."""
    for statement in statements:
        if isinstance(statement, (ast.For, ast.AsyncFor)):
            _collect([statement.iter], bound, facts)
            _bind(_names_in(statement.target), bound, facts)
            _walk_block(statement.body + statement.orelse, bound, facts)
        elif isinstance(statement, (ast.If, ast.While)):
            _collect([statement.test], bound, facts)
            _walk_block(statement.body + statement.orelse, bound, facts)
        elif isinstance(statement, (ast.With, ast.AsyncWith)):
            for item in statement.items:
                _collect([item.context_expr], bound, facts)
                if item.optional_vars is not None:
                    _bind(_names_in(item.optional_vars), bound, facts)
            _walk_block(statement.body, bound, facts)
        elif isinstance(statement, ast.Try):
            _walk_block(statement.body, bound, facts)
            for handler in statement.handlers:
                if handler.type is not None:
                    _collect([handler.type], bound, facts)
                if handler.name:
                    _bind({handler.name}, bound, facts)
                _walk_block(handler.body, bound, facts)
            _walk_block(statement.orelse + statement.finalbody, bound, facts)
        else:
            _collect([statement], bound, facts)
            binds = _top_level_binds(statement)
            _bind(binds, bound, facts)
            if isinstance(statement, (ast.Import, ast.ImportFrom)):
                facts.imports |= binds


def _collect(nodes: list, bound: set[str], facts: CodeFacts) -> None:
    collector = _Collector()
    for node in nodes:
        collector.visit(node)
    facts.reads |= {n for n in collector.loads if n not in bound and n not in BUILTINS}
    facts.mutated |= collector.mutated
    facts.star_import = facts.star_import or collector.star_import
    if facts.global_decl is None and collector.global_decl is not None:
        facts.global_decl, facts.global_names = collector.global_decl, collector.global_names
    facts.dynamic = facts.dynamic or collector.dynamic
    facts.schemas.extend(collector.schemas)
    facts.sql.extend(collector.sql)


def _bind(names: set[str], bound: set[str], facts: CodeFacts) -> None:
    bound |= names
    facts.writes |= names


def _names_in(target: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}


class _Collector(ast.NodeVisitor):
    """Free name loads of one top-level statement, honouring nested function/comprehension scopes."""

    def __init__(self) -> None:
        self.loads: set[str] = set()
        self.mutated: set[str] = set()
        self.star_import: int | None = None
        self.global_decl: int | None = None
        self.global_names: list[str] = []
        self.dynamic: tuple[int, str] | None = None
        self.schemas: list[tuple[int, str | None]] = []
        self.sql: list[SqlCall] = []
        self._locals: list[set[str]] = []

    def _is_local(self, name: str) -> bool:
        return any(name in scope for scope in self._locals)

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load) and not self._is_local(node.id):
            self.loads.add(node.id)
            if node.id == "globals" and self.dynamic is None:
                self.dynamic = (node.lineno, "globals()")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if any(alias.name == "*" for alias in node.names):
            self.star_import = self.star_import or node.lineno
        if node.module == "nbprod" and any(alias.name == "validate" for alias in node.names):
            self.schemas.append((node.lineno, None))  # calls under another name hide their schema
        if (node.module == "nbprod" and any(alias.name == "sql" for alias in node.names)) or \
                node.module == "nbprod.sql":
            self.sql.append(SqlCall(node.lineno, "read", problem="nbprod.sql is imported under another name"))

    def visit_Import(self, node: ast.Import) -> None:
        if any(alias.name == "nbprod" and alias.asname not in (None, "nbprod") for alias in node.names):
            self.schemas.append((node.lineno, None))  # nb.validate(...) would hide its schema
        if any(alias.name == "nbprod.sql" and alias.asname for alias in node.names):
            self.sql.append(SqlCall(node.lineno, "read", problem="nbprod.sql is imported under another name"))

    def visit_Global(self, node: ast.Global) -> None:
        if self._locals and self.global_decl is None:
            self.global_decl, self.global_names = node.lineno, list(node.names)

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Name) and node.func.id in ("exec", "eval") and self.dynamic is None:
            self.dynamic = (node.lineno, f"{node.func.id}()")
        if _is_nbprod_validate(node.func):
            self.schemas.append((node.lineno, _schema_literal(node)))
        kind = _nbprod_sql_call(node.func)
        if kind:
            self.sql.append(sql_call(node, kind))
        if isinstance(node.func, ast.Attribute):
            base = _base_name(node.func.value)
            inplace = any(k.arg == "inplace" and isinstance(k.value, ast.Constant) and k.value.value is True
                          for k in node.keywords)
            if base and not self._is_local(base) and (node.func.attr in _MUTATING_METHODS or inplace):
                self.mutated.add(base)
        self.generic_visit(node)

    def _store_target(self, target: ast.AST) -> None:
        if isinstance(target, (ast.Subscript, ast.Attribute)):
            base = _base_name(target.value)
            if base and not self._is_local(base):
                self.mutated.add(base)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                self._store_target(element)
        elif isinstance(target, ast.Starred):
            self._store_target(target.value)

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            self._store_target(target)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._store_target(node.target)
        if isinstance(node.target, ast.Name) and not self._is_local(node.target.id):
            self.loads.add(node.target.id)
        self.generic_visit(node)

    def visit_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            self._store_target(target)
        self.generic_visit(node)

    def _visit_scope(self, node: ast.AST, params: ast.arguments | None, body: list) -> None:
        local: set[str] = set()
        if params is not None:
            for arg in [*params.posonlyargs, *params.args, *params.kwonlyargs, params.vararg, params.kwarg]:
                if arg is not None:
                    local.add(arg.arg)
        for child in body:
            for sub in ast.walk(child):
                if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                    local.add(sub.id)
                elif isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    local.add(sub.name)
                elif isinstance(sub, (ast.Import, ast.ImportFrom)):
                    local |= {(a.asname or a.name).split(".")[0] for a in sub.names}
        declared_global = {n for child in body for sub in ast.walk(child)
                           if isinstance(sub, ast.Global) for n in sub.names}
        self._locals.append(local - declared_global)
        for child in body:
            self.visit(child)
        self._locals.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for decorator in node.decorator_list:
            self.visit(decorator)
        for default in [*node.args.defaults, *node.args.kw_defaults]:
            if default is not None:
                self.visit(default)
        self._visit_scope(node, node.args, node.body)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        for default in [*node.args.defaults, *node.args.kw_defaults]:
            if default is not None:
                self.visit(default)
        self._visit_scope(node, node.args, [node.body])

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for expr in [*node.bases, *node.decorator_list, *(k.value for k in node.keywords)]:
            self.visit(expr)
        self._visit_scope(node, None, node.body)

    def _visit_comprehension(self, node: ast.AST, elements: list) -> None:
        generators = node.generators  # type: ignore[attr-defined]
        self.visit(generators[0].iter)  # evaluated in the enclosing scope
        local = {n.id for g in generators for n in ast.walk(g.target) if isinstance(n, ast.Name)}
        self._locals.append(local)
        for index, generator in enumerate(generators):
            if index:
                self.visit(generator.iter)
            for condition in generator.ifs:
                self.visit(condition)
        for element in elements:
            self.visit(element)
        self._locals.pop()

    def visit_ListComp(self, node: ast.ListComp) -> None:
        self._visit_comprehension(node, [node.elt])

    visit_SetComp = visit_ListComp
    visit_GeneratorExp = visit_ListComp

    def visit_DictComp(self, node: ast.DictComp) -> None:
        self._visit_comprehension(node, [node.key, node.value])


def _is_nbprod_validate(func: ast.AST) -> bool:
    return (isinstance(func, ast.Attribute) and func.attr == "validate" and isinstance(func.value, ast.Name)
            and func.value.id == "nbprod")


def _nbprod_sql_call(func: ast.AST) -> str | None:
    """"read" or "write" for ``nbprod.sql.read(...)`` / ``nbprod.sql.write(...)``, else None."""
    if isinstance(func, ast.Attribute) and func.attr in ("read", "write") and isinstance(func.value, ast.Attribute) \
            and func.value.attr == "sql" and isinstance(func.value.value, ast.Name) and func.value.value.id == "nbprod":
        return func.attr
    return None


def _argument(call: ast.Call, position: int, name: str) -> ast.AST | None:
    if len(call.args) > position and not any(isinstance(a, ast.Starred) for a in call.args[:position + 1]):
        return call.args[position]
    return next((k.value for k in call.keywords if k.arg == name), None)


def _literal(node: ast.AST | None) -> tuple[bool, object]:
    if node is None:
        return True, None
    try:
        return True, ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None


def sql_call(call: ast.Call, kind: str) -> SqlCall:
    """The literal arguments of one nbprod.sql call, or the first one that is not a literal."""
    found = SqlCall(call.lineno, kind)
    if any(k.arg is None for k in call.keywords) or any(isinstance(a, ast.Starred) for a in call.args):
        found.problem = "its arguments are unpacked (* or **)"
        return found
    first = _argument(call, 0, "query") if kind == "read" else _argument(call, 1, "table")
    what = "query" if kind == "read" else "table name"
    ok, value = _literal(first)
    if not ok or not isinstance(value, str) or not value.strip():
        found.problem = f"the {what} is not a string literal"
        return found
    found.text = value
    ok, conn = _literal(_argument(call, 1 if kind == "read" else 2, "conn"))
    if not ok or not isinstance(conn, str) or not conn:
        found.problem = "conn= is not a string literal naming a connection"
        return found
    found.conn = conn
    if kind == "read":
        ok, params = _literal(_argument(call, 2, "params"))
        if not ok or not (params is None or isinstance(params, dict) and all(isinstance(k, str) for k in params)):
            found.problem = "params= is not a literal dict (its values decide which rows the snapshot holds)"
            return found
        found.params = params or {}
        return found
    ok, mode = _literal(_argument(call, 3, "mode"))
    if not ok or mode not in (None, "append", "replace", "upsert"):
        found.problem = 'mode= is not one of the literals "append", "replace", "upsert"'
        return found
    found.mode = mode or "append"
    ok, key = _literal(_argument(call, 4, "key"))
    if not ok or not (key is None or isinstance(key, (list, tuple)) and all(isinstance(k, str) for k in key)):
        found.problem = "key= is not a literal list of column names"
        return found
    found.key = list(key or [])
    if found.mode == "upsert" and not found.key:
        found.problem = 'mode="upsert" needs key=[...] naming the key columns'
    return found


def _schema_literal(call: ast.Call) -> str | None:
    """The schema argument of ``nbprod.validate(df, SCHEMA)`` when it is a string literal, else None."""
    node = call.args[1] if len(call.args) > 1 else next((k.value for k in call.keywords if k.arg == "schema"), None)
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value:
        return node.value
    return None


def _base_name(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _top_level_binds(statement: ast.stmt) -> set[str]:
    """Names a top-level statement binds in the notebook's namespace."""
    names: set[str] = set()

    def walk(node: ast.AST) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            return
        if isinstance(node, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            return
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names if a.name != "*")
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, ast.NamedExpr):
            names.add(node.target.id)
        for child in ast.iter_child_nodes(node):
            walk(child)

    walk(statement)
    return names


def _conditional_binds(statement: ast.stmt) -> set[str]:
    """Names an if/try statement binds on some of its branches but not all of them."""
    if isinstance(statement, ast.If):
        body = set().union(*(_top_level_binds(s) for s in statement.body))
        orelse = set().union(*(_top_level_binds(s) for s in statement.orelse)) if statement.orelse else set()
        inner = set().union(*(_conditional_binds(s) for s in statement.body + statement.orelse))
        return (body ^ orelse) | inner
    if isinstance(statement, ast.Try):
        body = set().union(*(_top_level_binds(s) for s in statement.body + statement.orelse))
        handlers = [set().union(*(_top_level_binds(s) for s in h.body)) for h in statement.handlers]
        final = set().union(*(_top_level_binds(s) for s in statement.finalbody))
        every = body.intersection(*handlers) if handlers else body
        return (body.union(*handlers) - every) - final
    return set()


_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_RANGE = re.compile(rf"^\s*([A-Za-z_.][\w.]*)\s*(?:=|<-)[^#]*#.*?\brange:\s*({_NUMBER})\s*\.\.\s*({_NUMBER})")


def declared_ranges(source: str) -> dict[str, tuple[float, float]]:
    """The ranges a parameters cell declares in trailing comments: ``rate = 0.1  # range: 0..1``."""
    ranges = {}
    for line in source.split("\n"):
        match = _RANGE.match(line)
        if match:
            ranges[match.group(1)] = (float(match.group(2)), float(match.group(3)))
    return ranges


def literal_assignments(source: str) -> tuple[dict[str, object], tuple[int, str] | None]:
    """The NAME = literal assignments of a parameters cell, or the first offending (line, code)."""
    code, opaque, _ = sanitize(source)
    if opaque is not None:
        return {}, (1, source.split("\n")[0])
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        return {}, (exc.lineno or 1, f"syntax error: {exc.msg}")
    values: dict[str, object] = {}
    lines = source.split("\n")
    for statement in tree.body:
        target, value = None, None
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
            target, value = statement.targets[0], statement.value
        elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
            target, value = statement.target, statement.value
        elif isinstance(statement, ast.Pass):
            continue
        text = lines[statement.lineno - 1].strip() if statement.lineno <= len(lines) else ""
        if not isinstance(target, ast.Name) or value is None:
            return {}, (statement.lineno, text)
        try:
            literal = ast.literal_eval(value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return {}, (statement.lineno, text)
        if not _yaml_safe(literal):
            return {}, (statement.lineno, text)
        values[target.id] = literal
    return values, None


def _yaml_safe(value: object, depth: int = 0) -> bool:
    if depth > 20:
        return False
    if value is None or isinstance(value, (bool, int, float, str)):
        return not (isinstance(value, float) and value != value)  # NaN does not round-trip
    if isinstance(value, list):
        return all(_yaml_safe(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _yaml_safe(v, depth + 1) for k, v in value.items())
    return False


def definition_needs(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef,
                     ) -> tuple[set[str], set[str], set[str]]:
    """Free names a top-level ``def``/``class`` reads ``(when the statement runs, when it is called)``,
    and the globals its function bodies change in place when called.

    Decorators, default values, annotations, base classes and a class body run with the statement;
    function and method bodies run at call time, when the notebook's globals are read again."""
    at_definition: set[str] = set()
    at_call: set[str] = set()
    changes: set[str] = set()

    def loads(nodes: list, local: set[str] = frozenset()) -> set[str]:
        collector = _Collector()
        for item in nodes:
            collector.visit(item)
        return {n for n in collector.loads if n not in BUILTINS and n not in local}

    def signature(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list:
        args = fn.args
        every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
        return [*fn.decorator_list, *args.defaults, *(d for d in args.kw_defaults if d is not None),
                *(a.annotation for a in every if a is not None and a.annotation is not None),
                *([fn.returns] if fn.returns is not None else [])]

    def function(fn: ast.FunctionDef | ast.AsyncFunctionDef, local: set[str]) -> None:
        at_definition.update(loads(signature(fn), local))
        collector = _Collector()
        collector._visit_scope(fn, fn.args, fn.body)
        at_call.update(n for n in collector.loads if n not in BUILTINS)
        changes.update(collector.mutated)

    def klass(cls: ast.ClassDef, local: set[str]) -> None:
        at_definition.update(loads([*cls.bases, *cls.decorator_list, *(k.value for k in cls.keywords)], local))
        # Names the class body binds are visible to later statements of the body, not to its methods.
        inner = set(local)
        for statement in cls.body:
            if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
                function(statement, inner)
            elif isinstance(statement, ast.ClassDef):
                klass(statement, inner)
            else:
                at_definition.update(loads([statement], inner))
            inner |= _top_level_binds(statement)

    if isinstance(node, ast.ClassDef):
        klass(node, set())
    else:
        function(node, set())
    return at_definition, at_call, changes
