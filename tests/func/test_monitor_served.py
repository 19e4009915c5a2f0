"""`nbprod monitor` on the inputs `nbprod serve` answered: a real approved model, a real uvicorn process
on loopback fed a bounded number of shifted requests, its prediction log compared with the production
version's training data (served.drift.* metrics, a rule on them, the dashboard), and without a log the
served rules are "not checked", not a crash."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest

from helpers.commands import nbprod, run
from nbprod.monitor.records import SERVED_FILE, is_read_only, list_records, verify_record
from nbprod.core.project import load_project
from helpers.servers import Serve

pytestmark = pytest.mark.slow

RULES = '''
[tool.nbprod.monitor]
"served.drift.share" = "<= 0.3"
accuracy = ">= 0.9"
served_rows = 500
'''


@pytest.fixture(scope="module")
def monitored(ran_project, tmp_path_factory) -> Path:
    """The example project with v1.0.0 approved (in production), monitor rules, and one record."""
    root = tmp_path_factory.mktemp("served") / "proj"
    shutil.copytree(ran_project, root, symlinks=True)
    nbprod("retrain", cwd=root)
    nbprod("approve", "c1", "--by", "alice", cwd=root)
    with open(root / "pyproject.toml", "a", encoding="utf-8") as handle:
        handle.write(RULES)
    run("git", "commit", "-qam", "monitor rules", cwd=root)
    assert "Record: records/" in nbprod("run", "--record", cwd=root).stdout
    return root


@pytest.fixture
def copy(monitored, tmp_path) -> Path:
    target = tmp_path / "proj"
    shutil.copytree(monitored, target, symlinks=True)
    return target


def checks(done) -> dict[str, dict]:
    return {c["rule"]: c for c in json.loads(done.stdout)["checks"]}


def test_without_a_prediction_log_served_rules_are_not_checked(copy):
    done = nbprod("monitor", "--json", cwd=copy)
    assert done.returncode == 0, done.stdout + done.stderr
    served = checks(done)["served.drift.share <= 0.3"]
    assert served["passed"] is None and "not checked" in served["note"] and "prediction log" in served["note"]
    assert json.loads(done.stdout)["served"]["status"] == "no log"
    record, = list_records(load_project(copy))
    assert not (record.path / SERVED_FILE).exists()
    text = nbprod("monitor", cwd=copy).stdout
    assert "not checked" in text and "Served inputs: no prediction log in .nbprod/serve/predictions" in text


def test_shifted_served_inputs_raise_the_served_drift_alert(copy):
    import pandas as pd

    # Covariate shift within the contract's ranges: only the largest tumours of the holdout are sent.
    holdout = pd.read_parquet(copy / "notebooks/data/test.parquet").drop(columns="target")
    shifted = holdout.sort_values("mean_radius", ascending=False).head(60).to_dict("records")
    with Serve(copy) as server:
        for start in range(0, len(shifted), 10):  # 6 requests of 10 rows
            answer = httpx.post(f"{server.base}/predict", json={"records": shifted[start:start + 10]}, timeout=10)
            assert answer.status_code == 200, answer.text
    done = nbprod("monitor", "--json", cwd=copy, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    result = checks(done)
    served = result["served.drift.share <= 0.3"]
    assert served["passed"] is False and served["value"] > 0.3 and served["threshold"] == 0.3
    assert result["accuracy >= 0.9"]["passed"] is True
    record, = list_records(load_project(copy))
    kept = json.loads((record.path / SERVED_FILE).read_text())
    assert kept["status"] == "checked" and kept["rows"] == 60 and kept["version"] == "v1.0.0"
    assert kept["training_data"] == ["notebooks/data/train.parquet"]
    assert kept["metrics"]["served.drift.share"] == served["value"]
    assert kept["metrics"]["served.drift.mean_radius.drifted"] == 1.0
    alerts = json.loads((record.path / "alerts.json").read_text())
    assert alerts["status"] == "alert" and alerts["alerts"] == 1
    # the record itself is untouched: the added files are outside the manifest and read-only
    assert verify_record(record) == [] and is_read_only(record.path)
    page = (copy / "reports/dashboard.html").read_text()
    assert "served inputs: share of columns that drifted" in page
    assert "served inputs: drift score of the" in page
    text = nbprod("monitor", cwd=copy, check=False).stdout
    assert "ALERT" in text and "Served inputs: 60 served rows" in text and "v1.0.0" in text


def test_served_window_setting_is_checked(copy):
    pyproject = copy / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("served_rows = 500", "served_rows = 0"))
    done = nbprod("monitor", cwd=copy, check=False)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "served_rows" in done.stderr and "pyproject.toml" in done.stderr
