"""Checking what a notebook passes to ``nbprod.fairness``: one ``NbprodError`` line per mistake.

Labels become 0/1 arrays (``pos_label`` is 1), each sensitive feature a column of string labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..core.errors import NbprodError
from .names import METRICS, slug

WHERE = "nbprod.fairness"
BINARY_METRICS = ("selection_rate", "recall", "fpr", "roc_auc")


@dataclass
class AuditInput:
    y_true: np.ndarray            # 0/1 when every asked metric is binary, else the labels as given
    y_pred: np.ndarray
    y_score: np.ndarray | None
    features: pd.DataFrame        # one column of string group labels per sensitive feature
    metrics: tuple[str, ...]
    binary: bool


def _error(message: str, fix: str) -> NbprodError:
    return NbprodError(message, WHERE, fix=fix)


def _array(name: str, values) -> np.ndarray:
    array = values.to_numpy() if isinstance(values, (pd.Series, pd.Index)) else np.asarray(values)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise _error(f"{name} must be one value per row, not an array of shape {array.shape}",
                     f"pass a 1-D array, list or pandas Series as {name} "
                     "(several sensitive features: a DataFrame or a dict of columns)")
    return array


def _nan_count(array: np.ndarray) -> int:
    return int(pd.isna(pd.Series(array)).sum())


def _features(sensitive_features, rows: int) -> pd.DataFrame:
    if isinstance(sensitive_features, pd.DataFrame):
        columns = {str(c): sensitive_features[c] for c in sensitive_features.columns}
    elif isinstance(sensitive_features, dict):
        columns = {str(k): v for k, v in sensitive_features.items()}
    elif isinstance(sensitive_features, pd.Series) and sensitive_features.name is not None:
        columns = {str(sensitive_features.name): sensitive_features}
    else:
        columns = {"group": sensitive_features}
    if not columns:
        raise _error("sensitive_features is empty", "pass a column of group labels, e.g. test['sex']")
    frame = {}
    for name, values in columns.items():
        array = _array(f"sensitive feature {name!r}", values)
        if len(array) != rows:
            raise _error(f"sensitive feature {name!r} has {len(array)} values but y_true has {rows}",
                         "pass the sensitive features of the same rows as the labels")
        missing = _nan_count(array)
        if missing:
            raise _error(f"sensitive feature {name!r} has {missing} missing value(s) (NaN/None)",
                         "fill them with an explicit label, e.g. .fillna('unknown'), or drop those rows")
        labels = pd.Series(array).astype(str).to_numpy()
        distinct = sorted(set(labels))
        if len(distinct) < 2:
            raise _error(f"sensitive feature {name!r} has a single group ({distinct[0]!r}): nothing to compare",
                         "pass a feature with at least two groups")
        slugs: dict[str, str] = {}
        for label in distinct:
            other = slugs.setdefault(slug(label), label)
            if other != label:
                raise _error(f"groups {other!r} and {label!r} of {name!r} have the same metric name {slug(label)!r}",
                             "relabel one of them (metric names keep letters, digits, '_' and '-')")
        frame[name] = labels
    return pd.DataFrame(frame)


def _binary(name: str, array: np.ndarray, pos_label) -> np.ndarray:
    return (array == pos_label).astype(np.int8)


def check_input(y_true, y_pred, sensitive_features, y_score, metrics, pos_label) -> AuditInput:
    true = _array("y_true", y_true)
    pred = _array("y_pred", y_pred)
    rows = len(true)
    if len(pred) != rows:
        raise _error(f"y_true has {rows} values but y_pred has {len(pred)}",
                     "pass the labels and predictions of the same rows")
    if rows == 0:
        raise _error("y_true is empty", "pass the labels and predictions of the holdout rows")
    score = None
    if y_score is not None:
        score = _array("y_score", y_score)
        if len(score) != rows:
            raise _error(f"y_true has {rows} values but y_score has {len(score)}",
                         "pass the scores of the same rows as the labels")
        try:
            score = score.astype(float)
        except (TypeError, ValueError):
            raise _error("y_score must be numbers (a probability or score per row)",
                         "pass model.predict_proba(X)[:, 1] or decision_function(X)") from None
        if np.isnan(score).any():
            raise _error(f"y_score has {int(np.isnan(score).sum())} NaN value(s)", "score every row")
    for name, array in (("y_true", true), ("y_pred", pred)):
        if _nan_count(array):
            raise _error(f"{name} has {_nan_count(array)} missing value(s) (NaN/None)", "drop those rows first")
    asked = tuple(metrics) if metrics else tuple(m for m in METRICS if m != "roc_auc" or score is not None)
    unknown = [m for m in asked if m not in METRICS]
    if unknown:
        raise _error(f"unknown metric {unknown[0]!r}", f"choose from {', '.join(METRICS)}")
    if "roc_auc" in asked and score is None:
        raise _error("roc_auc needs scores", "pass y_score=model.predict_proba(X)[:, 1], or leave roc_auc out")
    binary = any(m in BINARY_METRICS for m in asked)
    if binary:
        labels = sorted({*pd.unique(true).tolist(), *pd.unique(pred).tolist()}, key=str)
        binary_metric = next(m for m in asked if m in BINARY_METRICS)
        if len(labels) > 2:
            shown = ", ".join(repr(v) for v in labels[:5]) + (", ..." if len(labels) > 5 else "")
            raise _error(f"{binary_metric} needs binary labels, but y_true and y_pred hold {len(labels)} "
                         f"labels ({shown})",
                         "pass decisions (y == positive_class) for both and scores as y_score=, "
                         "or ask only metrics=('accuracy',)")
        if pos_label not in labels and not set(labels) <= {0, 1}:
            raise _error(f"pos_label={pos_label!r} is not one of the labels ({', '.join(map(repr, labels))})",
                         "pass pos_label= the positive class")
        true, pred = _binary("y_true", true, pos_label), _binary("y_pred", pred, pos_label)
    return AuditInput(true, pred, score, _features(sensitive_features, rows), asked, binary)
