"""``nbprod serve`` against real uvicorn processes on loopback, real registry tags (approve, rollback)
and the real DVC cache: refusing to start, the endpoints, the strict request contract (bad requests
are 4xx JSON naming the field, the model never sees them), the bearer token, the prediction log, and
a hot swap that refuses a version it cannot load."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import httpx
import pytest

from helpers.commands import nbprod, run
from helpers.projects import approve_two_versions, holdout_records
from helpers.servers import metric, Serve
from helpers.waiting import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(ran_project, tmp_path_factory) -> Path:
    """The example project with v1.0.0 and v1.1.0 approved (prod: v1.1.0); copy it before changing tags."""
    root = tmp_path_factory.mktemp("serve") / "proj"
    shutil.copytree(ran_project, root, symlinks=True)
    approve_two_versions(root)
    return root


@pytest.fixture(scope="module")
def server(served):
    with Serve(served) as s:
        yield s


@pytest.fixture
def served_copy(served, tmp_path) -> Path:
    target = tmp_path / "proj"
    shutil.copytree(served, target, symlinks=True)
    shutil.rmtree(target / ".nbprod/serve", ignore_errors=True)
    return target


def one_line_error(done) -> str:
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def model_object(root: Path, version: str) -> Path:
    """The cache file of a version's model (the joblib file inside the model folder's listing)."""
    record = json.loads(nbprod("history", "--json", cwd=root).stdout)
    md5 = next(e["model_md5"] for e in record if e.get("version") == version and e.get("model_md5"))
    listing = root / ".dvc/cache/files/md5" / md5[:2] / md5[2:]
    inner = json.loads(listing.read_text())[0]["md5"]
    return root / ".dvc/cache/files/md5" / inner[:2] / inner[2:]


# --- refusing to start ----------------------------------------------------------------------------

def test_refuses_to_start_with_nothing_in_production(ran_copy):
    line = one_line_error(nbprod("serve", "--port", "1", cwd=ran_copy, check=False))
    assert "nothing is in production" in line and "nbprod approve" in line


def test_refuses_to_start_when_the_cache_lacks_the_model(served_copy):
    model_object(served_copy, "v1.1.0").unlink()
    line = one_line_error(nbprod("serve", "--port", "1", cwd=served_copy, check=False))
    assert "lacks" in line and "dvc pull" in line


def test_refuses_to_start_when_the_model_does_not_match_its_hash(served_copy):
    path = model_object(served_copy, "v1.1.0")
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    line = one_line_error(nbprod("serve", "--port", "1", cwd=served_copy, check=False))
    assert "does not match its hash" in line


def test_refuses_an_unknown_serve_setting(served_copy):
    with open(served_copy / "pyproject.toml", "a", encoding="utf-8") as handle:
        handle.write('\n[tool.nbprod.serve]\nsplit = {"v1.0.0" = 2}\n')
    line = one_line_error(nbprod("serve", "--port", "1", cwd=served_copy, check=False))
    assert "pyproject.toml" in line and "split" in line


def test_refuses_a_port_in_use(server, served):
    line = one_line_error(nbprod("serve", "--port", str(server.port), cwd=served, check=False))
    assert f"cannot listen on 127.0.0.1:{server.port}" in line and "--port" in line


# --- the endpoints -------------------------------------------------------------------------------

def test_predict_records_and_columns_with_version_header(server, served):
    rows = holdout_records(served, 5)
    by_records = httpx.post(f"{server.base}/predict", json={"records": rows}, timeout=10)
    columns = {k: [r[k] for r in rows] for k in rows[0]}
    by_columns = httpx.post(f"{server.base}/predict", json={"columns": columns}, timeout=10)
    for response in (by_records, by_columns):
        assert response.status_code == 200, response.text
        assert response.headers["x-model-version"] == "v1.1.0"
        body = response.json()
        assert body["version"] == "v1.1.0" and body["variant"] == "prod"
        assert len(body["predictions"]) == 5 and set(body["predictions"]) <= {0, 1}
        assert all(math.isclose(sum(p), 1.0) for p in body["probabilities"]) and body["classes"] == [0, 1]
    assert by_records.json()["predictions"] == by_columns.json()["predictions"]


def test_predictions_equal_the_approved_model_loaded_from_the_cache(server, served):
    import joblib
    import pandas as pd

    rows = holdout_records(served, 20)
    model = joblib.load(model_object(served, "v1.1.0"))
    expected = model.predict_proba(pd.DataFrame(rows))[:, 1]
    got = httpx.post(f"{server.base}/predict", json={"records": rows}, timeout=10).json()["probabilities"]
    assert [p[1] for p in got] == pytest.approx(list(expected), abs=1e-12)


def test_health_ready_model_and_metrics(server, served):
    for path in ("/healthz", "/readyz", "/model", "/metrics"):
        response = httpx.get(server.base + path, timeout=10)
        assert response.status_code == 200 and response.headers["x-model-version"] == "v1.1.0", path
    info = httpx.get(f"{server.base}/model", timeout=10).json()
    assert info["name"] == "model" and info["version"] == "v1.1.0" and info["tag"] == "model@v1.1.0"
    assert info["commit"] == run("git", "rev-parse", "model@v1.1.0^{commit}", cwd=served).stdout.strip()
    assert info["approval"]["by"] == "bob" and info["approval"]["note"] == "more regularised"
    assert info["metrics"]["metrics/evaluate.json"]["roc_auc"] > 0.9
    assert info["model"]["md5"].endswith(".dir") and info["training_data"][0]["path"].endswith("train.parquet")
    # The example project declares its data schema (prepare validates with it): the contract is that
    # schema, checked against the hash dvc.lock recorded for it.
    schema = served / "schemas/breast_cancer.yaml"
    assert info["contract"]["source"] == "schemas/breast_cancer.yaml at model@v1.1.0"
    assert info["contract"]["schema_sha256"] == hashlib.sha256(schema.read_bytes()).hexdigest()
    radius = next(f for f in info["contract"]["fields"] if f["name"] == "mean_radius")
    assert radius["type"] == "number" and radius["nullable"] is False and radius["limits"][0].startswith(">= ")
    assert len(info["contract"]["fields"]) == 30 and info["smoke"]["source"] == "holdout row 0"
    text = httpx.get(f"{server.base}/metrics", timeout=10).text
    assert metric(text, "nbprod_serve_model_version", variant="prod", version="v1.1.0") == 1
    for name in ("nbprod_serve_requests_total", "nbprod_serve_request_seconds_bucket", "nbprod_serve_errors_total"):
        assert name in text


def bad_requests(good: dict) -> list[tuple[str, object, str | None]]:
    """(what, body, the field the answer must name); body bytes are sent as they are."""
    first = next(iter(good))
    without = {k: v for k, v in good.items() if k != first}
    cases = [
        ("missing field", {"records": [without]}, first),
        ("extra field", {"records": [{**good, "surprise": 1.0}]}, "surprise"),
        ("string for number", {"records": [{**good, first: "12.5"}]}, first),
        ("bool for number", {"records": [{**good, "mean_area": True}]}, "mean_area"),
        ("null", {"records": [{**good, "worst_area": None}]}, "worst_area"),
        ("list for number", {"records": [{**good, "mean_texture": [1.0]}]}, "mean_texture"),
        ("object for number", {"records": [{**good, "mean_texture": {"v": 1}}]}, "mean_texture"),
        ("NaN", b'{"records": [' + json.dumps({**good, "mean_smoothness": 0.0}).replace(
            '"mean_smoothness": 0.0', '"mean_smoothness": NaN').encode() + b"]}", "mean_smoothness"),
        ("Infinity", b'{"records": [' + json.dumps({**good, "mean_smoothness": 0.0}).replace(
            '"mean_smoothness": 0.0', '"mean_smoothness": Infinity').encode() + b"]}", "mean_smoothness"),
        ("second row bad", {"records": [good, {**good, "radius_error": "x"}]}, "radius_error"),
        ("row not an object", {"records": [good, 3]}, "records"),
        ("records not a list", {"records": good}, "records"),
        ("empty batch", {"records": []}, None),
        ("oversized batch", {"records": [good] * 1001}, None),
        ("empty columns", {"columns": {k: [] for k in good}}, None),
        ("column missing", {"columns": {k: [v] for k, v in without.items()}}, first),
        ("column extra", {"columns": {**{k: [v] for k, v in good.items()}, "zzz": [1]}}, "zzz"),
        ("column not a list", {"columns": {**{k: [v] for k, v in good.items()}, first: 1.0}}, first),
        ("columns of different lengths", {"columns": {**{k: [v] for k, v in good.items()}, first: [1.0, 2.0]}},
         None),
        ("column value wrong type", {"columns": {**{k: [v] for k, v in good.items()}, "worst_radius": ["a"]}},
         "worst_radius"),
        ("both records and columns", {"records": [good], "columns": {k: [v] for k, v in good.items()}}, None),
        ("neither", {"rows": [good]}, "rows"),
        ("unknown top-level key", {"records": [good], "path": "/etc/passwd"}, "path"),
        ("body is a list", [good], None),
        ("body is a number", b"42", None),
        ("not JSON", b"{records: oops", None),
        ("empty body", b"", None),
        ("not UTF-8", b'{"records": "\xff\xfe"}', None),
        ("oversized body", b'{"records": [' + b" " * 1_000_001 + b"]}", None),
        ("huge number", b'{"records": [' + json.dumps({**good, "mean_area": 0.0}).replace(
            '"mean_area": 0.0', '"mean_area": 1e999').encode() + b"]}", "mean_area"),
        ("nested too deeply", b'{"records": ' + b"[" * 200_000 + b"]" * 200_000 + b"}", None),
        ("outside the declared range", {"records": [{**good, "mean_radius": 1000.0}]}, "mean_radius"),
        ("row count past the limit in columns", {"columns": {k: [v] * 1001 for k, v in good.items()}}, None),
    ]
    return cases


def test_bad_requests_are_4xx_json_naming_the_field_and_never_reach_the_model(server, served):
    good = holdout_records(served, 1)[0]
    before = httpx.get(f"{server.base}/metrics", timeout=10).text
    cases = bad_requests(good)
    assert len(cases) >= 25
    with httpx.Client(timeout=20) as client:
        for what, body, field in cases:
            content = body if isinstance(body, bytes) else json.dumps(body).encode()
            response = client.post(f"{server.base}/predict", content=content,
                                   headers={"content-type": "application/json"})
            assert 400 <= response.status_code < 500, (what, response.status_code, response.text)
            assert response.headers["content-type"] == "application/json", what
            assert response.headers["x-model-version"] == "v1.1.0", what
            answer = response.json()
            assert answer["error"] and answer.get("field") == field, (what, answer)
            if field:
                assert field in answer["error"], (what, answer)
    after = httpx.get(f"{server.base}/metrics", timeout=10).text
    # The model answered none of them: no prediction was counted, every one was a contract error.
    for name in ("nbprod_serve_predictions_total", "nbprod_serve_request_seconds_count"):
        assert metric(after, name) == metric(before, name), name
    assert metric(after, "nbprod_serve_errors_total", kind="contract") - \
        metric(before, "nbprod_serve_errors_total", kind="contract") == len(cases)
    assert metric(after, "nbprod_serve_errors_total", kind="internal") == 0


def test_wrong_methods_and_paths_are_json_4xx(server):
    for method, path in (("GET", "/predict"), ("POST", "/healthz"), ("GET", "/models/v1.0.0"),
                         ("GET", "/predict/../../etc/passwd")):
        response = httpx.request(method, server.base + path, timeout=10)
        assert response.status_code in (404, 405) and "error" in response.json(), (method, path)
        assert response.headers["x-model-version"] == "v1.1.0"


def test_prediction_log_lines(server, served):
    rows = holdout_records(served, 3)
    answer = httpx.post(f"{server.base}/predict", json={"records": rows}, headers={"X-Request-Id": "req-42"},
                        timeout=10)
    assert answer.headers["x-request-id"] == "req-42"
    folder = served / ".nbprod/serve/predictions"

    def logged() -> dict | None:
        lines = [json.loads(l) for p in folder.glob("predictions-*.jsonl") for l in p.read_text().splitlines()]
        return next((e for e in lines if e["request_id"] == "req-42"), None)

    entry = wait_for(logged, 10, "the request in the prediction log", every=0.1)
    assert entry["version"] == "v1.1.0" and entry["variant"] == "prod" and entry["rows"] == 3
    assert entry["predictions"] == answer.json()["predictions"] and entry["latency_ms"] > 0
    assert entry["inputs"]["mean_radius"] == [r["mean_radius"] for r in rows]
    assert (served / ".nbprod/serve/.gitignore").read_text() == "*\n"  # runtime data stays out of git
    # nbprod data drift reads the served inputs from the log against the training data.
    drift = nbprod("data", "drift", "notebooks/data/train.parquet", ".nbprod/serve/predictions", "--json",
                   cwd=served, check=False)
    assert drift.returncode in (0, 1), drift.stderr
    columns = {c["column"]: c for c in json.loads(drift.stdout)["columns"]}
    assert columns["mean_radius"]["current_rows"] >= 3 and columns["mean_radius"]["score"] is not None
    assert columns["target"]["test"] is None  # the label is not served: only in the reference
    assert "predictions" not in run("git", "status", "--porcelain", cwd=served).stdout


# --- security --------------------------------------------------------------------------------------

def test_bearer_token_guards_everything_but_healthz(served_copy):
    token = "s3cret-token"
    with Serve(served_copy, env={"NBPROD_SERVE_TOKEN": token}) as s:
        rows = holdout_records(served_copy, 1)
        assert httpx.get(f"{s.base}/healthz", timeout=10).status_code == 200
        for method, path in (("GET", "/readyz"), ("GET", "/model"), ("GET", "/metrics"), ("POST", "/predict")):
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": token}):
                response = httpx.request(method, s.base + path, json={"records": rows}, headers=headers, timeout=10)
                assert response.status_code == 401 and response.json()["field"] == "Authorization", (path, headers)
            good = httpx.request(method, s.base + path, json={"records": rows},
                                 headers={"Authorization": f"Bearer {token}"}, timeout=10)
            assert good.status_code == 200, (path, good.text)


def test_binds_loopback_by_default(served):
    from nbprod.serve.settings import load_settings

    assert load_settings(served, "model").host == "127.0.0.1"


# --- hot swap --------------------------------------------------------------------------------------

def wait_version(base: str, version: str, timeout: float) -> None:
    wait_for(lambda: httpx.get(f"{base}/readyz", timeout=10).headers["x-model-version"] == version, timeout,
             f"the server to answer with {version}", every=0.1)


def _metrics_once(base: str, name: str, **labels: str) -> str | None:
    """The /metrics text once its ``name`` sample (with ``labels``) is counted."""
    text = httpx.get(f"{base}/metrics", timeout=10).text
    return text if metric(text, name, **labels) else None


def test_rollback_swaps_and_an_unloadable_version_is_not_swapped_in(served_copy):
    root = served_copy
    with Serve(root, "--poll-interval", "0.5") as s:
        nbprod("rollback", "v1.0.0", "--by", "erin", cwd=root)
        wait_version(s.base, "v1.0.0", 5)
        # A third version whose model is missing from the cache: approving it moves the tag, but the
        # server keeps answering with v1.0.0 and counts the failed swap.
        nbprod("retrain", "--set", "model.C=0.3", cwd=root)
        record = json.loads((root / ".nbprod/candidates/c3/candidate.json").read_text())
        listing = root / ".dvc/cache/files/md5" / record["model_md5"][:2] / record["model_md5"][2:]
        listing.unlink()
        approved = nbprod("approve", "c3", "--by", "frank", cwd=root).stdout
        new = approved.split("model@")[1].split()[0]
        text = wait_for(lambda: _metrics_once(s.base, "nbprod_serve_swaps_total", result="failed"), 10,
                        "the failed swap to be counted")
        assert metric(text, "nbprod_serve_swaps_total", result="failed") == 1
        assert metric(text, "nbprod_serve_swaps_total", result="ok") == 1
        answer = httpx.post(f"{s.base}/predict", json={"records": holdout_records(root, 1)}, timeout=10)
        assert answer.status_code == 200 and answer.headers["x-model-version"] == "v1.0.0"
        assert f"not swapping to {new}, keeping v1.0.0" in s.output() and "lacks" in s.output()


def test_pinned_version_is_served_and_not_swapped(served_copy):
    with Serve(served_copy, "--version", "v1.0.0", "--poll-interval", "0.2") as s:
        assert httpx.get(f"{s.base}/readyz", timeout=10).headers["x-model-version"] == "v1.0.0"
        info = httpx.get(f"{s.base}/model", timeout=10).json()
        assert info["version"] == "v1.0.0" and info["approval"]["by"] == "alice"


# --- bundles ---------------------------------------------------------------------------------------

def test_unpacked_bundle_serves_in_a_fresh_directory(served, server, tmp_path):
    nbprod("package", "v1.1.0", "-o", str(tmp_path / "model.zip"), cwd=served)
    nbprod("unpack", str(tmp_path / "model.zip"), str(tmp_path / "fresh"), cwd=tmp_path)
    fresh = tmp_path / "fresh"
    assert not run("git", "tag", cwd=fresh).stdout.strip()  # no registry there: the bundle is the version
    rows = holdout_records(served, 10)
    with Serve(fresh) as s:
        info = httpx.get(f"{s.base}/model", timeout=10).json()
        answer = httpx.post(f"{s.base}/predict", json={"records": rows}, timeout=10)
    assert info["version"] == "v1.1.0" and info["tag"].startswith("bundle of model@v1.1.0")
    assert info["model"]["md5"] == httpx.get(f"{server.base}/model", timeout=10).json()["model"]["md5"]
    assert answer.headers["x-model-version"] == "v1.1.0"
    original = httpx.post(f"{server.base}/predict", json={"records": rows}, timeout=10).json()
    assert answer.json()["probabilities"] == original["probabilities"]
