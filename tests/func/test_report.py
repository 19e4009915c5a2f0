"""Run reports, the index, metrics and compare, on a real git + DVC project executed by Papermill."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

from helpers.paths import ARTIFACTS, REPO

ROOT = REPO
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

# The stage command of the fixture project: what `nbprod exec` does, reduced to the report contract
# (executed notebook with metadata.nbprod, metrics/<stage>.json from the numeric scraps).
RUN_STAGE = textwrap.dedent('''
    import datetime, json, platform, subprocess, sys, time
    import papermill as pm, yaml
    from nbprod.executed.scraps import numeric_metrics, read_scraps

    stage = sys.argv[1]
    params = (yaml.safe_load(open("params.yaml")) or {}).get(stage, {})
    started, t0 = datetime.datetime.now().astimezone().isoformat(), time.perf_counter()
    status, error = "ok", None
    try:
        pm.execute_notebook(f"notebooks/{stage}.ipynb", f"reports/{stage}.ipynb", parameters=params,
                            kernel_name="python3", progress_bar=False, log_output=False)
    except pm.PapermillExecutionError as exc:
        status, error = "failed", {"cell": exc.exec_count, "ename": exc.ename, "evalue": exc.evalue}
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True).stdout.strip())
    nb = json.load(open(f"reports/{stage}.ipynb"))
    nb["metadata"]["nbprod"] = {
        "stage": stage, "notebook": f"notebooks/{stage}.ipynb", "started": started,
        "ended": datetime.datetime.now().astimezone().isoformat(), "duration": time.perf_counter() - t0,
        "git": {"commit": commit, "dirty": dirty}, "params": params, "python": platform.python_version(),
        "packages": {"papermill": pm.__version__}, "status": status, "error": error}
    json.dump(nb, open(f"reports/{stage}.ipynb", "w"), indent=1)
    json.dump(numeric_metrics(read_scraps(nb)), open(f"metrics/{stage}.json", "w"), indent=2, sort_keys=True)
    sys.exit(1 if status == "failed" else 0)
''')

PREPARE = [
    ("parameters", "rows = 40"),
    (None, "import json, os\nfrom nbprod.record import record\nos.makedirs('data', exist_ok=True)"),
    (None, "values = [i * 0.5 for i in range(rows)]\njson.dump(values, open('data/prepared.json', 'w'))\n"
           "record('rows', rows)\nrecord('note', 'prepared ok')"),
]
TRAIN = [
    ("parameters", "scale = 2.0\nfail = False"),
    (None, "import json\nimport matplotlib\nmatplotlib.use('agg')\nimport matplotlib.pyplot as plt\n"
           "import pandas as pd\nfrom nbprod.record import record"),
    (None, "values = json.load(open('data/prepared.json'))\nscore = round(sum(values) * scale / 1000, 4)\n"
           "if fail:\n    raise ValueError('training diverged')"),
    (None, "record('score', score)\nrecord('n_values', len(values))\n"
           "record('table', pd.DataFrame({'k': ['a', 'b'], 'v': [1.5, 2.5]}))\n"
           "fig, ax = plt.subplots(figsize=(3, 2))\nax.plot(values)\nrecord('curve', fig)"),
]


def _notebook(cells) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for tag, source in cells:
        cell = nbformat.v4.new_code_cell(source)
        if tag:
            cell.metadata.tags = [tag]
        nb.cells.append(cell)
    return nb


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout


def project_env() -> dict:
    """Stage commands find this venv's python, and kernels import this checkout's nbprod."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def dvc(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, capture_output=True, text=True,
                          env=project_env())


def make_project(root: Path) -> Path:
    """A two-stage project (prepare -> train) under git and DVC, not yet run."""
    (root / "notebooks").mkdir(parents=True)
    (root / "reports").mkdir()
    (root / "metrics").mkdir()
    nbformat.write(_notebook(PREPARE), root / "notebooks" / "prepare.ipynb")
    nbformat.write(_notebook(TRAIN), root / "notebooks" / "train.ipynb")
    (root / "run_stage.py").write_text(RUN_STAGE)
    (root / "params.yaml").write_text("prepare:\n  rows: 40\ntrain:\n  scale: 2.0\n  fail: false\n")
    (root / "pyproject.toml").write_text('[tool.nbprod]\nnotebooks = ["notebooks"]\n')
    (root / "dvc.yaml").write_text(textwrap.dedent("""\
        stages:
          prepare:
            cmd: python run_stage.py prepare
            deps: [notebooks/prepare.ipynb, run_stage.py]
            params: [prepare.rows]
            outs: [data/prepared.json, reports/prepare.ipynb]
            metrics: [{metrics/prepare.json: {cache: false}}]
          train:
            cmd: python run_stage.py train
            deps: [notebooks/train.ipynb, data/prepared.json, run_stage.py]
            params: [train.scale, train.fail]
            outs: [reports/train.ipynb]
            metrics: [{metrics/train.json: {cache: false}}]
        """))
    (root / ".gitignore").write_text("reports/*.html\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "test@example.com")
    git(root, "config", "user.name", "Test")
    dvc(root, "init", "-q")
    dvc(root, "config", "core.autostage", "true")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "project")
    return root


