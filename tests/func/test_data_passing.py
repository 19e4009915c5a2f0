"""Cells tagged as stages pass their data, in real projects: unfollowable patterns refused at compile, in-place
changes, rerun rules, debug. Equivalence with Run All and the stored types: tests/unit/test_data_passing.py."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from helpers.commands import nbprod, run
from helpers.notebooks import save_nb
from helpers.paths import BIN
from nbprod.notebooks.notebook import cell_source


def write_notebook(path: Path, cells: list[tuple[str, list[str]]], markdown: str | None = None) -> None:
    nb_cells = []
    if markdown:
        nb_cells.append({"cell_type": "markdown", "metadata": {}, "source": markdown})
    nb_cells += [{"cell_type": "code", "execution_count": None, "metadata": {"tags": tags}, "outputs": [],
                  "source": source} for source, tags in cells]
    save_nb(path, {"cells": nb_cells, "metadata": {"kernelspec": {"name": "python3", "language": "python",
                                                                    "display_name": "Python 3"}},
                   "nbformat": 4, "nbformat_minor": 5})


# --- equivalence with Run All ----------------------------------------------------------------


# --- artifacts by type -----------------------------------------------------------------------




# --- patterns the analysis cannot follow -----------------------------------------------------

UNFOLLOWABLE = [
    ("star import", [("from math import *", ["stage:a"]), ("y = pi", ["stage:b"])],
     "cell 1: line 1: 'import *' hides which names stage 'a' defines. Fix: import the names you use"),
    ("global", [("def f():\n    global x\n    x = 1\nf()", ["stage:a"]), ("y = x", ["stage:b"])],
     "cell 1: line 2: a function assigns a global"),
    ("some branches", [("import random\n", ["shared"]), ("if random.random() > 2:\n    x = 1", ["stage:a"]),
                       ("y = x", ["stage:b"])],
     "cell 2: 'x' is defined on some branches only, and stage 'b' reads it. Fix: give x a value before"),
    ("exec", [("exec('x = 1')", ["stage:a"]), ("y = 2", ["stage:b"])],
     "cell 1: line 1: exec() defines names nbprod cannot see"),
    ("%run", [("%run helpers.py", ["stage:a"]), ("y = 2", ["stage:b"])],
     "cell 1: line 1: %run defines names nbprod cannot see"),
    ("conditional import in a stage", [("try:\n    import math\nexcept ImportError:\n    pass", ["stage:a"]),
                                        ("y = math.pi", ["stage:b"])],
     "cell 1: stage 'b' uses 'math', imported in stage 'a'. Fix: tag the import cell 'shared'"),
    ("function in an if block", [("if True:\n    def helper(v):\n        return v + 1", ["stage:a"]),
                                 ("y = helper(1)", ["stage:b"])],
     "cell 1: line 2: 'helper' is defined inside an if block in stage 'a', so nbprod cannot carry it into "
     "stage 'b'. Fix: define helper at the top level of the cell, outside the block"),
]


@pytest.mark.parametrize("case, cells, expected", UNFOLLOWABLE, ids=[c[0] for c in UNFOLLOWABLE])
def test_unfollowable_patterns_are_reported_with_cell_and_fix(project, case, cells, expected):
    write_notebook(project / "notebooks/extra.ipynb", cells)
    done = nbprod("compile", cwd=project, check=False)
    assert done.returncode == 2
    assert done.stderr.startswith("nbprod: error: notebooks/extra.ipynb ")
    assert expected in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_in_place_changes_pass_on_the_changed_object(project):
    write_notebook(project / "notebooks/extra.ipynb", [
        ("items = [1]", ["stage:make"]), ("items.append(2)", ["stage:grow"]), ("total = sum(items)", ["stage:use"])])
    pipeline = json.loads(nbprod("pipeline", cwd=project).stdout)
    stages = {s["name"]: s for s in pipeline["stages"]}
    assert stages["grow"]["inputs"] == {"items": "make"}
    assert stages["use"]["inputs"] == {"items": "grow"}


# --- rerun rules with real DVC ---------------------------------------------------------------

CHAIN = [
    ("import json\n", ["shared"]),
    ("scale = 2\noffset = 1", ["parameters"]),
    ("numbers = list(range(5))", ["stage:source"]),
    ("doubled = [n * scale for n in numbers]", ["stage:double"]),
    ("total = sum(doubled) + offset\nprint(json.dumps(total))", ["stage:total"]),
]


@pytest.fixture(scope="module")
def chain_project(tmp_path_factory):
    base = tmp_path_factory.mktemp("chain")
    nbprod("init", "proj", cwd=base)
    root = base / "proj"
    for notebook in (root / "notebooks").glob("*.ipynb"):
        notebook.unlink()
    write_notebook(root / "notebooks/chain.ipynb", CHAIN, markdown="# Chain")
    nbprod("run", "--no-report", cwd=root)
    run("git", "add", "-A", cwd=root)
    run("git", "commit", "-qm", "chain", cwd=root)
    return root


def rerun(root: Path, tmp_path: Path) -> list[str]:
    events = tmp_path / "events.jsonl"
    events.unlink(missing_ok=True)
    nbprod("run", "--no-report", "--events", events, cwd=root)
    return [json.loads(l)["stage"] for l in events.read_text().splitlines() if '"stage_start"' in l]


@pytest.fixture
def chain(chain_project, tmp_path):
    import shutil

    target = tmp_path / "proj"
    shutil.copytree(chain_project, target, symlinks=True)
    return target


def test_rerun_rules_code_markdown_and_params(chain, tmp_path):
    executed = json.loads((chain / "reports/total.ipynb").read_text())
    assert any("21" in "".join(o.get("text", "")) for c in executed["cells"] for o in c.get("outputs", []))
    cells = list(CHAIN)
    cells[3] = ("doubled = [n * scale for n in numbers]\ndoubled.reverse()", ["stage:double"])
    write_notebook(chain / "notebooks/chain.ipynb", cells, markdown="# Chain")
    assert rerun(chain, tmp_path) == ["double", "total"]          # edited stage and downstream only
    write_notebook(chain / "notebooks/chain.ipynb", cells, markdown="# Chain, explained differently")
    assert rerun(chain, tmp_path) == []                           # markdown: nothing
    params = chain / "params.yaml"
    params.write_text(params.read_text().replace("offset: 1", "offset: 3"))
    assert rerun(chain, tmp_path) == ["total"]                    # param read only by total
    params.write_text(params.read_text().replace("scale: 2", "scale: 3"))
    assert rerun(chain, tmp_path) == ["double", "total"]          # param read by double, and downstream


def test_debug_console_loads_the_stage_inputs_from_the_cache(chain):
    data = chain / ".nbprod/data"
    for value in data.glob("**/value.*"):
        value.unlink()  # only the DVC cache has them now
    done = subprocess.run([str(BIN / "nbprod"), "debug", "total", "--console"], cwd=chain, text=True,
                          input="print('LOADED', doubled, offset)\nexit\n", capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "inputs loaded: doubled" in done.stdout
    assert "LOADED [0, 2, 4, 6, 8] 1" in done.stdout


def test_debug_notebook_holds_setup_inputs_and_stage_cells(chain):
    done = nbprod("debug", "double", cwd=chain)
    path = chain / "nbprod-debug/double.ipynb"
    assert str(path) in done.stdout
    sources = [cell_source(c) for c in json.loads(path.read_text())["cells"]]
    assert any("_nbprod_load('.nbprod/data/notebooks__chain/source', 'numbers')" in s for s in sources)
    assert any(s.startswith("doubled = [n * scale") for s in sources)
