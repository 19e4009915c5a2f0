"""``nbprod data`` commands and compile's schema dependencies, on a real `nbprod init` project."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from helpers.commands import nbprod
from helpers.notebooks import find_cell, load_nb, save_nb
from helpers.projects import tree_digest


def breast_cancer() -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer(as_frame=True).frame.rename(columns=lambda c: c.replace(" ", "_"))


def assert_one_line_error(done, *words):
    assert done.returncode == 2, done
    assert done.stderr.startswith("nbprod: error: ") and done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr and "Fix:" in done.stderr
    for word in words:
        assert word in done.stderr, done.stderr


@pytest.mark.slow  # seven nbprod processes, each importing pandas and pandera
def test_infer_show_validate_drift(project):
    data = project / "data"
    data.mkdir()
    frame = breast_cancer()
    frame.to_csv(data / "raw.csv", index=False)
    done = nbprod("data", "infer", "data/raw.csv", "--name", "raw", cwd=project)
    assert "Wrote schemas/raw.yaml: 31 columns from 569 rows" in done.stdout
    assert "mean_radius" in yaml.safe_load((project / "schemas" / "raw.yaml").read_text())["columns"]
    shown = nbprod("data", "show", "raw", cwd=project).stdout
    assert shown.startswith("schema raw") and "mean_radius" in shown and ">= 6.981" in shown

    assert nbprod("data", "validate", "data/raw.csv", "--schema", "raw", cwd=project).returncode == 0
    bad = frame.drop(columns=["mean_texture"])
    bad.loc[0, "mean_radius"] = 99.0
    bad.to_parquet(data / "bad.parquet")
    done = nbprod("data", "validate", "data/bad.parquet", "--schema", "schemas/raw.yaml", cwd=project, check=False)
    assert done.returncode == 1
    assert "mean_texture" in done.stdout and "column_in_dataframe" in done.stdout
    assert "less_than_or_equal_to(28.11)" in done.stdout and "99.0" in done.stdout
    result = json.loads(nbprod("data", "validate", "data/bad.parquet", "--schema", "raw", "--json",
                               cwd=project, check=False).stdout)
    assert result["passed"] is False and result["failed_rows"] == 569

    shuffled = frame.sample(frac=1, random_state=1)
    shuffled.iloc[:280].to_parquet(data / "a.parquet")
    shuffled.iloc[280:].to_parquet(data / "b.parquet")
    done = nbprod("data", "drift", "data/a.parquet", "data/b.parquet", cwd=project)
    assert done.stdout.startswith("No data-set drift: 0 of 31 columns drifted")
    shifted = shuffled.iloc[280:].copy()
    for column in shifted.columns[:20]:
        shifted[column] = shifted[column] * 1.5
    shifted.to_parquet(data / "c.parquet")
    done = nbprod("data", "drift", "data/a.parquet", "data/c.parquet", "--json", cwd=project, check=False)
    assert done.returncode == 1 and json.loads(done.stdout)["dataset_drifted"] is True


@pytest.mark.slow  # nine nbprod processes
def test_bad_input_is_one_line_exit_2_and_changes_nothing(project):
    (project / "data").mkdir()
    breast_cancer().to_csv(project / "data" / "raw.csv", index=False)
    (project / "data" / "junk.parquet").write_bytes(b"not parquet")
    (project / "data" / "notes.txt").write_text("hello")
    (project / "schemas" / "broken.yaml").write_text("columns:\n  a:\n    dtype: float64\n    betwixt: 3\n")
    before = tree_digest(project)
    cases = [
        (["data", "infer", "data/raw.csv", "--name", "breast_cancer"], ["already exists", "--force"]),
        (["data", "infer", "data/missing.csv"], ["data/missing.csv", "not found"]),
        (["data", "infer", "data/notes.txt"], ["notes.txt", ".parquet or .csv"]),
        (["data", "infer", "data/raw.csv", "--name", "bad name"], ["schema name"]),
        (["data", "validate", "data/junk.parquet", "--schema", "breast_cancer"], ["junk.parquet", "cannot read"]),
        (["data", "validate", "data/raw.csv", "--schema", "nope"], ["schema file 'nope' not found"]),
        (["data", "validate", "data/raw.csv", "--schema", "broken"], ["broken.yaml", "unknown check 'betwixt'"]),
        (["data", "show", "broken"], ["unknown check 'betwixt'"]),
        (["data", "drift", "data/raw.csv", "data/junk.parquet"], ["junk.parquet"]),
    ]
    for args, words in cases:
        assert_one_line_error(nbprod(*args, cwd=project, check=False), *words)
    assert tree_digest(project) == before


def test_compile_makes_a_literal_schema_a_dependency(project):
    stages = yaml.safe_load((project / "dvc.yaml").read_text())["stages"]
    assert "schemas/breast_cancer.yaml" in stages["prepare"]["deps"]
    assert "schemas/breast_cancer.yaml" not in stages["train"]["deps"]
    # the model notebook validates too (a second schema, found from the notebook's folder first)
    nb_path = project / "notebooks" / "model.ipynb"
    nb = load_nb(nb_path)
    cell = find_cell(nb, "stage:evaluate")
    cell["source"] = "".join(cell["source"]) + '\ntest = nbprod.validate(test, "schemas/test.yaml")\n'
    save_nb(nb_path, nb)
    (project / "notebooks" / "schemas").mkdir()
    (project / "notebooks" / "schemas" / "test.yaml").write_text("columns:\n  target: {dtype: int64}\n")
    nbprod("compile", cwd=project)
    stages = yaml.safe_load((project / "dvc.yaml").read_text())["stages"]
    assert "notebooks/schemas/test.yaml" in stages["evaluate"]["deps"]


@pytest.mark.parametrize("call, words", [
    ('name = "schemas/breast_cancer.yaml"\nframe = nbprod.validate(frame, name)',
     ["line 5", "the path is an expression", 'nbprod.validate(df, "schemas/NAME.yaml")']),
    ('frame = nbprod.validate(frame, f"schemas/{seed}.yaml")', ["the path is an expression"]),
    ('from nbprod import validate\nframe = validate(frame, "schemas/breast_cancer.yaml")',
     ["line 4", "imported under another name"]),
    ('import nbprod as nb\nframe = nb.validate(frame, "schemas/breast_cancer.yaml")',
     ["line 4", "imported under another name"]),
    ('frame = nbprod.validate(frame, "schemas/missing.yaml")',
     ["line 4", "schema file 'schemas/missing.yaml' not found"]),
])
def test_compile_refuses_a_schema_it_cannot_follow(project, call, words):
    nb_path = project / "notebooks" / "prepare.ipynb"
    nb = load_nb(nb_path)
    cell = next(c for c in nb["cells"] if "# The data contract" in "".join(c["source"]))
    source = "".join(cell["source"])
    assert 'frame = nbprod.validate(frame, "schemas/breast_cancer.yaml")' in source
    cell["source"] = source.replace('frame = nbprod.validate(frame, "schemas/breast_cancer.yaml")', call)
    save_nb(nb_path, nb)
    before = tree_digest(project)
    number = nb["cells"].index(cell) + 1
    done = nbprod("compile", cwd=project, check=False)
    assert_one_line_error(done, f"notebooks/prepare.ipynb cell {number}", *words)
    assert tree_digest(project) == before


def test_drift_statistics_cli_reads_tool_nbprod_drift(project):
    with open(project / "pyproject.toml", "a") as out:
        out.write('\n[tool.nbprod.drift.columns."x"]\ntest = "psi"\nthreshold = 0.5\n')
    rng = np.random.default_rng(0)
    pd.DataFrame({"x": rng.normal(size=400)}).to_csv(project / "ref.csv", index=False)
    pd.DataFrame({"x": rng.normal(size=400)}).to_csv(project / "cur.csv", index=False)
    report = json.loads(nbprod("data", "drift", "ref.csv", "cur.csv", "--json", cwd=project).stdout)
    assert report["columns"][0]["test"] == "psi" and report["columns"][0]["threshold"] == 0.5
