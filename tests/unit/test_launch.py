"""A run followed by pid and events (execution/launch.py), as a restarted server follows a retrain."""

from __future__ import annotations


def test_a_retrain_past_its_pipeline_run_still_counts_as_going_after_a_server_restart(tmp_path):
    """A server that did not start the retrain follows it by pid and events: the candidate's pipeline
    run ends (run_end) before the retrain scores and commits it, so only retrain_end ends it."""
    import os

    from nbprod.execution.events import EVENTS_ENV, emit
    from nbprod.core.stagerun import EventKind
    from nbprod.execution.launch import Run

    run_id = "20260101T000000-abcdef"
    folder = tmp_path / ".nbprod" / "runs" / run_id
    folder.mkdir(parents=True)
    (folder / "pid").write_text(str(os.getpid()))  # a live process stands for the retrain
    os.environ[EVENTS_ENV] = str(folder / "events.jsonl")
    try:
        emit(EventKind.RETRAIN_STEP, message="candidate c1: running the pipeline")
        emit(EventKind.RUN_START, run="x", stages=[])
        emit(EventKind.RUN_END, run="x", ok=True, message=None)
        assert Run(run_id, tmp_path, None).running is True
        emit(EventKind.RETRAIN_END, candidate="c1", gates_passed=True)
        assert Run(run_id, tmp_path, None).running is False
    finally:
        del os.environ[EVENTS_ENV]
