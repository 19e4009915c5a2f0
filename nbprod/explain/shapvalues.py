"""SHAP values of one model: which shap explainer fits it (trees, linear, else model-agnostic over a
background sample), what output it explains, and per-row contributions. ``nbprod.explain`` and
``nbprod serve``'s /explain share it; shap is imported when an explainer is built."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

# The model-agnostic explainer calls the model 2 * features + 1 times per row on the whole background:
# past this many features it is too slow to be worth waiting for, and permutation importance stands alone.
MAX_AGNOSTIC_FEATURES = 60
BACKGROUND_ROWS = 100
# ...and per explained row it scores PERMUTATIONS * (2 * features + 1) * background rows: a smaller
# background, few permutations (the values still add up exactly: each permutation telescopes) and a cap
# on the rows explained keep it to seconds.
AGNOSTIC_BACKGROUND = 50
AGNOSTIC_PERMUTATIONS = 4
AGNOSTIC_ROWS = 100


class Unexplainable(Exception):
    """shap cannot explain this model; the message says why, in words for the report."""


@dataclass
class Output:
    function: Callable       # frame -> 1-D array: the number that is explained
    label: str               # "probability of class 1", "prediction"
    column: int | None = None  # the class column of a multi-output explainer


@dataclass
class ShapExplainer:
    explainer: object = field(repr=False)
    kind: str                # TreeExplainer | LinearExplainer | PermutationExplainer
    output: str
    columns: list[str]
    column: int | None = None
    codes: CategoryCodes | None = None   # the model-agnostic explainer sees numeric rows, rebuilt into frames
    max_rows: int | None = None          # rows worth explaining in one call (None: no limit)
    transform: Callable | None = None    # a pipeline's feature-wise steps, run before the final step's explainer
    max_evals: int | None = None         # model calls per row of the model-agnostic explainer

    def contributions(self, frame):
        """(values of shape rows x features, base value per row) with values.sum(1) + base == output."""
        import numpy as np

        data = frame[self.columns]
        if self.transform is not None:
            data = self.transform(data)
        if self.codes is None:
            explained = self.explainer(data)
        else:
            explained = self.explainer(self.codes.encode(data), max_evals=self.max_evals, silent=True)
        values, base = np.asarray(explained.values, dtype=float), np.asarray(explained.base_values, dtype=float)
        if values.ndim == 3:
            values = values[:, :, self.column if self.column is not None else -1]
        if base.ndim == 2:
            base = base[:, self.column if self.column is not None else -1]
        if base.ndim == 0:
            base = np.full(len(values), float(base))
        return values, base


def _name(value) -> str:
    return str(value.item() if hasattr(value, "item") else value)


def model_output(model, pos_label=None) -> Output:
    """The number shap explains: the positive class's probability, else the decision function, else a
    regressor's prediction. A classifier that only predicts labels cannot be explained."""
    import numpy as np

    classes = getattr(model, "classes_", None)
    if classes is not None:
        classes = list(classes)
        wanted = classes[-1] if pos_label is None else pos_label
        if wanted not in classes:
            raise Unexplainable(f"the class {wanted!r} is not one of the model's classes {classes}")
        column = classes.index(wanted)
        if hasattr(model, "predict_proba"):
            return Output(lambda frame: model.predict_proba(frame)[:, column], f"probability of class {_name(wanted)}",
                          column)
        if hasattr(model, "decision_function") and len(classes) == 2:
            return Output(lambda frame: np.asarray(model.decision_function(frame), dtype=float),
                          f"decision function (class {_name(classes[1])} when positive)", 1)
        if hasattr(model, "decision_function"):
            raise Unexplainable(f"{type(model).__name__} has no predict_proba and its decision function has one "
                                f"column per class ({len(classes)}), so there is no one number per row to explain")
        raise Unexplainable(f"{type(model).__name__} predicts class labels only (no predict_proba or "
                            "decision_function), and shap explains numbers")
    return Output(lambda frame: np.asarray(model.predict(frame), dtype=float), "prediction")


