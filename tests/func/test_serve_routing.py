"""A/B split and shadow mode of ``nbprod serve`` on a real uvicorn process: deterministic routing by
key, random without one, per-variant metrics and prediction log entries; the shadow scores every
request without answering it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest

from helpers.commands import nbprod
from helpers.projects import approve_two_versions, holdout_records
from helpers.servers import metric, Serve
from helpers.waiting import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_versions(ran_project, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("routing") / "proj"
    shutil.copytree(ran_project, root, symlinks=True)
    approve_two_versions(root)
    return root


def configured(root: Path, tmp_path: Path, table: str) -> Path:
    target = tmp_path / "proj"
    shutil.copytree(root, target, symlinks=True)
    with open(target / "pyproject.toml", "a", encoding="utf-8") as handle:
        handle.write(f"\n[tool.nbprod.serve]\n{table}\n")
    return target


def log_entries(root: Path, count: int, timeout: float = 15) -> list[dict]:
    """The prediction log's entries once it holds ``count`` of them (or what it holds after ``timeout``)."""
    entries: list[dict] = []

    def enough() -> bool:
        entries[:] = [json.loads(line) for p in (root / ".nbprod/serve/predictions").glob("predictions-*.jsonl")
                      for line in p.read_text().splitlines()]
        return len(entries) >= count

    try:
        wait_for(enough, timeout, f"{count} prediction log entries")
    except AssertionError:
        pass  # the caller's assert on the entries says what is missing
    return entries


def test_split_routes_by_key_deterministically_and_reports_per_variant(two_versions, tmp_path):
    root = configured(two_versions, tmp_path, 'split = {"v1.0.0" = 0.3}\nlog_inputs = "hash"\nroute_field = "customer"')
    body = {"records": holdout_records(root, 1)}
    with Serve(root) as s, httpx.Client(timeout=10) as client:
        seen: dict[str, set] = {}
        for key in range(120):
            for _ in range(2):
                r = client.post(f"{s.base}/predict", json=body, headers={"X-Route-Key": f"user-{key}"})
                assert r.status_code == 200
                answer = r.json()
                assert r.headers["x-model-version"] == answer["version"]
                assert answer["version"] == {"challenger": "v1.0.0", "prod": "v1.1.0"}[answer["variant"]]
                seen.setdefault(f"user-{key}", set()).add(answer["variant"])
        assert all(len(v) == 1 for v in seen.values())  # the same key always reaches the same variant
        share = sum(v == {"challenger"} for v in seen.values()) / len(seen)
        assert 0.15 <= share <= 0.45
        unkeyed = {client.post(f"{s.base}/predict", json=body).json()["variant"] for _ in range(60)}
        for customer in ("c-1", "c-2", "c-3", "c-4", "c-5", "c-6"):  # the key in a body field
            by_field = {client.post(f"{s.base}/predict", json={**body, "customer": customer}).json()["variant"]
                        for _ in range(3)}
            assert len(by_field) == 1
        assert unkeyed == {"prod", "challenger"}
        info = client.get(f"{s.base}/model").json()
        text = client.get(f"{s.base}/metrics").text
    assert info["routing"]["mode"] == "split" and info["routing"]["share"] == 0.3
    assert info["routing"]["challenger"]["version"] == "v1.0.0"
    assert metric(text, "nbprod_serve_model_version", variant="challenger", version="v1.0.0") == 1
    assert metric(text, "nbprod_serve_requests_total", variant="challenger") > 0
    assert metric(text, "nbprod_serve_request_seconds_count", variant="challenger") > 0
    assert metric(text, "nbprod_serve_predictions_total", variant="prod") > 0
    entries = log_entries(root, 318)
    variants = {(e["variant"], e["version"]) for e in entries}
    assert variants == {("prod", "v1.1.0"), ("challenger", "v1.0.0")}
    assert all("inputs" not in e and len(e["inputs_sha256"]) == 64 for e in entries)
    assert len({e["inputs_sha256"] for e in entries}) == 1  # the same row every time

    # nbprod compare --variants: prediction rates per variant, and accuracy where outcomes are joined.
    joined = [e for e in entries if e["variant"] == "challenger"][:20] + \
        [e for e in entries if e["variant"] == "prod"][:30]
    outcomes = tmp_path / "outcomes.csv"
    outcomes.write_text("request_id,row,outcome\n" + "".join(f"{e['request_id']},0,1\n" for e in joined))
    report = json.loads(nbprod("compare", "--variants", "--outcomes", str(outcomes), "--json", cwd=root).stdout)
    by_variant = {r["variant"]: r for r in report}
    for variant, count in (("challenger", 20), ("prod", 30)):
        rows = [e for e in entries if e["variant"] == variant]
        got = by_variant[variant]
        assert got["requests"] == len(rows) and got["rows"] == len(rows) and got["outcomes_joined"] == count
        ones = sum(e["predictions"][0] == 1 for e in rows)
        assert got["prediction_rates"].get("1", 0) == round(ones / len(rows), 4)
        assert got["accuracy"] == round(sum(e["predictions"][0] == 1 for e in joined if e["variant"] == variant)
                                        / count, 4)
    table = nbprod("compare", "--variants", cwd=root).stdout
    assert "challenger v1.0.0" in table and "prod v1.1.0" in table and "prediction rates" in table


def test_shadow_scores_every_request_without_answering(two_versions, tmp_path):
    root = configured(two_versions, tmp_path, 'shadow = "v1.0.0"')
    rows = holdout_records(root, 4)
    with Serve(root) as s, httpx.Client(timeout=10) as client:
        ids = []
        for n in range(30):
            r = client.post(f"{s.base}/predict", json={"records": rows}, headers={"X-Request-Id": f"r{n}"})
            assert r.status_code == 200 and r.headers["x-model-version"] == "v1.1.0"
            assert r.json()["variant"] == "prod"
            ids.append(f"r{n}")
        entries = log_entries(root, 60)
        text = client.get(f"{s.base}/metrics").text
    by_kind = {(e["request_id"], e["shadow"]): e for e in entries}
    for request_id in ids:
        answered, shadow = by_kind[(request_id, False)], by_kind[(request_id, True)]
        assert answered["version"] == "v1.1.0" and shadow["version"] == "v1.0.0"
        assert shadow["variant"] == "challenger" and shadow["rows"] == 4
        assert shadow["inputs"] == answered["inputs"]
    assert metric(text, "nbprod_serve_requests_total", variant="challenger") == 30
    assert metric(text, "nbprod_serve_requests_total", variant="prod") == 30
