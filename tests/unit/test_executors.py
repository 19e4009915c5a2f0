"""The Executor contract and the backends by name, without running a job (jobs run in tests/func)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from nbprod.core.errors import NbprodError
from nbprod.execution.executors import EXECUTORS, Executor, Job, LocalExecutor, make_executor


PY = sys.executable


def job(tmp_path: Path, stage: str, *commands: tuple[str, ...], env: dict | None = None) -> Job:
    return Job(stage=stage, commands=tuple(commands), cwd=tmp_path, env=env or dict(os.environ),
               log=tmp_path / "logs" / f"{stage}.log")


def test_a_backend_must_implement_the_whole_interface():
    class Half(Executor):
        def submit(self, job):
            pass

    with pytest.raises(TypeError):
        Half(1)  # fails at construction, not mid-run
    with pytest.raises(ValueError):
        LocalExecutor(0)


def test_backends_by_name_and_unknown_names(tmp_path):
    assert {"local", "dask"} <= set(EXECUTORS)
    with make_executor("local", 2) as executor:
        assert isinstance(executor, LocalExecutor) and executor.slots == 2
    with pytest.raises(NbprodError, match="unknown executor 'nope'"):
        make_executor("nope", 1)


def test_wait_times_out_empty_handed(tmp_path):
    with LocalExecutor(1, warm=False) as executor:
        started = time.monotonic()
        assert executor.wait(timeout=0.2) == []
        assert time.monotonic() - started >= 0.2


def test_hints_are_optional_and_harmless(tmp_path):
    """prepare/discard/warm_up may be ignored by a backend; a job announced then discarded never runs."""
    marker = tmp_path / "ran"
    j = job(tmp_path, "h", (PY, "-c", f"open({str(marker)!r}, 'w')"))
    with LocalExecutor(1, warm=False) as executor:
        executor.warm_up()
        executor.prepare(j)
        executor.discard("h")
        assert executor.running() == 0
        assert executor.wait(timeout=0.2) == []
    assert not marker.exists()
