"""Arrows point down: the layering of docs/architecture.md, checked on the imports themselves.

Imports are read from the source (ast), so an import inside a function counts as much as one at
the top of a module.
"""

from __future__ import annotations

import ast
from pathlib import Path

from helpers.paths import REPO

PACKAGE = REPO / "nbprod"

# One folder a layer (docs/architecture.md). The foundation imports nothing of nbprod above it; the reading
# core and the execution core stand on it; the capabilities and the shells stand on those.
FOUNDATION = ["nbprod.core"]
CORE = ["nbprod.notebooks", "nbprod.executed", "nbprod.execution"]
CAPABILITIES = ["nbprod.lifecycle", "nbprod.monitor", "nbprod.serve", "nbprod.contracts", "nbprod.fairness",
                "nbprod.report", "nbprod.export", "nbprod.widgets", "nbprod.explain", "nbprod.modelcard",
                "nbprod.feedback", "nbprod.sql", "nbprod.image", "nbprod.online"]
SHELLS = ["nbprod.cli", "nbprod.commands", "nbprod.jupyter"]


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports, wherever the import statement is."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)  # `from . import x`
    return found


def _modules(prefixes: list[str]) -> dict[str, Path]:
    every = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {n: p for n, p in every.items() if any(n == x or n.startswith(x + ".") for x in prefixes)}


def _violations(modules: list[str], forbidden: list[str]) -> list[str]:
    bad = []
    for name, path in sorted(_modules(modules).items()):
        for imported in sorted(_imports(path)):
            if any(imported == f or imported.startswith(f + ".") for f in forbidden):
                bad.append(f"{name} imports {imported}")
    return bad


def test_import_reader_sees_function_level_and_relative_imports(tmp_path):
    assert "nbprod.lifecycle.environment" in _imports(PACKAGE / "commands" / "lifecycle.py")
    assert "nbprod.execution.kernelpool" in _imports(PACKAGE / "execution" / "stage.py")  # inside a function
    assert "nbprod.execution.dvcadapter" in _imports(PACKAGE / "execution" / "scheduler.py")  # from . import x
    assert "nbprod.core.gitrepo" in _imports(PACKAGE / "serve" / "loader.py")


def test_core_never_imports_the_shells_or_the_capabilities_above_it():
    """Two data sources are the exceptions: compile adds a literal schema path as a dep (contracts' lookup
    rule), and a literal SQL query is a stage input (compile makes its snapshot stage, the scheduler runs
    it in process, status names a source table's schema change)."""
    allowed = ("nbprod.contracts.schemas", "nbprod.sql.queries", "nbprod.sql.snapshot", "nbprod.sql.sources")
    bad = [v for v in _violations(CORE, SHELLS + CAPABILITIES) if not v.split(" imports ")[1].startswith(allowed)]
    assert bad == []


def test_foundation_imports_only_the_foundation():
    above = [m for m in _modules(["nbprod"]) if not any(m == f or m.startswith(f + ".") for f in FOUNDATION)
             and m != "nbprod"]
    assert _violations(FOUNDATION, above) == []


def test_capabilities_never_import_the_shells():
    assert _violations(CAPABILITIES, SHELLS) == []


def test_reading_core_never_imports_execution():
    assert _violations(["nbprod.notebooks", "nbprod.executed"], ["nbprod.execution"]) == []


def test_few_top_level_modules_and_no_two_files_share_a_name():
    """The top of nbprod/ holds the public faces only; a repeated file name is the same role in parallel
    packages, listed here (and in docs/architecture.md) with that role."""
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert top == ["__init__.py", "__main__.py", "artifacts.py", "cli.py", "record.py"]
    same_role = {"settings.py": {"lifecycle", "monitor", "serve", "feedback",  # the reader of [tool.nbprod.<package>]
                                 "online"},
                 "section.py": {"contracts", "fairness", "explain"},  # the HTML section a stage report shows
                 "names.py": {"fairness", "explain"},  # the metric naming scheme (stdlib only)
                 "compare.py": {"fairness", "explain"}}  # champion against candidate (stdlib only)
    seen: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        if path.name != "__init__.py":
            seen.setdefault(path.name, set()).add(path.parent.relative_to(PACKAGE).as_posix())
    repeated = {name: folders for name, folders in seen.items() if len(folders) > 1}
    assert repeated == same_role


def test_reports_read_run_records_not_execution_internals():
    assert _violations(["nbprod.report"], ["nbprod.execution", "nbprod.cli", "nbprod.commands"]) == []


def test_no_private_name_crosses_a_module():
    """A `_name` imported from another nbprod module wants a public home."""
    crossing = []
    for name, path in sorted(_modules(["nbprod"]).items()):
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom):
                continue
            module = node.module or ""
            if node.level:
                base = package.split(".")
                module = ".".join(base[: len(base) - node.level + 1] + ([module] if module else []))
            if not module.startswith("nbprod"):
                continue
            for alias in node.names:
                full = f"{module}.{alias.name}"
                if alias.name.startswith("_") and not alias.name.startswith("__") and full not in _modules(["nbprod"]):
                    crossing.append(f"{name} imports {full}")
    assert crossing == []


# A monitoring record is a folder of its own with a copy of the run's files under these names.
RECORD_LAYOUT = {("nbprod.monitor.records", "metrics/")}


def test_project_paths_are_spelled_only_in_project_py():
    """`.nbprod/...`, `reports/...` and `metrics/...` come from nbprod.core.project's constants."""
    literal = []
    for name, path in sorted(_modules(["nbprod"]).items()):
        if name == "nbprod.core.project":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                value = node.value
                if (value == ".nbprod" or value.startswith((".nbprod/", "reports/", "metrics/"))) and \
                        (name, value) not in RECORD_LAYOUT:
                    literal.append(f"{name}:{node.lineno}: {value!r}")
    assert literal == []
