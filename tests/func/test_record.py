"""nbprod.record and nbprod.executed.scraps against Scrapbook, both ways, in a real kernel run by Papermill."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pytest

from helpers.paths import REPO
from nbprod.executed.scraps import DisplayScrap, numeric_metrics, read_scraps

ROOT = REPO

CELLS = [
    # Measured first, before anything else in the kernel imports the heavy modules.
    "import sys, time\n"
    "t0 = time.perf_counter()\n"
    "import nbprod.record\n"
    "import_seconds = time.perf_counter() - t0\n"
    "heavy = sorted(m for m in ('pandas', 'scrapbook', 'papermill', 'nbformat', 'matplotlib', 'pyarrow')\n"
    "               if m in sys.modules)",
    "import json\n"
    "print(json.dumps({'import_seconds': import_seconds, 'heavy': heavy}))",
    "import numpy as np, pandas as pd\n"
    "import matplotlib\nmatplotlib.use('agg')\nimport matplotlib.pyplot as plt\n"
    "from nbprod.record import record\n"
    "record('accuracy', 0.9375)\n"
    "record('rows', np.int64(569))\n"
    "record('passed', True)\n"
    "record('model', 'logistic')\n"
    "record('config', {'C': 1.0, 'features': ['a', 'b'], 'nested': {'k': [1, 2]}})\n"
    "record('confusion', pd.DataFrame({'pred_0': [50, 3], 'pred_1': [2, 59]}, index=['true_0', 'true_1']))\n"
    "fig, ax = plt.subplots(figsize=(2, 2))\nax.plot([0, 1], [0, 1])\n"
    "record('roc', fig)",
    "import scrapbook as sb\n"
    "sb.glue('glued_f1', 0.88)\n"
    "sb.glue('glued_name', 'from scrapbook')\n"
    "sb.glue('glued_list', [1, 2, 3])\n"
    "sb.glue('glued_frame', pd.DataFrame({'x': [1.5, 2.5]}))\n"
    "sb.glue('glued_shown', 7, display=True)",
]


@pytest.fixture(scope="module")
def executed(tmp_path_factory) -> Path:
    """One real kernel run of a notebook that records with nbprod and glues with scrapbook."""
    import papermill as pm

    folder = tmp_path_factory.mktemp("record")
    nb = nbformat.v4.new_notebook()
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(src) for src in CELLS]
    source, out = folder / "recording.ipynb", folder / "recording.out.ipynb"
    nbformat.write(nb, source)
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(ROOT) + (os.pathsep + old if old else "")
    try:
        pm.execute_notebook(str(source), str(out), kernel_name="python3", progress_bar=False, cwd=str(folder))
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old
    return out


@pytest.mark.slow  # the module's executed notebook: a real kernel run (~15 s)
def test_scrapbook_reads_what_record_wrote(executed):
    import scrapbook as sb

    scraps = sb.read_notebook(str(executed)).scraps
    assert scraps["accuracy"].data == 0.9375 and scraps["accuracy"].encoder == "json"
    assert scraps["rows"].data == 569
    assert scraps["passed"].data is True
    assert scraps["model"].data == "logistic" and scraps["model"].encoder == "text"
    assert scraps["config"].data == {"C": 1.0, "features": ["a", "b"], "nested": {"k": [1, 2]}}
    frame = scraps["confusion"].data
    assert scraps["confusion"].encoder == "pandas"
    assert frame.loc["true_1", "pred_1"] == 59 and list(frame.columns) == ["pred_0", "pred_1"]
    roc = scraps["roc"]
    assert roc.data is None and roc.encoder == "display"
    assert "image/png" in roc.display["data"]


@pytest.mark.slow  # the module's executed notebook: a real kernel run (~15 s)
def test_read_scraps_reads_record_and_glue(executed):
    nb = json.loads(executed.read_text())
    scraps = read_scraps(nb)
    assert scraps["accuracy"] == 0.9375 and scraps["rows"] == 569 and scraps["passed"] is True
    assert scraps["model"] == "logistic"
    assert scraps["config"]["nested"] == {"k": [1, 2]}
    assert scraps["confusion"].loc["true_0", "pred_0"] == 50
    assert isinstance(scraps["roc"], DisplayScrap) and scraps["roc"].png
    # What sb.glue wrote, read without scrapbook:
    assert scraps["glued_f1"] == 0.88
    assert scraps["glued_name"] == "from scrapbook"
    assert scraps["glued_list"] == [1, 2, 3]
    assert scraps["glued_frame"]["x"].tolist() == [1.5, 2.5]
    assert scraps["glued_shown"] == 7  # data wins over its display twin
    assert "glued_frame" not in read_scraps(nb, include_frames=False)


@pytest.mark.slow  # the module's executed notebook: a real kernel run (~15 s)
def test_metrics_are_the_numbers(executed):
    metrics = numeric_metrics(read_scraps(json.loads(executed.read_text()), include_frames=False))
    assert metrics == {"accuracy": 0.9375, "rows": 569, "glued_f1": 0.88, "glued_shown": 7}


@pytest.mark.slow  # the module's executed notebook: a real kernel run (~15 s)
def test_figure_is_shown_once(executed):
    nb = json.loads(executed.read_text())
    pngs = [o for o in nb["cells"][2]["outputs"] if "image/png" in o.get("data", {})]
    assert len(pngs) == 1 and pngs[0]["metadata"]["scrapbook"] == {"name": "roc", "data": False, "display": True}


@pytest.mark.slow  # the module's executed notebook: a real kernel run (~15 s)
def test_import_in_kernel_is_light(executed):
    nb = json.loads(executed.read_text())
    measured = json.loads("".join(nb["cells"][1]["outputs"][0]["text"]))
    assert measured["heavy"] == []
    assert measured["import_seconds"] < 0.05
