"""The Executor contract (docs/architecture.md, "Executors"), checked on LocalExecutor with real
processes: what the scheduler may rely on from any backend (the interface itself: tests/unit)."""

from __future__ import annotations

import os
import sys
from pathlib import Path


from helpers.waiting import wait_for
from nbprod.execution.executors import Executor, Job, JobResult, LocalExecutor

PY = sys.executable


def job(tmp_path: Path, stage: str, *commands: tuple[str, ...], env: dict | None = None) -> Job:
    return Job(stage=stage, commands=tuple(commands), cwd=tmp_path, env=env or dict(os.environ),
               log=tmp_path / "logs" / f"{stage}.log")


def wait_all(executor: Executor, count: int, limit: float = 60) -> list[JobResult]:
    results: list[JobResult] = []

    def all_reported() -> bool:
        results.extend(executor.wait(timeout=1.0))  # blocks up to 1 s itself
        return len(results) >= count

    wait_for(all_reported, limit, f"{count} job results")
    assert len(results) == count, results
    return results


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


def meet(tmp_path: Path, me: str, other: str) -> tuple[str, ...]:
    """A job that says it started, then succeeds only if ``other`` starts while it still runs (gives up after
    60 s): two of them both succeed only when they ran side by side."""
    code = (f"import pathlib, sys, time\nhere = pathlib.Path({str(tmp_path)!r})\n(here / {me!r}).touch()\n"
            f"for _ in range(600):\n    if (here / {other!r}).exists():\n        sys.exit(0)\n    time.sleep(0.1)\n"
            "sys.exit(1)")
    return (PY, "-c", code)


def test_jobs_run_side_by_side_up_to_the_slots_and_wait_returns_each_once(tmp_path):
    with LocalExecutor(2, warm=False) as executor:
        executor.submit(job(tmp_path, "a", meet(tmp_path, "a.started", "b.started")))
        executor.submit(job(tmp_path, "b", meet(tmp_path, "b.started", "a.started")))
        assert executor.running() == 2
        results = wait_all(executor, 2, limit=90)
        assert executor.wait(timeout=0.1) == []  # nothing is reported twice
    assert sorted(r.job.stage for r in results) == ["a", "b"]
    assert all(r.ok for r in results), "the two jobs in two slots did not run side by side"


def test_cancel_interrupts_running_jobs_and_returns_once_they_stopped(tmp_path):
    # The job's process group gets SIGINT, as Ctrl-C in a terminal would send.
    code = ("import signal, sys, time\n"
            "signal.signal(signal.SIGINT, lambda *a: (print('interrupted', flush=True), sys.exit(130)))\n"
            "print('ready', flush=True)\ntime.sleep(60)")
    j = job(tmp_path, "long", (PY, "-c", code))
    with LocalExecutor(1, warm=False) as executor:
        executor.submit(j)
        wait_for(lambda: j.log.exists() and "ready" in j.log.read_text(), 30, "the job to start", every=0.05)
        executor.cancel()
        results = wait_all(executor, 1, limit=10)
    assert results[0].returncode != 0
    assert "interrupted" in j.log.read_text()
