"""Arrows point down: the layering of docs/architecture.md, checked on the imports themselves.

Imports are read from the source (ast), so an import inside a function counts as much as one at
the top of a module.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "nbprod"

CORE = ["nbprod.notebooks.io", "nbprod.notebooks.tags", "nbprod.notebooks.analysis", "nbprod.notebooks.pipeline", "nbprod.notebooks.compile",
        "nbprod.execution"]
ABOVE_CORE = ["nbprod.cli", "nbprod.commands", "nbprod.jupyter", "nbprod.lifecycle"]
# The run's processes and the notebook helpers stand on these; they import nothing of nbprod above them.
FOUNDATION = ["nbprod.core.errors", "nbprod.core.project", "nbprod.core.proc", "nbprod.core.provenance", "nbprod.core.stagerun"]
KERNEL_SIDE = ["nbprod.record", "nbprod.artifacts"]


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


def test_core_never_imports_the_cli_commands_server_or_lifecycle():
    assert _violations(CORE, ABOVE_CORE) == []


def test_foundation_imports_only_the_foundation():
    above = [m for m in _modules(["nbprod"]) if not any(m == f or m.startswith(f + ".") for f in FOUNDATION)
             and m != "nbprod"]
    assert _violations(FOUNDATION, above) == []


def test_reports_read_run_records_not_execution_internals():
    assert _violations(["nbprod.report"], ["nbprod.execution", "nbprod.cli", "nbprod.commands"]) == []


def test_kernel_side_modules_and_import_nbprod_load_only_the_standard_library():
    """Generated stage notebooks import nbprod.record and nbprod.artifacts in the user's kernel."""
    code = ("import json, sys\nbefore = set(sys.modules)\nimport nbprod, nbprod.record, nbprod.artifacts\n"
            "print(json.dumps(sorted(set(sys.modules) - before)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(done.stdout)
    foreign = [m for m in loaded if m.split(".")[0] not in (*sys.stdlib_module_names, "nbprod")]
    assert foreign == [], f"not standard library: {foreign}"
    ours = {m for m in loaded if m.startswith("nbprod")}
    assert ours <= {"nbprod", *KERNEL_SIDE}, ours


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
