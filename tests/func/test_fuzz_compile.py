"""Fuzz compile: thousands of generated notebooks through ``compile_project`` in a small project.

Whatever the input (random tags, cell types, encodings, unicode names, huge cells, broken JSON),
compile either succeeds deterministically or raises one ``NbprodError`` that names the file (and the
cell, for a cell's fault) on one line, and then no file has changed. No DVC call is made: compile
only reads notebooks and writes generated files. It starts no process, but 2,000 examples outlast the
unit suite's whole budget, so it lives in tests/func.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from nbprod.notebooks.compile import compile_project
from nbprod.core.errors import NbprodError
from nbprod.core.project import load_project

# Messages about a whole file: the only NbprodErrors allowed to name no cell.

FILE_LEVEL = ("is not valid JSON", "is not UTF-8", "is not a Jupyter notebook", "uses notebook format",
              "notebook name", "gives params section", "cannot be read", "is not valid YAML",
              "is not a mapping", "dependency cycle")


def mostly(common, rare, one_in: int = 10):
    """``common`` most of the time, else ``rare``: keeps most examples deep enough to reach tags and cells."""
    return st.integers(0, one_in - 1).flatmap(lambda i: rare if i == 0 else common)


NAMES = st.sampled_from(["prep", "train", "evaluate", "a", "b-2", "x_y", "Train", "1st", "", "a" * 65,
                         "one\n", "$(id)", "a;b", "`x`", "../up", "é"])
PATHS = st.sampled_from(["data.csv", "out/x.csv", "../x.csv", "../../x.csv", "/etc/passwd", "~/x",
                         "a//b", "./a", "a/./b", "", "..", "x y.csv", "$(id).csv", "d\n.csv",
                         "../.nbprod/stages/x.ipynb", "../reports/r.ipynb", "../.git/config", "C:/x"])
GOOD_NAMES = st.sampled_from(["prep", "train", "evaluate", "a", "b-2", "x_y"])
GOOD_TAGS = st.one_of(
    st.sampled_from(["parameters", "shared", "skip", "hide-input"]),
    st.builds(lambda n: f"stage:{n}", GOOD_NAMES),
    st.builds(lambda n: f"after:{n}", GOOD_NAMES),
    st.builds(lambda k, p: f"{k}:{p}", st.sampled_from(["deps", "outs", "metrics", "plots"]),
              st.sampled_from(["data.csv", "out/x.csv", "../shared.csv", "m.json", "out"])),
)
TAGS = mostly(GOOD_TAGS, st.one_of(
    st.sampled_from(["Parameters", "skip ", " shared", "injected-parameters", "stage", "outs", "after:"]),
    st.builds(lambda n: f"stage:{n}", NAMES),
    st.builds(lambda n: f"after:{n}", NAMES),
    st.builds(lambda k, p: f"{k}:{p}", st.sampled_from(["deps", "outs", "metrics", "plots", "Deps", "outs "]),
              PATHS),
    st.text(max_size=20),
    st.integers(), st.none(), st.lists(st.text(max_size=3), max_size=2),
), one_in=6)
GOOD_CODE = st.sampled_from(["a = 1", "b = a + 1", "lr = 0.1\nepochs = 5", "c = b * lr", "print(a, b)",
                             "name = 'x'; flag = True; items = [1, 'a', None]", "cfg = {'k': [1, 2]}",
                             "import os\nx = os.sep", "d = [i for i in range(epochs)]",
                             # imports where users put them: used again by later stages (carried)
                             "import math\nr = math.sqrt(4)", "q = math.floor(2.5) + len(os.sep)",
                             "from os import path as osp, sep", "p = osp.join('a', sep)",
                             # definitions where users put them: carried into the stages that use them
                             "def f(v):\n    return v + a", "y = f(1)", "import functools as ft",
                             "@ft.lru_cache\ndef g(n):\n    return n if n < 2 else g(n - 1) + f(n)",
                             "class Box:\n    size = 2\n    def get(self):\n        return b * self.size\nbox = Box()",
                             "w = box.get() + g(3)", "class Big(Box):\n    pass", "k = Big().get()",
                             "def f(v, k=a):\n    return v", "if a:\n    def h():\n        return 1", "u = h()"])
CODE = mostly(GOOD_CODE, st.one_of(
    st.sampled_from([
        "a = 1", "b = a + 1", "import os\nx = os.sep", "def f(:\n  pass", "print(undefined)",
        "%matplotlib inline\nz = 3", "%%bash\necho hi", "!ls", "a = 1\x00", "x = '\udcff'",
        "df = load()\ndf.to_csv('out.csv')", "for i in range(3):\n    t = i", "lr = 0.1\nepochs = 5",
        "name = 'x'; flag = True; items = [1, 'a', None]", "cfg = {'k': [1, 2]}",
        "a = " + "-" * 50000 + "1", "s = '" + "y" * 200000 + "'", "x = (" * 120 + "1" + ")" * 120,
    ]),
    st.text(max_size=200),
), one_in=4)
SOURCE = mostly(st.one_of(CODE, st.lists(CODE, max_size=3)),
                st.one_of(st.integers(), st.none(),
                          st.lists(st.one_of(st.text(max_size=5), st.integers()), max_size=3)),
                one_in=30)
CELL = st.fixed_dictionaries(
    {"cell_type": mostly(st.sampled_from(["code", "code", "code", "markdown", "raw"]), st.sampled_from(["heading", ""]),
                         one_in=40),
     "source": SOURCE},
    optional={"metadata": mostly(
        st.one_of(st.fixed_dictionaries({"tags": st.lists(TAGS, max_size=3)}), st.just({})),
        st.one_of(st.fixed_dictionaries({"tags": st.one_of(st.text(max_size=8), st.none())}),
                  st.none(), st.lists(st.integers(), max_size=1)), one_in=30),
        "outputs": st.just([]), "execution_count": st.none() | st.integers(), "id": st.text(max_size=8)},
)
NOTEBOOK = st.fixed_dictionaries(
    {"cells": mostly(st.lists(CELL, max_size=6), st.one_of(st.none(), st.text(max_size=3)), one_in=30),
     "nbformat": mostly(st.just(4), st.sampled_from([3, 5, "4", None]), one_in=30)},
    optional={"metadata": st.one_of(st.just({"kernelspec": {"name": "python3", "language": "python"}}),
                                    st.none(), st.text(max_size=3), st.just({"kernelspec": "x"})),
              "nbformat_minor": st.integers(0, 5)},
)
# File names: any printable unicode the file system takes (no "/", no NUL, no lone surrogates).
NAME_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\"),
                    min_size=1, max_size=12).filter(lambda s: s not in (".", "..") and len(s.encode()) < 200)


@st.composite
def notebook_files(draw) -> list[tuple[str, bytes]]:
    files = []
    for _ in range(draw(st.integers(1, 3))):
        nb = draw(NOTEBOOK)
        text = json.dumps(nb, ensure_ascii=draw(st.booleans()))
        # surrogatepass keeps lone surrogates as UTF-8 bytes only where ensure_ascii left them raw
        # (bytes no UTF-8 decoder accepts); json's "\\udcff" escapes stay for ensure_ascii=True.
        encoding = draw(mostly(st.sampled_from(["utf-8", "utf-8-sig"]),
                               st.sampled_from(["utf-16", "latin-1", "cut", "bytes"]), one_in=25))
        if encoding == "cut":
            data = text.encode("utf-8", "surrogatepass")[: draw(st.integers(0, max(0, len(text) - 1)))]
        elif encoding == "bytes":
            data = draw(st.binary(max_size=64))
        else:
            data = text.encode(encoding, "surrogatepass" if encoding.startswith("utf-8") else "replace")
        folder = draw(st.sampled_from(["notebooks", "notebooks/sub", "notebooks/ünï"]))
        name = draw(mostly(st.sampled_from(["prep", "model", "data_v2", "Données", "étape 1", "Model"]), NAME_TEXT,
                           one_in=8))
        files.append((f"{folder}/{name}.ipynb", data))
    return files


def _digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _check_error(error: NbprodError, sources: dict[str, bytes]) -> None:
    text = str(error)
    assert "\n" not in text and text.strip() == text, text
    assert error.path is not None, text
    assert text.startswith(" ".join(str(error.path).split())), text  # whitespace is folded onto one line
    path = str(error.path)
    assert path in sources or path in ("params.yaml", "dvc.yaml", "pyproject.toml"), text
    if path in sources and not any(marker in error.message for marker in FILE_LEVEL):
        assert error.cell is not None and error.cell >= 1, f"a cell's fault names no cell: {text}"


@pytest.mark.slow  # 2,000 examples
@settings(max_examples=2000, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(files=notebook_files(), check=st.booleans())
def test_compile_never_crashes_and_changes_nothing_on_error(files, check):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / ".dvc").mkdir()
        (root / "pyproject.toml").write_text('[tool.nbprod]\nnotebooks = ["notebooks"]\n', encoding="utf-8")
        sources: dict[str, bytes] = {}
        for rel, data in files:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
            sources[rel] = data
        before = _digest(root)
        project = load_project(root)
        try:
            compile_project(project, check=check)
        except NbprodError as error:
            event(f"error: {error.message[:25]}")
            _check_error(error, {(root / rel).resolve().relative_to(root.resolve()).as_posix(): d
                                 for rel, d in sources.items()})
            assert _digest(root) == before
            return
        event("compiled")
        for rel, data in sources.items():
            assert (root / rel).read_bytes() == data, f"compile changed source notebook {rel}"
        if check:
            assert _digest(root) == before
        else:
            after = _digest(root)
            again = compile_project(project)
            assert again.changed == [] and again.removed == [] and _digest(root) == after
