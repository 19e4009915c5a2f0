"""A real `nbprod run` given a run folder's events file writes everything there (ids and folders: tests/unit)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.commands import nbprod

from nbprod.execution.runfolder import RunFolder, recent_runs


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
