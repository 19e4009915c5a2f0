"""Run records and `nbprod monitor` on a real project: `nbprod run --record` (real kernels, DVC, git),
immutable records with a manifest, `records verify`, git-ignored records, the monitor's exit status
and alerts.json, malformed rules, and records pushed to the project's DVC remote and pulled into a
fresh clone that rebuilds the dashboard."""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import datetime, UTC
from pathlib import Path

import pytest

from helpers.commands import nbprod, run
from helpers.projects import tree_digest
from nbprod.core.errors import NbprodError
from nbprod.monitor.records import create_record, is_read_only, list_records, verify_record
from nbprod.core.project import load_project

pytestmark = pytest.mark.slow

RULES = '\n[tool.nbprod.monitor]\naccuracy = ">= 0.9"\n"duration.train" = "<= 2 * median(last 10)"\n'


def set_rules(root: Path, text: str) -> None:
    pyproject = root / "pyproject.toml"
    base = pyproject.read_text().split("\n[tool.nbprod.monitor]")[0]
    pyproject.write_text(base + text)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, ran_project) -> Path:
    """The example project, committed, with one forced run kept as a record through the CLI."""
    root = tmp_path_factory.mktemp("recorded") / "proj"
    shutil.copytree(ran_project, root, symlinks=True)
    with open(root / "pyproject.toml", "a", encoding="utf-8") as handle:
        handle.write(RULES)
    run("git", "commit", "-qam", "monitor rules", cwd=root)
    done = nbprod("run", "--record", "--force", cwd=root)
    assert "Record: records/" in done.stdout
    return root


def test_record_holds_the_run_and_is_immutable(recorded):
    record, = list_records(load_project(recorded))
    files = {p.relative_to(record.path).as_posix() for p in record.path.rglob("*") if p.is_file()}
    assert {"record.json", "manifest.json", "dvc.lock", "params.yaml", "environment.json", "events.jsonl",
            "metrics/metrics/evaluate.json", "notebooks/prepare.ipynb", "notebooks/train.ipynb",
            "notebooks/evaluate.ipynb", "reports/evaluate.html"} <= files
    data = record.data
    assert data["ok"] is True and data["production"] is None
    assert data["git"]["commit"] == run("git", "rev-parse", "HEAD", cwd=recorded).stdout.strip()
    assert data["metrics"]["metrics/evaluate.json"] == json.loads((recorded / "metrics/evaluate.json").read_text())
    assert data["params"]["model"]["C"] == 1.0
    lock_md5 = data["lock"]["train"]["outs"][".nbprod/data/notebooks__model/train/model"]
    assert data["model"]["md5"] == lock_md5 and lock_md5.endswith(".dir")
    # durations come from the run's own events file
    events = [json.loads(line) for line in
              (recorded / ".nbprod/runs" / data["run"] / "events.jsonl").read_text().splitlines()]
    ends = {e["stage"]: e["duration"] for e in events if e["event"] == "stage_end"}
    assert record.durations == ends and {"prepare", "train", "evaluate"} <= set(ends)
    # the executed notebook is byte for byte the run's
    assert (record.path / "notebooks/evaluate.ipynb").read_bytes() == (recorded / "reports/evaluate.ipynb").read_bytes()
    manifest = json.loads((record.path / "manifest.json").read_text())["files"]
    assert set(manifest) == files - {"manifest.json"}
    for rel, entry in manifest.items():
        assert hashlib.sha256((record.path / rel).read_bytes()).hexdigest() == entry["sha256"]
    assert is_read_only(record.path) and verify_record(record) == []
    # ignored by git, and never overwritten
    assert run("git", "status", "--porcelain", "--", "records", cwd=recorded).stdout == ""
    assert run("git", "check-ignore", "-q", f"records/{record.name}/record.json", cwd=recorded).returncode == 0
    with pytest.raises(NbprodError, match="never overwritten"):
        create_record(load_project(recorded), recorded / ".nbprod/runs" / data["run"] / "events.jsonl",
                      when=record.time)
    assert [r.name for r in list_records(load_project(recorded))] == [record.name]
    assert not [p for p in (recorded / "records").iterdir() if p.name.startswith(".") and p.is_dir()]


def test_records_verify_finds_a_changed_file(recorded, tmp_path):
    copy = tmp_path / "proj"
    shutil.copytree(recorded, copy, symlinks=True)
    assert "1 record(s) checked, 0 problem(s)" in nbprod("records", "verify", cwd=copy).stdout
    record, = list_records(load_project(copy))
    target = record.path / "metrics/metrics/evaluate.json"
    record.path.joinpath("metrics/metrics").chmod(0o755)
    target.chmod(0o644)
    target.write_text(target.read_text().replace("0.9", "0.8", 1))
    done = nbprod("records", "verify", cwd=copy, check=False)
    assert done.returncode == 1 and "metrics/metrics/evaluate.json was changed" in done.stderr


