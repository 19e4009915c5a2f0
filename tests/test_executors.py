"""The Executor contract (docs/architecture.md, "Executors"), checked on LocalExecutor with real
processes: what the scheduler may rely on from any backend."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from nbprod.core.errors import NbprodError
from nbprod.execution.executors import EXECUTORS, Executor, Job, JobResult, LocalExecutor, make_executor

PY = sys.executable


def job(tmp_path: Path, stage: str, *commands: tuple[str, ...], env: dict | None = None) -> Job:
    return Job(stage=stage, commands=tuple(commands), cwd=tmp_path, env=env or dict(os.environ),
               log=tmp_path / "logs" / f"{stage}.log")


def wait_all(executor: Executor, count: int, limit: float = 60) -> list[JobResult]:
    results: list[JobResult] = []
    deadline = time.monotonic() + limit
    while len(results) < count and time.monotonic() < deadline:
        results += executor.wait(timeout=1.0)
    assert len(results) == count, results
    return results


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


def test_commands_run_in_order_in_cwd_with_env_and_log(tmp_path):
    (tmp_path / "sub").mkdir()
    env = {**os.environ, "NBPROD_TEST_VALUE": "from-env"}
    j = Job(stage="s", commands=((PY, "-c", "import os; print(os.getcwd()); print(os.environ['NBPROD_TEST_VALUE'])"),
                                 (PY, "-c", "import sys; print('second', file=sys.stderr)")),
            cwd=tmp_path / "sub", env=env, log=tmp_path / "s.log")
    with LocalExecutor(1, warm=False) as executor:
        executor.submit(j)
        assert executor.running() == 1
        [result] = wait_all(executor, 1)
        assert executor.running() == 0
    assert result.job == j and result.ok and result.returncode == 0 and result.duration > 0
    assert j.log.read_text().split() == [str(tmp_path / "sub"), "from-env", "second"]


def test_first_failing_command_stops_the_job_with_its_code(tmp_path):
    marker = tmp_path / "ran"
    j = job(tmp_path, "f", (PY, "-c", "raise SystemExit(3)"), (PY, "-c", f"open({str(marker)!r}, 'w')"))
    with LocalExecutor(1, warm=False) as executor:
        executor.submit(j)
        [result] = wait_all(executor, 1)
    assert result.returncode == 3 and not result.ok and not marker.exists()


def test_jobs_run_side_by_side_up_to_the_slots_and_wait_returns_each_once(tmp_path):
    sleeper = (PY, "-c", "import time; time.sleep(1.5)")
    with LocalExecutor(2, warm=False) as executor:
        started = time.monotonic()
        executor.submit(job(tmp_path, "a", sleeper))
        executor.submit(job(tmp_path, "b", sleeper))
        assert executor.running() == 2
        results = wait_all(executor, 2)
        elapsed = time.monotonic() - started
        assert executor.wait(timeout=0.1) == []  # nothing is reported twice
    assert sorted(r.job.stage for r in results) == ["a", "b"]
    assert elapsed < 2.9, "two 1.5 s jobs in two slots ran one after the other"


def test_wait_times_out_empty_handed(tmp_path):
    with LocalExecutor(1, warm=False) as executor:
        started = time.monotonic()
        assert executor.wait(timeout=0.2) == []
        assert time.monotonic() - started >= 0.2


def test_cancel_interrupts_running_jobs_and_returns_once_they_stopped(tmp_path):
    # The job's process group gets SIGINT, as Ctrl-C in a terminal would send.
    code = ("import signal, sys, time\n"
            "signal.signal(signal.SIGINT, lambda *a: (print('interrupted', flush=True), sys.exit(130)))\n"
            "print('ready', flush=True)\ntime.sleep(60)")
    j = job(tmp_path, "long", (PY, "-c", code))
    with LocalExecutor(1, warm=False) as executor:
        executor.submit(j)
        deadline = time.monotonic() + 30
        while "ready" not in (j.log.read_text() if j.log.exists() else "") and time.monotonic() < deadline:
            time.sleep(0.05)
        started = time.monotonic()
        executor.cancel()
        assert time.monotonic() - started < 20
        results = wait_all(executor, 1, limit=10)
    assert results[0].returncode != 0
    assert "interrupted" in j.log.read_text()


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
