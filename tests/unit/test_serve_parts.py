"""The parts of nbprod serve that need no server: the request contract over every kind of column,
routing buckets, the prediction log's rotation and drop counter, and the settings checks."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from nbprod.core.errors import NbprodError
from nbprod.serve import contract as contracts
from nbprod.serve.predlog import PredictionLog, log_files, read_log, served_inputs
from nbprod.serve.routing import CHALLENGER, PROD, Router, bucket
from nbprod.serve.settings import load_settings


@pytest.fixture
def mixed():
    training = pd.DataFrame({
        "age": pd.Series([30, 40], dtype="int64"),
        "income": [1.5, None],                       # had a missing value: null allowed
        "member": [True, False],
        "city": pd.Series(["a", "b"], dtype="category"),
        "note": ["x", "y"],
    })
    return contracts.from_training(list(training.columns), training, max_batch=3)


def problem(contract, body) -> tuple[int, str | None, str]:
    with pytest.raises(contracts.ContractError) as caught:
        contract.frame(body)
    return caught.value.status, caught.value.field, caught.value.problem


GOOD = {"age": 31, "income": 2.0, "member": True, "city": "a", "note": "z"}


def test_contract_builds_training_dtypes(mixed):
    frame = mixed.frame({"records": [GOOD, {**GOOD, "income": None, "age": 5.0}]})
    assert list(frame.columns) == ["age", "income", "member", "city", "note"]
    assert str(frame["age"].dtype) == "int64" and str(frame["member"].dtype) == "bool"
    assert math.isnan(frame["income"][1])
    assert [f["type"] for f in mixed.describe()["fields"]] == ["integer", "number", "boolean", "string", "string"]


@pytest.mark.parametrize("change, field, words", [
    ({"age": 1.5}, "age", "integer"),
    ({"age": "3"}, "age", "integer"),
    ({"age": None}, "age", "null"),
    ({"income": "1"}, "income", "number"),
    ({"income": float("inf")}, "income", "finite"),
    ({"member": 1}, "member", "true or false"),
    ({"city": "zzz"}, "city", "allowed values"),
    ({"note": 3}, "note", "string"),
])
def test_contract_names_the_field_and_problem(mixed, change, field, words):
    status, name, text = problem(mixed, {"records": [{**GOOD, **change}]})
    assert status == 422 and name == field and words in text


def test_contract_batch_limits(mixed):
    assert problem(mixed, {"records": [GOOD] * 4})[0] == 413
    assert problem(mixed, {"records": []})[:2] == (422, None)


def test_routing_buckets_are_stable_and_spread():
    assert bucket("user-1") == bucket("user-1") and 0 <= bucket("user-1") < 1
    router = Router(share=0.25)
    picks = [router.choose(f"k{n}") for n in range(4000)]
    assert 0.22 < picks.count(CHALLENGER) / len(picks) < 0.28
    assert Router().choose("anything") == PROD and Router(shadow=True).mode == "shadow"


def test_prediction_log_rotates_by_size_and_keeps_n_files(tmp_path):
    log = PredictionLog(tmp_path / "log", max_bytes=2_000, keep=2, queue_size=10_000, inputs="hash")
    log.start()
    for n in range(200):
        log.submit({"request_id": str(n), "predictions": [n % 2]}, {"records": [{"x": float(n)}] * 5}, ("x",))
    log.close()
    files = log_files(tmp_path / "log")
    assert [p.name.split(".jsonl")[1] for p in files] == [".2", ".1", ""]
    assert all(p.stat().st_size < 2_000 + 400 for p in files)
    ids = [int(e["request_id"]) for e in read_log(tmp_path / "log")]
    assert ids == sorted(ids) and ids[-1] == 199  # oldest kept first, newest last, none reordered
    entries = list(read_log(tmp_path / "log"))
    assert all(len(e["inputs_sha256"]) == 64 and "inputs" not in e for e in entries)
    assert len({e["inputs_sha256"] for e in entries}) == len(entries)  # one per distinct input


def test_prediction_log_writes_inputs_column_by_column(tmp_path):
    log = PredictionLog(tmp_path / "log", max_bytes=10**6, keep=1, queue_size=10, inputs="values")
    log.start()
    log.submit({"request_id": "a", "time": 0.0}, {"records": [{"x": 1, "y": 2, "z": 0}, {"x": 3, "y": 4, "z": 0}]},
               ("x", "y"))
    log.submit({"request_id": "b"}, {"columns": {"x": [5], "y": [6]}}, ("x", "y"))
    log.close()
    first, second = read_log(tmp_path / "log")
    assert first["inputs"] == {"x": [1, 3], "y": [2, 4]} and second["inputs"] == {"x": [5], "y": [6]}
    assert first["time"] == "1970-01-01T00:00:00.000+00:00"
    frame = served_inputs(tmp_path / "log", variant=None)
    assert frame.to_dict("list") == {"x": [1, 3, 5], "y": [2, 4, 6]}


def test_prediction_log_drops_and_counts_when_full(tmp_path):
    drops = []
    log = PredictionLog(tmp_path / "log", max_bytes=10**6, keep=1, queue_size=3, inputs="none",
                        on_drop=lambda: drops.append(1))
    for n in range(10):  # writer not started yet: the queue fills after 3 entries, submit never blocks
        log.submit({"request_id": str(n)}, None)
    assert log.dropped == 7 and len(drops) == 7
    log.start()
    log.close()
    assert [e["request_id"] for e in read_log(tmp_path / "log")] == ["0", "1", "2"]


def write_serve_table(root: Path, text: str) -> None:
    (root / "pyproject.toml").write_text(f"[tool.nbprod.serve]\n{text}\n", encoding="utf-8")


@pytest.mark.parametrize("text, words", [
    ("poll_interval = 0", "poll_interval"),
    ('log_inputs = "all"', "log_inputs"),
    ('split = {"v1.1.0" = 0.1, "v1.2.0" = 0.1}', "more than one"),
    ('split = {"v1.1.0" = 0.1}\nshadow = "v1.2.0"', "together"),
    ("max_batch = true", "wrong type"),
    ("colour = 1", "unknown key"),
])
def test_settings_errors_name_the_key(tmp_path, text, words):
    write_serve_table(tmp_path, text)
    with pytest.raises(NbprodError) as caught:
        load_settings(tmp_path, "model")
    assert words in str(caught.value) and "pyproject.toml" in str(caught.value)


def test_settings_defaults_and_command_line(tmp_path):
    write_serve_table(tmp_path, "poll_interval = 2.5")
    settings = load_settings(tmp_path, "model", port=9001, workers=None)
    assert (settings.host, settings.port, settings.workers, settings.poll_interval) == ("127.0.0.1", 9001, 1, 2.5)
    assert json.loads(settings.to_env())["poll_interval"] == 2.5


def test_declared_schema_checks_become_per_value_checks(tmp_path):
    from nbprod.contracts.schemas import load_schema

    (tmp_path / "s.yaml").write_text(
        "schema_type: dataframe\napi: pandas\ncolumns:\n"
        "  size:\n    dtype: float64\n    greater_than_or_equal_to: 1.0\n    less_than_or_equal_to: 9.0\n"
        "  kind:\n    dtype: int64\n    isin: [0, 1]\n"
        "  target:\n    dtype: int64\n", encoding="utf-8")
    schema = load_schema(tmp_path / "s.yaml")
    contract = contracts.from_schema(["size", "kind"], schema, None, 10, "s.yaml", "0" * 64)
    assert contract.schema is None  # every check translated: pandera is not run per request
    assert len(contract.frame({"records": [{"size": 1.0, "kind": 1}, {"size": 9, "kind": 0}]})) == 2
    for record, field, words in (({"size": 0.5, "kind": 1}, "size", ">= 1.0"),
                                 ({"size": 9.5, "kind": 1}, "size", "<= 9.0"),
                                 ({"size": 2.0, "kind": 2}, "kind", "allowed values"),
                                 ({"size": 2.0, "kind": 1, "target": 1}, "target", "not a field")):
        status, name, text = problem(contract, {"records": [record]})
        assert (status, name) == (422, field) and words in text