def test_monitor_exit_status_alerts_json_and_dashboard(recorded, tmp_path):
    copy = tmp_path / "proj"
    shutil.copytree(recorded, copy, symlinks=True)
    done = nbprod("monitor", cwd=copy)
    assert "accuracy >= 0.9" in done.stdout and "no earlier records" in done.stdout
    record, = list_records(load_project(copy))
    alerts = json.loads((record.path / "alerts.json").read_text())
    assert alerts["status"] == "ok" and alerts["alerts"] == 0
    assert [c["passed"] for c in alerts["checks"]] == [True, None]
    assert verify_record(record) == [] and is_read_only(record.path)  # alerts.json is outside the manifest
    page = (copy / "reports/dashboard.html").read_text()
    assert "All checks passed in the latest run" in page and "<script" not in page
    assert f"../records/{record.name}/notebooks/evaluate.ipynb" in page or \
        f"../records/{record.name}/reports/evaluate.html" in page

    set_rules(copy, '\n[tool.nbprod.monitor]\naccuracy = ">= 0.999"\n')
    done = nbprod("monitor", "--json", cwd=copy, check=False)
    assert done.returncode == 1
    verdict = json.loads(done.stdout)
    assert verdict["status"] == "alert" and verdict["checks"][0]["rule"] == "accuracy >= 0.999"
    assert json.loads((record.path / "alerts.json").read_text())["alerts"] == 1
    assert "1 alert in the latest run" in (copy / "reports/dashboard.html").read_text()
    assert "1 alert(s)" in nbprod("records", cwd=copy).stdout

    set_rules(copy, '\n[tool.nbprod.monitor]\naccuracy = ">= median(last ten)"\n')
    before = tree_digest(copy)
    done = nbprod("monitor", cwd=copy, check=False)
    assert done.returncode == 2 and done.stdout == ""
    line, = done.stderr.strip().splitlines()
    assert line.startswith("nbprod: error: pyproject.toml: [tool.nbprod.monitor] accuracy") and "Fix:" in line
    assert tree_digest(copy) == before


def test_monitor_without_records_says_what_to_do(project):
    done = nbprod("monitor", cwd=project, check=False)
    assert done.returncode == 2 and "nbprod run --record" in done.stderr


def test_records_push_and_pull_rebuild_the_dashboard_in_a_fresh_clone(recorded, tmp_path):
    source = tmp_path / "proj"
    shutil.copytree(recorded, source, symlinks=True)
    # a second record, made through the API from the same run's events (a later day)
    first, = list_records(load_project(source))
    create_record(load_project(source), source / ".nbprod/runs" / first.data["run"] / "events.jsonl",
                  when=datetime(2030, 1, 2, tzinfo=UTC))
    assert "2 record(s) pushed" in nbprod("records", "push", cwd=source).stdout
    assert "0 record(s) pushed, 2 already there" in nbprod("records", "push", cwd=source).stdout
    remote = (tmp_path / ".dvcstore" / "nbprod-records")  # the template's remote: ../../.dvcstore from .dvc/
    assert sorted(p.name for p in remote.iterdir()) == [r.name for r in list_records(load_project(source))]

    clone = tmp_path / "clone"
    run("git", "clone", "-q", str(source), str(clone), cwd=tmp_path)
    assert not (clone / "records").exists()
    assert "2 record(s) pulled" in nbprod("records", "pull", cwd=clone).stdout
    pulled = list_records(load_project(clone))
    assert [r.name for r in pulled] == [r.name for r in list_records(load_project(source))]
    assert all(verify_record(r) == [] and is_read_only(r.path) for r in pulled)
    assert run("git", "status", "--porcelain", cwd=clone).stdout == ""
    nbprod("monitor", cwd=clone)
    page = (clone / "reports/dashboard.html").read_text()
    assert "2 recorded runs" in page and "2030-01-02" in page


def test_a_failed_scheduled_run_is_recorded_and_alerts(recorded, tmp_path):
    copy = tmp_path / "proj"
    shutil.copytree(recorded, copy, symlinks=True)
    params = copy / "params.yaml"
    params.write_text(params.read_text().replace("threshold: 0.5", "threshold: not-a-number"))
    done = nbprod("run", "--record", "--no-report", cwd=copy, check=False)
    assert done.returncode == 1 and "Record: records/" in done.stdout
    latest = list_records(load_project(copy))[-1]
    assert latest.data["ok"] is False and latest.data["stages"]["evaluate"]["state"] == "failed"
    assert verify_record(latest) == []
    done = nbprod("monitor", cwd=copy, check=False)
    assert done.returncode == 1
    checks = json.loads((latest.path / "alerts.json").read_text())["checks"]
    assert checks[0]["rule"] == "run succeeded" and checks[0]["passed"] is False
    assert "evaluate" in checks[0]["note"]
