"""``nbprod.explain``: permutation importance (scikit-learn) on the given rows and SHAP values where
shap can explain the model, recorded as ``importance.<feature>`` shares and shown as a report section.

The recorded share is SHAP's mean absolute contribution when shap explains the model, else the
permutation importance (clipped at 0); either way the shares of all features sum to 1, so a gate such
as ``importance.zip_code <= 0.05`` means "at most 5% of what the model relies on".
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..core.errors import NbprodError
from . import names
from .shapvalues import ShapExplainer, Unexplainable, build

WHERE = "nbprod.explain"


@dataclass
class Explanation:
    features: list[str]
    importance: pd.DataFrame          # one row per feature: share, shap, permutation, permutation_std, rank
    method: str                       # "shap" or "permutation"
    explainer: str | None             # the shap explainer's kind, when shap explained the model
    output: str                       # what was explained ("probability of class 1")
    rows: int
    shap_rows: int = 0
    fallback: str | None = None       # why shap could not explain the model
    scoring: str = ""                 # what permutation importance measured
    shap_values: np.ndarray | None = field(default=None, repr=False)
    base_values: np.ndarray | None = field(default=None, repr=False)
    shap_data: pd.DataFrame | None = field(default=None, repr=False)
    recorded: dict[str, float] = field(default_factory=dict)
    top: int = 15

    @property
    def shares(self) -> dict[str, float]:
        return dict(zip(self.importance.index, self.importance["share"]))

    def reading(self) -> str:
        from .section import reading

        return reading(self)

    def __repr__(self) -> str:
        head = ", ".join(f"{f} {s:.1%}" for f, s in list(self.shares.items())[:3])
        return f"<Explanation by {self.method} of {len(self.features)} features: {head}>"


def stage_seed() -> int:
    stage = os.environ.get("DVC_STAGE") or "notebook"
    return zlib.crc32(f"nbprod.explain:{stage}".encode()) & 0x7FFFFFFF


def check_frame(model, X) -> pd.DataFrame:
    """X as a DataFrame with exactly the columns the model was trained on, in its order."""
    if not isinstance(X, pd.DataFrame):
        raise NbprodError(f"X must be a pandas DataFrame (its column names name the features), not "
                          f"{type(X).__name__}", WHERE, fix="pass the holdout rows as a DataFrame")
    if not len(X):
        raise NbprodError("X has no rows", WHERE, fix="pass the holdout rows the model is evaluated on")
    known = getattr(model, "feature_names_in_", None)
    if known is None:
        return X
    known = [str(c) for c in known]
    given = [str(c) for c in X.columns]
    unknown = [c for c in given if c not in known]
    missing = [c for c in known if c not in given]
    if unknown or missing:
        parts = ([f"columns the model does not know: {', '.join(unknown[:8])}"] if unknown else []) + \
                ([f"no column {', '.join(missing[:8])} the model was trained on"] if missing else [])
        raise NbprodError(f"X has {'; and '.join(parts)}", WHERE,
                          fix="pass the same columns the model was fitted on (drop the target and ids)")
    return X.rename(columns=str)[known]


def explain(model, X, y=None, *, top: int = 15, n_repeats: int = 5, scoring=None, pos_label=None,
            shap: bool = True, max_shap_rows: int = 500, background=None, random_state: int | None = None,
            record: bool = True, display: bool = True) -> Explanation:
    """Explain ``model`` on the rows ``X`` (holdout data) with labels ``y``.

    Permutation importance needs a target: ``y`` when given (scored by ``scoring``, default the
    model's own ``score``), else the model's own predictions on ``X`` (how much each feature moves
    them). SHAP values are computed on up to ``max_shap_rows`` rows of ``X`` against ``background``
    (default: ``X`` itself) unless ``shap=False``; for classifiers the class explained is
    ``pos_label`` (default: the last of ``classes_``). ``top`` features are shown, the rest folded.
    ``record`` writes ``importance.<feature>`` metrics; ``display`` shows the section.
    """
    if not isinstance(top, int) or top < 1:
        raise NbprodError(f"top must be a positive whole number, not {top!r}", WHERE, fix="pass e.g. top=15")
    if not hasattr(model, "predict"):
        raise NbprodError(f"the model is a {type(model).__name__}, which has no predict method", WHERE,
                          fix="pass a fitted scikit-learn estimator or pipeline")
    frame = check_frame(model, X)
    if y is not None and len(y) != len(frame):
        raise NbprodError(f"y has {len(y)} values for {len(frame)} rows of X", WHERE, fix="pass the labels of X's rows")
    seed = stage_seed() if random_state is None else int(random_state)
    features = [str(c) for c in frame.columns]
    permutation, spread, scored = _permutation(model, frame, y, n_repeats, scoring, seed)
    result = Explanation(features, pd.DataFrame(index=features), "permutation", None, "", len(frame),
                         scoring=scored, top=top)
    result.importance["permutation"], result.importance["permutation_std"] = permutation, spread
    if shap:
        try:
            _add_shap(result, model, frame, background, pos_label, max_shap_rows, seed)
        except Unexplainable as exc:
            result.fallback = str(exc)
    else:
        result.fallback = "shap=False was passed"
    share = result.importance["shap"] if result.method == "shap" else result.importance["permutation"].clip(lower=0)
    total = float(share.sum())
    result.importance["share"] = share / total if total > 0 else 0.0
    result.importance = result.importance.sort_values(["share", "permutation"], ascending=False)
    result.importance["rank"] = range(1, len(features) + 1)
    if not result.output:
        result.output = "the model's score" if y is not None else "the model's own predictions"
    result.recorded = _metric_values(result)
    if record:
        from ..record import record as put

        for name, value in result.recorded.items():
            put(name, value)
        put("explain.method", result.method if not result.fallback else f"permutation (shap: {result.fallback})")
    if display:
        from .section import show

        show(result, model, frame)
    return result


def _permutation(model, frame, y, n_repeats: int, scoring, seed: int):
    from sklearn.inspection import permutation_importance

    if y is None:
        target = model.predict(frame)
        scored = "agreement with the model's own predictions (no labels given)"
    else:
        target = np.asarray(y)
        scored = f"drop in {scoring}" if isinstance(scoring, str) else "drop in the model's score"
    try:
        found = permutation_importance(model, frame, target, n_repeats=n_repeats, scoring=scoring,
                                       random_state=seed)
    except ValueError as exc:
        raise NbprodError(f"permutation importance failed: {str(exc).splitlines()[0]}", WHERE,
                          fix="check that y holds the labels of X's rows and that scoring suits the model") from None
    return found.importances_mean, found.importances_std, scored


def _add_shap(result: Explanation, model, frame: pd.DataFrame, background, pos_label, max_rows: int,
              seed: int) -> None:
    base = frame if background is None else check_frame(model, background)
    explainer: ShapExplainer = build(model, base, pos_label)
    max_rows = min(max_rows, explainer.max_rows or max_rows)
    rows = frame.sample(max_rows, random_state=seed) if len(frame) > max_rows else frame
    try:
        values, base_values = explainer.contributions(rows)
    except Unexplainable:
        raise
    except Exception as exc:  # noqa: BLE001 - shap's own refusal (any type), e.g. an input its explainer cannot take
        raise Unexplainable(f"shap's {explainer.kind} failed on {type(model).__name__}: "
                            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    result.method, result.explainer, result.output = "shap", explainer.kind, explainer.output
    result.shap_values, result.base_values, result.shap_data, result.shap_rows = values, base_values, rows, len(rows)
    result.importance["shap"] = np.abs(values).mean(axis=0)


def _metric_values(result: Explanation) -> dict[str, float]:
    values: dict[str, float] = {}
    for feature, share in result.importance["share"].items():
        name = names.metric_name(feature)
        values[name] = values.get(name, 0.0) + round(float(share), 6)
    return values
