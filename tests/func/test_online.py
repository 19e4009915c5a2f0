"""Online learning on a real ``nbprod serve`` (uvicorn on loopback) with real feedback, real registry
tags and the real DVC cache: ``nbprod learn`` updates a served SGDClassifier on its labelled rows,
the policy approves a good update (and the server swaps to it), holds a poisoned one (labels flipped)
for a human, and rollbacks restore each version's exact model bytes.
"""

from __future__ import annotations

import copy
import io
import json
import shutil
import time
from pathlib import Path

import httpx
import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as sk

from helpers.commands import nbprod, run
from helpers.servers import Serve

pytestmark = pytest.mark.slow

CONFIG = '''
[tool.nbprod.gates]
accuracy = [">= 0.85", ">= champion - 0.05"]

[tool.nbprod.serve]
poll_interval = 0.2

[tool.nbprod.online]
auto_approve = true
max_drift_share = 0.3
batch_size = 25
min_rows = 30

[tool.nbprod.online.gates]
"holdout.accuracy" = ">= champion - 0.02"
'''
MODEL_DIR = ".nbprod/data/notebooks__model/train/model"
BATCH = 25


def use_sgd(root: Path) -> None:
    """The example's classifier, made one that learns incrementally (the scaler stays as fitted)."""
    path = root / "notebooks/model.ipynb"
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        text = "".join(cell["source"])
        text = text.replace("from sklearn.linear_model import LogisticRegression",
                            "from sklearn.linear_model import SGDClassifier")
        text = text.replace("LogisticRegression(C=C, max_iter=max_iter)",
                            'SGDClassifier(loss="log_loss", alpha=0.001 / C, max_iter=max_iter, random_state=0)')
        cell["source"] = text
    path.write_text(json.dumps(nb, indent=1))


def model_files(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((root / MODEL_DIR).iterdir()) if p.is_file()}


def cached_model(root: Path, record_md5: str) -> dict[str, bytes]:
    from nbprod.core.dvccache import cache_dir
    from nbprod.serve.loader import artifact_files

    return artifact_files(cache_dir(root), MODEL_DIR, record_md5)


def wait_for_version(client: httpx.Client, base: str, version: str) -> str:
    deadline, seen = time.monotonic() + 60, None
    while time.monotonic() < deadline:  # the workers poll the tags every poll_interval (0.2 s)
        seen = client.get(f"{base}/model").headers["x-model-version"]
        if seen == version:
            break
        time.sleep(0.1)
    return seen


def post_rows(client: httpx.Client, base: str, prefix: str, frame: pd.DataFrame, outcomes: list) -> dict:
    """One request per row (ids in posting order), then every outcome in batches of 60."""
    answers = {}
    for n, record in enumerate(frame.to_dict("records")):
        rid = f"{prefix}{n:03d}"
        r = client.post(f"{base}/predict", json={"records": [record]}, headers={"X-Request-Id": rid})
        assert r.status_code == 200, r.text
        answers[rid] = r.json()
    batch = [{"request_id": f"{prefix}{n:03d}", "outcome": int(y)} for n, y in enumerate(outcomes)]
    for start in range(0, len(batch), 60):
        r = client.post(f"{base}/feedback", json={"outcomes": batch[start:start + 60]})
        assert r.status_code == 200, r.text
    return answers


def prequential_by_hand(model, frame: pd.DataFrame, y: np.ndarray):
    """scikit-learn directly: predict each batch of 25, then partial_fit the last step on it."""
    model = copy.deepcopy(model)
    predicted = []
    for start in range(0, len(y), BATCH):
        part, labels = frame.iloc[start:start + BATCH], y[start:start + BATCH]
        predicted.extend(model.predict(part).tolist())
        model[-1].partial_fit(model[:-1].transform(part), labels, classes=model[-1].classes_)
    return model, sk.accuracy_score(y, predicted)


@pytest.fixture(scope="module")
def online(template_project, tmp_path_factory):
    root = tmp_path_factory.mktemp("online") / "proj"
    shutil.copytree(template_project, root, symlinks=True)
    use_sgd(root)
    with open(root / "pyproject.toml", "a", encoding="utf-8") as handle:
        handle.write(CONFIG)
    nbprod("run", "--no-report", cwd=root)
    run("git", "add", "-A", cwd=root)
    run("git", "commit", "-qm", "SGD classifier, gates, serve and online settings", cwd=root)
    nbprod("retrain", cwd=root)
    nbprod("approve", "c1", "--by", "alice", cwd=root)
    return root


