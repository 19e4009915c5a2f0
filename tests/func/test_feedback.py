"""Outcomes meet predictions on a real ``nbprod serve`` with an A/B split (uvicorn on loopback, real
approve/rollback tags): outcomes posted to /feedback and imported from files, joined by request id
and by a declared key, ``live.*`` figures per variant equal to scikit-learn on the same rows, the
estimated accuracy against the realised one, the A/B verdict, and the rollback policy.

The outcome delay is simulated: each outcome is posted with ``time`` two days after the request was
answered (the label delay the figures report), since a test cannot wait two days.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest
from sklearn import metrics as sk

from helpers.commands import nbprod, run
from nbprod.monitor.records import LIVE_FILE, list_records, verify_record
from nbprod.core.project import load_project
from helpers.projects import approve_two_versions, holdout_records
from helpers.servers import Serve

pytestmark = pytest.mark.slow

CONFIG = '''
[tool.nbprod.serve]
split = {"v1.0.0" = 0.5}
log_inputs = "hash"
poll_interval = 0.2

[tool.nbprod.feedback]
key_field = "customer"
min_outcomes = 30

[tool.nbprod.monitor]
"live.accuracy" = ">= 0.6"
rollback_on = ["live.accuracy"]

[tool.nbprod.notify]
to = ["ml-team@example.com"]
on = "always"
'''
REQUESTS = 240
DELAY = timedelta(days=2)  # the simulated time from an answer to its outcome


@pytest.fixture(scope="module")
def served(ran_project, tmp_path_factory):
    """Two versions (prod v1.1.0, challenger v1.0.0 on half the traffic, routed by key), a record,
    240 answered requests and their outcomes posted: drawn from each answer's own probability of
    class 1 (calibrated by construction, seeded), a quarter of them by the customer key."""
    root = tmp_path_factory.mktemp("feedback") / "proj"
    shutil.copytree(ran_project, root, symlinks=True)
    with open(root / "pyproject.toml", "a", encoding="utf-8") as handle:
        handle.write(CONFIG)
    run("git", "commit", "-qam", "serve, feedback and monitor settings", cwd=root)
    approve_two_versions(root)
    assert "Record: records/" in nbprod("run", "--record", cwd=root).stdout
    rows = holdout_records(root, 143)
    rng = np.random.default_rng(25)
    answers, posted, replies = {}, {}, []
    with Serve(root) as server, httpx.Client(timeout=10) as client:
        for i in range(REQUESTS):
            body = {"records": [rows[i % len(rows)]]}
            if i % 4 == 0:
                body["customer"] = f"c-{i}"
            r = client.post(f"{server.base}/predict", json=body,
                            headers={"X-Request-Id": f"q{i}", "X-Route-Key": f"user-{i}"})
            assert r.status_code == 200, r.text
            answers[f"q{i}"] = r.json()
        known = datetime.now(UTC) + DELAY
        batch = []
        for i in range(REQUESTS):
            answer = answers[f"q{i}"]
            outcome = int(rng.random() < answer["probabilities"][0][1])
            posted[f"q{i}"] = outcome
            item = {"key": f"c-{i}"} if i % 4 == 0 else {"request_id": f"q{i}"}
            batch.append({**item, "outcome": outcome, "time": known.isoformat()})
        wrong_first = {"request_id": "q1", "outcome": 1 - posted["q1"], "time": known.isoformat()}
        replies.append(client.post(f"{server.base}/feedback", json=wrong_first))  # replaced by the later one
        time.sleep(0.01)
        for start in range(0, len(batch), 60):
            replies.append(client.post(f"{server.base}/feedback", json={"outcomes": batch[start:start + 60]}))
        strangers = [{"request_id": f"nobody-{n}", "outcome": 1} for n in range(3)]
        replies.append(client.post(f"{server.base}/feedback", json=strangers))
        bad = [{"request_id": "q2", "outcome": "malignant"}, {"request_id": "q3", "outcome": 2},
               {"request_id": "q4", "outcome": posted["q4"], "time": known.isoformat()}]
        replies.append(client.post(f"{server.base}/feedback", json=bad))
    return root, answers, posted, replies


def copy_of(served, tmp_path: Path) -> Path:
    target = tmp_path / "proj"
    shutil.copytree(served[0], target, symlinks=True)
    return target


def expected(answers: dict, outcomes: dict, variant: str) -> dict:
    """scikit-learn's figures computed directly from the answers and the outcomes the test sent."""
    ids = [i for i, a in answers.items() if a["variant"] == variant and i in outcomes]
    truth = [outcomes[i] for i in ids]
    predicted = [answers[i]["predictions"][0] for i in ids]
    proba = np.array([answers[i]["probabilities"][0] for i in ids])
    return {"n_outcomes": len(ids), "accuracy": sk.accuracy_score(truth, predicted),
            "precision": sk.precision_score(truth, predicted), "recall": sk.recall_score(truth, predicted),
            "f1": sk.f1_score(truth, predicted), "roc_auc": sk.roc_auc_score(truth, proba[:, 1]),
            "log_loss": sk.log_loss(truth, proba, labels=[0, 1]),
            "expected_hits": proba[np.arange(len(ids)), predicted]}


