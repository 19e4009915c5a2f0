"""nbprod.explain in a real stage of the example project, end to end with real kernels, git, DVC and
GTO tags: the report section and importance.* metrics, a gate on a feature's share refusing a
candidate, the candidate report listing the features that moved, and the model card of v1.0.0 made
after v1.1.0 is in production (read in headless Chromium, offline)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from helpers.commands import nbprod, run
from helpers.notebooks import load_nb, save_nb

pytestmark = pytest.mark.slow

EXPLAIN_CELL = "explanation = nbprod.explain(model, X_test, y_test, n_repeats=2)\nexplanation"
GATE = '\n[tool.nbprod.gates]\n"importance.radius_error" = "<= 0.06"\n'
INTENDED = """# Breast cancer screening model

## Intended use
Ranks biopsy results for a second reading by a pathologist. Not for diagnosis without review.

## Caveats and recommendations
Trained on 426 cases from one clinic (<b>the Wisconsin data set</b>).
"""


def error_line(done) -> str:
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


@pytest.fixture(scope="module")
def story(ran_project, tmp_path_factory):
    root = tmp_path_factory.mktemp("explain") / "proj"
    shutil.copytree(ran_project, root, symlinks=True)
    notebook = root / "notebooks/model.ipynb"
    nb = load_nb(notebook)
    nb["cells"].append({"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
                        "source": EXPLAIN_CELL})
    save_nb(notebook, nb)
    with open(root / "pyproject.toml", "a", encoding="utf-8") as file:
        file.write(GATE)
    (root / "model-card.md").write_text(INTENDED, encoding="utf-8")
    s = {"root": root}
    nbprod("run", cwd=root)
    s["metrics"] = json.loads((root / "metrics/evaluate.json").read_text(encoding="utf-8"))
    s["report"] = (root / "reports/evaluate.html").read_text(encoding="utf-8")
    run("git", "add", "-A", cwd=root)
    run("git", "commit", "-q", "-m", "explain the model", cwd=root)
    s["c1"] = json.loads(nbprod("retrain", "--json", cwd=root).stdout)
    s["refused"] = nbprod("approve", "c1", "--by", "alice", cwd=root, check=False)
    nbprod("approve", "c1", "--by", "alice", "--override", "radius_error is measured, not a proxy", cwd=root)
    s["c2"] = json.loads(nbprod("retrain", "--set", "model.C=0.05", "--json", cwd=root).stdout)
    s["c2_report"] = (root / ".nbprod/candidates/c2/comparison.html").read_text(encoding="utf-8")
    nbprod("approve", "c2", "--by", "bob", "--note", "more regularised", cwd=root)
    s["card_out"] = nbprod("card", "v1.0.0", cwd=root).stdout
    s["history"] = nbprod("history", cwd=root).stdout
    return s


def test_the_stage_records_importances_and_shows_the_section(story):
    metrics = story["metrics"]
    shares = {k: v for k, v in metrics.items() if k.startswith("importance.")}
    assert len(shares) == 30 and sum(shares.values()) == pytest.approx(1, abs=1e-3)
    assert metrics["roc_auc"] > 0.9  # the stage's other outputs are all there
    report = story["report"]
    assert "What the model relies on" in report and "LinearExplainer" in report
    assert re.search(r"The model relies mostly on \w+", report)
    assert report.count("data:image/png") >= 3  # ROC, importance chart, dependence


def test_a_gate_on_a_features_share_refuses_the_candidate_that_leans_on_it(story):
    c1, c2 = story["c1"], story["c2"]
    gate = next(g for g in c1["gates"] if g["gate"].startswith("importance.radius_error"))
    assert gate["passed"] is False and gate["value"] > 0.06
    assert "candidate c1 failed gates: importance.radius_error <= 0.06" in error_line(story["refused"])
    assert c2["gates_passed"] is True


def test_the_candidate_report_says_which_features_moved(story):
    report = story["c2_report"]
    section = report[report.index("<h2>What the model relies on</h2>"):report.index("<h2>Metrics</h2>")]
    assert "feature(s) moved beyond" in section
    assert re.search(r"radius_error carries only \d+% of the importance \(was 7%, rank 2 → \d+\)", section)


def test_history_links_the_card(story):
    lines = story["history"].splitlines()
    first = next(line for line in lines if "prod <- v1.0.0 approved" in line)
    second = next(line for line in lines if "prod <- v1.1.0 approved" in line)
    assert first.endswith("[card: reports/cards/model-v1.0.0.html]")
    assert second.endswith("[card: nbprod card v1.1.0]")


def test_the_card_of_an_old_version_is_built_from_the_registry_and_cache(story):
    root = story["root"]
    assert "reports/cards/model-v1.0.0.html" in story["card_out"]
    md = (root / "reports/cards/model-v1.0.0.md").read_text(encoding="utf-8")
    titles = re.findall(r"^## (.*)$", md, flags=re.M)
    assert titles == ["Model details", "Intended use", "Factors", "Metrics", "Evaluation data", "Training data",
                      "Quantitative analyses", "Ethical considerations", "Caveats and recommendations",
                      "Lineage and environment"]
    assert "Approved by alice" in md and "OVERRIDING it: radius_error is measured, not a proxy" in md
    assert "| importance.radius_error <= 0.06 | FAILED, overridden |" in md
    assert "The version in production now is v1.1.0." in md
    assert "Ranks biopsy results for a second reading" in md
    assert "| model.C | 1 |" in md  # v1.0.0's own parameter, not the C=0.05 in production
    assert re.search(r"notebooks/data/train\.parquet: 426 rows, 31 columns; md5 [0-9a-f]{32}; schema hash "
                     r"\(column names and dtypes\) [0-9a-f]{64}", md)
    assert "| schemas/breast_cancer.yaml |" in md
    assert "Share of drifted columns at approval" in md
    assert re.search(r"\| 1 \| radius_error|\| 2 \| radius_error", md)
    assert "Not written yet" in md.split("## Ethical considerations")[1].split("##")[0]


@pytest.mark.browser
def test_the_card_reads_in_chromium_offline(story):
    from playwright.sync_api import sync_playwright

    chromium = "/usr/bin/chromium"
    if not Path(chromium).is_file():
        pytest.fail(f"{chromium} is missing: apt-get install -y chromium")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run"]
    card = story["root"] / "reports/cards/model-v1.0.0.html"
    requests = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=flags, headless=True)
        try:
            page = browser.new_page(java_script_enabled=False)
            page.on("request", lambda request: requests.append(request.url))
            page.goto(card.as_uri())
            assert page.title() == "Model card: model v1.0.0"
            assert page.locator("section h2").all_inner_texts()[:3] == ["Model details", "Intended use", "Factors"]
            assert page.locator("nav a").count() == 10
            failed = page.locator("tr.fail").first.inner_text()
            assert "importance.radius_error" in failed and "overridden" in failed
            caveat = page.locator("section", has_text="Caveats and recommendations").inner_text()
            assert "<b>the Wisconsin data set</b>" in caveat  # the team's HTML is shown, not run
            assert page.locator("table").count() >= 8
        finally:
            browser.close()
    assert all(url.startswith("file://") for url in requests)


def test_an_unknown_version_is_one_line(story):
    line = error_line(nbprod("card", "v9.0.0", cwd=story["root"], check=False))
    assert "has no version 'v9.0.0' (versions: v1.0.0, v1.1.0)" in line


@pytest.fixture(scope="module")
def explaining_server(story):
    from helpers.servers import Serve

    root = story["root"]
    with open(root / "pyproject.toml", "a", encoding="utf-8") as file:
        file.write("\n[tool.nbprod.serve]\nexplain = true\nexplain_max_rows = 5\nexplain_share = 1.0\n")
    with Serve(root) as server:
        yield server


def test_explain_answers_per_row_contributions_that_add_up_to_the_prediction(story, explaining_server):
    import math

    import httpx
    from helpers.projects import holdout_records

    records = holdout_records(story["root"], 3)
    base = explaining_server.base
    answer = httpx.post(f"{base}/explain", json={"records": records}, timeout=60)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["version"] == answer.headers["x-model-version"] == "v1.1.0"
    assert body["explainer"] == "LinearExplainer" and body["output"] == "log-odds of class 1"
    assert body["background"]["rows"] == 100 and "notebooks/data/train.parquet" in body["background"]["source"]
    predicted = httpx.post(f"{base}/predict", json={"records": records}, timeout=30).json()
    assert body["predictions"] == predicted["predictions"]
    for row, base_value, probabilities in zip(body["contributions"], body["base_values"],
                                              predicted["probabilities"]):
        assert len(row) == 30
        log_odds = sum(row.values()) + base_value
        assert 1 / (1 + math.exp(-log_odds)) == pytest.approx(probabilities[1], abs=1e-6)


def test_explain_keeps_to_its_budget_and_the_request_contract(story, explaining_server):
    import httpx
    from helpers.projects import holdout_records

    base = explaining_server.base
    records = holdout_records(story["root"], 6)
    too_many = httpx.post(f"{base}/explain", json={"records": records}, timeout=30)
    assert too_many.status_code == 413 and "at most 5 (explain_max_rows)" in too_many.json()["error"]
    unknown = httpx.post(f"{base}/explain", json={"records": [{**records[0], "zip_code": 1}]}, timeout=30)
    assert unknown.status_code in (400, 422) and unknown.json()["field"]
    assert httpx.post(f"{base}/predict", json={"records": records}, timeout=30).status_code == 200


def test_a_version_without_a_cached_training_sample_is_not_explained_but_still_served(story):
    from nbprod.serve.explaining import attach
    from nbprod.serve.loader import DataRef, resolve
    from nbprod.serve.loaded import load_version

    root = story["root"]
    info = resolve(root, "model", "v1.0.0")
    loaded = load_version(root, info, 100)
    info.training = [DataRef("notebooks/data/train.parquet", "0" * 32)]
    attach(root, loaded)
    assert loaded.explainer is None and "\n" not in loaded.explain_error
    assert loaded.explain_error.startswith("model@v1.0.0 has no cached training sample to explain against: ")
    assert "dvc pull" in loaded.explain_error
    loaded.smoke()  # /predict is unaffected



def test_the_explain_budget_caps_the_share_of_time_spent_explaining():
    from nbprod.serve.explaining import Budget

    budget = Budget(0.25)
    assert budget.take() == 0
    assert budget.take() > 0  # one at a time
    budget.give_back(0.2)     # 0.2 s explaining: closed for 0.2 * (1 / 0.25 - 1) = 0.6 s
    assert 0.5 < budget.take() <= 0.6
