"""R notebooks as stages beside Python ones: real IRkernel (Debian's r-cran-irkernel), real DVC.

`make test` installs IRkernel when it is missing; these tests fail (never skip) without it.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from helpers.commands import nbprod, run
from helpers.notebooks import load_nb, save_nb
from helpers.projects import lock_entries, tree_digest

R_KERNELSPEC = {"display_name": "R", "language": "R", "name": "ir"}


# -- projects -------------------------------------------------------------------------------------------

def _notebook(cells, kernelspec=R_KERNELSPEC, language="R") -> dict:
    return {"cells": [{"cell_type": "code", "execution_count": None, "metadata": {"tags": tags}, "outputs": [],
                       "source": source} for tags, source in cells],
            "metadata": {"kernelspec": kernelspec, "language_info": {"name": language}},
            "nbformat": 4, "nbformat_minor": 5}


def _project(root: Path, notebooks: dict[str, dict]) -> Path:
    (root / "notebooks").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "r"\nversion = "0"\n\n[tool.nbprod]\n'
                                         'notebooks = ["notebooks"]\n', encoding="utf-8")
    for name, nb in notebooks.items():
        save_nb(root / "notebooks" / name, nb)
    run("git", "init", "-q", cwd=root)
    run("dvc", "init", "-q", cwd=root)
    nbprod("compile", cwd=root)
    run("git", "add", "-A", cwd=root)
    run("git", "commit", "-q", "-m", "project", cwd=root)
    return root


TRICKY = ['say "hi"', "back\\slash\\", "two\nlines\n", "\ttab", "é ✓ 😀", '\\"); cat("pwned"); ("', "'single'",
          "$HOME `id`", "#not a comment"]


@pytest.mark.slow
def test_injected_r_strings_arrive_exactly(tmp_path):
    cells = [(["parameters"], 'text <- "default"\ncount <- 1L\nratio <- 0.5\nflag <- FALSE\nitems <- c(1, 2)'),
             (["stage:echo", "outs:out.json"],
              'jsonlite::write_json(list(text = text, count = count, ratio = ratio, flag = flag, items = items),\n'
              '                     "out.json", auto_unbox = TRUE, digits = NA)')]
    root = _project(tmp_path / "p", {"echo.ipynb": _notebook(cells)})
    for text in TRICKY:
        params = ("echo:\n  text: " + json.dumps(text, ensure_ascii=False) +
                  "\n  count: 42\n  ratio: 1.0e-07\n  flag: true\n  items: [3, 4.5]\n")
        (root / "params.yaml").write_text(params, encoding="utf-8")
        done = nbprod("run", "--no-report", cwd=root, check=False)
        assert done.returncode == 0, done.stderr
        got = json.loads((root / "notebooks" / "out.json").read_text(encoding="utf-8"))
        assert got == {"text": text, "count": 42, "ratio": 1e-07, "flag": True, "items": [3, 4.5]}, text
        assert not (root / "notebooks" / "pwned").exists()


def test_r_parameters_cell_that_is_not_literal_is_one_line(tmp_path):
    root = _project(tmp_path / "p", {"ok.ipynb": _notebook([(["stage:ok"], "x <- 1")])})
    save_nb(root / "notebooks" / "bad.ipynb", _notebook([(["parameters"], "n <- 10\nm <- n * 2"),
                                                          (["stage:bad"], "print(m)")]))
    before = tree_digest(root)
    done = nbprod("compile", cwd=root, check=False)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "notebooks/bad.ipynb" in done.stderr and "cell 1" in done.stderr
    assert "line 2 is not a literal assignment" in done.stderr and "NAME <- value" in done.stderr
    assert tree_digest(root) == before


def test_kernel_that_is_not_installed_is_one_line_at_compile(tmp_path):
    root = _project(tmp_path / "p", {"ok.ipynb": _notebook([(["stage:ok"], "x <- 1")])})
    save_nb(root / "notebooks" / "julia.ipynb", _notebook(
        [(["stage:jl"], "x = 1")], {"display_name": "Julia", "language": "julia", "name": "julia-1.10"}, "julia"))
    before = tree_digest(root)
    done = nbprod("compile", cwd=root, check=False)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "notebooks/julia.ipynb" in done.stderr and "'julia-1.10'" in done.stderr and "not installed" in done.stderr
    assert tree_digest(root) == before


# -- the mixed example: Python prepares, R summarises -----------------------------------------------------

@pytest.fixture(scope="module")
def mixed_template(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("mixed")
    nbprod("init", "--template", "mixed", "proj", cwd=base)
    return base / "proj"


def _copy(template: Path, target: Path) -> Path:
    shutil.copytree(template, target, symlinks=True)
    return target


@pytest.mark.slow
def test_mixed_pipeline_same_results_with_nbprod_run_dvc_repro_and_j2(mixed_template, tmp_path):
    results = {}
    for how, args in (("run", []), ("repro", ["--dvc-repro"]), ("j2", ["-j", "2"])):
        root = _copy(mixed_template, tmp_path / how)
        done = nbprod("run", "--no-report", *args, cwd=root)
        assert "summarise" in done.stdout
        results[how] = (lock_entries(root), (root / "notebooks" / "results" / "summary.json").read_text())
    assert results["run"] == results["repro"] == results["j2"]
    summary = json.loads(results["run"][1])
    assert summary == {"label": "iris", "flowers": 150, "mean_petal_length": 3.758}


@pytest.mark.slow
def test_r_stage_reruns_only_for_its_code_params_or_input(mixed_template, tmp_path):
    root = _copy(mixed_template, tmp_path / "p")
    nbprod("run", "--no-report", cwd=root)
    executed = load_nb(root / "reports" / "summarise.ipynb")
    kernel = executed["metadata"]["nbprod"]["kernel"]
    assert kernel["start"] == "new process" and "not this interpreter's ipykernel" in kernel["pool"]
    assert executed["metadata"]["kernelspec"]["name"] == "ir"

    def ran() -> set[str]:
        done = nbprod("run", "--no-report", cwd=root)
        return set(re.findall(r"│ (\w+)\s+│ ran ", done.stdout))

    assert ran() == set()
    # Markdown and outputs in the R notebook: nothing reruns.
    nb_path = root / "notebooks" / "summarise.ipynb"
    nb = load_nb(nb_path)
    nb["cells"][0]["source"] = "# Summarise, reworded"
    save_nb(nb_path, nb)
    assert ran() == set()
    # Its own params: only the R stage.
    params = (root / "params.yaml").read_text().replace("min_petal_length: 1.0", "min_petal_length: 4.0")
    (root / "params.yaml").write_text(params)
    assert ran() == {"summarise"}
    assert json.loads((root / "notebooks" / "results" / "summary.json").read_text())["flowers"] < 150
    # Its code: only the R stage.
    nb = load_nb(nb_path)
    code = next(c for c in nb["cells"] if "stage:summarise" in c["metadata"].get("tags", []))
    code["source"] = "".join(code["source"]) + "\nnrow(kept)"
    save_nb(nb_path, nb)
    assert ran() == {"summarise"}
    # Its input file (a Python param changes the CSV): both.
    params = (root / "params.yaml").read_text().replace("flower_count: 150", "flower_count: 100")
    (root / "params.yaml").write_text(params)
    assert ran() == {"prepare", "summarise"}


@pytest.mark.slow
def test_r_stage_report_status_and_debug(mixed_template, tmp_path):
    root = _copy(mixed_template, tmp_path / "p")
    nbprod("run", cwd=root)
    html = (root / "reports" / "summarise.html").read_text(encoding="utf-8")
    assert "petal_length" in html and "summarise" in html
    status = json.loads(nbprod("status", "--json", cwd=root).stdout)
    assert json.dumps(status).count("up to date") >= 2
    nbprod("debug", "summarise", cwd=root)
    debug = load_nb(root / "nbprod-debug" / "summarise.ipynb")
    assert debug["metadata"]["kernelspec"]["name"] == "ir"
    sources = ["".join(c["source"]) for c in debug["cells"]]
    assert any("setwd(" in s for s in sources)
    assert any("min_petal_length <- 1.0" in s for s in sources)
    assert not any("import os" in s for s in sources)
