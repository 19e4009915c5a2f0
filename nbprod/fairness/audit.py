"""``nbprod.fairness``: per-group metrics with bootstrap intervals (fairlearn's ``MetricFrame``),
differences and ratios across groups, recorded as ``fairness.*`` metrics and shown as a report section.

Groups smaller than ``min_group_size`` are reported but marked "too small to judge": they get no
interval and are kept out of every across-group number (min, max, difference, ratio, parity).
"""

from __future__ import annotations

import math
import os
import zlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..core.errors import NbprodError
from . import names
from .groupmetrics import FUNCTIONS
from .inputs import WHERE, AuditInput, check_input

FOUR_FIFTHS = 0.8


@dataclass
class GroupResult:
    name: str                     # the label inside metric names (fairness.recall.<name>)
    label: str                    # as the data spells it
    size: int
    judged: bool                  # False: under min_group_size, too small to judge
    values: dict[str, float] = field(default_factory=dict)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)


@dataclass
class View:
    """The groups of one sensitive feature, or of the intersection of several."""

    feature: str
    groups: list[GroupResult]
    labels: pd.Series = field(repr=False, default=None)   # each row's group label

    @property
    def judged(self) -> list[GroupResult]:
        return [g for g in self.groups if g.judged]


@dataclass
class FairnessAudit:
    views: list[View]             # one per feature, then the intersection when there are several
    aggregates: dict[str, float]  # "recall.min", "recall.ratio", "dp_ratio", ... over the last view
    metrics: tuple[str, ...]
    main: str
    min_group_size: int
    n_boot: int
    ci: float
    seed: int
    recorded: dict[str, float] = field(default_factory=dict)

    @property
    def compared(self) -> View:
        """The view the across-group numbers are computed over (the intersection when several features)."""
        return self.views[-1]

    def table(self) -> pd.DataFrame:
        """One row per group of every view: size, each metric and its interval, judged or not."""
        rows = []
        for view in self.views:
            for group in view.groups:
                row = {"feature": view.feature, "group": group.label, "size": group.size,
                       "judged": group.judged}
                for metric in self.metrics:
                    row[metric] = group.values.get(metric, math.nan)
                    low, high = group.intervals.get(metric, (math.nan, math.nan))
                    row[f"{metric}_ci_low"], row[f"{metric}_ci_high"] = low, high
                rows.append(row)
        return pd.DataFrame(rows)

    def reading(self) -> str:
        from .section import reading

        return reading(self)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v:.3f}" for k, v in self.aggregates.items() if k in names.SUMMARY)
        return f"<FairnessAudit {len(self.compared.groups)} groups of {self.compared.feature}: {shown}>"


def stage_seed() -> int:
    """A fixed seed per stage, so a rerun draws the same bootstrap resamples."""
    stage = os.environ.get("DVC_STAGE") or "notebook"
    return zlib.crc32(f"nbprod.fairness:{stage}".encode()) & 0x7FFFFFFF


