"""``nbprod export airflow``, verified by Airflow itself.

apache-airflow pins much of its closure, so it lives in its own venv, made once per machine and
cached (NBPROD_TEST_CACHE, default ~/.cache/nbprod-tests); it is never one of nbprod's dependencies.
Airflow's DagBag loads the exported file, and `airflow dags test` runs the example project's DAG on
SQLite, leaving the dvc.lock and metrics that `nbprod run` leaves.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.commands import nbprod
from helpers.paths import BIN
from helpers.projects import flow_project, lock_entries
from helpers.waiting import wait_for

AIRFLOW_VERSION = "3.3.2"
CACHE = Path(os.environ.get("NBPROD_TEST_CACHE", Path.home() / ".cache" / "nbprod-tests"))

DIAMOND = [
    (["stage:a"], "import time\ntime.sleep(4)\nleft = 20"),
    (["stage:b"], "right = 22"),
    (["stage:c"], "import nbprod\ntotal = left + right\nnbprod.record('total', total)"),
]


def _project(root: Path, cells=DIAMOND) -> Path:
    return flow_project(root, cells, "af")


@pytest.fixture(scope="session")
def airflow_python() -> Path:
    """The interpreter of a cached venv holding apache-airflow (installed on first use, ~1-3 min)."""
    venv = CACHE / f"airflow-{AIRFLOW_VERSION}"
    python = venv / "bin" / "python"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"airflow-{AIRFLOW_VERSION}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test sessions never build it at once
        if not (venv / ".complete").exists():
            shutil.rmtree(venv, ignore_errors=True)
            base = getattr(sys, "_base_executable", sys.executable)
            subprocess.run([base, "-m", "venv", str(venv)], check=True)
            done = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                                   f"apache-airflow=={AIRFLOW_VERSION}"], capture_output=True, text=True)
            if done.returncode != 0:
                pytest.fail(f"apache-airflow {AIRFLOW_VERSION} did not install:\n{done.stderr[-3000:]}")
            (venv / ".complete").touch()
    return python


def _airflow_env(home: Path, dags: Path) -> dict:
    return {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "NBPROD_BIN": str(BIN / "nbprod"),
            "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}


def test_export_is_deterministic_and_guards_foreign_files(tmp_path):
    root = _project(tmp_path / "p")
    first = nbprod("export", "airflow", cwd=root)
    dag = root / "dags" / "nbprod_p.py"
    text = dag.read_bytes()
    second = nbprod("export", "airflow", cwd=root)
    assert "Wrote" in first.stdout and "Unchanged" in second.stdout
    assert dag.read_bytes() == text
    # The same pipeline exported from a copy with the same options gives the same bytes.
    other = tmp_path / "copy" / "p"
    shutil.copytree(root, other, symlinks=True)
    nbprod("export", "airflow", "--out", tmp_path / "again.py", "--project-dir", root, cwd=other)
    assert (tmp_path / "again.py").read_bytes() == text
    # A file that nbprod did not write is never overwritten.
    mine = root / "dags" / "mine.py"
    mine.write_text("# my own DAG\n")
    refused = nbprod("export", "airflow", "--out", mine, cwd=root, check=False)
    assert refused.returncode == 2 and "not written by nbprod export airflow" in refused.stderr
    assert mine.read_text() == "# my own DAG\n"
    bad = nbprod("export", "airflow", "--schedule", "every tuesday", cwd=root, check=False)
    assert bad.returncode == 2 and "cron" in bad.stderr and "Traceback" not in bad.stderr


def test_parallel_recording_waits_for_the_run_lock(tmp_path):
    """Two branches reproduced at once (as Airflow runs them): the second waits for the lock, both record."""
    root = _project(tmp_path / "p")
    first = subprocess.Popen([str(BIN / "nbprod"), "run", "--no-report", "a"], cwd=root,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: "pid" in _read(root / ".nbprod" / "run.lock"), 60, "the first run to take the lock", every=0.1)
    refused = nbprod("run", "--no-report", "b", cwd=root, check=False)
    assert refused.returncode == 2 and "another nbprod run is in progress" in refused.stderr
    waited = nbprod("run", "--no-report", "--lock-timeout", "120", "b", cwd=root, check=False)
    assert first.wait(timeout=120) == 0, first.stderr.read()
    assert waited.returncode == 0, waited.stderr
    lock = (root / "dvc.lock").read_text()
    assert re.search(r"^  a:$", lock, re.M) and re.search(r"^  b:$", lock, re.M)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


@pytest.mark.slow
def test_dagbag_loads_the_dag_with_the_pipelines_tasks_and_edges(tmp_path, airflow_python):
    root = _project(tmp_path / "p")
    nbprod("export", "airflow", cwd=root)
    script = ("import json, sys\nfrom airflow.models import DagBag\n"
              "bag = DagBag(sys.argv[1])\n"
              "dag = bag.dags.get('nbprod_p')\n"
              "print(json.dumps({'errors': {k: str(v) for k, v in bag.import_errors.items()},\n"
              "  'tasks': sorted(dag.task_ids) if dag else None,\n"
              "  'edges': sorted([t.task_id, d] for t in dag.tasks for d in t.downstream_task_ids) if dag else None,\n"
              "  'retries': dag.default_args.get('retries') if dag else None}))\n")
    done = subprocess.run([str(airflow_python), "-c", script, str(root / "dags")], capture_output=True, text=True,
                          env=_airflow_env(tmp_path / "airflow", root / "dags"), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["errors"] == {}
    assert seen["tasks"] == ["a", "b", "c"]
    assert seen["edges"] == [["a", "c"], ["b", "c"]]
    assert seen["retries"] == 1


@pytest.mark.slow
def test_airflow_dags_test_runs_the_example_project_like_nbprod_run(tmp_path, template_project, airflow_python):
    by_airflow = tmp_path / "by_airflow"
    by_nbprod = tmp_path / "by_nbprod"
    shutil.copytree(template_project, by_airflow, symlinks=True)
    shutil.copytree(template_project, by_nbprod, symlinks=True)
    nbprod("compile", cwd=by_airflow)
    nbprod("export", "airflow", cwd=by_airflow)
    dags = by_airflow / "dags"
    home = tmp_path / "airflow"
    env = _airflow_env(home, dags)
    airflow = str(airflow_python.parent / "airflow")
    migrated = subprocess.run([airflow, "db", "migrate"], capture_output=True, text=True, env=env, timeout=600)
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    # Under pytest's own 600 s (pyproject.toml), so that a hang ends here and shows Airflow's output.
    tested = subprocess.run([airflow, "dags", "test", "nbprod_by_airflow"], capture_output=True, text=True,
                            env=env, timeout=540)
    assert tested.returncode == 0, (tested.stdout + tested.stderr)[-5000:]
    assert "DagRun Finished" in tested.stdout + tested.stderr
    nbprod("run", cwd=by_nbprod)
    # Airflow may finish independent branches in another order, and DVC appends each stage's entry as
    # it is recorded: the same entries, compared as data.
    assert lock_entries(by_airflow) == lock_entries(by_nbprod)
    metrics = sorted(p.name for p in (by_nbprod / "metrics").glob("*.json"))
    assert metrics and metrics == sorted(p.name for p in (by_airflow / "metrics").glob("*.json"))
    for name in metrics:
        assert json.loads((by_airflow / "metrics" / name).read_text()) == \
            json.loads((by_nbprod / "metrics" / name).read_text())


MONITORED = [
    (["parameters"], "scale = 1"),
    (["stage:a"], "left = 20 * scale"),
    (["stage:b"], "import nbprod\ntotal = left + 22\nnbprod.record('total', total)"),
]


def _monitored_project(root: Path) -> Path:
    root = flow_project(root, MONITORED, "af")
    with open(root / "pyproject.toml", "a", encoding="utf-8") as handle:
        handle.write('\n[tool.nbprod.monitor]\ntotal = ">= 0"\n')
    subprocess.run(["git", "commit", "-qam", "monitor rules"], cwd=root, check=True)
    return root


def test_monitor_since_refuses_an_older_record(tmp_path):
    """What the DAG's monitor task does when its run left no record: exit 2, one line, nothing written."""
    from helpers.projects import tree_digest

    root = _monitored_project(tmp_path / "p")
    nbprod("run", "--record", "--no-report", cwd=root)
    before = tree_digest(root)
    done = nbprod("monitor", "--since", "2099-01-01T00:00:00+00:00", cwd=root, check=False)
    assert done.returncode == 2 and done.stdout == ""
    line, = done.stderr.strip().splitlines()
    assert "is older than the run it follows" in line and "nothing was checked" in line
    assert tree_digest(root) == before
    dag = nbprod("export", "airflow", cwd=root)
    assert "Wrote" in dag.stdout
    text = (root / "dags" / "nbprod_p.py").read_text()
    assert "t_b] >> t_nbprod_record >> t_nbprod_monitor" in text
    assert "monitor --since '{{{{ dag_run.start_date }}}}'" in text


