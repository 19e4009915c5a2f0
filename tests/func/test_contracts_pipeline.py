"""Data contracts in the example pipeline: real runs with real kernels, DVC and git."""

from __future__ import annotations

import json

import pytest

from helpers.commands import nbprod
from helpers.notebooks import load_nb, save_nb

CORRUPTIONS = {
    "out of range": ('frame.loc[frame.index[:3], "mean_radius"] = 500.0',
                     ["column 'mean_radius' fails less_than_or_equal_to(28.11) in 3 rows", "500.0"]),
    "missing column": ('frame = frame.drop(columns=["mean_texture"])', ["column 'mean_texture' is missing"]),
    "wrong dtype": ('frame["mean_area"] = frame["mean_area"].astype(str)',
                    ["column 'mean_area' fails dtype('float64')"]),
}


def corrupt(project, line: str) -> None:
    path = project / "notebooks" / "prepare.ipynb"
    nb = load_nb(path)
    cell = next(c for c in nb["cells"] if "# The data contract" in "".join(c["source"]))
    source = "".join(cell["source"])
    cell["source"] = source.replace("# The data contract", f"{line}\n# The data contract", 1)
    assert cell["source"] != source
    save_nb(path, nb)


@pytest.mark.slow
@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_corrupted_data_fails_the_run_naming_the_column(ran_copy, kind):
    line, words = CORRUPTIONS[kind]
    corrupt(ran_copy, line)
    lock = (ran_copy / "dvc.lock").read_bytes()
    done = nbprod("run", cwd=ran_copy, check=False)
    assert done.returncode == 1
    summary = next(l for l in done.stderr.splitlines() if "stage 'prepare' failed" in l)
    assert "ValidationFailed: schema breast_cancer (schemas/breast_cancer.yaml)" in summary
    for word in words:
        assert word in summary, summary
    assert (ran_copy / "dvc.lock").read_bytes() == lock
    report = (ran_copy / "reports" / "prepare.html").read_text()
    assert "Data contract breast_cancer" in report and words[0].split("'")[1] in report
    metrics = [o for c in load_nb(ran_copy / "reports" / "prepare.ipynb")["cells"] for o in c.get("outputs", [])
               if "application/scrapbook.scrap.json+json" in o.get("data", {})]
    recorded = {o["data"]["application/scrapbook.scrap.json+json"]["name"]:
                o["data"]["application/scrapbook.scrap.json+json"]["data"] for o in metrics}
    assert recorded["validation.breast_cancer.failed"] == 1


@pytest.mark.slow
def test_editing_the_schema_reruns_only_the_stages_that_use_it(ran_copy):
    schema = ran_copy / "schemas" / "breast_cancer.yaml"
    schema.write_text(schema.read_text().replace("less_than_or_equal_to: 28.11", "less_than_or_equal_to: 30.0"))
    states = {s["name"]: s for s in json.loads(nbprod("status", "--json", cwd=ran_copy).stdout)}
    assert states["prepare"]["state"] == "changed"
    assert "schemas/breast_cancer.yaml modified" in states["prepare"]["details"]
    for name in ("train", "evaluate"):  # only through prepare's outputs, if they change
        assert len(states[name]["details"]) == 1 and states[name]["details"][0].startswith("upstream prepare")
    done = nbprod("run", "--no-report", cwd=ran_copy)
    ran = [l.split(":")[1].strip() for l in done.stderr.splitlines() if l.endswith("cells") and "running" in l]
    assert ran == ["prepare"], done.stderr  # its outputs came out the same: nothing downstream reran


@pytest.mark.slow
def test_example_pipeline_records_validation_and_no_drift(ran_project):
    prepare = json.loads((ran_project / "metrics" / "prepare.json").read_text())
    assert prepare["validation.breast_cancer.passed"] == 1 and prepare["validation.breast_cancer.failed_rows"] == 0
    drift = prepare
    assert drift["drift.share"] == 0 and drift["drift.dataset_drifted"] == 0
    assert drift["drift.mean_radius.drifted"] == 0 and 0 < drift["drift.mean_radius.score"] <= 1
    executed = load_nb(ran_project / "reports" / "prepare.ipynb")
    html = [o["data"]["text/html"] for c in executed["cells"] for o in c.get("outputs", [])
            if "text/html" in o.get("data", {})]
    assert any("no data-set drift (0 of 31 columns drifted" in "".join(h) for h in html)


@pytest.mark.slow
def test_cli_reads_a_dvc_output_from_the_cache(ran_copy):
    (ran_copy / "notebooks" / "data" / "train.parquet").unlink()
    done = nbprod("data", "validate", "notebooks/data/train.parquet", "--schema", "breast_cancer", cwd=ran_copy)
    assert "valid against schemas/breast_cancer.yaml (426 rows)" in done.stdout
