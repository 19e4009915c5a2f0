"""Definitions carried between stages (issue 27): a top-level ``def``/``class`` of an earlier stage that a
later stage uses is repeated in a generated, marked cell of that stage (after the carried imports, before
the inputs), with what it needs; what cannot be carried is refused on one line naming the name and line;
the split pipeline equals Run All, in process (hypothesis) and through real kernels (``nbprod run``)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from helpers.commands import nbprod, run
from helpers.notebooks import code_notebook
from helpers.paths import BIN
from nbprod.notebooks.compile import compile_project, generate
from nbprod.core.errors import NbprodError
from nbprod.notebooks.notebook import cell_source
from nbprod.notebooks.pipeline import load_pipeline
from nbprod.core.project import load_project

# A tutorial notebook cut at its headings: each heading's first cell carries stage:NAME, nothing else.
TUTORIAL = [
    ("# Setup", ["stage:setup"], "import functools as ft\nimport math as m\nfrom dataclasses import dataclass\n"
                                 "SCALE = 3\nrate = 2"),
    ("# Helpers", ["stage:helpers"],
     "def traced(fn):\n    @ft.wraps(fn)\n    def wrapper(*args):\n        calls.append(fn.__name__)\n"
     "        return fn(*args)\n    return wrapper\n\n"
     "@ft.lru_cache(maxsize=None)\ndef fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n\n"
     "def is_even(n):\n    return n == 0 or is_odd(n - 1)\n\ndef is_odd(n):\n    return n != 0 and is_even(n - 1)\n\n"
     "@traced\ndef area(r):\n    return m.pi * r * r * SCALE\n\n"
     "class Shape:\n    sides = 0\n    def __init__(self, size):\n        self.size = size\n"
     "    def describe(self):\n        return f'{type(self).__name__} {self.size} {self.sides}'\n\n"
     "class Square(Shape):\n    sides = 4\n    def area(self):\n        return self.size ** 2 * rate\n\n"
     "@dataclass\nclass Point:\n    x: float\n    y: float = 0.0\n    def norm(self):\n"
     "        return m.hypot(self.x, self.y)\n\n"
     "def over(v, limit=SCALE):\n    return v > limit\n\n"
     "calls = []\nsquare = Square(3)\norigin = Point(0.0)"),
    ("# Use them", ["stage:use"], "f = fib(20)\nparity = (is_even(10), is_odd(7))\na = area(2.0)\n"
                                  "d = square.describe()\nsq = square.area()\np = Point(3.0, 4.0)\n"
                                  "big = (over(a), over(1))\nsteps = [fib, is_even]"),
    ("# Report", ["stage:report"], "n = p.norm() + origin.norm()\nsummary = [f, parity, round(a, 6), d, sq, n]\n"
                                   "k = Square(2).describe()\nchained = [s(6) for s in steps]"),
]


def _notebook(cells: list[tuple[str | None, list[str], str]]) -> dict:
    nb = code_notebook([(tags, source) for _, tags, source in cells])
    out = []
    for (heading, _, _), cell in zip(cells, nb["cells"]):
        if heading:
            out.append({"cell_type": "markdown", "metadata": {}, "source": heading})
        out.append(cell)
    nb["cells"] = out
    return nb


def _scratch(root: Path, cells) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / ".dvc").mkdir(exist_ok=True)
    (root / "pyproject.toml").write_text('[tool.nbprod]\nnotebooks = ["nb"]\n', encoding="utf-8")
    (root / "nb").mkdir(exist_ok=True)
    cells = [c if len(c) == 3 else (None, *c) for c in cells]
    (root / "nb" / "flow.ipynb").write_text(json.dumps(_notebook(cells)), encoding="utf-8")
    return root


def _run_all(cells) -> dict:
    namespace = _main_module().__dict__
    for *_, source in cells:
        exec(source, namespace)
    return namespace


def _main_module() -> types.ModuleType:
    """A fresh __main__ whose dict is the namespace, as IPython's user module is (so pickle finds classes)."""
    module = types.ModuleType("__main__")
    sys.modules["__main__"] = module
    return module


def _split_run(root: Path, monkeypatch) -> dict[str, dict]:
    """Each stage notebook executed in process, in a fresh __main__ per stage (a fresh kernel)."""
    pipeline = load_pipeline(load_project(root))
    files = generate(pipeline)
    monkeypatch.setenv("NBPROD_ROOT", str(root))
    monkeypatch.setitem(sys.modules, "__main__", sys.modules["__main__"])
    ends: dict[str, dict] = {}
    for stage in pipeline.order():
        namespace = _main_module().__dict__
        for cell in json.loads(files[stage.stage_notebook])["cells"]:
            if cell["cell_type"] == "code":
                exec(cell_source(cell), namespace)
        ends[stage.name] = namespace
    return ends


