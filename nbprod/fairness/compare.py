"""Candidate against champion, group by group, from the ``fairness.*`` metrics both recorded (stdlib only).

A group is flagged *worse* when the candidate's value lies outside the champion's bootstrap interval
for that group, on the bad side (lower accuracy, recall or ROC AUC; higher false-positive rate).
Selection rate has no bad side: leaving the interval is shown as *changed*. Groups too small to judge
in either run are shown and never flagged.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from .names import (
    DIRECTION,
    LABELS,
    METRICS,
    SUMMARY,
    GroupValue,
    RecordedFairness,
    flat_metrics,
    read_recorded,
)


@dataclass
class GroupComparison:
    metric: str
    group: str
    champion: GroupValue | None
    candidate: GroupValue | None
    too_small: bool

    @property
    def flag(self) -> str:
        """"worse", "better", "changed" (outside the champion's interval) or ""."""
        if self.too_small or not self.champion or not self.candidate or self.candidate.value is None:
            return ""
        low, high = self.champion.ci_low, self.champion.ci_high
        if low is None or high is None or low <= self.candidate.value <= high:
            return ""
        above = self.candidate.value > high
        direction = DIRECTION.get(self.metric, 0)
        if direction == 0:
            return "changed"
        return "better" if above == (direction > 0) else "worse"


def compare_groups(candidate: dict[str, dict], champion: dict[str, dict] | None) -> list[GroupComparison]:
    """Rows for every metric and group either run recorded; arguments are ``{file: {name: value}}``."""
    ours = read_recorded(flat_metrics(candidate))
    theirs = read_recorded(flat_metrics(champion or {}))
    rows = []
    for metric in METRICS:
        groups = {**theirs.groups.get(metric, {}), **ours.groups.get(metric, {})}
        for group in sorted(groups, key=lambda g: (-ours.sizes.get(g, theirs.sizes.get(g, 0)), g)):
            rows.append(GroupComparison(metric, group, theirs.groups.get(metric, {}).get(group),
                                        ours.groups.get(metric, {}).get(group),
                                        ours.too_small(group) or theirs.too_small(group)))
    return rows


def worse_groups(rows: list[GroupComparison]) -> list[str]:
    return [f"{row.metric} {row.group}" for row in rows if row.flag == "worse"]


def _value(value: GroupValue | None) -> str:
    if value is None or value.value is None:
        return "—"
    text = f"{value.value:.3f}"
    if value.ci_low is not None and value.ci_high is not None:
        text += f" <small>[{value.ci_low:.3f}, {value.ci_high:.3f}]</small>"
    return text


def comparison_html(candidate: dict[str, dict], champion: dict[str, dict] | None,
                    labels: tuple[str, str] = ("champion", "candidate")) -> str:
    """The "Fairness by group" section ('' when neither run audited fairness): ``labels`` name the
    baseline and the new run (``nbprod compare`` passes its two revisions)."""
    rows = compare_groups(candidate, champion)
    if not rows:
        return ""
    base, new = (escape(label) for label in labels)
    worse = worse_groups(rows)
    lines = []
    for row in rows:
        change = ""
        if row.champion and row.candidate and row.champion.value is not None and row.candidate.value is not None:
            change = f"{row.candidate.value - row.champion.value:+.3f}"
        flag = {"worse": f"WORSE beyond the {base} interval", "better": f"better beyond the {base} interval",
                "changed": f"outside the {base} interval", "": ""}[row.flag]
        if row.too_small:
            flag = "too small to judge"
        css = "fail" if row.flag == "worse" else ""
        lines.append(f"<tr class='{css}'><td>{escape(LABELS[row.metric])}</td><td>{escape(row.group)}</td>"
                     f"<td>{_value(row.champion)}</td><td>{_value(row.candidate)}</td><td>{change}</td>"
                     f"<td>{flag}</td></tr>")
    verdict = (f"<p><strong>{len(worse)} group metric(s) worse beyond the {base} interval:</strong> "
               f"{escape(', '.join(worse))}.</p>" if worse else
               f"<p>No group is worse than under the {base} beyond its interval.</p>"
               if champion else f"<p>No {base} yet: the {new} groups are shown alone.</p>")
    return (f"<h2>Fairness by group</h2>{verdict}<table><tr><th>metric</th><th>group</th>"
            f"<th>{base} [interval]</th><th>{new} [interval]</th><th>change</th><th></th></tr>"
            f"{''.join(lines)}</table>")


def approval_record(record: dict) -> dict | None:
    """What ``approve`` keeps with the version: the across-group numbers, each group's values, the
    groups too small to judge, and the groups worse than the champion beyond its interval."""
    recorded = read_recorded(flat_metrics(record.get("metrics") or {}))
    if not recorded:
        return None
    champion = (record.get("champion") or {}).get("metrics_on_holdout")
    groups: dict[str, dict] = {g: {"size": n} for g, n in recorded.sizes.items()}
    for metric, values in recorded.groups.items():
        for group, value in values.items():
            groups.setdefault(group, {})[metric] = value.value
    return {"summary": recorded.aggregates, "groups": groups,
            "too_small": sorted(g for g in recorded.sizes if recorded.too_small(g)),
            "worse_than_champion": worse_groups(compare_groups(record.get("metrics") or {}, champion))
            if champion else []}


def fairness_line(fairness: dict | None) -> str:
    """One line for history and lineage: the parity numbers, and what got worse."""
    if not fairness:
        return ""
    summary = fairness.get("summary") or {}
    parts = [f"{key} {summary[key]:.3f}" for key in SUMMARY if key in summary and key in ("dp_ratio", "eo_diff")]
    worse = fairness.get("worse_than_champion") or []
    if worse:
        parts.append("worse than the champion for " + ", ".join(worse))
    return "fairness: " + ", ".join(parts) if parts else ""


__all__ = ["GroupComparison", "RecordedFairness", "approval_record", "compare_groups", "comparison_html",
           "fairness_line", "worse_groups"]
