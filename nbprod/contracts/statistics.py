"""The drift statistics themselves: pure functions of two samples (numpy arrays or counts).

Each returns a float score. p-value tests (``ks``, ``chisquare``, ``z``) call drift when the score is
below the threshold; distances (``wasserstein``, ``jensenshannon``, ``psi``) when it is at or above it.
Defaults follow Evidently's so results can be compared (see README, "Data contracts").
scipy is imported inside the functions: importing this module costs only numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class StatTest:
    name: str
    kind: str                 # "numeric", "categorical" or "both": the columns it applies to
    threshold: float          # default threshold
    higher_is_drift: bool     # distances: score >= threshold is drift; p-values: score < threshold
    label: str

    def drifted(self, score: float, threshold: float) -> bool:
        return score >= threshold if self.higher_is_drift else score < threshold


TESTS: dict[str, StatTest] = {
    "ks": StatTest("ks", "numeric", 0.05, False, "two-sample Kolmogorov-Smirnov p-value"),
    "wasserstein": StatTest("wasserstein", "numeric", 0.1, True, "Wasserstein distance / reference std"),
    "chisquare": StatTest("chisquare", "categorical", 0.05, False, "chi-squared p-value"),
    "z": StatTest("z", "categorical", 0.05, False, "two-proportion Z-test p-value"),
    "jensenshannon": StatTest("jensenshannon", "both", 0.1, True, "Jensen-Shannon distance"),
    "psi": StatTest("psi", "both", 0.1, True, "population stability index"),
}

# Evidently's floor for the reference standard deviation when normalising the Wasserstein distance.
_MIN_NORM = 0.001
# PSI and Jensen-Shannon: empty bins get this share, so a log or ratio never divides by zero.
_EMPTY_SHARE = 0.0001
NUMERIC_BINS = 10


def ks_pvalue(reference: np.ndarray, current: np.ndarray) -> float:
    from scipy.stats import ks_2samp

    return float(ks_2samp(reference, current).pvalue)


def wasserstein_norm(reference: np.ndarray, current: np.ndarray) -> float:
    """Wasserstein (earth mover's) distance in units of the reference's standard deviation."""
    norm = max(float(np.std(reference)), _MIN_NORM)
    return wasserstein_1d(reference, current) / norm


def wasserstein_1d(u: np.ndarray, v: np.ndarray) -> float:
    """The 1-D Wasserstein distance, the value ``scipy.stats.wasserstein_distance`` gives (tested).

    Computed here because scipy's general weighted version spends most of its time per column in
    bookkeeping (benchmarks/README.md); the area between the two empirical CDFs needs only two sorts
    (for samples of equal size it is the mean gap between their sorted values).
    """
    u, v = np.sort(u), np.sort(v)
    if len(u) == len(v):
        return float(np.mean(np.abs(u - v)))
    points = np.sort(np.concatenate([u, v]))
    u_cdf = np.searchsorted(u, points[:-1], side="right") / len(u)
    v_cdf = np.searchsorted(v, points[:-1], side="right") / len(v)
    return float(np.sum(np.abs(u_cdf - v_cdf) * np.diff(points)))


def chisquare_pvalue(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    """Chi-squared test of homogeneity over the categories of both samples (a 2 x k table).

    A contingency table rather than a goodness-of-fit against the reference's shares: the reference
    is a sample too, and treating its shares as exact makes the test fire about twice as often as
    its threshold says on two samples of the same distribution.
    """
    from scipy.stats import chi2_contingency

    table = np.vstack([reference_counts, current_counts])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 1.0
    return float(chi2_contingency(table, correction=False).pvalue)


def z_pvalue(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    """Two-sided two-proportion Z-test on the first of two categories (pooled variance)."""
    from scipy.stats import norm

    n_ref, n_cur = float(reference_counts.sum()), float(current_counts.sum())
    p_ref, p_cur = reference_counts[0] / n_ref, current_counts[0] / n_cur
    pooled = (reference_counts[0] + current_counts[0]) / (n_ref + n_cur)
    spread = np.sqrt(pooled * (1 - pooled) * (1 / n_ref + 1 / n_cur))
    if spread == 0:
        return 1.0
    return float(2 * norm.sf(abs(p_ref - p_cur) / spread))


def _shares(counts: np.ndarray) -> np.ndarray:
    shares = counts / counts.sum()
    return np.where(shares == 0, _EMPTY_SHARE, shares)


def jensenshannon_distance(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    from scipy.spatial.distance import jensenshannon

    return float(jensenshannon(reference_counts / reference_counts.sum(), current_counts / current_counts.sum()))


def psi(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    """Population stability index: sum over bins of (cur - ref) * ln(cur / ref), shares."""
    ref, cur = _shares(reference_counts), _shares(current_counts)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def numeric_bins(reference: np.ndarray, current: np.ndarray, bins: int = NUMERIC_BINS) -> tuple[np.ndarray, np.ndarray]:
    """Counts of both samples over ``bins`` equal-width bins spanning both (for PSI and JS on numbers)."""
    low = min(reference.min(), current.min())
    high = max(reference.max(), current.max())
    if low == high:
        return np.array([len(reference)], float), np.array([len(current)], float)
    edges = np.linspace(low, high, bins + 1)
    return (np.histogram(reference, edges)[0].astype(float), np.histogram(current, edges)[0].astype(float))


def score(test: str, reference: np.ndarray, current: np.ndarray, numeric: bool) -> float:
    """The score of ``test`` for two samples: raw values for a numeric column, else category counts."""
    if test == "ks":
        return ks_pvalue(reference, current)
    if test == "wasserstein":
        return wasserstein_norm(reference, current)
    if numeric and test in ("jensenshannon", "psi"):
        reference, current = numeric_bins(reference, current)
    if test == "chisquare":
        return chisquare_pvalue(reference, current)
    if test == "z":
        return z_pvalue(reference, current)
    if test == "jensenshannon":
        return jensenshannon_distance(reference, current)
    if test == "psi":
        return psi(reference, current)
    raise ValueError(f"unknown drift test {test!r}")
