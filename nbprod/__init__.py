"""nbprod: tagged Jupyter notebooks as versioned, rerunnable DVC + Papermill production jobs.

Kept import-light: ``import nbprod`` inside a kernel pulls in only the standard library
(``nbprod.record`` is stdlib-only by design). The other notebook helpers (``validate``, ``drift``,
``fairness``, ``panel``, ``params_form``, ``sql``) are looked up on first use through ``__getattr__``, so
their libraries (pandera, scipy, fairlearn, ipywidgets) load only when a notebook calls them.
"""

from __future__ import annotations

import importlib

# Bound after the submodule is imported, so ``nbprod.record`` is the function, not the module.
from .record import record

__version__ = "0.1.0"

# Notebook helper name -> "module:attribute", imported on first access (PEP 562).
_LAZY = {
    "validate": "nbprod.contracts.validation:validate",
    "drift": "nbprod.contracts.drift:drift",
    "fairness": "nbprod.fairness:fairness",
    "explain": "nbprod.explain:explain",
    "panel": "nbprod.widgets.panel:panel",
    "params_form": "nbprod.widgets.params_form:params_form",
    "sql": "nbprod.sql",  # the module itself: nbprod.sql.read / nbprod.sql.write
}

__all__ = ["record", "__version__", *_LAZY]


def __getattr__(name: str):
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'nbprod' has no attribute {name!r}")
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    value = getattr(module, attr) if attr else module
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