def test_learn_approves_good_holds_poisoned_and_rollback_restores_bytes(online):
    root = online
    test = pd.read_parquet(root / "notebooks/data/test.parquet")
    frame, y = test.drop(columns="target"), test["target"].to_numpy()
    first_files = model_files(root)
    first = joblib.load(io.BytesIO(next(v for k, v in first_files.items() if k.endswith(".joblib"))))
    with Serve(root) as server, httpx.Client(timeout=10) as client:
        assert wait_for_version(client, server.base, "v1.0.0") == "v1.0.0"
        post_rows(client, server.base, "q", frame, y.tolist())
        done = nbprod("learn", "--json", cwd=root, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        good = json.loads(done.stdout)
        assert good["decision"] == "approved by policy as v1.1.0"
        assert good["parent"]["version"] == "v1.0.0" and good["window"]["rows"] == len(y)
        assert good["window"]["batches"] == -(-len(y) // BATCH) and len(good["window"]["sha256"]) == 64
        assert good["window"]["first_prediction"] < good["window"]["last_prediction"]
        # The figures and the bytes are scikit-learn's own on the same rows, in the same order.
        expected_model, expected_accuracy = prequential_by_hand(first, frame, y)
        assert good["metrics"]["online"]["online.accuracy"] == pytest.approx(expected_accuracy, abs=1e-12)
        served_live = sk.accuracy_score(y, first.predict(frame))
        assert good["parent_live"]["live.accuracy"] == pytest.approx(served_live, abs=1e-12)
        assert all(g["passed"] for g in good["gates"]) and good["gates_passed"] and len(good["gates"]) == 3
        assert good["parent_holdout"]["holdout.accuracy"] == pytest.approx(
            sk.accuracy_score(y, first.predict(frame)), abs=1e-12)  # the holdout is test.parquet
        assert good["metrics"]["holdout"]["holdout.accuracy"] == pytest.approx(
            sk.accuracy_score(y, expected_model.predict(frame)), abs=1e-12)
        learned_files = cached_model(root, good["model_md5"])
        learned = joblib.load(io.BytesIO(next(v for k, v in learned_files.items() if k.endswith(".joblib"))))
        np.testing.assert_array_equal(learned[-1].coef_, expected_model[-1].coef_)
        assert not np.array_equal(learned[-1].coef_, first[-1].coef_)
        assert wait_for_version(client, server.base, "v1.1.0") == "v1.1.0"  # hot-swapped by the server
        answer = client.post(f"{server.base}/predict", json={"records": frame.head(5).to_dict("records")}).json()
        np.testing.assert_allclose(answer["probabilities"], learned.predict_proba(frame.head(5)), atol=1e-12)

        # A poisoned batch: every label flipped. Learned from, gated, and held for a human.
        post_rows(client, server.base, "p", frame, (1 - y).tolist())
        done = nbprod("learn", cwd=root, check=False)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "held for a human: failed gates: accuracy >= 0.85; holdout.accuracy >= champion - 0.02" in done.stdout
        assert "Decide: nbprod approve c3 --by NAME --override REASON" in done.stdout
        held = json.loads((root / ".nbprod/candidates/c3/candidate.json").read_text())
        assert held["parent"]["version"] == "v1.1.0" and held["window"]["rows"] == len(y)  # only v1.1.0's rows
        assert held["metrics"]["online"]["online.accuracy"] < 0.85 and not held["gates_passed"]
        assert held["parent_live"]["live.accuracy"] < 0.1  # v1.1.0 answered right: the flipped labels disagree
        # On the parent's clean holdout the poisoned update is worse than its parent: that gate fails too.
        gate, = [g for g in held["gates"] if g["gate"].startswith("holdout.accuracy")]
        assert gate["passed"] is False and gate["value"] == held["metrics"]["holdout"]["holdout.accuracy"]
        assert held["metrics"]["holdout"]["holdout.accuracy"] < held["parent_holdout"]["holdout.accuracy"] - 0.02
        again = nbprod("learn", cwd=root, check=False)  # the same rows again: the waiting candidate is named
        assert again.returncode == 2 and len(again.stderr.strip().splitlines()) == 1, again.stderr
        assert f"candidate c3 already learned these {len(y)} rows of v1.1.0" in again.stderr
        assert not (root / ".nbprod/candidates/c4").exists()
        time.sleep(1)
        assert client.get(f"{server.base}/model").headers["x-model-version"] == "v1.1.0"

        history = json.loads(nbprod("history", "--json", cwd=root).stdout)
        approvals = [e for e in history if e["action"] == "approve"]
        assert [(e["version"], e.get("approved_by")) for e in approvals] == \
            [("v1.0.0", None), ("v1.1.0", "policy")]
        policy = approvals[1]["policy"]
        assert approvals[1]["gates"] == good["gates"] and approvals[1]["model_md5"] == good["model_md5"]
        assert approvals[1]["metrics"] == good["metrics"] and approvals[1]["gates_passed"] is True
        assert policy["gates"] == good["gates"] and policy["window"]["sha256"] == good["window"]["sha256"]
        assert "c3" not in {e.get("candidate") for e in history}
        text = nbprod("history", cwd=root).stdout
        assert "prod <- v1.0.0 approved by alice" in text
        assert "prod <- v1.1.0 approved BY POLICY ([tool.nbprod.online] auto_approve)" in text
        assert "waiting for a decision: candidate c3 (FAILED a gate" in text

        # Rollbacks restore the exact bytes each version served, and the server follows.
        nbprod("rollback", "v1.0.0", "--by", "alice", "--note", "back to the first", cwd=root)
        assert model_files(root) == first_files
        assert wait_for_version(client, server.base, "v1.0.0") == "v1.0.0"
        nbprod("rollback", "v1.1.0", "--by", "alice", "--note", "the learned one again", cwd=root)
        assert model_files(root) == learned_files
        assert wait_for_version(client, server.base, "v1.1.0") == "v1.1.0"


def test_a_model_without_partial_fit_is_refused_before_anything_is_written(ran_copy):
    root = ran_copy  # the example's LogisticRegression, approved as v1.0.0
    nbprod("retrain", cwd=root)
    nbprod("approve", "c1", "--by", "alice", cwd=root)
    before = run("git", "for-each-ref", cwd=root).stdout, sorted((root / ".nbprod/candidates").iterdir())
    done = nbprod("learn", cwd=root, check=False)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "(LogisticRegression) has no partial_fit" in done.stderr and "nbprod retrain" in done.stderr
    assert (run("git", "for-each-ref", cwd=root).stdout, sorted((root / ".nbprod/candidates").iterdir())) == before