def repro(root: Path) -> subprocess.CompletedProcess:
    return dvc(root, "repro")


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two committed runs: train.scale 2.0 then 3.0; reports rendered for the second."""
    from nbprod.core.project import load_project
    from nbprod.report import render_reports

    root = make_project(tmp_path_factory.mktemp("reports") / "proj")
    for scale in ("2.0", "3.0"):
        text = (root / "params.yaml").read_text()
        (root / "params.yaml").write_text(text.replace("scale: 2.0", f"scale: {scale}"))
        done = repro(root)
        assert done.returncode == 0, done.stderr[-3000:]
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", f"train with scale {scale}")
    proj = load_project(root)
    paths = render_reports(proj, no_input=True)
    assert paths[-1] == root / "reports" / "index.html"
    return proj


def test_stage_report_header(two_runs):
    root = two_runs.root
    html = (root / "reports" / "train.html").read_text()
    lock_hash = next(d["md5"] for d in __import__("yaml").safe_load((root / "dvc.lock").read_text())
                     ["stages"]["train"]["deps"] if d["path"] == "data/prepared.json")
    run_commit = git(root, "rev-parse", "HEAD~1").strip()  # the run happened before its commit
    assert "Stage <code>train</code>" in html and "notebooks/train.ipynb" in html
    assert run_commit[:12] in html
    assert lock_hash in html, "input data hash from dvc.lock"
    assert f"{sys.version_info.major}.{sys.version_info.minor}" in html and "papermill" in html
    assert 'class="metric" data-metric="score"' in html and ">1.17<" in html
    assert "data:image/png;base64," in html  # the recorded figure, inline
    cells = html.split("Cell durations", 1)[1].split("</table>", 1)[0]
    assert "record('score', score)" in cells.replace("&#x27;", "'") and " s</td>" in cells
    assert "This run failed" not in html
    # Offline: no scripts or styles from anywhere.
    assert "<script src" not in html and "cdn" not in html.lower().replace("cdnjs", "cdn")


def test_no_input_report_hides_code_keeps_results(two_runs):
    html = (two_runs.root / "reports" / "train.noinput.html").read_text()
    assert "record(" not in html and "json.load(open" not in html
    assert ">1.17<" in html and "data:image/png;base64," in html


def test_index_has_dag_stages_and_history(two_runs):
    html = (two_runs.root / "reports" / "index.html").read_text()
    assert html.count('class="stage-node"') == 2
    assert 'class="edge"' in html, "prepare -> train edge"
    assert 'href="train.html"' in html and 'href="train.noinput.html"' in html
    assert 'data-metric="score">1.17<' in html
    # score over the two committed runs: 0.78 then 1.17
    chart = html.split('aria-label="train · score history"', 1)[1].split("</svg>", 1)[0]
    assert chart.count("<circle") == 2 and "score = 0.78" in chart and "score = 1.17" in chart
    assert "<script" not in html


def test_compare_two_commits(two_runs, monkeypatch, capsys):
    from nbprod.cli import main
    from nbprod.report import compare

    comparison = compare(two_runs, "HEAD~1", "HEAD")
    rows = {(s, m): (a, b, d) for s, m, a, b, d in comparison.metric_rows()}
    assert rows[("train", "score")][:2] == (0.78, 1.17)
    assert rows[("train", "score")][2] == pytest.approx(0.39)
    assert rows[("prepare", "rows")] == (40, 40, 0)
    assert comparison.param_rows() == [("train.scale", 2.0, 3.0)]
    durations = dict((s, (a, b)) for s, a, b in comparison.duration_rows())
    assert all(v is not None and v > 0 for pair in durations.values() for v in pair)

    monkeypatch.chdir(two_runs.root)
    out = two_runs.root / "reports" / "ab.html"
    assert main(["compare", "HEAD~1", "HEAD", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "train.scale" in printed and "+0.39" in printed
    page = out.read_text()
    assert "+0.39" in page and "train.scale" in page
    assert main(["compare", "no-such-rev", "HEAD"]) == 2
    assert "neither a git revision nor a DVC experiment" in capsys.readouterr().err


def test_compare_with_experiment(two_runs, tmp_path):
    import shutil

    from nbprod.core.project import load_project
    from nbprod.report import compare

    # `dvc exp run` applies its results to the work tree: use a copy, the other tests read this one.
    root = tmp_path / "exp"
    shutil.copytree(two_runs.root, root, symlinks=True)
    done = dvc(root, "exp", "run", "-n", "bigger", "-S", "train.scale=4.0")
    assert done.returncode == 0, done.stderr[-3000:]
    comparison = compare(load_project(root), "HEAD", "bigger")
    assert comparison.b.kind == "experiment"
    rows = {(s, m): (a, b) for s, m, a, b, _ in comparison.metric_rows()}
    assert rows[("train", "score")] == (1.17, 1.56)
    assert comparison.param_rows() == [("train.scale", 3.0, 4.0)]


def test_metrics_command(two_runs, monkeypatch, capsys):
    from nbprod.cli import main

    monkeypatch.chdir(two_runs.root)
    assert main(["metrics", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["train"]["score"] == 1.17 and shown["prepare"] == {"rows": 40}
    done = dvc(two_runs.root, "metrics", "show", "--json")
    assert done.returncode == 0 and "score" in done.stdout
    assert main(["report", "train"]) == 0
    assert "reports/train.html" in capsys.readouterr().out
    assert main(["report", "no_such_stage"]) == 2
    assert "no executed notebook for stage(s) no_such_stage" in capsys.readouterr().err


def test_failed_run_opens_with_a_banner(two_runs, tmp_path):
    import shutil

    from nbprod.report.stage_report import render_stage_report

    root = tmp_path / "failing"
    shutil.copytree(two_runs.root, root, symlinks=True)
    (root / "params.yaml").write_text((root / "params.yaml").read_text().replace("fail: false", "fail: true"))
    assert repro(root).returncode != 0
    html = render_stage_report(root, root / "reports" / "train.ipynb").read_text()
    banner = html.split('class="banner"', 1)[1].split("</div>", 1)[0]
    assert "This run failed" in banner and "ValueError: training diverged" in banner
    anchor = banner.split('href="#', 1)[1].split('"', 1)[0]
    assert f'id="{anchor}"' in html, "the banner links to the failing cell"
    failing = html.split(f'id="{anchor}"', 1)[1][:6000]
    assert "raise" in failing and "ValueError" in failing


@pytest.mark.browser
def test_pages_render_in_chromium(two_runs):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            requests = []
            page.on("request", lambda r: requests.append(r.url))
            for name in ("index", "train"):
                page.goto((two_runs.root / "reports" / f"{name}.html").as_uri())
                text = page.inner_text("body")
                assert len(text) > 200 and "1.17" in text
                page.screenshot(path=str(ARTIFACTS / f"report-fixture-{name}.png"), full_page=True)
            box = page.locator("img").first.bounding_box()
            assert box and box["width"] > 50 and box["height"] > 50  # the figure is drawn
            page.goto((two_runs.root / "reports" / "index.html").as_uri())
            assert page.locator("svg.dag a.stage-node").count() == 2
            page.locator('svg.dag a[data-stage="train"]').click()
            assert page.url.endswith("/train.html")
        finally:
            browser.close()
    assert all(url.startswith(("file:", "data:")) for url in requests), requests


@pytest.mark.browser
def test_example_project_index_and_report_in_chromium(ran_copy):
    """The example pipeline run by `nbprod run`, reports rendered by `nbprod report`, read in a browser."""
    from playwright.sync_api import sync_playwright

    done = subprocess.run([str(Path(sys.executable).parent / "nbprod"), "report", "--no-input"], cwd=ran_copy,
                          capture_output=True, text=True, env=project_env())
    assert done.returncode == 0, done.stderr
    metrics = {p.stem: json.loads(p.read_text()) for p in (ran_copy / "metrics").glob("*.json")}
    stage, values = next((s, v) for s, v in sorted(metrics.items()) if v)
    name, value = next(iter(values.items()))
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto((ran_copy / "reports" / "index.html").as_uri())
            text = page.inner_text("body")
            assert len(text) > 200
            assert page.locator("svg.dag .stage-node").count() == len(metrics)
            shown = page.locator(f'tr[data-stage="{stage}"] [data-metric="{name}"]').inner_text()
            assert shown.replace(",", "") and float(shown.replace(",", "")) == pytest.approx(value, rel=1e-3)
            page.screenshot(path=str(ARTIFACTS / "example-index.png"), full_page=True)
            page.goto((ran_copy / "reports" / f"{stage}.html").as_uri())
            card = page.locator(f'.metric[data-metric="{name}"] .value').inner_text()
            assert float(card.replace(",", "")) == pytest.approx(value, rel=1e-3)
            assert len(page.inner_text("body")) > 500
            page.screenshot(path=str(ARTIFACTS / f"example-{stage}.png"), full_page=True)
        finally:
            browser.close()
