"""What the image's venv installs: nbprod's own dependencies (no extras, so no test tools) and the
distributions the pipeline's notebooks import, with their whole closure, each pinned to the version
in the version's ``requirements.lock`` (``nbprod env lock``), else to the version installed here."""

from __future__ import annotations

from importlib import metadata

from ..core.errors import NbprodError
from ..lifecycle.environment import LOCK_FILE, parse_lock
from ..core.provenance import canonical_name

NEVER = frozenset({"nbprod", "pip", "setuptools", "wheel"})


def _requires(name: str) -> list[str]:
    try:
        return list(metadata.requires(name) or [])
    except metadata.PackageNotFoundError:
        return []


def closure(roots: list[str]) -> list[str]:
    """Canonical names of ``roots`` and everything they require here (markers evaluated for this
    interpreter, extras followed where a requirement names them), sorted."""
    from packaging.markers import default_environment
    from packaging.requirements import Requirement

    env = default_environment()
    seen: set[str] = set()
    todo = [(Requirement(r), "") for r in roots]
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({**env, "extra": extra}):
            continue
        name = canonical_name(req.name)
        if name in NEVER and name != "nbprod":
            continue
        first = name not in seen
        seen.add(name)
        for text in _requires(name):
            sub = Requirement(text)
            for wanted in [""] + sorted(req.extras):
                if sub.marker is None or sub.marker.evaluate({**env, "extra": wanted}):
                    if first or wanted:
                        todo.append((sub, wanted))
                    break
    return sorted(seen - NEVER)


def imported_modules(notebooks: dict[str, bytes]) -> set[str]:
    """Top-level names of every module the code cells of these notebooks import (any depth)."""
    import ast
    import json

    found: set[str] = set()
    for data in notebooks.values():
        for cell in json.loads(data).get("cells", []):
            if cell.get("cell_type") != "code":
                continue
            source = "".join(cell.get("source", []))
            try:
                tree = ast.parse("\n".join(l for l in source.splitlines() if not l.lstrip().startswith(("%", "!"))))
            except (SyntaxError, ValueError):
                continue
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    found |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.add(node.module.split(".")[0])
    return found


def notebook_distributions(modules: set[str]) -> list[str]:
    """The installed distributions that provide these top-level modules (unknown ones are skipped:
    the standard library, the project's own helpers)."""
    provided = metadata.packages_distributions()
    return sorted({canonical_name(d) for m in modules for d in provided.get(m, [])})


def pinned(bundle_files: dict[str, bytes], notebook_modules: set[str]) -> tuple[list[str], str | None]:
    """``name==version`` lines for the image, and the Python version the lock was made with."""
    from packaging.requirements import Requirement

    roots = [r for r in _requires("nbprod") if "extra" not in str(Requirement(r).marker or "")]
    if not roots:
        raise NbprodError("nbprod's own metadata lists no dependencies (not installed as a package?)",
                          "nbprod", fix="install nbprod with pip (pip install -e .) and build again")
    names = closure(roots + notebook_distributions(notebook_modules))
    lock = parse_lock(bundle_files[LOCK_FILE].decode()) if LOCK_FILE in bundle_files else {"packages": {}}
    here = {canonical_name(d.metadata["Name"]): d.version for d in metadata.distributions() if d.metadata["Name"]}
    lines = []
    for name in names:
        version = lock["packages"].get(name) or here.get(name)
        if version is None:
            raise NbprodError(f"{name} is needed in the image but is neither in the version's {LOCK_FILE} "
                              "nor installed here", LOCK_FILE, fix=f"pip install {name}, then 'nbprod env lock'")
        lines.append(f"{name}=={version}")
    return lines, lock.get("python")