def _cells_of(root: Path, stage: str) -> list[dict]:
    return json.loads((root / ".nbprod" / "stages" / f"{stage}.ipynb").read_text(encoding="utf-8"))["cells"]


def _tagged(cells: list[dict], tag: str) -> str | None:
    return next((cell_source(c) for c in cells if tag in c["metadata"].get("tags", [])), None)


def test_definitions_are_carried_after_the_imports_in_source_order_with_what_they_need(tmp_path):
    root = _scratch(tmp_path / "p", TUTORIAL)
    compile_project(load_project(root))
    cells = _cells_of(root, "use")
    tags = [(c.get("metadata") or {}).get("tags") for c in cells]
    assert tags.index(["nbprod-imports"]) < tags.index(["nbprod-definitions"]) < tags.index(["nbprod-inputs"])
    # A default read from data (SCALE) waits for the inputs: that one definition comes after them.
    assert tags[tags.index(["nbprod-inputs"]) + 1] == ["nbprod-definitions"]
    assert cell_source(cells[tags.index(["nbprod-inputs"]) + 1]).splitlines()[1:] == [
        "# from stage helpers, cell 4", "def over(v, limit=SCALE):", "    return v > limit"]
    carried = _tagged(cells, "nbprod-definitions")
    assert carried.startswith("# nbprod: functions and classes carried from earlier stages of nb/flow.ipynb "
                              "(generated: edit the source notebook)\n# from stage helpers, cell 4\ndef traced(fn):")
    order = [re.split(r"[(:]", line)[0] for line in carried.splitlines() if line.startswith(("def ", "class ", "@"))]
    assert order == ["def traced", "@ft.lru_cache", "def fib", "def is_even", "def is_odd", "@traced", "def area",
                     "class Shape", "class Square", "@dataclass", "class Point"]
    # The imports the definitions need come too, under their alias (use itself names no module).
    assert _tagged(cells, "nbprod-imports").splitlines()[1:] == [
        "# from stage setup, cell 2", "import functools as ft", "# from stage setup, cell 2", "import math as m",
        "# from stage setup, cell 2", "from dataclasses import dataclass"]
    pipeline = load_pipeline(load_project(root))
    # Data read inside a carried body (SCALE, calls) is an input; rate, a plain constant, too.
    assert pipeline.stage("use").inputs == {"SCALE": "setup", "calls": "helpers", "rate": "setup",
                                            "square": "helpers"}
    # report names Square, loads Points and a list of two functions: all defined before its inputs.
    assert [d.name for d in pipeline.stage("report").carried_definitions] == ["fib", "is_even", "is_odd", "Shape",
                                                                             "Square", "Point"]
    listed = pipeline.to_dict()
    stage_lists = {s["name"]: [d["name"] for d in s["carried_definitions"]] for s in listed["stages"]}
    assert stage_lists["setup"] == stage_lists["helpers"] == []
    once = {d["name"]: d["into"] for d in listed["carried_definitions"]}
    assert once["Square"] == ["use", "report"] and once["fib"] == ["use", "report"] and once["area"] == ["use"]
    assert len(listed["carried_definitions"]) == 9
    shape = next(d for d in listed["carried_definitions"] if d["name"] == "Shape")
    assert shape == {"name": "Shape", "kind": "class", "source": shape["source"], "stage": "helpers", "cell": 4,
                     "line": 22, "notebook": "nb/flow.ipynb", "into": ["use", "report"]}
    assert shape["source"].startswith("class Shape:\n    sides = 0")


def test_nbprod_pipeline_text_lists_each_carried_definition_once_with_the_stages_it_reaches(tmp_path):
    root = _scratch(tmp_path / "p", TUTORIAL)
    text = nbprod("pipeline", "--text", cwd=root).stdout
    assert "  definitions carried: traced, fib, is_even, is_odd, area, Shape, Square, Point, over\n" in text
    assert "  definitions carried: fib, is_even, is_odd, Shape, Square, Point\n" in text  # report
    assert text.count("class Square: ") == 1
    assert "  class Square: nb/flow.ipynb cell 4 line 29 (stage helpers) -> use, report\n" in text
    assert "  function fib: nb/flow.ipynb cell 4 line 8 (stage helpers) -> use, report\n" in text
    assert "  function area: nb/flow.ipynb cell 4 line 18 (stage helpers) -> use\n" in text
    listed = json.loads(nbprod("pipeline", cwd=root).stdout)["carried_definitions"]
    assert [d["name"] for d in listed] == ["traced", "fib", "is_even", "is_odd", "area", "Shape", "Square", "Point",
                                           "over"]


