"""Compile: deterministic, normalised, keeps what the user wrote, and refuses bad input cleanly."""

from __future__ import annotations

import json

import pytest
import yaml

from helpers.commands import nbprod
from helpers.notebooks import find_cell, load_nb, save_nb
from helpers.projects import tree_digest

GENERATED = ["dvc.yaml", "params.yaml", ".nbprod/compiled.json", ".nbprod/stages/prepare.ipynb",
             ".nbprod/stages/train.ipynb", ".nbprod/stages/evaluate.ipynb"]


def test_compile_twice_changes_no_byte(project):
    before = tree_digest(project)
    done = nbprod("compile", cwd=project)
    assert "Nothing to change" in done.stdout
    assert tree_digest(project) == before
    assert nbprod("compile", "--check", cwd=project).returncode == 0


def test_stage_notebooks_are_normalised(project):
    for name in ("prepare", "train", "evaluate"):
        nb = load_nb(project / ".nbprod/stages" / f"{name}.ipynb")
        for cell in nb["cells"]:
            assert "id" not in cell
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [] and cell["execution_count"] is None
        assert nb["metadata"]["nbprod"]["stage"] == name


def test_each_stage_lists_only_the_params_it_reads(project):
    stages = yaml.safe_load((project / "dvc.yaml").read_text())["stages"]
    assert stages["train"]["params"] == ["model.C", "model.max_iter"]
    assert stages["evaluate"]["params"] == ["model.threshold"]
    assert stages["prepare"]["params"] == ["prepare.test_size", "prepare.seed"]
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert params["model"] == {"C": 1.0, "max_iter": 1000, "threshold": 0.5}
    for name, stage in stages.items():
        assert stage["cmd"] == f"nbprod exec {name}"
        assert stage["deps"][0] == f".nbprod/stages/{name}.ipynb"


def test_lab_rerun_and_markdown_edits_leave_generated_files_alone(project):
    path = project / "notebooks/model.ipynb"
    nb = load_nb(path)
    for count, cell in enumerate(nb["cells"], start=1):
        cell["metadata"]["collapsed"] = False
        if cell["cell_type"] == "code":
            cell["execution_count"] = count
            cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": [f"run {count}\n"]}]
        else:
            cell["source"] = ["An edited explanation.\n"]
    nb["metadata"]["kernelspec"] = {"name": "other-kernel", "display_name": "Other", "language": "python"}
    nb["metadata"]["widgets"] = {"state": {}}
    save_nb(path, nb)
    before = {rel: (project / rel).read_bytes() for rel in GENERATED}
    assert nbprod("compile", "--check", cwd=project).returncode == 0
    nbprod("compile", cwd=project)
    assert {rel: (project / rel).read_bytes() for rel in GENERATED} == before


def test_code_edit_changes_only_that_stage(project):
    path = project / "notebooks/model.ipynb"
    nb = load_nb(path)
    cell = find_cell(nb, "stage:evaluate")
    cell["source"] = "".join(cell["source"]) + "\nprint('one more line')\n"
    save_nb(path, nb)
    check = nbprod("compile", "--check", cwd=project, check=False)
    assert check.returncode == 1
    assert ".nbprod/stages/evaluate.ipynb" in check.stderr
    done = nbprod("compile", cwd=project)
    assert "wrote .nbprod/stages/evaluate.ipynb" in done.stdout
    assert "train.ipynb" not in done.stdout and "prepare.ipynb" not in done.stdout