def build(model, background, pos_label=None) -> ShapExplainer:
    """The fitting shap explainer for ``model`` with ``background`` (a frame of training or holdout rows)."""
    try:
        import shap
    except ImportError as exc:
        raise Unexplainable(f"the shap package is not installed ({exc})") from None
    columns = [str(c) for c in background.columns]
    output = model_output(model, pos_label)
    background = background.sample(min(len(background), BACKGROUND_ROWS), random_state=0) \
        if len(background) > BACKGROUND_ROWS else background
    featurewise = _featurewise_steps(model, background, columns)
    if featurewise is not None:
        final, transform = featurewise
        found = _direct(shap, final, transform(background), output, columns)
        if found is not None:
            found.transform = transform
            return found
    if all(kind in "biuf" for kind in background.dtypes.map(lambda d: d.kind)):
        found = _direct(shap, model, background, output, columns)
        if found is not None:
            return found
    if len(columns) > MAX_AGNOSTIC_FEATURES:
        raise Unexplainable(f"{type(model).__name__} is neither a tree nor a linear model shap reads directly, and "
                            f"its {len(columns)} features are more than the {MAX_AGNOSTIC_FEATURES} the "
                            "model-agnostic explainer handles in reasonable time")
    background = background.head(AGNOSTIC_BACKGROUND)
    codes = CategoryCodes(background)

    def predict(rows):
        return output.function(codes.decode(rows))

    masker = shap.maskers.Independent(codes.encode(background), max_samples=AGNOSTIC_BACKGROUND)
    explainer = shap.explainers.Permutation(predict, masker, feature_names=columns)
    evals = AGNOSTIC_PERMUTATIONS * (2 * len(columns) + 1)
    return ShapExplainer(explainer, "PermutationExplainer", output.label, columns, None, codes=codes,
                         max_rows=AGNOSTIC_ROWS, max_evals=evals)


def _direct(shap, model, background, output: Output, columns: list[str]) -> ShapExplainer | None:
    """shap's exact explainers: trees (path-dependent, no background needed), then linear models."""
    try:
        explainer = shap.TreeExplainer(model)
        label = output.label
        if type(model).__name__.startswith(("GradientBoosting", "HistGradientBoosting")) and \
                getattr(model, "classes_", None) is not None:
            label = output.label.replace("probability", "log-odds")
        return ShapExplainer(explainer, "TreeExplainer", label, columns, output.column)
    except Exception:  # noqa: BLE001, S110 - shap refuses an unknown tree with any type: try the next kind
        pass
    coef = getattr(model, "coef_", None)
    classes = getattr(model, "classes_", None)
    last = None if classes is None else len(classes) - 1
    if coef is not None and hasattr(model, "intercept_") and (coef.ndim == 1 or coef.shape[0] == 1) \
            and output.column in (None, last):
        try:
            explainer = shap.LinearExplainer(model, background)
        except Exception:  # noqa: BLE001 - shap refuses with any type: fall back to the general explainer
            return None
        label = "prediction" if getattr(model, "classes_", None) is None else \
            f"log-odds of class {_name(model.classes_[-1])}"
        return ShapExplainer(explainer, "LinearExplainer", label, columns, None)
    return None


def _featurewise_steps(model, background, columns: list[str]):
    """(final estimator, transform) of a Pipeline whose other steps map each column to itself
    (scalers, imputers: the names out equal the names in). The final step's SHAP values on the
    transformed rows are then the pipeline's, feature by feature; None for any other model."""
    steps = getattr(model, "steps", None)
    if not steps or len(steps) < 2:
        return None
    head = model[:-1]
    try:
        names = [str(n) for n in head.get_feature_names_out(columns)]
    except Exception:  # noqa: BLE001 - a step without feature names (any type): not a pipeline shap can see into
        return None
    if names != columns:
        return None
    import pandas as pd

    def transform(frame):
        return pd.DataFrame(head.transform(frame[columns]), columns=columns, index=frame.index)

    return model[-1], transform


class CategoryCodes:
    """shap's maskers take numeric arrays only: text and category columns travel as integer codes
    (a value first seen while explaining gets the next code) and are turned back into a frame of the
    training dtypes before the model sees them."""

    def __init__(self, background):
        self.columns = [str(c) for c in background.columns]
        self.dtypes = background.dtypes
        self.values = {c: list(dict.fromkeys(background[c].tolist())) for c in self.columns
                       if background[c].dtype.kind not in "biuf"}

    def encode(self, frame):
        import numpy as np

        out = np.empty((len(frame), len(self.columns)), dtype=float)
        for i, column in enumerate(self.columns):
            known = self.values.get(column)
            if known is None:
                out[:, i] = frame[column].to_numpy(dtype=float)
                continue
            index = {v: n for n, v in enumerate(known)}
            for row, value in enumerate(frame[column].tolist()):
                if value not in index:
                    index[value] = len(known)
                    known.append(value)
                out[row, i] = index[value]
        return out

    def decode(self, rows):
        import numpy as np
        import pandas as pd

        data = {}
        for i, column in enumerate(self.columns):
            known = self.values.get(column)
            data[column] = rows[:, i] if known is None else np.asarray(known, dtype=object)[rows[:, i].astype(int)]
        return pd.DataFrame(data, columns=self.columns).astype(self.dtypes)
