"""Imports carried between stages (notebooks/carry.py), in process: the marked prelude, split stages that
end with run-all's values, and what is still refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.notebooks import code_notebook
from nbprod.core.errors import NbprodError
from nbprod.core.project import load_project
from nbprod.notebooks.compile import compile_project, generate
from nbprod.notebooks.notebook import cell_source
from nbprod.notebooks.pipeline import load_pipeline


SPREAD = [
    (["stage:load"], "import math\nimport os.path, json as js\nfrom collections import (\n    Counter,\n"
                     "    OrderedDict as OD,\n)\nx = math.pi"),
    (["stage:use"], "y = math.floor(x) + len(js.dumps([1]))"),
    ([], "import statistics\nz = statistics.mean([1, 2, 4])"),
    (["stage:late"], "c = Counter('aab')\nw = os.path.join('a', 'b')\nm = statistics.median([y, z, 10])"),
]


def _scratch(root: Path, cells) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / ".dvc").mkdir(exist_ok=True)
    (root / "pyproject.toml").write_text('[tool.nbprod]\nnotebooks = ["nb"]\n', encoding="utf-8")
    (root / "nb").mkdir(exist_ok=True)
    (root / "nb" / "flow.ipynb").write_text(json.dumps(code_notebook(cells)), encoding="utf-8")
    return root


def _stage_cells(root: Path, stage: str) -> list[dict]:
    return json.loads((root / ".nbprod" / "stages" / f"{stage}.ipynb").read_text(encoding="utf-8"))["cells"]


def test_imports_are_carried_in_a_marked_prelude_in_source_order(tmp_path):
    root = _scratch(tmp_path / "p", SPREAD)
    compile_project(load_project(root))
    use = _stage_cells(root, "use")
    tags = [(c.get("metadata") or {}).get("tags") for c in use]
    assert tags.index(["nbprod-imports"]) < tags.index(["nbprod-inputs"])  # modules first, then data
    prelude = cell_source(next(c for c in use if "nbprod-imports" in c["metadata"].get("tags", [])))
    assert prelude == ("# nbprod: imports carried from earlier stages of nb/flow.ipynb (generated: edit the "
                       "source notebook)\n# from stage load, cell 1\nimport math\n"
                       "# from stage load, cell 1\nimport os.path, json as js")
    late = cell_source(next(c for c in _stage_cells(root, "late")
                            if "nbprod-imports" in c["metadata"].get("tags", [])))
    assert late.splitlines()[1:] == ["# from stage load, cell 1", "import os.path, json as js",
                                     "# from stage load, cell 1", "from collections import (", "    Counter,",
                                     "    OrderedDict as OD,", ")", "# from stage use, cell 3",
                                     "import statistics"]
    # Modules are not data: only x, y, z are passed.
    pipeline = load_pipeline(load_project(root))
    assert pipeline.stage("use").inputs == {"x": "load"}
    assert pipeline.stage("late").inputs == {"y": "use", "z": "use"}
    assert "nbprod-imports" not in json.dumps(_stage_cells(root, "load"))
    # `nbprod pipeline` (the server's pipeline JSON) lists them for the Lab panel.
    listed = {s["name"]: s["carried_imports"] for s in pipeline.to_dict()["stages"]}
    assert listed["load"] == []
    assert listed["use"] == [{"source": "import math", "stage": "load", "cell": 1, "line": 1},
                             {"source": "import os.path, json as js", "stage": "load", "cell": 1, "line": 2}]
    assert [c["source"] for c in listed["late"]][-1] == "import statistics"


def test_split_stages_with_carried_imports_equal_run_all(tmp_path, monkeypatch):
    root = _scratch(tmp_path / "p", SPREAD)
    reference: dict = {}
    for _, source in SPREAD:
        exec(source, reference)
    pipeline = load_pipeline(load_project(root))
    files = generate(pipeline)
    monkeypatch.setenv("NBPROD_ROOT", str(root))
    for stage in pipeline.order():
        namespace: dict = {}  # a fresh kernel per stage
        for cell in json.loads(files[stage.stage_notebook])["cells"]:
            if cell["cell_type"] == "code":
                exec(cell_source(cell), namespace)
        for name in {"x", "y", "z", "c", "w", "m"} & set(namespace):
            assert namespace[name] == reference[name], name


@pytest.mark.parametrize("cells, expected", [
    # Imported on some branches only: not a top-level statement, so not carried (today's refusal).
    ([(["stage:a"], "try:\n    import math\nexcept ImportError:\n    pass"), (["stage:b"], "y = math.pi")],
     "nb/flow.ipynb cell 1: stage 'b' uses 'math', imported in stage 'a'. Fix: tag the import cell 'shared'"),
], ids=["conditional import"])
def test_conditional_imports_are_still_refused(tmp_path, cells, expected):
    root = _scratch(tmp_path / "p", cells)
    with pytest.raises(NbprodError) as raised:
        compile_project(load_project(root))
    assert expected in str(raised.value)
    assert not (root / ".nbprod" / "stages").exists()


def test_a_name_also_bound_otherwise_keeps_todays_rules(tmp_path):
    """Imported, then assigned: not carried (the stage ends with a number); refused as before."""
    root = _scratch(tmp_path / "p", [(["stage:a"], "import math\nmath = 3"), (["stage:b"], "y = math + 1")])
    with pytest.raises(NbprodError, match="stage 'b' uses 'math', imported in stage 'a'"):
        load_pipeline(load_project(root))
    root = _scratch(tmp_path / "q", [(["stage:a"], "import math"), ([], "math = 3"), (["stage:b"], "y = math + 1")])
    with pytest.raises(NbprodError, match="stage 'b' uses 'math', imported in stage 'a'"):
        load_pipeline(load_project(root))  # the last binding is an assignment: not carried


def test_a_stage_that_imports_again_is_the_one_carried(tmp_path):
    cells = [(["stage:a"], "import json"), (["stage:b"], "import json as json\nx = 1"),
             (["stage:c"], "y = json.dumps(2)")]
    pipeline = load_pipeline(load_project(_scratch(tmp_path / "p", cells)))
    assert [(c.stage, c.source) for c in pipeline.stage("c").carried] == [("b", "import json as json")]