def test_hand_written_stages_and_edited_params_are_kept(project):
    dvc_yaml = project / "dvc.yaml"
    text = dvc_yaml.read_text()
    text = text.replace("stages:\n", "stages:\n  # my own stage, written by hand\n  download:\n"
                        "    cmd: echo hi > notebooks/raw.txt\n    outs:\n      - notebooks/raw.txt\n", 1)
    dvc_yaml.write_text(text)
    params = project / "params.yaml"
    params.write_text(params.read_text().replace("C: 1.0", "C: 0.25  # tuned by hand") + "extra:\n  k: 1\n")
    # The notebook's default for threshold changes: not edited by hand, so it follows the notebook.
    path = project / "notebooks/model.ipynb"
    nb = load_nb(path)
    find_cell(nb, "parameters")["source"] = "C = 1.0\nmax_iter = 1000\nthreshold = 0.4"
    save_nb(path, nb)
    nbprod("compile", cwd=project)
    text = dvc_yaml.read_text()
    assert "# my own stage, written by hand" in text and "cmd: echo hi > notebooks/raw.txt" in text
    values = yaml.safe_load(params.read_text())
    assert values["model"]["C"] == 0.25 and "# tuned by hand" in params.read_text()
    assert values["model"]["threshold"] == 0.4
    assert values["extra"] == {"k": 1}
    before = tree_digest(project)
    nbprod("compile", cwd=project)
    assert tree_digest(project) == before


def test_notebook_without_stage_tags_is_one_stage_and_several_stages_share_a_notebook(project):
    pipeline = json.loads(nbprod("pipeline", cwd=project).stdout)
    stages = {s["name"]: s for s in pipeline["stages"]}
    assert set(stages) == {"prepare", "train", "evaluate"}
    assert stages["prepare"]["notebook"] == "notebooks/prepare.ipynb"
    assert stages["train"]["notebook"] == stages["evaluate"]["notebook"] == "notebooks/model.ipynb"
    assert stages["evaluate"]["inputs"] == {"model": "train"}
    assert stages["evaluate"]["upstream"] == ["prepare", "train"]


def _write_nb(path, cells):
    nb = {"cells": [{"cell_type": "code", "execution_count": None, "metadata": {"tags": tags},
                     "outputs": [], "source": source} for source, tags in cells],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    save_nb(path, nb)


BAD_INPUT = [
    ("not valid JSON", lambda p: (p / "notebooks/broken.ipynb").write_text('{"cells": [}'),
     "notebooks/broken.ipynb: is not valid JSON"),
    ("invalid stage name", lambda p: _write_nb(p / "notebooks/x.ipynb", [("a = 1", ["stage:Bad Name"])]),
     "notebooks/x.ipynb cell 1: 'stage:Bad Name' has an invalid stage name"),
    ("stage name used twice", lambda p: _write_nb(p / "notebooks/x.ipynb", [("a = 1", ["stage:train"])]),
     "notebooks/x.ipynb cell 1: stage name 'train' is already used in notebooks/model.ipynb"),
    ("dependency cycle", lambda p: _write_nb(p / "notebooks/x.ipynb", [
        ("a = 1", ["stage:one", "after:two"]), ("b = 2", ["stage:two", "after:one"])]),
     "dependency cycle"),
    ("two stages write one out", lambda p: _write_nb(p / "notebooks/x.ipynb", [
        ("a = 1", ["stage:one", "outs:../out.csv"]), ("b = 2", ["stage:two", "outs:../out.csv"])]),
     "stage 'two' writes out.csv, which stage 'one'"),
    ("absolute path", lambda p: _write_nb(p / "notebooks/x.ipynb", [("a = 1", ["outs:/etc/passwd"])]),
     "notebooks/x.ipynb cell 1: path in 'outs:/etc/passwd' is absolute"),
    ("path outside the project", lambda p: _write_nb(p / "notebooks/x.ipynb", [("a = 1", ["deps:../../x.csv"])]),
     "notebooks/x.ipynb cell 1: path in 'deps:../../x.csv' points outside the project"),
    ("parameters cell with code", lambda p: _write_nb(p / "notebooks/x.ipynb", [
        ("a = 1\nb = compute()", ["parameters"]), ("c = a", [])]),
     "notebooks/x.ipynb cell 1: parameters cell line 2 is not a literal assignment"),
]


@pytest.mark.parametrize("case, make, expected", BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input_gets_one_line_exit_2_and_changes_nothing(project, case, make, expected):
    make(project)
    before = tree_digest(project)
    for command in (("compile",), ("compile", "--check"), ("run",), ("status",)):
        done = nbprod(*command, cwd=project, check=False)
        assert done.returncode == 2, (command, done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert expected in lines[0]
        assert "Fix:" in lines[0] and "Traceback" not in done.stderr
        assert tree_digest(project) == before