def test_the_tutorial_split_at_its_headings_equals_run_all_in_process(tmp_path, monkeypatch):
    root = _scratch(tmp_path / "p", TUTORIAL)
    monkeypatch.setitem(sys.modules, "__main__", sys.modules["__main__"])
    reference = _run_all(TUTORIAL)
    ends = _split_run(root, monkeypatch)
    for name in ["f", "parity", "a", "d", "sq", "big"]:
        assert ends["use"][name] == reference[name], name
    assert repr(ends["use"]["p"]) == repr(reference["p"]) == "Point(x=3.0, y=4.0)"  # two classes named Point
    for name in ["n", "summary", "k", "chained"]:
        assert ends["report"][name] == reference[name], name
    assert ends["use"]["calls"] == ["area"] == reference["calls"]


def test_a_changed_definition_changes_only_the_stages_that_use_it(tmp_path):
    root = _scratch(tmp_path / "p", TUTORIAL)
    compile_project(load_project(root))
    edited = [list(c) for c in TUTORIAL]
    edited[1][2] = edited[1][2].replace("return m.hypot(self.x, self.y)", "return m.hypot(self.y, self.x)")
    (root / "nb" / "flow.ipynb").write_text(json.dumps(_notebook([tuple(c) for c in edited])), encoding="utf-8")
    changed = compile_project(load_project(root)).changed
    # Point is defined in helpers and carried into use and report; setup does not have it.
    assert changed == [".nbprod/stages/helpers.ipynb", ".nbprod/stages/report.ipynb", ".nbprod/stages/use.ipynb"]
    edited[1][2] = edited[1][2].replace("return m.pi * r * r * SCALE", "return SCALE * m.pi * r * r")  # area
    (root / "nb" / "flow.ipynb").write_text(json.dumps(_notebook([tuple(c) for c in edited])), encoding="utf-8")
    assert compile_project(load_project(root)).changed == [".nbprod/stages/helpers.ipynb",
                                                           ".nbprod/stages/use.ipynb"]


# --- refused, each with its one-line message -------------------------------------------------

REFUSED = [
    ("closes over a name rebound later",
     [(["stage:a"], "K = 1\ndef f(v, k=K):\n    return v + k\nK = 2"), (["stage:b"], "y = f(1)")],
     "nb/flow.ipynb cell 1: line 2: 'f' reads 'K' when it is defined, and 'K' is bound again or changed later "
     "(stage 'a', cell 1), so stage 'b' would get another 'f' than Run All. Fix: bind K once, or pass it to f as "
     "an argument"),
    ("closes over an import rebound in a later stage",
     [(["stage:a"], "import math as mod\ndef f(v=mod.pi):\n    return v"), (["stage:c"], "import cmath as mod"),
      (["stage:b"], "y = f()")],
     "nb/flow.ipynb cell 1: line 2: 'f' reads 'mod' when it is defined, and 'mod' is bound again or changed "
     "later (stage 'c', cell 2), so stage 'b' would get another 'f' than Run All. Fix: bind mod once, or pass it to f "
     "as an argument"),
    ("closes over a value changed in place later",
     [(["stage:a"], "cfg = {'k': 1}\ndef f(v=cfg['k']):\n    return v"), (["stage:c"], "del cfg['k']"),
      (["stage:b"], "y = f()")],
     "nb/flow.ipynb cell 1: line 2: 'f' reads 'cfg' when it is defined, and 'cfg' is bound again or changed later "
     "(stage 'c', cell 2), so stage 'b' would get another 'f' than Run All. Fix: bind cfg once, or pass it to f as "
     "an argument"),
    ("a class reading data when defined, whose instances are passed",
     [(["stage:a"], "K = 2\nclass Box:\n    size = K\nb = Box()"), (["stage:b"], "y = Box().size + b.size")],
     "nb/flow.ipynb cell 1: line 2: class 'Box' reads 'K' when it is defined, so nbprod defines it in stage 'b' "
     "after loading the inputs, yet input 'b' was built with it and needs it to load. Fix: read K inside a method "
     "of Box instead, or pass it as an argument"),
    ("defined inside if",
     [(["stage:a"], "import sys\nif sys.version_info > (3,):\n    def f(v):\n        return v"),
      (["stage:b"], "y = f(1)")],
     "nb/flow.ipynb cell 1: line 3: 'f' is defined inside an if block in stage 'a', so nbprod cannot carry it "
     "into stage 'b'. Fix: define f at the top level of the cell, outside the block"),
    ("defined inside try",
     [(["stage:a"], "try:\n    class Box:\n        pass\nexcept Exception:\n    Box = None"),
      (["stage:b"], "y = Box()")],
     "nb/flow.ipynb cell 1: line 2: 'Box' is defined inside a try block in stage 'a', so nbprod cannot carry it "
     "into stage 'b'. Fix: define Box at the top level of the cell, outside the block"),
    ("defined inside a loop",
     [(["stage:a"], "for i in range(2):\n    def f(v):\n        return v"), (["stage:b"], "y = f(1)")],
     "nb/flow.ipynb cell 1: line 2: 'f' is defined inside a for loop in stage 'a', so nbprod cannot carry it "
     "into stage 'b'. Fix: define f at the top level of the cell, outside the loop"),
    ("redefined in a later stage",
     [(["stage:a"], "def f(v):\n    return v"), (["stage:b"], "y = f(1)"), (["stage:c"], "def f(v):\n    return -v")],
     "nb/flow.ipynb cell 1: line 1: 'f' is carried from stage 'a' into stage 'b', and stage 'c' defines it again "
     "(cell 3). Fix: give one of the two definitions another name"),
    ("uses global",
     [(["stage:a"], "count = 0\ndef bump():\n    global count\n    count += 1"), (["stage:b"], "bump()")],
     "nb/flow.ipynb cell 1: line 3: a function assigns a global ('count'), which nbprod cannot pass between "
     "stages. Fix: return the value from the function and assign it in the cell"),
    ("changed after its definition",
     [(["stage:a"], "class Box:\n    pass\nBox.size = 3"), (["stage:b"], "y = Box()")],
     "nb/flow.ipynb cell 1: line 1: 'Box' is a class of stage 'a' that the stage also assigns or changes, so "
     "nbprod cannot carry it into stage 'b'. Fix: define Box once and leave it unchanged (no assignment to it or "
     "its attributes)"),
]


