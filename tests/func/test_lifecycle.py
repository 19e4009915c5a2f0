"""Model lifecycle end to end, with real git, DVC, GTO and kernels: candidates, gates, approvals,
rejection, override, rollback, history, lineage, environment drift and bundles.

One trained project is copied once for the module; the story runs in order inside one fixture and
each test checks one thing a user would check.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import pytest

from helpers.commands import nbprod, run
from helpers.paths import BIN
from helpers.projects import tree_digest

pytestmark = pytest.mark.slow  # the tests retrain, approve and roll back real runs of the example pipeline

MODEL = ".nbprod/data/notebooks__model/train/model/value.joblib"
GATES = '\n[tool.nbprod.gates]\nroc_auc = ">= 0.9"\naccuracy = ">= champion - 0.01"\n'


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def user_files(root: Path) -> dict[str, str]:
    return {k: v for k, v in tree_digest(root).items() if not k.startswith(".nbprod/candidates/")}


def tags(root: Path) -> list[str]:
    return sorted(run("git", "tag", cwd=root).stdout.split())


def error_line(done) -> str:
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


@pytest.fixture(scope="module")
def story(ran_project, tmp_path_factory):
    """Train, gate, approve, reject, override and roll back; record what a user would look at."""
    root = tmp_path_factory.mktemp("lifecycle") / "proj"
    shutil.copytree(ran_project, root, symlinks=True)
    with open(root / "pyproject.toml", "a", encoding="utf-8") as handle:
        handle.write(GATES)
    run("git", "commit", "-q", "-am", "gates", cwd=root)
    s = {"root": root}
    v1 = {"model": sha(root / MODEL), "params": (root / "params.yaml").read_bytes(),
          "metrics": (root / "metrics/evaluate.json").read_bytes()}
    s["v1"] = v1

    before = user_files(root)
    s["c1"] = json.loads(nbprod("retrain", "--json", cwd=root).stdout)
    s["c1_untouched"] = user_files(root) == before
    s["approve1"] = nbprod("approve", "c1", "--by", "alice", "--note", "first model", cwd=root)

    before = user_files(root)
    s["c2"] = json.loads(nbprod("retrain", "--set", "model.C=0.001", "--json", cwd=root).stdout)
    s["c2_untouched"] = user_files(root) == before
    s["c2_report"] = (root / ".nbprod/candidates/c2/comparison.html").read_text(encoding="utf-8")
    tags_before = tags(root)
    s["approve2_refused"] = nbprod("approve", "c2", "--by", "bob", cwd=root, check=False)
    s["approve2_no_tags"] = tags(root) == tags_before
    s["reject2"] = nbprod("reject", "c2", "--by", "carol", "--note", "too weak on accuracy", cwd=root)
    s["reject2_again"] = nbprod("reject", "c2", "--by", "carol", "--note", "again", cwd=root, check=False)

    s["c3"] = json.loads(nbprod("retrain", "--set", "model.C=0.001", "--json", cwd=root).stdout)
    s["approve3"] = nbprod("approve", "c3", "--by", "dave", "--note", "audit needs it",
                           "--override", "regularised model required by audit", "--checkout", cwd=root)
    s["after_override"] = {"model": sha(root / MODEL), "params": (root / "params.yaml").read_text(),
                           "metrics": json.loads((root / "metrics/evaluate.json").read_text())}

    # Unsaved user work that the rollback must keep.
    params = (root / "params.yaml").read_text(encoding="utf-8")
    (root / "params.yaml").write_text(params.replace("threshold: 0.5", "threshold: 0.6"), encoding="utf-8")
    s["rollback"] = nbprod("rollback", "--by", "erin", "--note", "misses positives", cwd=root)
    s["after_rollback"] = {"model": sha(root / MODEL), "params": (root / "params.yaml").read_bytes(),
                           "metrics": (root / "metrics/evaluate.json").read_bytes()}
    s["history"] = json.loads(nbprod("history", "--json", cwd=root).stdout)
    s["gto"] = json.loads(run(BIN / "gto", "show", "--json", cwd=root).stdout)
    return s


def test_candidate_runs_isolated_and_passes_floor_without_champion(story):
    c1 = story["c1"]
    assert story["c1_untouched"]
    assert c1["gates_passed"] is True and c1["champion"] is None
    gates = {g["gate"]: g for g in c1["gates"]}
    assert gates["roc_auc >= 0.9"]["passed"] is True
    assert gates["accuracy >= champion - 0.01"]["passed"] is None  # no champion yet: stated, not checked
    assert "model@v1.0.0" in story["approve1"].stdout and "model#prod#1" in story["approve1"].stdout


def test_second_training_fails_relative_gate_on_same_holdout(story):
    c2 = story["c2"]
    assert story["c2_untouched"]
    assert c2["params_set"] == {"model.C": 0.001}
    assert c2["champion"]["version"] == "v1.0.0" and c2["champion"]["same_holdout"] is True
    champion_accuracy = json.loads(story["v1"]["metrics"])["accuracy"]
    gate = next(g for g in c2["gates"] if g["gate"] == "accuracy >= champion - 0.01")
    assert gate["passed"] is False
    assert gate["threshold"] == pytest.approx(champion_accuracy - 0.01)
    assert gate["value"] == c2["metrics"]["metrics/evaluate.json"]["accuracy"] < gate["threshold"]
    assert "FAIL" in story["c2_report"] and "v1.0.0" in story["c2_report"]


def test_failed_candidate_needs_override_and_rejection_is_recorded(story):
    line = error_line(story["approve2_refused"])
    assert "c2" in line and "accuracy >= champion - 0.01" in line and "--override" in line
    assert story["approve2_no_tags"]
    assert "nbprod-rejected/model/c2" in story["reject2"].stdout
    assert "already rejected" in error_line(story["reject2_again"])


def test_override_promotes_and_checks_out_the_candidate(story):
    out = story["approve3"].stdout
    assert "model#prod#2" in out and "replacing v1.0.0" in out
    after = story["after_override"]
    assert after["model"] != story["v1"]["model"]
    assert "C: 0.001" in after["params"]
    assert after["metrics"] == story["c3"]["metrics"]["metrics/evaluate.json"]


def test_rollback_restores_model_params_and_metrics_exactly(story):
    assert story["after_rollback"] == story["v1"]
    root = story["root"]
    out = story["rollback"].stdout
    assert "Restored model@v1.0.0" in out
    kept = out.split("Kept the working state as ")[1].split()[0]
    kept_params = run("git", "show", f"{kept}:params.yaml", cwd=root).stdout
    assert "threshold: 0.6" in kept_params and "C: 0.001" in kept_params  # the user's unsaved edit survives
    assert story["gto"]["model"]["stage"]["prod"] == "v1.0.0"  # GTO itself reads our tags


def test_history_says_who_did_what_and_why(story):
    actions = [(e["action"], e.get("by"), e.get("version")) for e in story["history"] if e["action"] != "register"]
    # dave's version number depends on whether the working state had to be kept as a version first
    # (only when it differed from every registered version), so it is read, not assumed.
    dave_version = actions[2][2]
    assert actions == [("approve", "alice", "v1.0.0"), ("reject", "carol", None), ("approve", "dave", dave_version),
                       ("rollback", "erin", "v1.0.0")]
    assert dave_version in ("v1.1.0", "v1.2.0") and f"model@{dave_version}" in story["approve3"].stdout
    override = next(e for e in story["history"] if e["action"] == "approve" and e["by"] == "dave")
    assert override["override"] == "regularised model required by audit" and override["gates_passed"] is False
    assert any(g["passed"] is False for g in override["gates"])
    rollback = story["history"][-1]
    assert rollback["note"] == "misses positives" and rollback["from"] == dave_version


def test_lineage_of_model_file_checked_against_dvc_lock(story):
    root = story["root"]
    lock = (root / "dvc.lock").read_text()
    done = nbprod("lineage", MODEL, "--json", cwd=root)
    facts = {f["name"]: f for f in json.loads(done.stdout)["facts"]}
    assert json.loads(done.stdout)["stage"] == "train"
    assert all(f["ok"] is not False for f in facts.values()), facts
    assert facts["param model.C"]["value"] == "1.0"
    assert facts["input notebooks/data/train.parquet"]["value"] in lock
    assert "python" in facts["environment"]["value"]
    assert "model@v1.0.0 (prod)" in facts["registry"]["value"]

    params = root / "params.yaml"
    original = params.read_text()
    params.write_text(original.replace("C: 1.0", "C: 0.5"))
    model_bytes = (root / MODEL).read_bytes()
    (root / MODEL).write_bytes(model_bytes + b"tampered")
    try:
        changed = nbprod("lineage", MODEL, cwd=root, check=False)
    finally:
        params.write_text(original)
        (root / MODEL).write_bytes(model_bytes)
    assert changed.returncode == 1
    assert "MISMATCH param model.C" in " ".join(changed.stdout.split())
    assert "params.yaml now has model.C = 0.5" in changed.stdout
    assert "MISMATCH output md5" in " ".join(changed.stdout.split())


def test_bundle_reproduces_metrics_elsewhere_and_tampering_is_refused(story, tmp_path):
    root = story["root"]
    bundle = tmp_path / "v1.zip"
    packaged = nbprod("package", "v1.0.0", "-o", bundle, cwd=root)
    manifest_sum = packaged.stdout.split("manifest sha256 ")[1].split()[0]
    names = zipfile.ZipFile(bundle).namelist()
    for expected in ("nbprod-bundle.json", "dvc.yaml", "dvc.lock", "params.yaml", "requirements.lock",
                     "notebooks/model.ipynb", ".nbprod/stages/train.ipynb", MODEL, "notebooks/data/test.parquet"):
        assert expected in names

    target = tmp_path / "elsewhere"
    nbprod("unpack", bundle, target, "--sha256", manifest_sum, cwd=tmp_path)
    nbprod("run", "--force", "--no-report", cwd=target)
    assert json.loads((target / "metrics/evaluate.json").read_text()) == json.loads(story["v1"]["metrics"])

    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(bundle) as source, zipfile.ZipFile(tampered, "w") as copy:
        for name in source.namelist():
            data = source.read(name)
            copy.writestr(name, data.replace(b"0.25", b"0.30") if name == "params.yaml" else data)
    refused = nbprod("unpack", tampered, tmp_path / "bad", cwd=tmp_path, check=False)
    line = error_line(refused)
    assert "params.yaml" in line and "sha256" in line
    assert not (tmp_path / "bad").exists()

    # A manifest rewritten to match the altered file passes its own sums; the sum package printed does not.
    rewritten = tmp_path / "rewritten.zip"
    with zipfile.ZipFile(tampered) as source, zipfile.ZipFile(rewritten, "w") as copy:
        manifest = json.loads(source.read("nbprod-bundle.json"))
        manifest["files"]["params.yaml"]["sha256"] = hashlib.sha256(source.read("params.yaml")).hexdigest()
        for name in source.namelist():
            copy.writestr(name, json.dumps(manifest) if name == "nbprod-bundle.json" else source.read(name))
    line = error_line(nbprod("unpack", rewritten, tmp_path / "bad", "--sha256", manifest_sum, cwd=tmp_path,
                             check=False))
    assert "nbprod-bundle.json" in line and "--sha256" in line
    assert not (tmp_path / "bad").exists()


def test_env_lock_and_drift(ran_copy):
    nbprod("env", "lock", cwd=ran_copy)
    clean = nbprod("env", "check", cwd=ran_copy)
    assert "requirements.lock: no drift" in clean.stdout
    lock = ran_copy / "requirements.lock"
    text = lock.read_text()
    numpy_line = next(l for l in text.splitlines() if l.startswith("numpy=="))
    lock.write_text(text.replace(numpy_line, "numpy==0.0.1"))
    drift = nbprod("env", "check", cwd=ran_copy, check=False)
    assert drift.returncode == 1
    assert f"numpy 0.0.1 -> {numpy_line.split('==')[1]}" in drift.stdout


def test_bad_input_is_one_line_and_changes_nothing(ran_copy):
    before = tree_digest(ran_copy)
    assert "no candidate 'c9'" in error_line(nbprod("approve", "c9", "--by", "x", cwd=ran_copy, check=False))
    assert "model.nope" in error_line(nbprod("retrain", "--set", "model.nope=1", cwd=ran_copy, check=False))
    assert "no version" in error_line(nbprod("rollback", "v9.9.9", "--by", "x", cwd=ran_copy, check=False))
    assert "not an output" in error_line(nbprod("lineage", "params.yaml", cwd=ran_copy, check=False))
    assert tree_digest(ran_copy) == before

    with open(ran_copy / "pyproject.toml", "a", encoding="utf-8") as handle:
        handle.write('\n[tool.nbprod.gates]\nroc_auc = "at least 0.9"\n')
    before = tree_digest(ran_copy)
    line = error_line(nbprod("retrain", cwd=ran_copy, check=False))
    assert "pyproject.toml" in line and "roc_auc" in line and "Fix:" in line
    assert tree_digest(ran_copy) == before
    assert run("git", "worktree", "list", cwd=ran_copy).stdout.count("\n") == 1


def test_candidate_trains_on_current_dvc_added_data_without_touching_it(ran_copy):
    data = ran_copy / "extra" / "labels.csv"
    data.parent.mkdir()
    data.write_text("id,label\n1,0\n")
    run(BIN / "dvc", "add", "-q", "extra/labels.csv", cwd=ran_copy)
    run("git", "add", "extra/labels.csv.dvc", "extra/.gitignore", cwd=ran_copy)
    run("git", "commit", "-q", "-m", "labels", cwd=ran_copy)
    data.write_text("id,label\n1,0\n2,1\n")  # new data, not yet recorded with dvc add
    recorded = (ran_copy / "extra/labels.csv.dvc").read_text()
    before = user_files(ran_copy)

    record = json.loads(nbprod("retrain", "--json", cwd=ran_copy).stdout)
    assert user_files(ran_copy) == before
    assert record["data_sources"] == ["extra/labels.csv.dvc"]
    in_candidate = run("git", "show", f"{record['commit']}:extra/labels.csv.dvc", cwd=ran_copy).stdout
    assert hashlib.md5(data.read_bytes()).hexdigest() in in_candidate and in_candidate != recorded

    stale = nbprod("lineage", "extra/labels.csv", cwd=ran_copy, check=False)
    assert stale.returncode == 1 and "run 'dvc add extra/labels.csv'" in stale.stdout