def fairness(y_true, y_pred, *, sensitive_features, y_score=None, min_group_size: int = 30,
             metrics: tuple[str, ...] | None = None, main: str | None = None, pos_label=1,
             n_boot: int = 100, ci: float = 0.95, random_state: int | None = None,
             record: bool = True, display: bool = True) -> FairnessAudit:
    """Audit predictions by group.

    ``sensitive_features``: one column (list, array, Series) or several (DataFrame, dict of columns);
    with several, each feature is reported alone and their intersection is what the across-group
    numbers compare. ``metrics``: any of selection_rate, accuracy, recall, fpr, roc_auc (default: all
    that apply; roc_auc needs ``y_score``). ``main``: the metric charted (default selection_rate).
    ``n_boot`` resamples give each judged group's ``ci`` interval, drawn with ``random_state``
    (default: a fixed seed derived from the stage). ``record`` writes ``fairness.*`` metrics;
    ``display`` shows the table, chart and reading as the cell's outputs.
    """
    if not isinstance(min_group_size, int) or min_group_size < 1:
        raise NbprodError(f"min_group_size must be a positive whole number, not {min_group_size!r}", WHERE,
                          fix="pass e.g. min_group_size=30")
    if not 0 < ci < 1:
        raise NbprodError(f"ci must be between 0 and 1, not {ci!r}", WHERE, fix="pass e.g. ci=0.95")
    data = check_input(y_true, y_pred, sensitive_features, y_score, metrics, pos_label)
    main = main or ("selection_rate" if "selection_rate" in data.metrics else data.metrics[0])
    if main not in data.metrics:
        raise NbprodError(f"main={main!r} is not among the metrics computed ({', '.join(data.metrics)})", WHERE,
                          fix="pass main= one of them")
    seed = stage_seed() if random_state is None else int(random_state)
    views = [_view(data, feature, labels, min_group_size, n_boot, ci, seed) for feature, labels in _views(data)]
    compared = views[-1]
    _require_comparable(compared, min_group_size)
    audit = FairnessAudit(views, _aggregates(data, compared), data.metrics, main, min_group_size, n_boot, ci, seed)
    audit.recorded = _metric_values(audit)
    if record:
        _record(audit.recorded)
    if display:
        from .section import show

        show(audit)
    return audit


def _views(data: AuditInput) -> list[tuple[str, pd.Series]]:
    """(feature, group label per row) for each feature, then for their intersection."""
    features = list(data.features.columns)
    if len(features) == 1:
        column = data.features[features[0]]
        return [(features[0], pd.Series(column.to_numpy(), name=features[0]))]
    views = [(f, data.features[f].map(lambda v, f=f: f"{f}={v}").rename(f)) for f in features]
    crossed = data.features.apply(lambda row: "+".join(f"{f}={row[f]}" for f in features), axis=1)
    views.append((" × ".join(features), crossed.rename("intersection")))
    return views


def _group_name(label: str) -> str:
    # "sex=F+age=old" keeps its = and + separators; each part is made metric-safe.
    return "+".join("=".join(names.slug(p) for p in part.split("=", 1)) for part in label.split("+")) \
        if "=" in label else names.slug(label)


def _metric_frame(data: AuditInput, rows: np.ndarray, labels: pd.Series, **bootstrap):
    from fairlearn.metrics import MetricFrame

    functions = {m: FUNCTIONS[m] for m in data.metrics}
    params = {"roc_auc": {"y_score": data.y_score[rows]}} if "roc_auc" in functions else None
    return MetricFrame(metrics=functions, y_true=data.y_true[rows], y_pred=data.y_pred[rows],
                       sensitive_features=labels[rows].reset_index(drop=True), sample_params=params, **bootstrap)


def _view(data: AuditInput, feature: str, labels: pd.Series, min_group_size: int, n_boot: int, ci: float,
          seed: int) -> View:
    sizes = labels.value_counts()
    everyone = np.ones(len(labels), dtype=bool)
    points = _metric_frame(data, everyone, labels).by_group
    judged = labels.isin(sizes[sizes >= min_group_size].index).to_numpy()
    low = high = None
    if n_boot and judged.any():
        tail = (1 - ci) / 2
        frame = _metric_frame(data, judged, labels, n_boot=int(n_boot), ci_quantiles=[tail, 1 - tail],
                              random_state=seed)
        low, high = frame.by_group_ci
    groups = []
    for label in sorted(sizes.index, key=lambda v: (-sizes[v], v)):
        size = int(sizes[label])
        group = GroupResult(_group_name(label), label, size, size >= min_group_size)
        for metric in data.metrics:
            group.values[metric] = float(points.loc[label, metric])
            if group.judged and low is not None:
                group.intervals[metric] = (float(low.loc[label, metric]), float(high.loc[label, metric]))
        groups.append(group)
    reserved = [g.name for g in groups if g.name in names.AGGREGATES]
    if reserved:
        raise NbprodError(f"group {reserved[0]!r} of {feature!r} has the same name as an across-group metric "
                          f"(fairness.<metric>.{reserved[0]})", WHERE,
                          fix="relabel the group (min, max, diff and ratio are reserved)")
    return View(feature, groups, labels)


