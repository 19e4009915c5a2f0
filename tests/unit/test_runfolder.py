"""Run ids and run folders (execution/runfolder.py)."""

from __future__ import annotations

from nbprod.core.project import RUNS_DIR
from nbprod.execution.runfolder import RunFolder, is_run_id, new_run_id, recent_runs


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
