"""Incremental updates of a scikit-learn model: which models can learn (``partial_fit``, also as the
last step of a Pipeline whose earlier steps stay as fitted), the prequential (test-then-train) pass,
its ``online.*`` figures, and the drift of the window's inputs from the parent's training data."""

from __future__ import annotations

from dataclasses import dataclass, field

from nbprod.core.errors import NbprodError

DRIFT_P = 0.01  # a feature drifted when the two-sample Kolmogorov-Smirnov test rejects at this level


@dataclass
class Prequential:
    model: object                      # the updated model (a copy; the parent's object is untouched)
    metrics: dict[str, float]          # online.<metric>
    batches: int
    predictions: list = field(default_factory=list)


def learner_of(model, where: str) -> tuple[object, object | None]:
    """(the step that learns, the fitted steps before it or None); refuses a model without partial_fit."""
    steps = getattr(model, "steps", None)
    final = steps[-1][1] if steps else model
    if not callable(getattr(final, "partial_fit", None)):
        kind = type(final).__name__
        raise NbprodError(f"the production model ({kind}) has no partial_fit, so it cannot learn incrementally",
                          where, fix="use an estimator with partial_fit (e.g. SGDClassifier), or retrain it "
                                     "from scratch with 'nbprod retrain'")
    return final, (model[:-1] if steps else None)


def prequential(model, frame, outcome: list, batch_size: int, where: str) -> Prequential:
    """Each batch is first predicted by the model as it stands, then learned from."""
    import copy

    import numpy as np

    updated = copy.deepcopy(model)
    final, before = learner_of(updated, where)
    classes = getattr(final, "classes_", None)
    y = np.asarray(outcome)
    if classes is not None:
        y = y.astype(np.asarray(classes).dtype, copy=False)
    predicted, proba = [], []
    batches = 0
    for start in range(0, len(y), batch_size):
        part, labels = frame.iloc[start:start + batch_size], y[start:start + batch_size]
        predicted.extend(updated.predict(part).tolist())
        if hasattr(updated, "predict_proba"):
            proba.extend(updated.predict_proba(part).tolist())
        features = before.transform(part) if before is not None else part
        if classes is not None:
            final.partial_fit(features, labels, classes=classes)
        else:
            final.partial_fit(features, labels)
        batches += 1
    figures = quality(y.tolist(), predicted, proba or None, classes)
    return Prequential(updated, {f"online.{k}": v for k, v in figures.items()}, batches, predicted)


def quality(truth: list, predicted: list, proba: list | None, classes) -> dict[str, float]:
    """Classifiers (``classes`` known): accuracy; precision, recall, f1, roc_auc, log_loss for two classes
    (the second is positive). Regressors (no classes): mae, rmse, r2."""
    import numpy as np
    from sklearn import metrics

    if classes is None:
        t, p = np.asarray(truth, dtype=float), np.asarray(predicted, dtype=float)
        return {"n": float(len(t)), "mae": float(metrics.mean_absolute_error(t, p)),
                "rmse": float(np.sqrt(metrics.mean_squared_error(t, p))),
                "r2": float(metrics.r2_score(t, p)) if len(t) > 1 else float("nan")}
    out = {"n": float(len(truth)), "accuracy": float(metrics.accuracy_score(truth, predicted))}
    labels = list(classes)
    if len(labels) == 2:
        positive = labels[1]
        for name, score in (("precision", metrics.precision_score), ("recall", metrics.recall_score),
                            ("f1", metrics.f1_score)):
            out[name] = float(score(truth, predicted, pos_label=positive, zero_division=0))
        if proba is not None and len(set(truth)) == 2:
            p = np.asarray(proba, dtype=float)
            out["roc_auc"] = float(metrics.roc_auc_score([t == positive for t in truth], p[:, 1]))
            out["log_loss"] = float(metrics.log_loss(truth, p, labels=labels))
    return out


def drift_share(training, window) -> tuple[float, list[str]]:
    """The share of numeric features whose window values differ in distribution from the training data."""
    import numpy as np
    from scipy.stats import ks_2samp

    checked, drifted = 0, []
    for name in window.columns:
        if name not in training.columns:
            continue
        a = np.asarray(training[name], dtype=float) if training[name].dtype.kind in "biuf" else None
        b = np.asarray(window[name], dtype=float) if window[name].dtype.kind in "biuf" else None
        if a is None or b is None or not len(a) or not len(b):
            continue
        checked += 1
        if ks_2samp(a[~np.isnan(a)], b[~np.isnan(b)]).pvalue < DRIFT_P:
            drifted.append(str(name))
    return (len(drifted) / checked if checked else 0.0), drifted
