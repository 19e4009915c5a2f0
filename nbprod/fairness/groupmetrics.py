"""The per-group metric functions handed to fairlearn's ``MetricFrame``.

Plain numpy on 0/1 arrays: ``MetricFrame(n_boot=N)`` calls each one per group per resample, and
scikit-learn's checked versions made a 100-resample audit about five times slower. A metric that is
undefined for a group (recall with no positives, ROC AUC with one class) is NaN, never an error.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def selection_rate(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(y_pred == 1))


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(y_true == y_pred))


def recall(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    positives = y_true == 1
    return float(np.mean(y_pred[positives] == 1)) if positives.any() else float("nan")


def fpr(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    negatives = y_true == 0
    return float(np.mean(y_pred[negatives] == 1)) if negatives.any() else float("nan")


def roc_auc(y_true: np.ndarray, y_pred: np.ndarray, y_score: np.ndarray) -> float:
    """Mann-Whitney form of the ROC AUC (ties count half), as scikit-learn's roc_auc_score."""
    positives = y_true == 1
    n_pos = int(positives.sum())
    n_neg = len(y_true) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(y_score)
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


FUNCTIONS = {"selection_rate": selection_rate, "accuracy": accuracy, "recall": recall, "fpr": fpr,
             "roc_auc": roc_auc}
