"""Monitor rules applied to run records: each ``[tool.nbprod.monitor]`` rule checked on one record,
against the champion the record ran under and the records before it; the verdict is ``alerts.json``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, UTC
from pathlib import Path

from ..core.conditions import CHAMPION, MEDIAN, Check, Rule, check, lookup
from .records import Record

DURATION = "duration."
SERVED = "served."  # drift of the served inputs, added by nbprod monitor (monitor/served.py)
LIVE = "live."      # live quality from outcomes, added by nbprod monitor (feedback/live.py)


@dataclass
class Verdict:
    record: str
    checks: list[Check] = field(default_factory=list)

    @property
    def alerts(self) -> list[Check]:
        return [c for c in self.checks if c.passed is False]

    def to_dict(self) -> dict:
        return {"record": self.record, "evaluated": datetime.now(UTC).isoformat(timespec="seconds"),
                "status": "alert" if self.alerts else "ok", "alerts": len(self.alerts),
                "checks": [c.to_dict() for c in self.checks]}


def value_of(record: Record, metric: str) -> float | None:
    if metric.startswith(DURATION):
        return record.durations.get(metric[len(DURATION):])
    return lookup(record.metrics, metric, "monitor")


class ChampionMetrics:
    """Metrics of registered versions, read from git once per commit."""

    def __init__(self, root: Path):
        self.root = root
        self._cache: dict[str, dict[str, dict]] = {}

    def of(self, record: Record) -> dict[str, dict] | None:
        production = record.production
        if not production or not production.get("commit"):
            return None
        commit = production["commit"]
        if commit not in self._cache:
            self._cache[commit] = self._read(commit)
        return self._cache[commit]

    def _read(self, commit: str) -> dict[str, dict]:
        from ..core import gitrepo
        from ..lifecycle.settings import metrics_files
        from .records import flatten_metrics

        dvc_yaml = gitrepo.show_file(self.root, commit, "dvc.yaml")
        metrics = {}
        for rel in metrics_files(self.root, dvc_yaml.decode() if dvc_yaml else ""):
            content = gitrepo.show_file(self.root, commit, rel)
            metrics[rel] = flatten_metrics(content) if content else {}
        return metrics


def evaluate(record: Record, earlier: list[Record], rules: list[Rule], champions: ChampionMetrics) -> Verdict:
    """Every rule on ``record``; ``earlier`` are the records before it, oldest first."""
    verdict = Verdict(record.name)
    if not record.data.get("ok", True):
        failed = [n for n, s in record.data.get("stages", {}).items() if s.get("state") == "failed"]
        verdict.checks.append(Check("run succeeded", False, None, None,
                                    "the run failed" + (f" in {', '.join(failed)}" if failed else "")))
    champion = None
    if any(r.base == CHAMPION for r in rules):
        champion = champions.of(record)
    for rule in rules:
        value = value_of(record, rule.metric)
        if value is None:
            why = ("the stage did not run (up to date)" if rule.metric.startswith(DURATION)
                   else _served_why(record) if rule.metric.startswith(SERVED)
                   else _live_why(record) if rule.metric.startswith(LIVE)
                   else "not recorded in this record")
            verdict.checks.append(Check(rule.text, None, None, None, why + "; not checked"))
            continue
        history = None
        if rule.base == MEDIAN:
            history = [v for v in (value_of(r, rule.metric) for r in earlier[-4 * rule.window:]) if v is not None]
        base = lookup(champion, rule.metric, "monitor") if champion is not None and rule.base == CHAMPION else None
        verdict.checks.append(check(rule, value, base, history, has_champion=champion is not None))
    return verdict


def _served_why(record: Record) -> str:
    served = record.served
    if served is None:
        return "no prediction log of nbprod serve was checked with this record"
    return served.get("note") or "no served inputs were compared"


def _live_why(record: Record) -> str:
    live = record.live
    if live is None:
        return "no outcomes were joined with predictions for this record"
    for group in live.get("groups") or []:
        if group.get("quality"):
            return f"{group['variant']} {group['version']}: {group['quality']}"
    return live.get("note") or "no live quality was measured"


def evaluate_history(records: list[Record], rules: list[Rule], champions: ChampionMetrics) -> list[Verdict]:
    """The verdict of every record (for the dashboard's threshold lines), oldest first."""
    return [evaluate(record, records[:i], rules, champions) for i, record in enumerate(records)]
