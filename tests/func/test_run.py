"""End to end with real git, DVC and Papermill kernels: nbprod run, dvc repro, status, failures."""

from __future__ import annotations

import json

import yaml

import pytest

from helpers.commands import nbprod, run
from helpers.notebooks import find_cell, load_nb, save_nb
from helpers.paths import BIN

pytestmark = pytest.mark.slow  # every test here runs the example pipeline (about 10 s each)


def stages_started(events_file) -> list[str]:
    if not events_file.exists():
        return []
    return [json.loads(l)["stage"] for l in events_file.read_text().splitlines()
            if json.loads(l).get("event") == "stage_start"]


def test_run_writes_reports_metrics_and_lock(ran_project):
    metrics = json.loads((ran_project / "metrics/evaluate.json").read_text())
    assert set(metrics) == {"accuracy", "precision", "recall", "f1", "roc_auc"}
    assert all(0.8 < value <= 1.0 for value in metrics.values())
    for name in ("prepare", "train", "evaluate"):
        executed = load_nb(ran_project / f"reports/{name}.ipynb")
        assert executed["metadata"]["nbprod"]["status"] == "ok"
        assert executed["metadata"]["papermill"]["exception"] in (None, False)
    assert (ran_project / "notebooks/figures/roc.png").stat().st_size > 1000
    lock = yaml.safe_load((ran_project / "dvc.lock").read_text())["stages"]
    assert set(lock) == {"prepare", "train", "evaluate"}
    outs = [o["path"] for o in lock["evaluate"]["outs"]]
    assert "reports/evaluate.ipynb" in outs
    shown = run(BIN / "dvc", "metrics", "show", "--json", cwd=ran_project).stdout
    assert "roc_auc" in shown


def test_second_run_and_dvc_repro_are_no_ops(ran_copy):
    done = nbprod("run", "--no-report", cwd=ran_copy)
    assert done.stdout.count("up to date") == 3, done.stdout
    assert "Data and pipelines are up to date" in run(BIN / "dvc", "repro", cwd=ran_copy).stdout
    statuses = json.loads(nbprod("status", "--json", cwd=ran_copy).stdout)
    assert [s["state"] for s in statuses] == ["up to date"] * 3


def test_rerunning_the_notebook_in_lab_makes_no_stage_stale(ran_copy):
    path = ran_copy / "notebooks/model.ipynb"
    nb = load_nb(path)
    for count, cell in enumerate(nb["cells"], start=1):
        if cell["cell_type"] == "code":
            cell["execution_count"] = count
            cell["outputs"] = [{"output_type": "execute_result", "execution_count": count, "metadata": {},
                                "data": {"text/plain": [f"{count}"]}}]
    nb["cells"][0]["source"] = ["# A retitled notebook\n"]
    save_nb(path, nb)
    statuses = json.loads(nbprod("status", "--json", cwd=ran_copy).stdout)
    assert [s["state"] for s in statuses] == ["up to date"] * 3


def test_code_edit_is_reported_then_reruns_that_stage_and_downstream(ran_copy):
    path = ran_copy / "notebooks/model.ipynb"
    nb = load_nb(path)
    cell = find_cell(nb, "stage:evaluate")
    cell["source"] = "".join(cell["source"]) + "\nprint(len(test))\n"
    save_nb(path, nb)
    statuses = {s["name"]: s for s in json.loads(nbprod("status", "--json", cwd=ran_copy).stdout)}
    assert statuses["evaluate"]["state"] == "changed" and statuses["evaluate"]["reasons"] == ["code"]
    assert statuses["train"]["state"] == statuses["prepare"]["state"] == "up to date"
    events = ran_copy / "events.jsonl"
    nbprod("run", "--no-report", "--events", events, cwd=ran_copy)
    assert stages_started(events) == ["evaluate"]


def test_exp_run_set_param_reruns_only_the_stages_that_read_it(ran_copy):
    events = ran_copy / "events.jsonl"
    run(BIN / "dvc", "exp", "run", "-S", "model.threshold=0.3", cwd=ran_copy,
        env={"NBPROD_EVENTS": str(events)})
    assert stages_started(events) == ["evaluate"]
    events.unlink()
    run(BIN / "dvc", "exp", "run", "-S", "model.C=0.5", cwd=ran_copy, env={"NBPROD_EVENTS": str(events)})
    assert stages_started(events) == ["train", "evaluate"]


def test_param_change_in_params_yaml_is_reported_as_params(ran_copy):
    params = ran_copy / "params.yaml"
    params.write_text(params.read_text().replace("threshold: 0.5", "threshold: 0.45"))
    statuses = {s["name"]: s for s in json.loads(nbprod("status", "--json", cwd=ran_copy).stdout)}
    assert statuses["evaluate"]["reasons"] == ["params"]
    assert statuses["train"]["state"] == "up to date"


def test_failing_cell_names_stage_cell_and_exception_and_keeps_partial_notebook(ran_copy):
    lock_before = (ran_copy / "dvc.lock").read_text()
    path = ran_copy / "notebooks/model.ipynb"
    nb = load_nb(path)
    index = next(i for i, c in enumerate(nb["cells"]) if "stage:train" in c.get("metadata", {}).get("tags", []))
    nb["cells"][index + 1]["source"] = "raise ValueError('bad training data')\n"
    save_nb(path, nb)
    done = nbprod("run", "--no-report", cwd=ran_copy, check=False)
    assert done.returncode == 1
    message = done.stderr.strip().splitlines()[-1]
    assert f"stage 'train' failed in notebooks/model.ipynb cell {index + 2}" in message
    assert "ValueError: bad training data" in message
    assert "Partially executed notebook: reports/train.ipynb" in message
    partial = load_nb(ran_copy / "reports/train.ipynb")
    assert partial["metadata"]["nbprod"]["status"] == "failed"
    assert any(o.get("ename") == "ValueError" for c in partial["cells"] for o in c.get("outputs", []))
    lock_after = yaml.safe_load((ran_copy / "dvc.lock").read_text())["stages"]
    assert lock_after["train"] == yaml.safe_load(lock_before)["stages"]["train"]
    assert "│ train    │ failed" in done.stdout and "not run" in done.stdout


def test_plain_papermill_runs_a_generated_stage_notebook(ran_copy, tmp_path):
    out = tmp_path / "scheduled.ipynb"
    run(BIN / "papermill", ".nbprod/stages/prepare.ipynb", out, "-p", "seed", "7", "--cwd", "notebooks",
        cwd=ran_copy)
    executed = load_nb(out)
    assert executed["metadata"]["papermill"]["parameters"] == {"seed": 7}
    assert not any(o.get("output_type") == "error" for c in executed["cells"] for o in c.get("outputs", []))


def test_ci_runs_the_pipeline_with_dvc_repro_alone_in_a_fresh_clone(ran_project, tmp_path):
    clone = tmp_path / "clone"
    run("git", "clone", "-q", ran_project, clone, cwd=tmp_path)
    assert nbprod("compile", "--check", cwd=clone).returncode == 0
    run(BIN / "dvc", "repro", cwd=clone)
    ours = json.loads((clone / "metrics/evaluate.json").read_text())
    assert ours == json.loads((ran_project / "metrics/evaluate.json").read_text())
