"""The one condition syntax shared by gates (``[tool.nbprod.gates]``) and monitor rules
(``[tool.nbprod.monitor]``): parsing, metric lookup, and checking a value against a threshold.

    CONDITION := OP RHS                  OP: >=, <=, >, <, ==
    RHS       := NUMBER | [FACTOR *] BASE [(+|-) NUMBER]
    BASE      := champion                the same metric of the model in production
               | median(last N)          the median of the N records before the one checked

Examples: ``>= 0.9``, ``>= champion - 0.02``, ``<= 2 * median(last 10)``, ``>= median(last 10) - 0.03``.
Record-history bases only make sense where there is a history of records (monitor rules); gates
refuse them with the usual one-line error.
"""

from __future__ import annotations

import operator
import re
import statistics
from dataclasses import asdict, dataclass

from .errors import NbprodError

OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq}
_NUM = r"\d+(?:\.\d*)?(?:[eE][+-]?\d+)?"
_CONDITION = re.compile(
    rf"^\s*(?P<op>>=|<=|>|<|==)\s*(?:"
    rf"(?P<number>[+-]?{_NUM})"
    rf"|(?:(?P<factor>{_NUM})\s*\*\s*)?(?P<base>champion|median\s*\(\s*last\s+(?P<window>\d+)\s*\))"
    rf"\s*(?:(?P<sign>[+-])\s*(?P<offset>{_NUM}))?"
    rf")\s*$")

CHAMPION, MEDIAN, NUMBER = "champion", "median", "number"


@dataclass(frozen=True)
class Rule:
    """One condition on one metric: ``value OP factor * base + offset`` (``base`` = 1 for a number)."""

    metric: str
    op: str
    base: str = NUMBER       # number | champion | median
    offset: float = 0.0      # the number itself when base is "number"
    factor: float = 1.0
    window: int = 0          # N of median(last N)

    @property
    def relative(self) -> bool:
        return self.base == CHAMPION

    @property
    def text(self) -> str:
        if self.base == NUMBER:
            return f"{self.metric} {self.op} {self.offset:g}"
        base = CHAMPION if self.base == CHAMPION else f"median(last {self.window})"
        if self.factor != 1:
            base = f"{self.factor:g} * {base}"
        if self.offset:
            base += f" {'+' if self.offset > 0 else '-'} {abs(self.offset):g}"
        return f"{self.metric} {self.op} {base}"

    def threshold(self, champion: float | None = None, history: list[float] | None = None) -> float | None:
        """The number the value is compared with; None when the base is unknown (no champion, no history)."""
        if self.base == NUMBER:
            return self.offset
        if self.base == CHAMPION:
            base = champion
        else:
            earlier = (history or [])[-self.window:]
            base = statistics.median(earlier) if earlier else None
        return None if base is None else self.factor * base + self.offset


@dataclass
class Check:
    """The outcome of one rule: passed True/False, or None when it could not be checked (see note)."""

    rule: str
    passed: bool | None
    value: float | None
    threshold: float | None
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def parse_condition(metric: str, condition, section: str, history: bool = True) -> Rule:
    match = _CONDITION.match(condition) if isinstance(condition, str) else None
    examples = '">= 0.9", ">= champion - 0.01"' + (', "<= 2 * median(last 10)"' if history else "")
    if not match:
        raise NbprodError(f"[tool.nbprod.{section}] {metric} = {condition!r} is not a condition", "pyproject.toml",
                          fix=f"write {examples} (operators >=, <=, >, <, ==)")
    groups = match.groupdict()
    if groups["number"] is not None:
        return Rule(metric, groups["op"], NUMBER, float(groups["number"]))
    offset = float(groups["offset"] or 0) * (-1 if groups["sign"] == "-" else 1)
    factor = float(groups["factor"]) if groups["factor"] else 1.0
    if groups["base"] == CHAMPION:
        return Rule(metric, groups["op"], CHAMPION, offset, factor)
    window = int(groups["window"])
    if not history:
        raise NbprodError(f"[tool.nbprod.{section}] {metric} = {condition!r}: median(last N) needs a history of "
                          "records, which a candidate does not have", "pyproject.toml",
                          fix="put this rule under [tool.nbprod.monitor], or use a number or champion here")
    if window < 1:
        raise NbprodError(f"[tool.nbprod.{section}] {metric} = {condition!r}: median(last 0) has no records",
                          "pyproject.toml", fix="write median(last 10) (any N of 1 or more)")
    return Rule(metric, groups["op"], MEDIAN, offset, factor, window)


def parse_rules(table, section: str, history: bool = True) -> list[Rule]:
    """``{metric: condition or [conditions]}`` from ``[tool.nbprod.SECTION]``, in order."""
    if not isinstance(table, dict):
        raise NbprodError(f"[tool.nbprod.{section}] must be a table of metric = condition", "pyproject.toml",
                          fix=f'write e.g. roc_auc = ">= 0.9" under [tool.nbprod.{section}]')
    rules = []
    for metric, conditions in table.items():
        for condition in conditions if isinstance(conditions, list) else [conditions]:
            rules.append(parse_condition(metric, condition, section, history))
    return rules


def lookup(metrics: dict[str, dict] | None, name: str, section: str = "gates") -> float | None:
    """A metric's value from {file: {name: value}}; ``FILE:NAME`` chooses the file."""
    if metrics is None:
        return None
    if ":" in name:
        file, _, key = name.rpartition(":")
        return metrics.get(file, {}).get(key)
    found = [values[name] for values in metrics.values() if name in values]
    if len(found) > 1:
        raise NbprodError(f"[tool.nbprod.{section}] metric {name!r} is in several metrics files", "pyproject.toml",
                          fix=f'qualify it as "FILE:{name}", e.g. "metrics/evaluate.json:{name}"')
    return found[0] if found else None


def check(rule: Rule, value: float | None, champion: float | None = None, history: list[float] | None = None,
          *, has_champion: bool = True, missing: str = "this metric was not recorded") -> Check:
    """Compare ``value`` with the rule's threshold. A missing value fails; an unknown base is not checked."""
    if value is None:
        return Check(rule.text, False, None, None, missing)
    limit = rule.threshold(champion, history)
    if limit is None:
        if rule.base == CHAMPION:
            note = "no champion in production yet" if not has_champion else "the champion has no such metric"
        else:
            note = "no earlier records"
        return Check(rule.text, None, value, None, note + "; not checked")
    note = ""
    if rule.base == MEDIAN and len((history or [])[-rule.window:]) < rule.window:
        note = f"median of the {len(history or [])} earlier records (fewer than {rule.window})"
    return Check(rule.text, bool(OPS[rule.op](value, limit)), value, round(limit, 10), note)
