"""The fairness template end to end, with real kernels, fairlearn, git, DVC and GTO tags:
`nbprod init --template fairness`, the audit finding the built-in bias, the fairness gate blocking a
candidate that makes it worse, the override recorded in history and lineage, bad input in a stage."""

from __future__ import annotations

import json
import re

import pytest

from helpers.commands import nbprod, run
from helpers.notebooks import load_nb, save_nb

pytestmark = pytest.mark.slow


def error_line(done) -> str:
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


@pytest.fixture(scope="module")
def story(tmp_path_factory):
    root = tmp_path_factory.mktemp("fairness") / "loans"
    nbprod("init", "--template", "fairness", root.name, cwd=root.parent)
    s = {"root": root}
    nbprod("run", cwd=root)
    s["audit"] = json.loads((root / "metrics/audit.json").read_text(encoding="utf-8"))
    s["report"] = (root / "reports/audit.html").read_text(encoding="utf-8")
    run("git", "add", "-A", cwd=root)
    run("git", "commit", "-q", "-m", "first run", cwd=root)

    s["c1"] = json.loads(nbprod("retrain", "--json", cwd=root).stdout)
    nbprod("approve", "c1", "--by", "alice", "--note", "first model", cwd=root)
    s["c2"] = json.loads(nbprod("retrain", "--set", "train.use_group=true", "--json", cwd=root).stdout)
    s["c2_report"] = (root / ".nbprod/candidates/c2/comparison.html").read_text(encoding="utf-8")
    s["refused"] = nbprod("approve", "c2", "--by", "bob", cwd=root, check=False)
    s["override"] = nbprod("approve", "c2", "--by", "bob", "--override", "pilot limited to group A", cwd=root)
    s["history"] = json.loads(nbprod("history", "--json", cwd=root).stdout)
    s["history_text"] = nbprod("history", cwd=root).stdout
    s["lineage"] = nbprod("lineage", "notebooks/models/model.joblib", cwd=root, check=False).stdout
    nbprod("compare", "model@v1.0.0", "model@v1.1.0", cwd=root)
    s["compare"] = (root / "reports/compare-model_v1.0.0-model_v1.1.0.html").read_text(encoding="utf-8")
    return s


def test_template_project_has_its_notebooks_generator_and_gates(story):
    root = story["root"]
    assert sorted(p.name for p in (root / "notebooks").glob("*.ipynb")) == [
        "audit.ipynb", "data.ipynb", "evaluate.ipynb", "train.ipynb"]
    assert "known bias" in (root / "notebooks/applicants.py").read_text()
    assert '"fairness.dp_ratio" = ">= champion - 0.05"' in (root / "pyproject.toml").read_text()
    assert (root / ".gitignore").is_file() and not (root / "schemas").exists()


def test_audit_finds_the_built_in_bias(story):
    m = story["audit"]
    assert m["fairness.dp_ratio"] < 0.8  # fails the four-fifths screening rule
    assert m["fairness.selection_rate.B.ci_high"] < m["fairness.selection_rate.A.ci_low"]
    assert m["fairness.recall.B.ci_high"] < m["fairness.recall.A.ci_low"]
    assert m["fairness.recall.min"] == m["fairness.recall.B"] and m["fairness.eo_diff"] > 0.1
    assert m["fairness.size.C"] < 30 and m["fairness.groups_too_small"] == 1 and "fairness.recall.C.ci_low" not in m


def test_stage_report_shows_the_fairness_section(story):
    html = story["report"]
    assert "Fairness by group" in html and "C (too small to judge)" in html
    assert re.search(r"Selection rate for group B is 0\.\d\d of group A's", html)
    assert "four-fifths screening threshold is 0.8" in html
    assert html.count("data:image/png") >= 1


def test_gate_blocks_a_candidate_that_makes_the_bias_worse(story):
    assert story["c1"]["gates_passed"] is True
    c2 = story["c2"]
    failed = {g["gate"] for g in c2["gates"] if g["passed"] is False}
    assert c2["gates_passed"] is False
    assert failed == {"fairness.dp_ratio >= champion - 0.05", "fairness.recall.min >= champion - 0.02"}
    line = error_line(story["refused"])
    assert "candidate c2 failed gates: fairness.dp_ratio >= champion - 0.05" in line


def test_comparison_report_flags_group_b_worse_beyond_the_interval(story):
    report = story["c2_report"]
    section = report[report.index("<h2>Fairness by group</h2>"):report.index("<h2>Metrics</h2>")]
    assert "worse beyond the champion interval:</strong>" in section and "recall B" in section
    row = re.search(r"<tr class='fail'><td>recall \(true-positive rate\)</td><td>B</td>(.*?)</tr>", section)
    assert row and row.group(1).count("<small>[") == 2  # champion and candidate intervals


def test_compare_of_two_versions_shows_groups_side_by_side(story):
    html = story["compare"]
    assert "<h2>Fairness by group</h2>" in html and "WORSE beyond the model@v1.0.0" in html


def test_override_is_recorded_with_the_fairness_results(story):
    approvals = [e for e in story["history"] if e["action"] == "approve"]
    first, second = approvals
    assert first["fairness"]["worse_than_champion"] == []
    assert second["override"] == "pilot limited to group A"
    fairness = second["fairness"]
    assert "recall B" in fairness["worse_than_champion"] and fairness["too_small"] == ["C"]
    assert fairness["summary"]["dp_ratio"] < first["fairness"]["summary"]["dp_ratio"]
    assert fairness["groups"]["B"]["size"] == story["audit"]["fairness.size.B"]
    line = next(l for l in story["history_text"].splitlines() if "OVERRIDING" in l)
    assert "pilot limited to group A" in line and "fairness: dp_ratio" in line and "recall B" in line


def test_lineage_of_the_model_shows_its_versions_fairness(story):
    fact = next(l for l in story["lineage"].splitlines() if " fairness: " in l)
    assert "model@v1.0.0: dp_ratio" in fact


def test_bad_sensitive_feature_in_a_stage_is_one_line(story, tmp_path):
    root = story["root"]
    audit = root / "notebooks/audit.ipynb"
    original = audit.read_text(encoding="utf-8")
    try:
        nb = load_nb(audit)
        cell = next(c for c in nb["cells"] if "nbprod.fairness(" in "".join(c["source"]))
        first_row = "predictions['group'] = predictions['group'].where(predictions.index != predictions.index[0])\n"
        cell["source"] = first_row + "".join(cell["source"])
        save_nb(audit, nb)
        done = nbprod("run", "--no-report", cwd=root, check=False)
    finally:
        audit.write_text(original, encoding="utf-8")
    lines = [l for l in done.stderr.splitlines() if l.startswith("nbprod: ")]
    assert done.returncode == 1, done.stderr
    assert any("stage 'audit' failed in notebooks/audit.ipynb cell" in l and
               "nbprod.fairness: sensitive feature 'group' has 1 missing value(s)" in l for l in lines), done.stderr
    assert "Traceback" not in done.stderr
