"""How fairness results are named as metrics, and read back from a metrics dict (stdlib only).

    fairness.<metric>.<group>                 value for one group (fairness.recall.B)
    fairness.<metric>.<group>.ci_low|ci_high  its bootstrap interval (judged groups only)
    fairness.size.<group>                     rows in the group
    fairness.<metric>.min|max|diff|ratio      across the judged groups
    fairness.dp_ratio, dp_diff, eo_diff, eo_ratio, min_group_size, groups_too_small
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

PREFIX = "fairness."
METRICS = ("selection_rate", "accuracy", "recall", "fpr", "roc_auc")
LABELS = {"selection_rate": "selection rate", "accuracy": "accuracy", "recall": "recall (true-positive rate)",
          "fpr": "false-positive rate", "roc_auc": "ROC AUC"}
# +1: higher is better; -1: lower is better; 0: neither (a change is shown, not judged).
DIRECTION = {"selection_rate": 0, "accuracy": 1, "recall": 1, "fpr": -1, "roc_auc": 1}
AGGREGATES = ("min", "max", "diff", "ratio")
SUMMARY = ("dp_ratio", "dp_diff", "eo_diff", "eo_ratio")
CI_PARTS = ("ci_low", "ci_high")

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def slug(value: object) -> str:
    """A group label safe inside a metric name: letters, digits, ``_`` and ``-``."""
    text = _UNSAFE.sub("_", str(value)).strip("_")
    return text or "_"


def metric_name(metric: str, group: str | None = None, part: str | None = None) -> str:
    return PREFIX + ".".join(p for p in (metric, group, part) if p)


@dataclass
class GroupValue:
    value: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None


@dataclass
class RecordedFairness:
    """Fairness metrics of one run, read back from its flat metrics."""

    sizes: dict[str, float] = field(default_factory=dict)
    groups: dict[str, dict[str, GroupValue]] = field(default_factory=dict)   # metric -> group -> value
    aggregates: dict[str, float] = field(default_factory=dict)               # "recall.min", "dp_ratio", ...
    min_group_size: float | None = None

    def too_small(self, group: str) -> bool:
        size = self.sizes.get(group)
        return size is not None and self.min_group_size is not None and size < self.min_group_size

    def __bool__(self) -> bool:
        return bool(self.sizes or self.groups or self.aggregates)


def read_recorded(metrics: dict[str, float]) -> RecordedFairness:
    """Parse ``fairness.*`` names out of one flat ``{name: value}`` dict."""
    found = RecordedFairness()
    for name, value in metrics.items():
        if not name.startswith(PREFIX) or not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        rest = name[len(PREFIX):]
        if rest == "min_group_size":
            found.min_group_size = value
            continue
        if rest in SUMMARY or rest == "groups_too_small":
            found.aggregates[rest] = value
            continue
        metric, _, tail = rest.partition(".")
        if not tail:
            continue
        if metric == "size":
            found.sizes[tail] = value
            continue
        if metric not in METRICS:
            continue
        if tail in AGGREGATES:
            found.aggregates[f"{metric}.{tail}"] = value
            continue
        group, part = tail, None
        for candidate in CI_PARTS:
            if tail.endswith("." + candidate):
                group, part = tail[: -len(candidate) - 1], candidate
        entry = found.groups.setdefault(metric, {}).setdefault(group, GroupValue())
        setattr(entry, part or "value", value)
    return found


def flat_metrics(metrics_by_file: dict[str, dict]) -> dict[str, float]:
    """``{file: {name: value}}`` (a candidate record) to one ``{name: value}`` of fairness metrics."""
    flat: dict[str, float] = {}
    for values in (metrics_by_file or {}).values():
        for name, value in (values or {}).items():
            if name.startswith(PREFIX):
                flat[name] = value
    return flat
