"""The parts of ``nbprod learn`` that need no server: which models can learn, the prequential pass
against scikit-learn directly, the drift share, the policy's reasons to hold, and bad settings."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression, SGDClassifier, SGDRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from nbprod.core.errors import NbprodError
from nbprod.online.incremental import held_reasons
from nbprod.online.learner import drift_share, learner_of, prequential
from nbprod.online.settings import OnlineSettings, load_online_settings


@pytest.fixture(scope="module")
def data():
    frame, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return frame, y.to_numpy()


def test_a_model_without_partial_fit_is_refused_in_one_line(data):
    frame, y = data
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(frame, y)
    with pytest.raises(NbprodError) as caught:
        learner_of(model, "models/model")
    assert "(LogisticRegression) has no partial_fit" in str(caught.value)
    assert "nbprod retrain" in caught.value.fix


def test_prequential_predicts_each_batch_before_learning_it(data):
    frame, y = data
    first = SGDClassifier(loss="log_loss", random_state=0).fit(frame.iloc[:300], y[:300])
    done = prequential(first, frame.iloc[300:], y[300:].tolist(), 40, "model")
    by_hand, hits = copy.deepcopy(first), 0
    for start in range(300, len(y), 40):
        part, labels = frame.iloc[start:start + 40], y[start:start + 40]
        hits += int((by_hand.predict(part) == labels).sum())
        by_hand.partial_fit(part, labels, classes=by_hand.classes_)
    assert done.metrics["online.accuracy"] == pytest.approx(hits / (len(y) - 300), abs=1e-12)
    assert done.batches == -(-(len(y) - 300) // 40) and done.metrics["online.n"] == len(y) - 300
    np.testing.assert_array_equal(done.model.coef_, by_hand.coef_)
    assert not np.array_equal(first.coef_, done.model.coef_)  # the parent's object is left as it was
    assert {"online.roc_auc", "online.log_loss", "online.f1"} <= set(done.metrics)


def test_a_regressor_gets_error_figures(data):
    frame, y = data
    scaled = (frame - frame.mean()) / frame.std()
    target = scaled.iloc[:, 0].to_numpy() * 2.0
    first = SGDRegressor(random_state=0).fit(scaled.iloc[:300], target[:300])
    done = prequential(first, scaled.iloc[300:], target[300:].tolist(), 50, "model")
    assert set(done.metrics) == {"online.n", "online.mae", "online.rmse", "online.r2"}
    assert done.metrics["online.rmse"] >= done.metrics["online.mae"] > 0


def test_drift_share_counts_shifted_features(data):
    frame, _ = data
    same = frame.sample(200, random_state=1)
    assert drift_share(frame, same)[0] <= 0.1
    moved = same.copy()
    columns = list(frame.columns[:15])
    moved[columns] = moved[columns] * 3 + 10
    share, drifted = drift_share(frame, moved)
    assert share == pytest.approx(15 / 30) and drifted == columns


def record(gates=(True,), share=0.0) -> dict:
    return {"gates": [{"gate": f"g{n}", "passed": p} for n, p in enumerate(gates)],
            "drift": {"share": share, "features": ["a", "b"]}, "parent": {"version": "v1.0.0"}}


def test_the_policy_holds_for_a_failed_gate_drift_no_gates_or_when_off():
    on = OnlineSettings(auto_approve=True, max_drift_share=0.2)
    assert held_reasons(record(), on) == []
    assert held_reasons(record((True, False)), on) == ["failed gates: g1"]
    assert "drift since v1.0.0: 50% of features (a, b) above max_drift_share 20%" in held_reasons(record(share=0.5), on)
    assert "no gates are set" in held_reasons(record(()), on)[0]
    assert held_reasons(record(), OnlineSettings()) == ["[tool.nbprod.online] auto_approve is off"]


@pytest.mark.parametrize("table, message", [
    ("auto_approve = 1", "auto_approve has the wrong type (int)"),
    ("max_drift_share = 2", "max_drift_share must be between 0 and 1"),
    ("keep = 3", "has an unknown key 'keep'"),
    ('[tool.nbprod.online.gates]\naccuracy = "about 0.9"', "[tool.nbprod.online.gates] accuracy = 'about 0.9'"),
])
def test_bad_online_settings_name_the_key(tmp_path, table, message):
    (tmp_path / "pyproject.toml").write_text(f"[tool.nbprod.online]\n{table}\n")
    with pytest.raises(NbprodError) as caught:
        load_online_settings(tmp_path)
    assert message in str(caught.value) and "pyproject.toml" in str(caught.value)
