"""Reports off the critical path (issue 13): `nbprod run` renders a stage's report only when its
executed notebook changed, in one worker process per run while later stages run; a no-op run writes
nothing under reports/; failed stages get their banner; writes are atomic. Real kernels, DVC, nbconvert."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from helpers.commands import nbprod
from helpers.notebooks import load_nb, save_nb
from helpers.paths import BIN

pytestmark = pytest.mark.slow


def _reports_state(root: Path) -> dict[str, tuple[bytes, int]]:
    """Contents and modification times (ns) of every file under reports/."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted((root / "reports").iterdir())
            if p.is_file()}


def _set_param(notebook: Path, name: str, value: str) -> None:
    nb = load_nb(notebook)
    for cell in nb["cells"]:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            lines = [f"{name} = {value}" if line.startswith(f"{name} =") else line
                     for line in source.splitlines()]
            cell["source"] = "\n".join(lines)
    save_nb(notebook, nb)


def test_run_renders_each_report_once_and_a_noop_run_writes_nothing(project):
    from nbprod.report.freshness import index_stale, stale_stage_reports

    done = nbprod("run", cwd=project)
    assert "Reports:" in done.stdout
    stages = ["prepare", "train", "evaluate"]
    for stage in stages:
        html = (project / "reports" / f"{stage}.html").read_text(encoding="utf-8")
        assert '<meta name="nbprod-rendered-from"' in html and f"Stage <code>{stage}</code>" in html
    assert not stale_stage_reports(project) and not index_stale(project)
    # One worker process rendered every report of the run (nbconvert loaded once), index last.
    logs = sorted((project / ".nbprod" / "runs").glob("*/reports.log"))
    assert len(logs) == 1  # one worker, in the run's folder
    log = logs[0].read_text().splitlines()
    executed = sorted(p.stem for p in (project / "reports").glob("*.ipynb"))
    assert set(stages) <= set(executed)
    assert sorted(log[:-1]) == [f"rendered reports/{s}.html" for s in executed]
    assert log[-1] == "rendered reports/index.html"

    before = _reports_state(project)
    nbprod("run", cwd=project)
    assert _reports_state(project) == before  # same bytes, same mtimes, no file added


def test_only_changed_stages_and_the_index_are_rendered_again(project):
    nbprod("run", cwd=project)
    before = _reports_state(project)
    notebook = next(p for p in (project / "notebooks").glob("*.ipynb") if "evaluate" in p.read_text())
    nb = load_nb(notebook)
    # A new code cell at the end of the notebook changes the last stage only.
    nb["cells"].append({"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
                        "source": "print('one more line')"})
    save_nb(notebook, nb)
    nbprod("run", cwd=project)
    after = _reports_state(project)
    assert after["prepare.html"] == before["prepare.html"]
    assert after["train.html"] == before["train.html"]
    assert after["evaluate.html"] != before["evaluate.html"]
    assert after["index.html"][1] != before["index.html"][1]
    assert "one more line" in after["evaluate.html"][0].decode()


def test_failed_stage_gets_its_banner_report(project):
    notebook = next(p for p in (project / "notebooks").glob("*.ipynb") if "evaluate" in p.read_text())
    nb = load_nb(notebook)
    nb["cells"].append({"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
                        "source": "raise ValueError('boom at the end')"})
    save_nb(notebook, nb)
    done = nbprod("run", cwd=project, check=False)
    assert done.returncode == 1
    html = (project / "reports" / "evaluate.html").read_text(encoding="utf-8")
    assert "This run failed" in html and "ValueError: boom at the end" in html
    index = (project / "reports" / "index.html").read_text(encoding="utf-8")
    assert "Failed stages:" in index


def test_no_report_writes_no_html_and_report_renders_everything(project):
    nbprod("run", "--no-report", cwd=project)
    assert not list((project / "reports").glob("*.html"))
    nbprod("report", cwd=project)
    first = _reports_state(project)
    nbprod("report", cwd=project)  # on demand: everything again, even when up to date
    second = _reports_state(project)
    for name in ("prepare.html", "train.html", "evaluate.html", "index.html"):
        assert second[name][1] != first[name][1]
    # The next default run finds them fresh: nothing written.
    nbprod("run", cwd=project)
    assert _reports_state(project) == second


def test_interrupted_renders_never_leave_half_a_page(project):
    """Ctrl-C at several moments of `nbprod report`: every HTML file is whole, no temporary file stays."""
    nbprod("run", "--no-report", cwd=project)
    reports = project / "reports"
    for delay in (0.8, 1.6, 2.4, 3.2):
        process = subprocess.Popen([str(BIN / "nbprod"), "report"], cwd=project, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
        for html in reports.glob("*.html"):
            assert html.read_text(encoding="utf-8").rstrip().endswith("</html>"), (delay, html.name)
        assert not [p.name for p in reports.iterdir() if p.name.endswith(".tmp")], delay