@pytest.mark.slow
def test_airflow_dags_test_twice_checks_each_runs_own_record(tmp_path, airflow_python):
    """Two DAG runs, the input changed between them: each run records itself and its monitor task
    checks that record (the second verdict is on the second run's metrics)."""
    root = _monitored_project(tmp_path / "p")
    nbprod("export", "airflow", "--retries", "0", cwd=root)
    env = _airflow_env(tmp_path / "airflow", root / "dags")
    airflow = str(airflow_python.parent / "airflow")
    migrated = subprocess.run([airflow, "db", "migrate"], capture_output=True, text=True, env=env, timeout=500)
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    verdicts = []
    for scale, total in ((1, 42), (2, 62)):
        params = root / "params.yaml"
        params.write_text(params.read_text().replace(f"scale: {3 - scale}", f"scale: {scale}"))
        tested = subprocess.run([airflow, "dags", "test", "nbprod_p"], capture_output=True, text=True, env=env,
                                timeout=500)
        assert tested.returncode == 0, (tested.stdout + tested.stderr)[-5000:]
        records = sorted(p for p in (root / "records").iterdir() if p.is_dir())
        assert len(records) == len(verdicts) + 1, "each DAG run leaves exactly one record"
        newest = records[-1]
        assert json.loads((newest / "metrics" / "metrics" / "b.json").read_text())["total"] == total
        alerts = json.loads((newest / "alerts.json").read_text())
        assert alerts["record"] == newest.name
        check, = alerts["checks"]
        assert check["rule"] == "total >= 0" and check["value"] == total and check["passed"]
        verdicts.append(alerts)
    first = sorted(p for p in (root / "records").iterdir() if p.is_dir())[0]
    assert json.loads((first / "alerts.json").read_text())["checks"][0]["value"] == 42  # left as it was


