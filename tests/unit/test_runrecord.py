"""The typed run record (metadata.nbprod), stage states and event kinds, and the extension's copy of them."""

from __future__ import annotations

import json

from helpers.paths import REPO
from nbprod.execution.events import read_events
from nbprod.core.stagerun import (
    STATES_TS,
    EventKind,
    RecordStatus,
    StageRun,
    StageError,
    StageState,
    StatusState,
    read_stage_run,
    states_typescript,
)

ROOT = REPO


def test_extension_states_file_is_generated_from_the_enums():
    assert STATES_TS.read_text(encoding="utf-8") == states_typescript(), \
        "extension/src/states.ts is stale: run 'python -m nbprod.core.stagerun'"


def test_extension_uses_the_generated_types():
    api = (ROOT / "extension" / "src" / "api.ts").read_text(encoding="utf-8")
    assert "from './states'" in api
    status = api[api.index("export interface StageStatus"):]
    status = status[: status.index("}")]
    assert "state: StatusState" in status
    assert "'failed'" not in status  # nbprod status never sends it


def test_enums_are_the_strings_json_carries():
    assert json.dumps({"event": EventKind.STAGE_END, "state": StageState.NOT_RUN}) == \
        '{"event": "stage_end", "state": "not run"}'
    assert f"{StatusState.UP_TO_DATE}" == "up to date"
    assert StageState.FAILED == "failed" and RecordStatus.OK == "ok"


def test_record_round_trip_keeps_unknown_keys():
    record = StageRun(stage="train", notebook="nb/model.ipynb", params={"k": 3}, commit="abc", dirty=False,
                       python="3.12.1", packages={"pandas": "2.2"}, status=RecordStatus.FAILED,
                       error=StageError(4, "ValueError", "bad"), started="s", ended="e", duration=1.5,
                       kernel={"forked": True}, extra={"future_field": [1]})
    meta = record.to_metadata()
    assert meta["git"] == {"commit": "abc", "dirty": False}
    assert meta["error"] == {"cell": 4, "ename": "ValueError", "evalue": "bad"}
    assert meta["status"] == "failed" and type(meta["status"]) is str
    assert json.loads(json.dumps(meta)) == meta
    assert StageRun.from_metadata(json.loads(json.dumps(meta))) == record


def test_from_metadata_reads_only_run_records():
    assert StageRun.from_metadata(None) is None
    assert StageRun.from_metadata({"notebook": "a.ipynb", "section": "a"}) is None  # a stage notebook's
    odd = StageRun.from_metadata({"stage": "s", "status": "exploded", "git": "no", "packages": None})
    assert odd is not None and odd.status == RecordStatus.RUNNING and odd.commit is None and odd.packages == {}


def test_written_records_read_back(tmp_path):
    """What nbprod exec wrote in the repository's example run, when it is checked out."""
    executed = sorted((ROOT / "reports").glob("*.ipynb"))
    for path in executed:
        meta = json.loads(path.read_text(encoding="utf-8"))["metadata"]["nbprod"]
        record = read_stage_run(path)
        assert record is not None and record.stage == path.stem
        assert record.to_metadata() == meta
    assert read_stage_run(tmp_path / "missing.ipynb") is None


def test_event_kinds_of_a_recorded_run():
    for events_file in sorted((ROOT / ".nbprod" / "runs").glob("*/events.jsonl"))[-3:]:
        events, _ = read_events(events_file)
        kinds = {e["event"] for e in events}
        assert kinds <= {k.value for k in EventKind}, kinds
        states = {e["state"] for e in events if e["event"] == EventKind.STAGE_END}
        assert states <= {s.value for s in StageState}, states
