"""nbprod.fairness on real fairlearn, in process: group metrics and intervals, names, the across-group
numbers, bad input as one NbprodError line, the candidate-vs-champion comparison (import cost and
`nbprod init --template`: tests/func)."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest

from nbprod.core.errors import NbprodError
from nbprod.fairness import fairness
from nbprod.fairness.compare import (
    approval_record,
    compare_groups,
    comparison_html,
    fairness_line,
)
from nbprod.fairness.names import read_recorded

FAST = {"n_boot": 20, "random_state": 3}


def biased(n: int = 600, small: int = 12, seed: int = 1) -> pd.DataFrame:
    """Group B is selected less and has lower recall; group C is too small to judge."""
    rng = np.random.default_rng(seed)
    group = np.array(["A"] * (n - n // 3 - small) + ["B"] * (n // 3) + ["C"] * small)
    y_true = rng.integers(0, 2, len(group))
    score = np.clip(0.5 * y_true + rng.normal(0.25, 0.2, len(group)) - 0.2 * (group == "B"), 0, 1)
    return pd.DataFrame({"group": group, "y": y_true, "score": score, "pred": (score >= 0.5).astype(int)})


@pytest.fixture(scope="module")
def audit():
    data = biased()
    return data, fairness(data["y"], data["pred"], sensitive_features=data["group"], y_score=data["score"], **FAST)


def test_group_values_match_direct_computation(audit):
    data, result = audit
    names = result.recorded
    for group in ("A", "B", "C"):
        rows = data[data["group"] == group]
        positives = rows[rows["y"] == 1]
        assert names[f"fairness.size.{group}"] == len(rows)
        assert names[f"fairness.selection_rate.{group}"] == pytest.approx(rows["pred"].mean(), abs=1e-6)
        assert names[f"fairness.recall.{group}"] == pytest.approx(positives["pred"].mean(), abs=1e-6)
        assert names[f"fairness.accuracy.{group}"] == pytest.approx((rows["pred"] == rows["y"]).mean(), abs=1e-6)
    from sklearn.metrics import roc_auc_score

    rows_b = data[data["group"] == "B"]
    assert names["fairness.roc_auc.B"] == pytest.approx(roc_auc_score(rows_b["y"], rows_b["score"]), abs=1e-6)


def test_intervals_only_for_judged_groups_and_around_the_value(audit):
    _, result = audit
    names = result.recorded
    for metric in ("selection_rate", "accuracy", "recall", "fpr", "roc_auc"):
        for group in ("A", "B"):
            low, high = names[f"fairness.{metric}.{group}.ci_low"], names[f"fairness.{metric}.{group}.ci_high"]
            assert low <= high and low - 0.05 <= names[f"fairness.{metric}.{group}"] <= high + 0.05
        assert f"fairness.{metric}.C.ci_low" not in names
    assert names["fairness.groups_too_small"] == 1 and names["fairness.min_group_size"] == 30


def test_small_group_is_kept_out_of_ratios_and_parity_is_fairlearns(audit):
    data, result = audit
    from fairlearn.metrics import demographic_parity_ratio, equalized_odds_difference

    names = result.recorded
    judged = data[data["group"] != "C"]
    assert names["fairness.dp_ratio"] == pytest.approx(
        demographic_parity_ratio(judged["y"], judged["pred"], sensitive_features=judged["group"]), abs=1e-6)
    assert names["fairness.eo_diff"] == pytest.approx(
        equalized_odds_difference(judged["y"], judged["pred"], sensitive_features=judged["group"]), abs=1e-6)
    rates = [names["fairness.selection_rate.A"], names["fairness.selection_rate.B"]]
    assert names["fairness.selection_rate.min"] == min(rates)
    assert names["fairness.selection_rate.ratio"] == pytest.approx(min(rates) / max(rates), abs=1e-5)
    assert names["fairness.dp_ratio"] < 0.8  # the built-in gap is found


def test_reading_and_section(audit):
    from nbprod.fairness.section import chart, table_html

    _, result = audit
    text = result.reading()
    assert "Selection rate for group B is" in text and "four-fifths screening threshold is 0.8" in text
    assert "Too small to judge (under 30 rows): C (12 rows)" in text
    html = table_html(result)
    assert "too small to judge" in html and "<table>" in html
    figure = chart(result)
    assert [t.get_text() for t in figure.axes[0].get_yticklabels()] == ["C (too small)", "B", "A"]


def test_same_seed_same_intervals_and_recorded_names_read_back(audit):
    data, first = audit
    again = fairness(data["y"], data["pred"], sensitive_features=data["group"], y_score=data["score"], **FAST)
    assert again.recorded == first.recorded
    recorded = read_recorded(first.recorded)
    assert recorded.groups["recall"]["B"].ci_low == first.recorded["fairness.recall.B.ci_low"]
    assert recorded.too_small("C") and not recorded.too_small("A")
    assert recorded.aggregates["dp_ratio"] == first.recorded["fairness.dp_ratio"]


def test_several_features_give_groups_and_intersections():
    data = biased(n=400, small=0)
    data["age"] = np.where(np.arange(len(data)) % 2 == 0, "young", "old")
    result = fairness(data["y"], data["pred"], sensitive_features=data[["group", "age"]], n_boot=10,
                      random_state=1, min_group_size=20)
    names = result.recorded
    assert "fairness.recall.group=B" in names and "fairness.recall.age=old" in names
    assert "fairness.recall.group=B+age=old" in names
    assert result.compared.feature == "group × age" and len(result.compared.groups) == 4


def one_line(error: NbprodError) -> str:
    text = str(error)
    assert "\n" not in text and text.startswith("nbprod.fairness: ")
    return text


@pytest.mark.parametrize("case, expected", [
    ("lengths", "y_true has 5 values but y_pred has 4"),
    ("single", "has a single group ('A')"),
    ("small", "every group is smaller than min_group_size=30"),
    ("multiclass", "selection_rate needs binary labels, but y_true and y_pred hold 3 labels"),
    ("nan", "sensitive feature 'group' has 1 missing value(s)"),
])
def test_bad_input_is_one_clear_line(case, expected):
    calls = {
        "lengths": lambda: fairness([0, 1, 0, 1, 1], [0, 1, 0, 1], sensitive_features=["A", "B", "A", "B", "A"]),
        "single": lambda: fairness([0, 1] * 20, [0, 1] * 20, sensitive_features=pd.Series(["A"] * 40, name="g")),
        "small": lambda: fairness([0, 1] * 10, [1, 1] * 10, sensitive_features=["A", "B"] * 10),
        "multiclass": lambda: fairness([0, 1, 2] * 20, [0, 1, 1] * 20, sensitive_features=["A", "B"] * 30),
        "nan": lambda: fairness([0, 1] * 40, [0, 1] * 40,
                                sensitive_features=pd.Series(["A", "B"] * 39 + ["A", None], name="group")),
    }
    with pytest.raises(NbprodError) as caught:
        calls[case]()
    assert expected in one_line(caught.value)


def test_non_binary_labels_are_fine_for_accuracy_alone():
    result = fairness([0, 1, 2] * 40, [0, 1, 1] * 40, sensitive_features=["A", "B"] * 60, metrics=("accuracy",),
                      n_boot=0)
    assert result.recorded["fairness.accuracy.A"] == pytest.approx(2 / 3, abs=1e-6)
    assert "fairness.dp_ratio" not in result.recorded


def test_string_labels_need_their_positive_class():
    labels = ["yes", "no"] * 40
    with pytest.raises(NbprodError) as caught:
        fairness(labels, labels, sensitive_features=["A", "B"] * 40, n_boot=0)
    assert "pos_label=1 is not one of the labels ('no', 'yes')" in one_line(caught.value)
    result = fairness(labels, labels, sensitive_features=["A", "A", "B", "B"] * 20, n_boot=0, pos_label="yes")
    assert result.recorded["fairness.recall.A"] == 1.0 and result.recorded["fairness.selection_rate.B"] == 0.5


def test_only_one_judged_group_cannot_be_compared():
    with pytest.raises(NbprodError) as caught:
        fairness([0, 1] * 30, [1, 1] * 30, sensitive_features=["A"] * 50 + ["B"] * 10, n_boot=0)
    assert "only group 'A' has enough rows" in one_line(caught.value)


def candidate_record(champion_recall: tuple, candidate_recall: tuple) -> dict:
    def metrics(recall):
        value, low, high = recall
        return {"metrics/audit.json": {"fairness.recall.B": value, "fairness.recall.B.ci_low": low,
                                       "fairness.recall.B.ci_high": high, "fairness.size.B": 300,
                                       "fairness.size.C": 10, "fairness.recall.C": 0.1,
                                       "fairness.min_group_size": 30, "fairness.dp_ratio": value}}
    return {"metrics": metrics(candidate_recall),
            "champion": {"version": "v1.0.0", "metrics_on_holdout": metrics(champion_recall)}}


def test_comparison_flags_groups_worse_beyond_the_champions_interval():
    record = candidate_record((0.70, 0.65, 0.75), (0.55, 0.50, 0.60))
    rows = {(r.metric, r.group): r for r in compare_groups(record["metrics"], record["champion"]["metrics_on_holdout"])}
    assert rows[("recall", "B")].flag == "worse"
    assert rows[("recall", "C")].too_small and rows[("recall", "C")].flag == ""
    html = comparison_html(record["metrics"], record["champion"]["metrics_on_holdout"])
    assert "WORSE beyond the champion interval" in html and "recall B" in html
    named = comparison_html(record["metrics"], record["champion"]["metrics_on_holdout"], ("v1", "v2"))
    assert "WORSE beyond the v1 interval" in named and "<th>v2 [interval]</th>" in named
    within = candidate_record((0.70, 0.65, 0.75), (0.67, 0.62, 0.72))
    assert "No group is worse" in comparison_html(within["metrics"], within["champion"]["metrics_on_holdout"])
    summary = approval_record(record)
    assert summary["worse_than_champion"] == ["recall B"] and summary["too_small"] == ["C"]
    assert fairness_line(summary) == "fairness: dp_ratio 0.550, worse than the champion for recall B"
    assert approval_record({"metrics": {"metrics/evaluate.json": {"accuracy": 0.9}}}) is None