def test_export_with_an_image_is_one_pod_task_running_the_pipeline(tmp_path):
    """--image: one KubernetesPodOperator running the image's `nbprod run --record` (pods share no
    project folder, so stages cannot be split across them). Rendered and parsed only: the cached
    Airflow venv has no Kubernetes provider."""
    import ast

    root = _project(tmp_path / "p")
    out = tmp_path / "pod.py"
    done = nbprod("export", "airflow", "--image", "registry.example/model:v1.0.0", "--namespace", "ml",
                  "--out", out, cwd=root)
    assert "1 KubernetesPodOperator task" in done.stdout
    text = out.read_text()
    tree = ast.parse(text)
    calls = [n for n in ast.walk(tree)
             if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "KubernetesPodOperator"]
    assert len(calls) == 1
    kwargs = {k.arg: ast.literal_eval(k.value) for k in calls[0].keywords if k.arg != "image"}
    assert kwargs["cmds"] == ["nbprod"] and kwargs["arguments"] == ["run", "--record"] and kwargs["namespace"] == "ml"
    assert "IMAGE = 'registry.example/model:v1.0.0'" in text and "BashOperator" not in text
    again = nbprod("export", "airflow", "--image", "registry.example/model:v1.0.0", "--namespace", "ml",
                   "--out", out, cwd=root)
    assert "Unchanged" in again.stdout and out.read_text() == text
    bad = nbprod("export", "airflow", "--image", "x; rm -rf /", "--out", tmp_path / "bad.py", cwd=root, check=False)
    assert bad.returncode == 2 and not (tmp_path / "bad.py").exists()
