"""Run ids and run folders are made in one place, for `nbprod run` and for runs the server starts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.commands import nbprod

from nbprod.execution.runfolder import RunFolder, is_run_id, new_run_id, recent_runs
from nbprod.core.project import RUNS_DIR


def test_ids_and_folders(tmp_path):
    first = new_run_id()
    assert is_run_id(first) and is_run_id("20250101T120000-abcdef") and not is_run_id("../x")
    folder = RunFolder.create(tmp_path)
    assert folder.path == tmp_path / RUNS_DIR / folder.id and folder.path.is_dir()
    assert RunFolder.of_events(tmp_path, folder.events) == folder
    assert RunFolder.of_events(tmp_path, tmp_path / "events.jsonl") is None
    assert RunFolder.of_events(tmp_path / "other", folder.events) is None  # another project's run
    RunFolder.create(tmp_path, "20200101T000000-000000")  # an earlier server's id sorts by time too
    assert recent_runs(tmp_path) == [folder.id, "20200101T000000-000000"]


@pytest.mark.slow  # the example pipeline's session run, then a run
def test_run_given_a_run_folder_events_file_writes_everything_there(ran_copy: Path):
    """What the Jupyter server does: it makes the folder, then runs `nbprod run --events FOLDER/events.jsonl`."""
    before = set(recent_runs(ran_copy, 1000))
    folder = RunFolder.create(ran_copy)
    nbprod("run", "--no-report", "--events", str(folder.events), cwd=ran_copy)
    assert set(recent_runs(ran_copy, 1000)) - before == {folder.id}
    events = [json.loads(line) for line in folder.events.read_text(encoding="utf-8").splitlines()]
    assert events[0]["event"] == "run_start" and events[0]["run"] == folder.id
    assert events[-1]["event"] == "run_end"
