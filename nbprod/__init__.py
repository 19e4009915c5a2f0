"""nbprod: tagged Jupyter notebooks as versioned, rerunnable DVC + Papermill production jobs.

Kept import-light: ``import nbprod`` inside a kernel pulls in only the standard library
(``nbprod.record`` is stdlib-only by design).
"""

from __future__ import annotations

# Bound after the submodule is imported, so ``nbprod.record`` is the function, not the module.
from .record import record

__version__ = "0.1.0"
__all__ = ["record", "__version__"]