@pytest.mark.parametrize("case, cells, expected", REFUSED, ids=[c[0] for c in REFUSED])
def test_what_cannot_be_carried_is_refused_with_one_line_naming_name_and_line(tmp_path, case, cells, expected):
    root = _scratch(tmp_path / "p", cells)
    with pytest.raises(NbprodError) as raised:
        compile_project(load_project(root))
    assert str(raised.value) == expected
    assert not (root / ".nbprod" / "stages").exists() and not (root / "dvc.yaml").exists()


def test_the_command_line_refuses_with_exit_2_and_one_line(tmp_path):
    root = _scratch(tmp_path / "p", REFUSED[-3][1])
    done = nbprod("compile", cwd=root, check=False)
    assert done.returncode == 2 and done.stderr == f"nbprod: error: {REFUSED[-3][2]}\n"


# --- hypothesis: definitions spread over stages equal Run All -----------------------------------

# Snippets in dependency order; a program takes a subsequence, then uses, and is cut anywhere.
DEFINITIONS = [
    "import math as mm\nimport functools as ft",
    "BASE = 5",
    "def double(v):\n    return 2 * v",
    "def twice(fn):\n    @ft.wraps(fn)\n    def inner(v):\n        return fn(fn(v))\n    return inner",
    "@twice\ndef inc(v):\n    return v + BASE",
    "def fact(n):\n    return 1 if n <= 1 else n * fact(n - 1)",
    "def even(n):\n    return n == 0 or odd(n - 1)\ndef odd(n):\n    return n != 0 and even(n - 1)",
    "class Counter:\n    start = 0\n    def __init__(self):\n        self.n = self.start\n"
    "    def add(self, v):\n        self.n += double(v)\n        return self",
    "class Scaled(Counter):\n    start = 1\n    def total(self):\n        return mm.floor(self.n * mm.pi)",
    "from dataclasses import dataclass\n@dataclass\nclass Pair:\n    a: int\n    b: int = 0\n"
    "    def sum(self):\n        return self.a + self.b + BASE",
    "def shift(v, by=BASE):\n    return v - by",
]
USES = {  # snippet index -> statements that use it (each binding a fresh name)
    2: ["r{i} = double({i})"], 4: ["r{i} = inc({i})"], 5: ["r{i} = fact({i} % 7)"],
    6: ["r{i} = (even({i} % 9), odd({i} % 9))"], 7: ["c{i} = Counter().add({i})", "r{i} = Counter().add({i}).n"],
    8: ["r{i} = Scaled().add({i}).total()"], 9: ["p{i} = Pair({i})", "r{i} = Pair({i}, 2).sum()"],
    10: ["r{i} = shift({i})"],
}
NEEDS = {4: {1, 3}, 8: {7}, 7: {2}, 9: {1}, 10: {1}}


