"""Data contracts without a pipeline run: schema files, validation, drift statistics, report sections.
Real pandera, scipy and pandas on real files (import cost: tests/func/test_import_cost.py)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from nbprod.contracts.drift import DriftConfig, compute_drift, load_drift_config
from nbprod.contracts.section import drift_html, validation_html
from nbprod.contracts.schemas import infer_schema, load_schema, resolve_schema, save_schema, schema_hash, show_schema
from nbprod.contracts.validation import ValidationFailed, ValidationWarning, check_frame, validate
from nbprod.core.errors import NbprodError


def frame(rows: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "age": rng.integers(18, 90, rows),
        "income": rng.normal(50_000, 10_000, rows),
        "city": rng.choice(["paris", "lyon", "nice"], rows),
        "score": np.where(rng.random(rows) < 0.1, np.nan, rng.random(rows)),
    })


@pytest.fixture
def schema_file(tmp_path):
    path = tmp_path / "schemas" / "people.yaml"
    save_schema(infer_schema(frame(), "people"), path, source="people.csv")
    return path


def test_inferred_schema_round_trips_and_reads_well(schema_file):
    text = schema_file.read_text()
    assert text.startswith("# Data contract") and "people.csv" in text
    schema = load_schema(schema_file)
    assert set(schema.columns) == {"age", "income", "city", "score"}
    assert schema.columns["score"].nullable and not schema.columns["age"].nullable
    schema.validate(frame())  # the data it came from passes
    shown = show_schema(schema_file)
    assert "city" in shown and "in {lyon, nice, paris}" in shown and ">= 18" in shown
    assert len(schema_hash(schema_file)) == 64


@pytest.mark.parametrize("text, expected", [
    ("columns: [1, 2", "is not valid YAML at line"),
    ("- a\n- b\n", "is not a schema"),
    ("columns:\n  a:\n    dtype: float64\n    greater_than_or_equel_to: 1\n",
     "unknown check 'greater_than_or_equel_to'"),
    ("columns:\n  a:\n    dtype: nonsense\n", "is not a valid pandera schema (column 'a': TypeError"),
    ("columns:\n  a:\n    dtype: float64\n    between: 3\n", "column 'a': TypeError: Check.between()"),
    ("colums:\n  a: {dtype: int64}\n", "is not a schema"),
    ("columns:\n  a: {dtype: int64}\nstrictt: true\n", "unknown schema key 'strictt'"),
])
def test_bad_schema_files_are_one_line_errors(tmp_path, text, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(NbprodError) as info:
        load_schema(path)
    assert expected in str(info.value) and "\n" not in str(info.value) and "Fix:" in str(info.value)


def test_schema_lookup_from_notebook_folder_then_project_root(tmp_path):
    (tmp_path / ".dvc").mkdir()
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "a.yaml").write_text("columns:\n  x: {dtype: int64}\n")
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    assert resolve_schema("schemas/a.yaml", notebooks) == tmp_path / "schemas" / "a.yaml"
    assert resolve_schema("a", notebooks) == tmp_path / "schemas" / "a.yaml"
    (notebooks / "schemas").mkdir()
    (notebooks / "schemas" / "a.yaml").write_text("columns:\n  x: {dtype: int64}\n")
    assert resolve_schema("schemas/a.yaml", notebooks) == notebooks / "schemas" / "a.yaml"
    with pytest.raises(NbprodError, match="not found"):
        resolve_schema("schemas/b.yaml", notebooks)


def test_validation_collects_every_failure_in_one_line(schema_file):
    bad = frame()
    bad.loc[[3, 7], "age"] = [150, 200]               # out of range
    bad = bad.drop(columns=["city"])                  # missing column
    bad["income"] = bad["income"].astype(str)         # wrong dtype
    result = check_frame(bad, schema_file)
    assert not result.passed
    checks = {(f.column, f.check) for f in result.failures}
    assert ("city", "column_in_dataframe") in checks
    assert ("age", "less_than_or_equal_to(89)") in checks
    assert ("income", "dtype('float64')") in checks
    # the range checks that cannot compare strings are folded into the dtype failure
    assert not any(f.column == "income" and "than" in f.check for f in result.failures)
    line = result.summary()
    assert "\n" not in line and "people" in line
    assert "column 'age' fails less_than_or_equal_to(89) in 2 rows (first values: 150, 200)" in line
    assert "column 'city' is missing" in line and "column 'income' fails dtype('float64') (found 'str')" in line
    assert result.metrics()["validation.people.failed"] == 1
    assert set(result.metrics("test")) == {f"validation.test.{k}" for k in
                                           ("passed", "failed", "rows", "failed_rows", "failures")}
    assert result.failed_rows == len(bad)  # a missing column fails every row


def test_validate_returns_the_frame_raises_or_warns(schema_file):
    good = frame()
    assert validate(good, str(schema_file)) is good
    bad = good.copy()
    bad.loc[5, "city"] = "berlin"
    with pytest.raises(ValidationFailed) as info:
        validate(bad, str(schema_file))
    assert "column 'city' fails isin" in str(info.value) and "in 1 row" in str(info.value)
    assert "'berlin'" in str(info.value)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert validate(bad, str(schema_file), on_fail="warn") is bad
    assert caught and caught[0].category is ValidationWarning
    with pytest.raises(NbprodError, match="expected a pandas DataFrame"):
        validate([1, 2, 3], str(schema_file))
    with pytest.raises(NbprodError, match="on_fail"):
        validate(good, str(schema_file), on_fail="ignore")
    html = validation_html(check_frame(bad, schema_file))
    assert "berlin" in html and "<table>" in html


# --- drift statistics -------------------------------------------------------------------------------

def pairs_drifted(make, pairs: int = 200) -> dict[str, float]:
    """Share of ``pairs`` (reference, current) pairs in which each column was called drifted."""
    hits: dict[str, int] = {}
    for i in range(pairs):
        reference, current = make(np.random.default_rng(1000 + i))
        for result in compute_drift(reference, current).columns:
            hits[result.column] = hits.get(result.column, 0) + int(result.drifted)
    return {column: count / pairs for column, count in hits.items()}


def same_distribution(rows: int):
    def make(rng):
        def sample():
            return pd.DataFrame({
                "normal": rng.normal(0, 1, rows),
                "skewed": rng.exponential(2.0, rows),
                "colour": rng.choice(["red", "green", "blue", "grey"], rows, p=[0.4, 0.3, 0.2, 0.1]),
                "flag": rng.choice([0, 1], rows, p=[0.7, 0.3]),
            })
        return sample(), sample()
    return make


@pytest.mark.parametrize("rows", [500, 2000])   # p-value tests, then distances (over 1,000 reference rows)
def test_false_positive_rate_on_same_distribution_is_at_most_7_percent(rows):
    rates = pairs_drifted(same_distribution(rows))
    assert set(rates) == {"normal", "skewed", "colour", "flag"}
    assert max(rates.values()) <= 0.07, rates


@pytest.mark.parametrize("rows", [500, 2000])
def test_half_standard_deviation_shift_is_detected_95_percent(rows):
    def make(rng):
        return (pd.DataFrame({"x": rng.normal(0, 1, rows)}), pd.DataFrame({"x": rng.normal(0.5, 1, rows)}))
    assert pairs_drifted(make)["x"] >= 0.95


@pytest.mark.parametrize("sizes", [(1000, 1000), (1000, 700), (37, 5), (1, 1)])
def test_wasserstein_matches_scipy(sizes):
    from scipy.stats import wasserstein_distance

    from nbprod.contracts.statistics import wasserstein_1d

    rng = np.random.default_rng(sum(sizes))
    u, v = rng.exponential(1.0, sizes[0]), rng.normal(0.3, 2.0, sizes[1])
    u[::7] = 1.0  # ties
    assert wasserstein_1d(u, v) == pytest.approx(wasserstein_distance(u, v), rel=1e-12, abs=1e-15)


def test_default_tests_follow_evidently():
    rng = np.random.default_rng(0)
    small = pd.DataFrame({"n": rng.normal(size=300), "c": rng.choice(list("abc"), 300),
                          "b": rng.choice(["y", "n"], 300), "code": rng.choice([1, 2, 3], 300)})
    big = pd.DataFrame({"n": rng.normal(size=3000), "c": rng.choice(list("abc"), 3000)})
    tests = {r.column: (r.test, r.threshold) for r in compute_drift(small, small.sample(frac=1)).columns}
    assert tests == {"n": ("ks", 0.05), "c": ("chisquare", 0.05), "b": ("z", 0.05), "code": ("chisquare", 0.05)}
    tests = {r.column: (r.test, r.threshold) for r in compute_drift(big, big.sample(frac=1)).columns}
    assert tests == {"n": ("wasserstein", 0.1), "c": ("jensenshannon", 0.1)}


def test_categorical_missing_constant_and_one_sided_columns_get_notes():
    rng = np.random.default_rng(3)
    reference = pd.DataFrame({
        "city": rng.choice(["a", "b"], 400), "gappy": np.where(rng.random(400) < 0.2, np.nan, rng.normal(size=400)),
        "const": 1.0, "empty": np.nan, "old": 1, "cat": pd.Categorical(rng.choice(["x", "y", "z"], 400)),
    })
    current = pd.DataFrame({
        "city": rng.choice(["a", "b", "c"], 400), "gappy": rng.normal(size=400), "const": 1.0,
        "empty": rng.normal(size=400), "new": "n", "cat": pd.Categorical(rng.choice(["x", "y", "z"], 400)),
    })
    report = compute_drift(reference, current)
    notes = {r.column: r for r in report.columns}
    assert notes["city"].drifted and "categories not in reference (c)" in notes["city"].note
    assert "missing in reference" in notes["gappy"].note and notes["gappy"].tested
    assert notes["const"].note.startswith("constant column") and not notes["const"].drifted
    assert not notes["empty"].tested and "no values in reference" in notes["empty"].note
    assert notes["old"].note == "only in the reference data: not tested" and notes["old"].type == "missing"
    assert notes["new"].note == "only in the current data: not tested"
    assert notes["cat"].type == "categorical" and notes["cat"].tested
    tested = [r for r in report.columns if r.tested]
    assert report.share == sum(r.drifted for r in tested) / len(tested)
    metrics = report.metrics()
    assert "drift.old.score" not in metrics and metrics["drift.city.drifted"] == 1.0
    assert all(np.isfinite(v) for v in metrics.values())


def test_datetimes_infinities_and_text_forced_numeric_do_not_crash(tmp_path):
    rng = np.random.default_rng(7)
    start = pd.Timestamp("2026-01-01")
    reference = pd.DataFrame({"when": start + pd.to_timedelta(rng.integers(0, 1000, 300), "h"),
                              "x": np.append(rng.normal(size=299), np.inf), "word": rng.choice(["a", "b"], 300)})
    current = pd.DataFrame({"when": start + pd.to_timedelta(rng.integers(2000, 3000, 300), "h"),
                            "x": np.append(rng.normal(5, 1, 298), [-np.inf, np.inf]),
                            "word": rng.choice(["a", "b"], 300)})
    config = DriftConfig.from_mapping({"columns": {"word": {"type": "numeric"}}})
    report = compute_drift(reference, current, config=config)
    results = {r.column: r for r in report.columns}
    assert results["when"].type == "numeric" and results["when"].drifted
    assert results["x"].drifted and "3 infinite values left out" in results["x"].note
    assert results["x"].reference_rows == 299
    assert results["word"].type == "categorical" and "not numbers" in results["word"].note
    assert drift_html(report, reference, current).count("<svg") == 2


def test_dataset_drift_needs_half_the_columns():
    rng = np.random.default_rng(4)
    reference = pd.DataFrame({c: rng.normal(size=500) for c in "abcd"})
    current = reference.copy()
    current["a"] += 3
    assert compute_drift(reference, current).share == 0.25 and not compute_drift(reference, current).dataset_drifted
    current["b"] += 3
    assert compute_drift(reference, current).dataset_drifted


def test_config_from_pyproject_sets_tests_and_thresholds(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.nbprod.drift]\nshare = 0.3\n[tool.nbprod.drift.numeric]\ntest = "psi"\n'
        '[tool.nbprod.drift.columns."x"]\ntest = "ks"\nthreshold = 0.01\n')
    config = load_drift_config(tmp_path)
    rng = np.random.default_rng(5)
    reference = pd.DataFrame({"x": rng.normal(size=500), "y": rng.normal(size=500)})
    results = {r.column: r for r in compute_drift(reference, reference.sample(frac=1), config=config).columns}
    assert (results["x"].test, results["x"].threshold) == ("ks", 0.01)
    assert (results["y"].test, results["y"].threshold) == ("psi", 0.1)
    (tmp_path / "pyproject.toml").write_text('[tool.nbprod.drift.columns."x"]\ntest = "kss"\n')
    with pytest.raises(NbprodError, match="unknown test 'kss'"):
        load_drift_config(tmp_path)
    with pytest.raises(NbprodError, match="share"):
        DriftConfig.from_mapping({"share": 2})


def test_drift_rejects_what_is_not_a_dataframe():
    with pytest.raises(NbprodError, match="not a DataFrame"):
        compute_drift([1, 2], pd.DataFrame({"a": [1]}))


def test_drift_section_has_a_chart_per_drifted_column():
    rng = np.random.default_rng(6)
    reference = pd.DataFrame({"n": rng.normal(size=300), "c": rng.choice(["a", "b", "c"], 300),
                              "s": rng.normal(size=300)})
    current = pd.DataFrame({"n": rng.normal(2, 1, 300), "c": rng.choice(["a", "d"], 300), "s": rng.normal(size=300)})
    report = compute_drift(reference, current)
    assert report.drifted_columns == ["n", "c"]
    html = drift_html(report, reference, current)
    assert html.count("<svg") == 2 and "aria-label='n'" in html and "aria-label='c'" in html
    assert "<script" not in html and "http" not in html.replace("http://www.w3.org/2000/svg", "")