def test_posted_outcomes_give_live_figures_equal_to_scikit_learn(served, tmp_path):
    root, answers, posted, replies = served
    assert all(r.status_code == 200 for r in replies[:-1]), [r.text for r in replies]
    assert replies[-2].json() == {"stored": 3, "rejected": []}  # unknown ids are stored, counted at the join
    bad = replies[-1]
    assert bad.status_code == 422 and bad.json()["field"] == "outcomes[0].outcome"
    assert [r["field"] for r in bad.json()["rejected"]] == ["outcomes[0].outcome", "outcomes[1].outcome"]
    assert bad.json()["stored"] == 1 and "not a class the model knows" in bad.json()["rejected"][1]["error"]

    root = copy_of(served, tmp_path)
    done = nbprod("monitor", "--json", cwd=root)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["policy"] == {"action": "not needed", "text": "no rollback_on rule alerted"}
    check, = [c for c in report["checks"] if c["rule"] == "live.accuracy >= 0.6"]
    record = list_records(load_project(root))[-1]
    live = json.loads((record.path / LIVE_FILE).read_text())
    assert verify_record(record) == []  # an added file, outside the manifest, like served_drift.json
    assert live["unknown"] == 3 and live["duplicates"] == 2  # q1 (wrong, then right) and q4 sent twice
    metrics = live["metrics"]
    assert check["passed"] is True and check["value"] == metrics["live.accuracy"]
    for variant, version in (("prod", "v1.1.0"), ("challenger", "v1.0.0")):
        want = expected(answers, posted, variant)
        assert metrics[f"live.{variant}.n_outcomes"] == want["n_outcomes"] >= 30
        assert metrics[f"live.{variant}.coverage"] == 1.0
        for name in ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"):
            assert metrics[f"live.{variant}.{name}"] == pytest.approx(want[name], abs=1e-12), name
            assert metrics[f"live.versions.{version}.{name}"] == metrics[f"live.{variant}.{name}"]
        assert metrics[f"live.{variant}.label_delay_p50_hours"] == pytest.approx(48, abs=0.2)
        # Estimated from the probabilities alone, against the realised accuracy: on calibrated outcomes
        # the realised accuracy has mean sum(p)/n and standard deviation sqrt(sum p(1-p))/n.
        hits = want["expected_hits"]
        estimated = metrics[f"live.{variant}.estimated_accuracy"]
        assert estimated == pytest.approx(float(np.mean(hits)), abs=1e-12)
        spread = math.sqrt(float(np.sum(hits * (1 - hits)))) / len(hits)
        assert abs(estimated - want["accuracy"]) <= 4 * spread + 1e-9
    assert metrics["live.accuracy"] == metrics["live.prod.accuracy"]

    nbprod("monitor", "--notify", "--dry-run", cwd=root)
    import email
    from email import policy

    eml = next((root / ".nbprod/monitor").glob("*.eml"))
    text = email.message_from_bytes(eml.read_bytes(), policy=policy.default).get_body(("plain",)).get_content()
    assert f"A/B test: {report['live']['verdict']['text']}" in text
    page = (root / "reports/dashboard.html").read_text()
    assert "Live quality" in page and "(ESTIMATED)" in page and 'id="ab-verdict"' in page
    table = nbprod("compare", "--variants", cwd=root).stdout
    assert "A/B test:" in table and "ESTIMATED" in table
    rows = json.loads(nbprod("compare", "--variants", "--json", cwd=root).stdout)
    challenger, = [r for r in rows if r["variant"] == "challenger"]
    assert challenger["live"]["accuracy"] == metrics["live.challenger.accuracy"]
    assert challenger["ab_verdict"]["difference"] == pytest.approx(
        metrics["live.challenger.accuracy"] - metrics["live.prod.accuracy"], abs=1e-12)

    out = root / "data/feedback.parquet"
    assert "Wrote 240 labelled case(s)" in nbprod("feedback", "export", str(out), cwd=root).stdout
    import pyarrow.parquet as pq

    exported = pq.read_table(out)
    assert dict(zip(exported["request_id"].to_pylist(), exported["outcome"].to_pylist())) == posted
    assert json.loads(exported.schema.metadata[b"nbprod.feedback"])["rows"] == 240


def planted_csv(path: Path, answers: dict, right: dict[str, float], per_variant: int | None = None) -> dict:
    """Outcomes planted so that each variant's share of right answers is ``right[variant]``."""
    lines, planted = ["request_id,outcome"], {}
    for variant, share in right.items():
        ids = [i for i, a in answers.items() if a["variant"] == variant][:per_variant]
        for n, rid in enumerate(ids):
            predicted = answers[rid]["predictions"][0]
            planted[rid] = predicted if n < round(share * len(ids)) else 1 - predicted
            lines.append(f"{rid},{planted[rid]}")
    path.write_text("\n".join(lines) + "\n")
    return planted


