"""nbprod.explain on real scikit-learn models and real shap, in process: the SHAP additivity property
(contributions plus the base value equal the model's output) for a linear model, a tree ensemble and
pipelines with preprocessing; the recorded shares and a gate on them; the section folded for 500
features; the fallback to permutation importance and bad input as one NbprodError line."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import make_column_transformer
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.multiclass import OutputCodeClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import nbprod
from nbprod.core.errors import NbprodError
from nbprod.explain import explain
from nbprod.explain.names import read_recorded
from nbprod.explain.section import chart, dependence, table_html
from nbprod.lifecycle.gates import check_gates, parse_gates

TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X = X.rename(columns=lambda c: c.replace(" ", "_"))
    return X.iloc[:420], y.iloc[:420], X.iloc[420:], y.iloc[420:]


def explained_output(model, result) -> np.ndarray:
    """The number the explainer says it explains, computed straight from the model."""
    rows = result.shap_data
    if result.output.startswith("probability of class"):
        return model.predict_proba(rows)[:, -1]
    if result.output.startswith("log-odds"):
        return model.decision_function(rows)
    return model.predict(rows)


def assert_additive(model, result) -> None:
    assert result.method == "shap", result.fallback
    total = result.shap_values.sum(axis=1) + result.base_values
    np.testing.assert_allclose(total, explained_output(model, result), atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("make, explainer, output", [
    (lambda: LogisticRegression(solver="liblinear"), "LinearExplainer", "log-odds of class 1"),
    (lambda: RandomForestClassifier(n_estimators=25, random_state=0), "TreeExplainer", "probability of class 1"),
    (lambda: GradientBoostingClassifier(n_estimators=30, random_state=0), "TreeExplainer", "log-odds of class 1"),
    (lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)), "LinearExplainer",
     "log-odds of class 1"),
])
def test_shap_values_add_up_to_the_model_output(cancer, make, explainer, output):
    X_train, y_train, X_test, y_test = cancer
    model = make().fit(X_train, y_train)
    result = explain(model, X_test, y_test, random_state=0)
    assert (result.explainer, result.output) == (explainer, output)
    assert_additive(model, result)
    assert len(result.shap_values) == len(X_test) and result.shap_values.shape[1] == 30


@pytest.mark.slow
def test_pipeline_with_a_text_column_is_explained_by_the_model_agnostic_explainer(cancer):
    X_train, y_train, X_test, y_test = cancer
    columns = ["mean_radius", "mean_texture", "worst_concave_points", "mean_smoothness"]

    def with_city(frame):
        frame = frame[columns].copy()
        frame["city"] = np.where(frame["mean_radius"] > 14, "north", "south")
        frame.loc[frame.index[::5], "city"] = "east"
        return frame

    model = make_pipeline(make_column_transformer((OneHotEncoder(handle_unknown="ignore"), ["city"]),
                                                  remainder=StandardScaler()),
                          LogisticRegression(max_iter=5000)).fit(with_city(X_train), y_train)
    holdout = with_city(X_test).head(20)
    result = explain(model, holdout, y_test.head(20), random_state=0)
    assert result.explainer == "PermutationExplainer" and result.output == "probability of class 1"
    assert_additive(model, result)
    assert set(result.features) == {*columns, "city"} and result.importance.loc["city", "shap"] > 0


def test_regressors_and_recorded_shares(cancer):
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    model = RandomForestRegressor(n_estimators=20, random_state=0).fit(X.iloc[:300], y.iloc[:300])
    result = explain(model, X.iloc[300:], y.iloc[300:], random_state=0)
    assert result.output == "prediction"
    assert_additive(model, result)
    shares = read_recorded(result.recorded)
    assert set(shares) == set(X.columns) and sum(shares.values()) == pytest.approx(1, abs=1e-4)
    # The recorded share is mean |SHAP| over the sum, largest first, and the reading names the leaders.
    mean_abs = np.abs(result.shap_values).mean(axis=0)
    top = X.columns[int(np.argmax(mean_abs))]
    assert next(iter(shares)) == top and shares[top] == pytest.approx(mean_abs.max() / mean_abs.sum(), abs=1e-6)
    assert result.reading().startswith(f"The model relies mostly on {top}")


def proxy_data(n: int = 800, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """income decides the label; zip_code is a proxy for it, a model trained on both leans on it."""
    rng = np.random.default_rng(seed)
    income = rng.normal(0, 1, n)
    frame = pd.DataFrame({"income": income, "zip_code": income + rng.normal(0, 0.3, n),
                          "age": rng.normal(0, 1, n)})
    return frame, pd.Series((income + rng.normal(0, 0.5, n) > 0).astype(int))


def test_a_gate_on_a_proxy_features_share_blocks_the_model_that_leans_on_it():
    X, y = proxy_data()
    gates = parse_gates({"importance.zip_code": "<= 0.05"})
    leaning = explain(RandomForestClassifier(n_estimators=30, random_state=0).fit(X, y), X, y, random_state=0)
    without = explain(RandomForestClassifier(n_estimators=30, random_state=0).fit(X[["income", "age"]], y),
                      X[["income", "age"]], y, random_state=0)
    failed = check_gates(gates, {"metrics/evaluate.json": leaning.recorded}, None)[0]
    assert failed.passed is False and failed.value > 0.05
    missing = check_gates(gates, {"metrics/evaluate.json": without.recorded}, None)[0]
    assert missing.passed is False and "did not record" in missing.note  # no zip_code: not silently passed


@pytest.mark.slow
def test_500_features_show_the_top_and_fold_the_rest():
    rng = np.random.default_rng(2)
    X = pd.DataFrame(rng.normal(size=(200, 500)), columns=[f"f{i:03d}" for i in range(500)])
    y = (X["f007"] * 3 + X["f123"] * 2 + rng.normal(size=200) > 0).astype(int)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=2000)).fit(X, y)
    result = explain(model, X, y, top=12, n_repeats=1, random_state=0)
    html = table_html(result)
    shown, folded = html.split("<details>")
    assert shown.count("<tr><td>") == 12 and folded.count("<tr><td>") == 488
    assert "488 more features" in folded
    figure = chart(result)
    assert len(figure.axes[0].patches) == 13 and "other 488 features" in \
        [t.get_text() for t in figure.axes[0].get_yticklabels()]
    assert dependence(result, model, X) is not None
    assert set(list(result.shares)[:2]) == {"f007", "f123"}


def test_too_many_features_for_a_model_agnostic_explainer_fall_back_to_permutation():
    rng = np.random.default_rng(3)
    X = pd.DataFrame(rng.normal(size=(200, 80)), columns=[f"x{i}" for i in range(80)])
    y = (X["x1"] - X["x2"] > 0).astype(int)
    model = make_pipeline(make_column_transformer((StandardScaler(), list(X.columns))),
                          LogisticRegression(max_iter=2000)).fit(X, y)
    result = explain(model, X, y, n_repeats=2, random_state=0)
    assert result.method == "permutation" and "80 features are more than the 60" in result.fallback
    assert "shap could not explain this model" in table_html(result)
    assert "permutation importance only because shap could not explain it" in result.reading()
    assert set(list(result.shares)[:2]) == {"x1", "x2"}


def test_a_model_shap_cannot_explain_falls_back_to_permutation_importance(cancer):
    X_train, y_train, X_test, y_test = cancer
    model = OutputCodeClassifier(make_pipeline(StandardScaler(), LogisticRegression()), random_state=0)
    model.fit(X_train, y_train)
    result = explain(model, X_test.head(60), y_test.head(60), n_repeats=1, random_state=0)
    assert result.method == "permutation" and result.shap_values is None
    assert "predicts class labels only" in result.fallback
    assert sum(read_recorded(result.recorded).values()) == pytest.approx(1, abs=1e-4)


def test_without_labels_permutation_measures_the_models_own_predictions():
    X, y = proxy_data()
    model = Ridge().fit(X, y)
    result = explain(model, X, random_state=0)
    assert "own predictions" in result.scoring and result.explainer == "LinearExplainer"
    assert_additive(model, result)


def one_line(error: NbprodError) -> str:
    text = str(error)
    assert "\n" not in text
    return text


@pytest.fixture(scope="module")
def scaled_logistic(cancer):
    X_train, y_train, _, _ = cancer
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(X_train, y_train)


def test_bad_input_is_one_clear_line(cancer, scaled_logistic):
    _, _, X_test, y_test = cancer
    model = scaled_logistic
    with pytest.raises(NbprodError) as unknown:
        explain(model, X_test.assign(customer_id=1), y_test)
    assert "columns the model does not know: customer_id" in one_line(unknown.value)
    with pytest.raises(NbprodError) as missing:
        explain(model, X_test.drop(columns="mean_radius"), y_test)
    assert "no column mean_radius the model was trained on" in one_line(missing.value)
    with pytest.raises(NbprodError) as array:
        explain(model, X_test.to_numpy(), y_test)
    assert "must be a pandas DataFrame" in one_line(array.value)
    with pytest.raises(NbprodError) as short:
        explain(model, X_test, y_test.head(5))
    assert "y has 5 values" in one_line(short.value)


def test_the_package_is_callable_even_after_its_stdlib_modules_are_imported(cancer, scaled_logistic):
    _, _, X_test, y_test = cancer
    assert nbprod.explain(scaled_logistic, X_test.head(30), y_test.head(30), n_repeats=1).method == "shap"


def test_import_nbprod_and_the_names_do_not_import_shap_or_sklearn():
    code = ("import sys, nbprod, nbprod.explain.names, nbprod.explain.compare; "
            "print(sorted(m for m in ('shap', 'sklearn', 'numpy', 'pandas') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_candidate_report_lists_features_that_moved_in_plain_words():
    from nbprod.explain.compare import moved_features
    from nbprod.lifecycle.candidate_report import render_comparison

    X, y = proxy_data()
    champion = explain(RandomForestClassifier(n_estimators=30, random_state=0).fit(X[["income", "age"]], y),
                       X[["income", "age"]], y, random_state=0, record=False).recorded
    candidate = explain(RandomForestClassifier(n_estimators=30, random_state=0).fit(X, y), X, y,
                        random_state=0, record=False).recorded
    moves = {m.feature: m for m in moved_features(candidate, champion)}
    assert "zip_code" in moves and moves["zip_code"].champion is None
    assert moves["income"].candidate < moves["income"].champion - 0.05
    assert "age" not in moves  # a small share that kept its rank is not news
    record = {"candidate": "c2", "model": "model", "metrics": {"metrics/evaluate.json": candidate},
              "champion": {"version": "v1.0.0", "metrics_on_holdout": {"metrics/evaluate.json": champion}},
              "gates": [], "gates_passed": True}
    html = render_comparison(record)
    section = html[html.index("<h2>What the model relies on</h2>"):html.index("<h2>Metrics</h2>")]
    assert "feature(s) moved beyond 5% of the importance" in section
    assert "zip_code is new in the candidate" in section and "income carries only" in section
    alone = render_comparison({**record, "champion": None})
    assert "No champion explanation to compare with; the candidate relies most on" in alone


@pytest.mark.parametrize("text, words", [
    ("explain = 1", "explain has the wrong type"),
    ("explain_max_rows = 0", "explain_max_rows must be at least 1"),
    ("explain_timeout = 0", "explain_timeout must be between 0 and 60"),
    ("explain_share = 1.5", "explain_share must be more than 0 and at most 1"),
])
def test_explain_settings_are_checked_and_off_by_default(tmp_path, text, words):
    from nbprod.serve.settings import load_settings

    (tmp_path / "pyproject.toml").write_text("[tool.nbprod.serve]\nlog = true\n", encoding="utf-8")
    assert load_settings(tmp_path, "model").explain is False
    (tmp_path / "pyproject.toml").write_text(f"[tool.nbprod.serve]\n{text}\n", encoding="utf-8")
    with pytest.raises(NbprodError) as caught:
        load_settings(tmp_path, "model")
    assert words in one_line(caught.value) and "pyproject.toml" in str(caught.value)