def _require_comparable(view: View, min_group_size: int) -> None:
    judged = view.judged
    if len(judged) >= 2:
        return
    sizes = ", ".join(f"{g.label}: {g.size}" for g in view.groups[:6]) + (", ..." if len(view.groups) > 6 else "")
    what = "every group is" if not judged else f"only group {judged[0].label!r} has enough rows; the others are"
    raise NbprodError(f"{what} smaller than min_group_size={min_group_size} ({sizes}): nothing to compare", WHERE,
                      fix="audit more rows (a larger holdout), merge small groups, or lower min_group_size")


def _finite(value: float) -> bool:
    return value is not None and math.isfinite(value)


def _aggregates(data: AuditInput, view: View) -> dict[str, float]:
    result: dict[str, float] = {}
    for metric in data.metrics:
        values = [g.values[metric] for g in view.judged if _finite(g.values.get(metric))]
        if len(values) < 2:
            continue
        low, high = min(values), max(values)
        result[f"{metric}.min"], result[f"{metric}.max"], result[f"{metric}.diff"] = low, high, high - low
        if high > 0:
            result[f"{metric}.ratio"] = low / high
    if data.binary:
        result.update(_parity(data, view))
    return result


def _parity(data: AuditInput, view: View) -> dict[str, float]:
    """fairlearn's demographic parity and equalized odds over the judged groups' rows."""
    from fairlearn.metrics import (
        demographic_parity_difference,
        demographic_parity_ratio,
        equalized_odds_difference,
        equalized_odds_ratio,
    )

    labels = view.labels
    rows = labels.isin([g.label for g in view.judged]).to_numpy()
    args = (data.y_true[rows], data.y_pred[rows])
    features = labels[rows].reset_index(drop=True)
    values = {"dp_ratio": demographic_parity_ratio(*args, sensitive_features=features),
              "dp_diff": demographic_parity_difference(*args, sensitive_features=features),
              "eo_diff": equalized_odds_difference(*args, sensitive_features=features),
              "eo_ratio": equalized_odds_ratio(*args, sensitive_features=features)}
    return {k: float(v) for k, v in values.items() if _finite(float(v))}


def _metric_values(audit: FairnessAudit) -> dict[str, float]:
    """Every number the audit records, by its metric name (NaN left out: it cannot be a metric)."""
    values: dict[str, float] = {}

    def put(name: str, value: float) -> None:
        if _finite(value):
            values[name] = value if isinstance(value, int) else round(float(value), 6)

    # The headline numbers first: a run's summary table shows the first metrics a stage recorded.
    for key in names.SUMMARY:
        put(names.PREFIX + key, audit.aggregates.get(key))
    for view in audit.views:
        for group in view.groups:
            put(names.metric_name("size", group.name), group.size)
            for metric in audit.metrics:
                put(names.metric_name(metric, group.name), group.values.get(metric))
                low, high = group.intervals.get(metric, (None, None))
                put(names.metric_name(metric, group.name, "ci_low"), low)
                put(names.metric_name(metric, group.name, "ci_high"), high)
    for key, value in audit.aggregates.items():
        if key not in names.SUMMARY:
            put(names.PREFIX + key, value)
    put(names.PREFIX + "min_group_size", audit.min_group_size)
    put(names.PREFIX + "groups_too_small", sum(not g.judged for g in audit.compared.groups))
    return values


def _record(values: dict[str, float]) -> None:
    from ..record import record

    for name, value in values.items():
        record(name, value)