def outcome_bytes(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (root / ".nbprod/serve/predictions").glob("outcomes-*")}


def test_verdict_on_a_planted_difference_and_not_enough_on_a_small_sample(served, tmp_path):
    root = copy_of(served, tmp_path)
    answers = served[1]
    for path in (root / ".nbprod/serve/predictions").glob("outcomes-*"):
        path.unlink()  # start from no outcomes
    before = nbprod("compare", "--variants", cwd=root).stdout
    assert "0 with an outcome" in before and "not enough outcomes yet: no labelled rows" in before

    small = tmp_path / "small.csv"
    planted_csv(small, answers, {"challenger": 0.9, "prod": 0.7}, per_variant=10)
    done = nbprod("feedback", "import", str(small), cwd=root)
    assert "Stored 20 outcome(s)" in done.stdout
    table = nbprod("compare", "--variants", cwd=root).stdout
    assert "not enough outcomes yet" in table and "more needed for this effect size" in table
    assert "not enough outcomes yet (10 of min_outcomes = 30)" in table

    before = outcome_bytes(root)
    (tmp_path / "nokey.csv").write_text("id,outcome\nq1,1\n")
    done = nbprod("feedback", "import", str(tmp_path / "nokey.csv"), cwd=root, check=False)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "has no key column ('request_id' or 'customer'" in done.stderr and "--key-column" in done.stderr
    assert outcome_bytes(root) == before

    (tmp_path / "typo.csv").write_text("request_id,outcome\nq5,benign\nq6,1\n")
    done = nbprod("feedback", "import", str(tmp_path / "typo.csv"), cwd=root, check=False)
    assert done.returncode == 1 and "row 1 (column 'outcome')" in done.stderr and "not stored" in done.stderr
    assert "Stored 1 outcome(s)" in done.stdout

    big = tmp_path / "planted.csv"
    planted = planted_csv(big, answers, {"challenger": 1.0, "prod": 0.7})
    nbprod("feedback", "import", str(big), cwd=root)
    rows = json.loads(nbprod("compare", "--variants", "--json", cwd=root).stdout)
    verdict = next(r for r in rows if r["variant"] == "challenger")["ab_verdict"]
    want = {v: expected(answers, planted, v)["accuracy"] for v in ("prod", "challenger")}
    assert verdict["decision"] == "better" and verdict["text"].startswith("challenger is better")
    assert verdict["difference"] == pytest.approx(want["challenger"] - want["prod"], abs=1e-12)
    assert verdict["low"] > 0 and verdict["low"] < verdict["difference"] < verdict["high"]


def test_policy_rollback_once_recorded_and_served(served, tmp_path):
    root = copy_of(served, tmp_path)
    answers = served[1]
    # Production's live accuracy collapses (planted), the challenger v1.0.0 (the previous version) is right.
    planted_csv(tmp_path / "collapse.csv", answers, {"prod": 0.2, "challenger": 1.0})
    nbprod("feedback", "import", str(tmp_path / "collapse.csv"), cwd=root)
    with Serve(root) as server, httpx.Client(timeout=10) as client:
        assert client.get(f"{server.base}/model").json()["version"] == "v1.1.0"
        done = nbprod("monitor", "--json", cwd=root, check=False)
        assert done.returncode == 1, done.stdout + done.stderr
        policy = json.loads(done.stdout)["policy"]
        assert policy["action"] == "rolled back" and "from v1.1.0 to v1.0.0" in policy["text"]
        deadline, version = time.monotonic() + 60, None
        while time.monotonic() < deadline:  # the workers poll the tags every poll_interval (0.2 s)
            version = client.get(f"{server.base}/model").headers["x-model-version"]
            if version == "v1.0.0":
                break
            time.sleep(0.1)
        assert version == "v1.0.0"
        again = json.loads(nbprod("monitor", "--json", cwd=root, check=False).stdout)["policy"]
    assert again["action"] == "kept" and "already rolled back" in again["text"]
    history = json.loads(nbprod("history", "--json", cwd=root).stdout)
    rollbacks = [e for e in history if e["action"] == "rollback"]
    assert len(rollbacks) == 1
    record = rollbacks[0]
    assert record["by"] == "nbprod monitor, policy rollback_on" and record["from"] == "v1.1.0"
    assert "live.accuracy >= 0.6 alerted" in record["note"] and "outcomes of v1.1.0" in record["note"]


def test_no_rollback_when_the_previous_version_was_worse(served, tmp_path):
    root = copy_of(served, tmp_path)
    planted_csv(tmp_path / "both.csv", served[1], {"prod": 0.5, "challenger": 0.3})
    nbprod("feedback", "import", str(tmp_path / "both.csv"), cwd=root)
    done = nbprod("monitor", "--json", cwd=root, check=False)
    assert done.returncode == 1
    policy = json.loads(done.stdout)["policy"]
    assert policy["action"] == "kept" and "v1.0.0's own live accuracy" in policy["text"]
    history = json.loads(nbprod("history", "--json", cwd=root).stdout)
    assert not [e for e in history if e["action"] == "rollback"]
