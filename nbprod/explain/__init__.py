"""Why a model decides as it does: ``nbprod.explain(model, X, y=None)`` (permutation importance and
SHAP values, recorded as ``importance.*`` metrics and shown as a report section).

Importing this package costs only the standard library: scikit-learn, shap, pandas and matplotlib are
imported on the first call (``compute.py``). ``names.py`` and ``compare.py`` stay stdlib-only, so the
lifecycle (candidate report, model card) can read recorded importances without them.
"""

from __future__ import annotations

import sys
import types


def explain(model, X, y=None, **options):
    """Global importance of each feature on ``X`` (holdout rows), recorded and shown as a report
    section; see :func:`nbprod.explain.compute.explain` for every option."""
    from .compute import explain as run_explain

    return run_explain(model, X, y, **options)


class _CallableModule(types.ModuleType):
    """``nbprod.explain`` names this package once any of its modules is imported (the lifecycle reads
    ``names.py``), so the package itself answers a call too."""

    def __call__(self, model, X, y=None, **options):
        return explain(model, X, y, **options)


sys.modules[__name__].__class__ = _CallableModule

__all__ = ["explain"]
