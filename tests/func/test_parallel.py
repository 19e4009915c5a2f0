"""``nbprod run -j N``: parallel stages leave the same dvc.lock and outputs as a serial ``dvc repro``."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from helpers.commands import nbprod, run
from helpers.notebooks import code_notebook, load_nb
from helpers.paths import REPO
from helpers.projects import tree_digest

pytestmark = pytest.mark.slow  # every test here runs pipelines with DVC and real kernels

BIN_DVC = REPO / ".venv" / "bin" / "dvc"

# A diamond (b and c can run together), then a hand-written DVC stage that reads d's metrics.
DIAMOND = [
    (["stage:a"], "base = 10"),
    (["stage:b"], "import time\ntime.sleep(1)\nleft = base + 1"),
    (["stage:c"], "import time\ntime.sleep(1)\nright = base * 2"),
    (["stage:d"], "import nbprod\ntotal = left + right\nnbprod.record('total', total)"),
]
HAND_WRITTEN = """
  summary:
    cmd: python -c "import json; m = json.load(open('metrics/d.json')); open('summary.txt', 'w').write(str(m['total']))"
    deps:
      - metrics/d.json
    outs:
      - summary.txt
"""


def _project(root: Path, cells, hand_written: str = "") -> Path:
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "par"\nversion = "0"\n\n[tool.nbprod]\n'
                                         'notebooks = ["notebooks"]\nkernel = "python3"\n', encoding="utf-8")
    (root / "notebooks").mkdir()
    (root / "notebooks" / "flow.ipynb").write_text(json.dumps(code_notebook(cells), indent=1), encoding="utf-8")
    run("git", "init", "-q", cwd=root)
    run("dvc", "init", "-q", cwd=root)
    nbprod("compile", cwd=root)
    if hand_written:
        with open(root / "dvc.yaml", "a", encoding="utf-8") as handle:
            handle.write(hand_written.lstrip("\n"))
        nbprod("compile", cwd=root)  # keeps hand-written stages
    run("git", "add", "-A", cwd=root)
    run("git", "commit", "-q", "-m", "pipeline", cwd=root)
    return root


def _masked_lock(root: Path) -> str:
    """dvc.lock with the hashes of executed notebooks blanked: they hold run timestamps and durations."""
    text = (root / "dvc.lock").read_text(encoding="utf-8")
    return re.sub(r"(- path: reports/[a-z]+\.ipynb\n\s+hash: md5\n\s+md5: )\w+(\n\s+size: )\d+", r"\1*\2*", text)


def _cell_outputs(path: Path) -> list:
    return [(c["source"], c.get("outputs")) for c in load_nb(path)["cells"] if c["cell_type"] == "code"]


@pytest.fixture(scope="module")
def serial_and_parallel(tmp_path_factory):
    """The same project run three ways: by `dvc repro` itself, by nbprod with -j 1, and with -j 2."""
    base = tmp_path_factory.mktemp("parallel")
    serial = _project(base / "serial", DIAMOND, HAND_WRITTEN)
    one, parallel = base / "one", base / "parallel"
    shutil.copytree(serial, one, symlinks=True)
    shutil.copytree(serial, parallel, symlinks=True)
    serial_run = nbprod("run", "--no-report", "--dvc-repro", cwd=serial)  # DVC itself, serial
    nbprod("run", "--no-report", "-j", "1", cwd=one)
    parallel_run = nbprod("run", "--no-report", "-j", "2", cwd=parallel)
    return serial, parallel, serial_run, parallel_run, one


def test_j2_and_dvc_repro_write_the_same_dvc_lock(serial_and_parallel):
    serial, parallel, _, _, _ = serial_and_parallel
    assert _masked_lock(parallel) == _masked_lock(serial)
    stages = re.findall(r"^  (\w+):$", (parallel / "dvc.lock").read_text(encoding="utf-8"), re.M)
    assert stages == ["a", "b", "c", "d", "summary"]


def test_j1_and_j2_write_the_same_dvc_lock_and_outputs(serial_and_parallel):
    serial, parallel, _, _, one = serial_and_parallel
    assert _masked_lock(one) == _masked_lock(parallel) == _masked_lock(serial)
    for rel in ("metrics/d.json", "summary.txt"):
        assert (one / rel).read_bytes() == (parallel / rel).read_bytes()
    for stage in "abcd":
        assert _cell_outputs(one / f"reports/{stage}.ipynb") == _cell_outputs(parallel / f"reports/{stage}.ipynb")


def test_j2_lock_is_what_dvc_itself_records(serial_and_parallel):
    _, parallel, _, _, _ = serial_and_parallel
    before = (parallel / "dvc.lock").read_bytes()
    assert "up to date" in run("dvc", "status", cwd=parallel).stdout
    run("dvc", "commit", "--force", cwd=parallel)  # DVC re-records every stage from the files on disk
    assert (parallel / "dvc.lock").read_bytes() == before


def test_j2_and_dvc_repro_produce_the_same_outputs(serial_and_parallel):
    serial, parallel, serial_run, parallel_run, _ = serial_and_parallel
    for rel in ("metrics/a.json", "metrics/b.json", "metrics/c.json", "metrics/d.json", "summary.txt"):
        assert (parallel / rel).read_bytes() == (serial / rel).read_bytes(), rel
    assert (parallel / "summary.txt").read_text() == "31"
    data = sorted(p.relative_to(serial).as_posix() for p in (serial / ".nbprod" / "data").rglob("*") if p.is_file())
    assert data
    for rel in data:
        assert (parallel / rel).read_bytes() == (serial / rel).read_bytes(), rel
    for stage in "abcd":
        assert _cell_outputs(parallel / f"reports/{stage}.ipynb") == _cell_outputs(serial / f"reports/{stage}.ipynb")
    for out in (serial_run.stdout, parallel_run.stdout):
        assert re.search(r"│ d\s+│ ran\s+│", out)


def test_j2_noop_run_changes_nothing(serial_and_parallel):
    _, parallel, _, _, _ = serial_and_parallel
    before = tree_digest(parallel)
    done = nbprod("run", "--no-report", "-j", "2", cwd=parallel)
    assert re.search(r"│ b\s+│ up to date", done.stdout)
    assert tree_digest(parallel) == before


def test_failure_under_j2_stops_scheduling_and_keeps_the_lock(tmp_path):
    cells = [
        (["stage:ok"], "a = 1"),
        (["stage:broken"], "import time\ntime.sleep(1)\nraise ValueError('bad input')\nb = 2"),
        (["stage:other"], "import nbprod\nnbprod.record('n', 1)"),   # independent of broken
        (["stage:needs"], "c = b + 1"),                              # reads broken's b: never starts
    ]
    root = _project(tmp_path / "proj", cells)
    done = nbprod("run", "--no-report", "-j", "2", cwd=root, check=False)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert "stage 'broken' failed in notebooks/flow.ipynb cell 2: ValueError: bad input" in last
    assert "Partially executed notebook: reports/broken.ipynb" in last
    assert "Traceback" not in done.stderr
    assert (root / "reports" / "broken.ipynb").is_file()
    lock = (root / "dvc.lock").read_text(encoding="utf-8")
    assert "  ok:" in lock
    assert "  broken:" not in lock and "  needs:" not in lock
    assert not (root / "reports" / "needs.ipynb").exists()
    assert re.search(r"│ broken\s+│ failed", done.stdout)
    assert re.search(r"│ needs\s+│ not run", done.stdout)


def test_j0_is_a_user_error(project):
    before = tree_digest(project)
    done = nbprod("run", "-j", "0", cwd=project, check=False)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "at least 1" in done.stderr
    assert tree_digest(project) == before