@st.composite
def definition_programs(draw):
    chosen = sorted(set(draw(st.lists(st.sampled_from(sorted(USES)), min_size=1, max_size=5))))
    every = set(chosen)
    for index in list(chosen):
        every |= NEEDS.get(index, set())
    for index in list(every):
        every |= NEEDS.get(index, set())
    cells = [DEFINITIONS[0]] + [DEFINITIONS[i] for i in sorted(every)]
    uses = [i for i in sorted(every) if i in USES]
    for n in range(draw(st.integers(1, 5))):
        index = draw(st.sampled_from(uses))
        cells.append(draw(st.sampled_from(USES[index])).format(i=n + 1))
    # Instances passed on: a later cell reads them (unpickled in the reading stage).
    made = sorted({c.split(" = ")[0] for c in cells if re.match(r"[cp]\d+ = ", c)})
    cells += [f"s{n} = {name}.n" if name.startswith("c") else f"s{n} = {name}.sum()" for n, name in enumerate(made)]
    cuts = sorted(set(draw(st.lists(st.integers(1, len(cells) - 1), max_size=4))))
    return cells, cuts


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(definition_programs())
def test_definitions_spread_over_stages_end_with_the_values_of_run_all(tmp_path_factory, monkeypatch, program):
    source_cells, cuts = program
    stage_of = {0: "s0", **{cut: f"s{n}" for n, cut in enumerate(cuts, start=1)}}
    cells = [([f"stage:{stage_of[i]}"] if i in stage_of else [], s) for i, s in enumerate(source_cells)]
    root = _scratch(tmp_path_factory.mktemp("defs"), cells)
    monkeypatch.setitem(sys.modules, "__main__", sys.modules["__main__"])
    reference = _run_all(cells)
    ends = _split_run(root, monkeypatch)
    pipeline = load_pipeline(load_project(root))
    last = {}
    for stage in pipeline.order():
        for cell in stage.cells:
            for name in cell.facts.writes | cell.facts.mutated:
                last[name] = stage.name
    for name in [n for n in reference if n[:1] in "rs" and n[1:].isdigit()]:
        assert ends[last[name]][name] == reference[name], (name, source_cells, cuts)


# --- real kernels ---------------------------------------------------------------------------

@pytest.mark.slow
def test_nbprod_run_of_the_tutorial_split_at_its_headings_equals_run_all(tmp_path, monkeypatch):
    """Real kernels (forked from the pool) and DVC: the carried classes unpickle the instances passed in."""
    root = tmp_path / "proj"
    root.mkdir()
    (root / "pyproject.toml").write_text('[project]\nname = "ci"\nversion = "0"\n\n[tool.nbprod]\n'
                                         'notebooks = ["notebooks"]\nkernel = "python3"\n', encoding="utf-8")
    (root / "notebooks").mkdir()
    record = (None, [], "import json\nfrom pathlib import Path\n"
                       "Path('values.json').write_text(json.dumps({'summary': summary, 'k': k, 'calls': calls, "
                       "'chained': chained}))")
    (root / "notebooks" / "tutorial.ipynb").write_text(json.dumps(_notebook([*TUTORIAL, record])), encoding="utf-8")
    run("git", "init", "-q", cwd=root)
    run("dvc", "init", "-q", cwd=root)
    done = nbprod("run", "--no-report", cwd=root)
    assert "failed" not in done.stdout
    monkeypatch.setitem(sys.modules, "__main__", sys.modules["__main__"])
    reference = _run_all(TUTORIAL)
    got = json.loads((root / "notebooks" / "values.json").read_text())
    assert got == json.loads(json.dumps({"summary": reference["summary"], "k": reference["k"],
                                         "calls": reference["calls"], "chained": reference["chained"]}))
    # A second run reruns nothing; the stage notebooks hold the carried definitions.
    assert "ran" not in nbprod("run", "--no-report", cwd=root).stdout.replace("ran nothing", "")
    assert "class Square(Shape):" in (root / ".nbprod" / "stages" / "report.ipynb").read_text()
    # nbprod debug sets a stage up the same way: definitions, then inputs (unpickled with them), then late ones.
    done = subprocess.run([str(BIN / "nbprod"), "debug", "use", "--console"], cwd=root, text=True, timeout=120,
                          input="print('LOADED', square.describe(), over(4), Point(6.0, 8.0).norm())\nexit\n",
                          capture_output=True)
    assert done.returncode == 0, done.stderr
    assert "LOADED Square 3 4 True 10.0" in done.stdout
