"""Validation gates from ``[tool.nbprod.gates]``: absolute floors and limits relative to the champion.

Format: one key per metric, a condition or a list of conditions::

    [tool.nbprod.gates]
    roc_auc = ">= 0.9"                       # absolute floor
    accuracy = ">= champion - 0.01"          # at most 0.01 below the model in production
    "metrics/evaluate.json:f1" = [">= 0.85", ">= champion - 0.02"]

A metric name is looked up in every metrics file of dvc.yaml; ``FILE:NAME`` picks one file.
"""

from __future__ import annotations

import operator
import re
from dataclasses import asdict, dataclass

from ..errors import NbprodError

_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq}
_CONDITION = re.compile(r"^\s*(>=|<=|>|<|==)\s*(?:(champion)\s*(?:([+-])\s*(\d+(?:\.\d*)?(?:[eE][+-]?\d+)?))?|"
                        r"([+-]?\d+(?:\.\d*)?(?:[eE][+-]?\d+)?))\s*$")


@dataclass(frozen=True)
class Gate:
    metric: str
    op: str
    relative: bool          # compared with the champion's value of the same metric
    offset: float           # the number (absolute) or the champion offset (relative)

    @property
    def text(self) -> str:
        if not self.relative:
            return f"{self.metric} {self.op} {self.offset:g}"
        if self.offset == 0:
            return f"{self.metric} {self.op} champion"
        return f"{self.metric} {self.op} champion {'+' if self.offset > 0 else '-'} {abs(self.offset):g}"


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
    where = "pyproject.toml"
    if not isinstance(table, dict):
        raise NbprodError("[tool.nbprod.gates] must be a table of metric = condition", where,
                          fix='write e.g. roc_auc = ">= 0.9" under [tool.nbprod.gates]')
    gates = []
    for metric, conditions in table.items():
        for condition in conditions if isinstance(conditions, list) else [conditions]:
            match = _CONDITION.match(condition) if isinstance(condition, str) else None
            if not match:
                raise NbprodError(f"[tool.nbprod.gates] {metric} = {condition!r} is not a condition", where,
                                  fix='write ">= 0.9" or ">= champion - 0.01" (operators >=, <=, >, <, ==)')
            op, champion, sign, delta, number = match.groups()
            if champion:
                offset = float(delta or 0) * (-1 if sign == "-" else 1)
                gates.append(Gate(metric, op, True, offset))
            else:
                gates.append(Gate(metric, op, False, float(number)))
    return gates


def lookup(metrics: dict[str, dict], name: str) -> float | None:
    """A metric's value from {file: {name: value}}; ``FILE:NAME`` chooses the file."""
    if ":" in name:
        file, _, key = name.rpartition(":")
        return metrics.get(file, {}).get(key)
    found = [values[name] for values in metrics.values() if name in values]
    if len(found) > 1:
        raise NbprodError(f"[tool.nbprod.gates] metric {name!r} is in several metrics files", "pyproject.toml",
                          fix=f'qualify it as "FILE:{name}", e.g. "metrics/evaluate.json:{name}"')
    return found[0] if found else None


def check_gates(gates: list[Gate], candidate: dict[str, dict], champion: dict[str, dict] | None) -> list[GateResult]:
    results = []
    for gate in gates:
        value = lookup(candidate, gate.metric)
        if value is None:
            results.append(GateResult(gate.text, False, None, None, "the candidate did not record this metric"))
            continue
        if gate.relative:
            base = lookup(champion, gate.metric) if champion is not None else None
            if base is None:
                note = "no champion in production yet" if champion is None else "the champion has no such metric"
                results.append(GateResult(gate.text, None, value, None, note + "; not checked"))
                continue
            threshold = base + gate.offset
        else:
            threshold = gate.offset
        results.append(GateResult(gate.text, bool(_OPS[gate.op](value, threshold)), value, round(threshold, 10)))
    return results


def gates_passed(results: list[GateResult]) -> bool:
    return all(r.passed is not False for r in results)
