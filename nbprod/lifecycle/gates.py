"""Validation gates from ``[tool.nbprod.gates]``: absolute floors and limits relative to the champion.

Format: one key per metric, a condition or a list of conditions::

    [tool.nbprod.gates]
    roc_auc = ">= 0.9"                       # absolute floor
    accuracy = ">= champion - 0.01"          # at most 0.01 below the model in production
    "metrics/evaluate.json:f1" = [">= 0.85", ">= champion - 0.02"]

A metric name is looked up in every metrics file of dvc.yaml; ``FILE:NAME`` picks one file.
The syntax is shared with monitor rules (``nbprod/core/conditions.py``); ``median(last N)`` is for monitor only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..core.conditions import Rule, check, parse_rules
from ..core.conditions import lookup as _lookup

# A gate is a rule of the shared syntax (nbprod/core/conditions.py) without record-history bases.
Gate = Rule


@dataclass
class GateResult:
    gate: str
    passed: bool | None      # None: not checked (no champion for a relative gate)
    value: float | None
    threshold: float | None
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def parse_gates(table) -> list[Gate]:
    return parse_rules(table, "gates", history=False)


def lookup(metrics: dict[str, dict], name: str) -> float | None:
    """A metric's value from {file: {name: value}}; ``FILE:NAME`` chooses the file."""
    return _lookup(metrics, name, "gates")


def check_gates(gates: list[Gate], candidate: dict[str, dict], champion: dict[str, dict] | None) -> list[GateResult]:
    results = []
    for gate in gates:
        base = lookup(champion, gate.metric) if champion is not None and gate.relative else None
        done = check(gate, lookup(candidate, gate.metric), base, has_champion=champion is not None,
                     missing="the candidate did not record this metric")
        results.append(GateResult(done.rule, done.passed, done.value, done.threshold, done.note))
    return results


def gates_passed(results: list[GateResult]) -> bool:
    return all(r.passed is not False for r in results)
