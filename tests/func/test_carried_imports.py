"""Imports carried between stages (issue 13), in a real run: the split pipeline, its imports spread over
stages, ends with Run All's values. The prelude and the refusals, in process: tests/unit/test_carry.py."""

from __future__ import annotations

import json

import pytest

from helpers.commands import nbprod, run
from helpers.notebooks import code_notebook

SPREAD = [
    (["stage:load"], "import math\nimport os.path, json as js\nfrom collections import (\n    Counter,\n"
                     "    OrderedDict as OD,\n)\nx = math.pi"),
    (["stage:use"], "y = math.floor(x) + len(js.dumps([1]))"),
    ([], "import statistics\nz = statistics.mean([1, 2, 4])"),
    (["stage:late"], "c = Counter('aab')\nw = os.path.join('a', 'b')\nm = statistics.median([y, z, 10])"),
]


@pytest.mark.slow
def test_a_real_run_with_imports_spread_over_stages(tmp_path):
    """Real kernels and DVC: the run succeeds, each value equals Run All's, the kernel of a later stage
    imported the module itself."""
    root = tmp_path / "proj"
    root.mkdir()
    (root / "pyproject.toml").write_text('[project]\nname = "ci"\nversion = "0"\n\n[tool.nbprod]\n'
                                         'notebooks = ["notebooks"]\nkernel = "python3"\n', encoding="utf-8")
    (root / "notebooks").mkdir()
    cells = [*SPREAD, ([], "import nbprod\nnbprod.record('m', m)\nnbprod.record('y', y)")]
    (root / "notebooks" / "flow.ipynb").write_text(json.dumps(code_notebook(cells)), encoding="utf-8")
    run("git", "init", "-q", cwd=root)
    run("dvc", "init", "-q", cwd=root)
    done = nbprod("run", cwd=root)
    assert "failed" not in done.stdout
    reference: dict = {}
    for _, source in SPREAD:
        exec(source, reference)
    assert json.loads((root / "metrics" / "late.json").read_text()) == {"m": reference["m"], "y": reference["y"]}
    html = (root / "reports" / "late.html").read_text(encoding="utf-8")
    assert "imports carried from earlier stages" in html
