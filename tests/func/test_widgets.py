"""nbprod.panel / nbprod.params_form without a kernel, on a real project: the plain-text fallback, and the
parameters form's checks and atomic save against compile's rules (import cost: test_import_cost.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers.commands import nbprod
from helpers.notebooks import code_notebook, save_nb
from helpers.projects import tree_digest

from nbprod.core.errors import NbprodError
from nbprod.core.project import load_project


def test_panel_without_a_kernel_prints_the_status_table(project):
    done = subprocess.run([sys.executable, "-c", "import nbprod; print(nbprod.panel())"], cwd=project / "notebooks",
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["stage", "state", "metrics"]
    rows = {line.split()[0]: line for line in lines[2:-1]}
    assert {"prepare", "train", "evaluate"} <= set(rows)
    assert all("never run" in row for row in rows.values())
    assert lines[-1] == "None"  # nothing to display: no widget was built
    assert "ipywidgets" not in done.stderr


PARAMS_CELL = """n_estimators = 100  # range: 10..500
rate = 0.1  # range: 0..1
use_scaler = True
label = "target"
columns = ["a", "b"]
"""


@pytest.fixture
def form_project(project) -> Path:
    nb = code_notebook([(["parameters"], PARAMS_CELL),
                        (["stage:fit"], "print(n_estimators, rate, use_scaler, label, columns)")])
    save_nb(project / "notebooks" / "fit.ipynb", nb)
    nbprod("compile", cwd=project)
    return project


def _form(root: Path):
    from nbprod.widgets.params import notebook_params

    return notebook_params(load_project(root), root / "notebooks" / "fit.ipynb")


def test_params_are_read_with_their_types_and_declared_ranges(form_project):
    form = _form(form_project)
    by_name = {p.name: p for p in form.params}
    assert form.section == "fit" and form.notebook == "notebooks/fit.ipynb"
    assert (by_name["n_estimators"].value, by_name["n_estimators"].low, by_name["n_estimators"].high) == (100, 10, 500)
    assert (by_name["rate"].low, by_name["rate"].high) == (0, 1)
    assert by_name["use_scaler"].kind == "a boolean" and by_name["use_scaler"].low is None
    assert by_name["columns"].value == ["a", "b"]


@pytest.mark.parametrize(("name", "value", "words"), [
    ("n_estimators", 1000, "fit.n_estimators = 1000 is outside its range 10..500"),
    ("rate", -0.5, "fit.rate = -0.5 is outside its range 0..1"),
    ("n_estimators", 12.5, "fit.n_estimators is a number, but the parameters cell makes it a whole number"),
    ("use_scaler", "yes", "fit.use_scaler is a string, but the parameters cell makes it a boolean"),
    ("columns", {"a": 1}, "fit.columns is a mapping, but the parameters cell makes it a list"),
    ("columns", "np.arange(3)", "parameters cell line 5 is not a literal assignment: 'columns = np.arange(3)'"),
])
def test_bad_values_are_refused_and_nothing_changes(form_project, name, value, words):
    from nbprod.widgets.params import parse_text, save

    form = _form(form_project)
    before = tree_digest(form_project)
    with pytest.raises(NbprodError) as caught:
        text_value = parse_text(form, name, value) if isinstance(value, str) and name == "columns" else value
        save(form, {"rate": 0.5, name: text_value})  # a good value beside the bad one is not written either
    assert words in str(caught.value)
    assert tree_digest(form_project) == before


def test_out_of_range_gets_the_same_words_from_compile_and_the_form(form_project):
    from nbprod.widgets.params import save

    form = _form(form_project)
    with pytest.raises(NbprodError) as caught:
        save(form, {"rate": 1.5})
    text = (form_project / "params.yaml").read_text()
    (form_project / "params.yaml").write_text(text.replace("rate: 0.1", "rate: 1.5"))
    done = nbprod("compile", cwd=form_project, check=False)
    assert done.returncode == 2
    assert done.stderr.strip() == f"nbprod: error: {caught.value}"
    assert "notebooks/fit.ipynb cell 1: fit.rate = 1.5 is outside its range 0..1" in done.stderr


def test_non_literal_text_gets_compiles_words(form_project):
    from nbprod.widgets.params import parse_text

    form = _form(form_project)
    cell = code_notebook([(["parameters"], "columns = np.arange(3)")])
    save_nb(form_project / "notebooks" / "other.ipynb", cell)
    done = nbprod("compile", cwd=form_project, check=False)
    (form_project / "notebooks" / "other.ipynb").unlink()
    compile_words = done.stderr.split("cell 1: ")[1].split(". Fix:")[0].replace("line 1", "line 5")
    with pytest.raises(NbprodError) as caught:
        parse_text(form, "columns", "np.arange(3)")
    assert compile_words in str(caught.value)
    assert caught.value.fix in done.stderr


def test_save_writes_params_yaml_atomically_and_compile_keeps_it(form_project):
    from nbprod.widgets.params import parse_text, save

    form = _form(form_project)
    columns = parse_text(form, "columns", "[a, b, c]")  # YAML flow list
    changed = save(form, {"n_estimators": 250, "rate": 0.1, "use_scaler": False, "columns": columns})
    assert changed == ["n_estimators", "use_scaler", "columns"]
    text = (form_project / "params.yaml").read_text()
    assert "n_estimators: 250" in text and "use_scaler: false" in text
    assert not list(form_project.glob(".params.yaml.*"))  # no temporary file left behind
    nbprod("compile", cwd=form_project)
    assert (form_project / "params.yaml").read_text() == text  # compile keeps edited values
    assert _form(form_project).get("n_estimators").value == 250


def test_params_form_without_a_kernel_prints_the_parameters(form_project):
    done = subprocess.run([sys.executable, "-c", "import nbprod; nbprod.params_form('fit.ipynb')"],
                          cwd=form_project / "notebooks", capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "n_estimators = 100  (notebook: 100)  range 10..500" in done.stdout
