"""Gate conditions (lifecycle/gates.py over the one condition syntax): parsed, compared, refused."""

from __future__ import annotations

import pytest


def test_gate_conditions_parse_and_compare():
    from nbprod.core.errors import NbprodError
    from nbprod.lifecycle.gates import check_gates, gates_passed, parse_gates

    gates = parse_gates({"roc_auc": ">= 0.9", "accuracy": [">= champion - 0.01", "<= 1"],
                         "metrics/evaluate.json:f1": "> champion"})
    assert [g.text for g in gates] == ["roc_auc >= 0.9", "accuracy >= champion - 0.01", "accuracy <= 1",
                                       "metrics/evaluate.json:f1 > champion"]
    candidate = {"metrics/evaluate.json": {"roc_auc": 0.95, "accuracy": 0.96, "f1": 0.9}}
    champion = {"metrics/evaluate.json": {"roc_auc": 0.99, "accuracy": 0.965, "f1": 0.91}}
    results = check_gates(gates, candidate, champion)
    assert [r.passed for r in results] == [True, True, True, False]
    assert not gates_passed(results)
    assert [r.passed for r in check_gates(gates, candidate, None)] == [True, None, True, None]
    for bad in ("at least 0.9", ">= champ", "0.9", ">= champion * 2"):
        with pytest.raises(NbprodError, match="is not a condition"):
            parse_gates({"roc_auc": bad})
