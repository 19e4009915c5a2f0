"""Fairness audit of a binary classifier, by group: ``nbprod.fairness(y_true, y_pred, sensitive_features=...)``.

Importing this package costs only the standard library: fairlearn, numpy, pandas and matplotlib are
imported on the first call (``audit.py``). ``names.py`` and ``compare.py`` stay stdlib-only, so the
lifecycle (candidate report, approve, history) can read recorded fairness metrics without them.
"""

from __future__ import annotations


def fairness(y_true, y_pred, *, sensitive_features, y_score=None, min_group_size: int = 30, **options):
    """Group metrics with bootstrap intervals, recorded as ``fairness.*`` metrics and shown as a report
    section; see :func:`nbprod.fairness.audit.fairness` for every option."""
    from .audit import fairness as run_audit

    return run_audit(y_true, y_pred, sensitive_features=sensitive_features, y_score=y_score,
                     min_group_size=min_group_size, **options)


__all__ = ["fairness"]
