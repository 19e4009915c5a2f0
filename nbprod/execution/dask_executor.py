"""Stages on a Dask cluster: ``nbprod run --executor dask [--scheduler tcp://HOST:PORT]``.

The process running ``nbprod run`` stays the single writer of DVC state (plan, hashes, run cache,
commit, ``dvc.lock``); a worker only runs a job's commands (``nbprod exec STAGE``) in a subprocess,
with the job's environment and working directory, on the project seen through a shared file system.
Earlier DVC-on-Dask tools ran DVC on every worker and fought over the repository lock.

What differs from the local executor, and why:
- the kernel pool is not offered to workers (a forked kernel would run on the submitting machine);
  each stage starts its kernel as a new process on its worker;
- a stage process ends with its worker process (``NBPROD_RUN_PID`` is the worker's pid), so a worker
  killed mid-stage leaves no orphan writing into the project while Dask retries the task elsewhere;
- cancel sets a Dask ``Event`` that every running task polls: the task interrupts its stage's
  process group (SIGINT, then SIGKILL), as Ctrl-C does locally;
- before the first job, every worker must read back a random token from a sentinel file in the
  project, or the run is refused naming the worker.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import subprocess
import sys
import time
import uuid
from concurrent.futures import CancelledError
from pathlib import Path

from ..core.errors import NbprodError
from ..core.logger import NAME as LOGGER
from ..core.project import GENERATED_DIR
from .executors import Executor, Job, JobResult
from .lifeline import RUN_PID_ENV

CONNECT_TIMEOUT = 10.0           # seconds to reach a scheduler before the run is refused
SENTINEL_DIR = GENERATED_DIR     # inside the project, so it travels wherever the project is shared
CANCEL_POLL = 0.25               # seconds between a task's checks of the cancel event
# Never passed to a worker: the pool's Unix socket and the run's pid belong to this machine.
LOCAL_ONLY_ENV = ("NBPROD_KERNEL_POOL",)


class DaskExecutor(Executor):
    """Runs jobs as Dask tasks; ``slots`` is the cluster's thread count unless ``-j N`` asks for more."""

    def __init__(self, slots: int, *, scheduler: str | None = None, project_root: Path | None = None):
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise NbprodError("the Dask executor needs dask.distributed, which is not installed",
                              "nbprod run --executor dask", fix="pip install 'nbprod[dask]'") from None
        _quiet_distributed()
        self.cluster = None
        if scheduler:
            try:
                self.client = Client(scheduler, timeout=CONNECT_TIMEOUT, set_as_default=False)
            except (OSError, TimeoutError) as exc:
                raise NbprodError(f"cannot reach the Dask scheduler at {scheduler} ({_first_line(exc)})",
                                  "nbprod run --scheduler",
                                  fix="start it (`dask scheduler`) or correct the address") from None
        else:  # trying it out: a cluster of local processes on loopback, one thread each
            workers = slots if slots > 1 else min(os.cpu_count() or 1, 4)
            self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                        host="127.0.0.1", dashboard_address=None)
            self.client = Client(self.cluster, set_as_default=False)
        threads = sum(self.client.nthreads().values())
        if threads == 0:
            self.close()
            raise NbprodError(f"the Dask scheduler at {scheduler} has no workers", "nbprod run --scheduler",
                              fix="start workers with `dask worker " + str(scheduler) + "`")
        super().__init__(slots if slots > 1 else threads)
        self._cancel_name = f"nbprod-cancel-{uuid.uuid4().hex}"
        self._futures: dict = {}   # future -> (job, start time, worker it was placed on)
        self._workers = sorted(self.client.nthreads())
        self._prepared: dict[str, str] = {}   # stage -> worker where its `nbprod exec` is warming up
        self._announced: set[str] = set()     # every stage ever prepared (released at close)
        if project_root is not None:
            self.check_shared_project(Path(project_root))

    def check_shared_project(self, root: Path) -> None:
        """Every worker reads back a random token written into the project, or the run is refused."""
        token = secrets.token_hex(16)
        sentinel = root / SENTINEL_DIR / f"dask-sentinel-{token[:8]}"
        sentinel.parent.mkdir(parents=True, exist_ok=True)
        sentinel.write_text(token)
        try:
            seen = self.client.run(_read_sentinel, str(sentinel))
        finally:
            sentinel.unlink(missing_ok=True)
        for worker, value in sorted(seen.items()):
            if value != token:
                self.close()
                raise NbprodError(f"Dask worker {worker} does not see this project at {root} ({value})",
                                  "nbprod run --executor dask",
                                  fix="put the project on a file system every worker mounts at the same path")

    def prepare(self, job: Job) -> None:
        """Start the stage's `nbprod exec` and its kernel on a worker now (the worker's next job when it
        is busy), so a remote stage's start-up overlaps the stage before it, as locally."""
        if not job.nbprod_stage or job.stage in self._prepared:
            return
        worker = self._place(exclude=set(self._prepared.values()))
        if worker is None:
            return
        try:
            self.client.run(_prestart_on_worker, job.stage, str(job.cwd), _remote_env(job.env), str(job.log),
                            workers=[worker])
        except Exception:  # noqa: BLE001 - a worker gone meanwhile: the job starts cold elsewhere
            return
        self._prepared[job.stage] = worker
        self._announced.add(job.stage)

    def discard(self, stage: str) -> None:
        worker = self._prepared.pop(stage, None)
        if worker is not None:
            self._release([stage], [worker])

    def _place(self, exclude: set[str]) -> str | None:
        """A worker for the next job: idle ones first, then busy ones (it runs when they are free)."""
        busy = [w for _, _, w in self._futures.values()]
        candidates = [w for w in self._workers if w not in exclude]
        idle = [w for w in candidates if w not in busy]
        return (idle or candidates or [None])[0]

    def _release(self, stages: list[str], workers: list[str] | None = None) -> None:
        try:
            self.client.run(_discard_on_worker, stages, **({"workers": workers} if workers else {}))
        except Exception:  # noqa: BLE001 - a worker gone takes its warm processes with it (lifeline)
            logging.getLogger(__name__).debug("releasing warm processes of %s", stages, exc_info=True)

    def submit(self, job: Job) -> None:
        worker = self._prepared.pop(job.stage, None) or self._place(exclude=set(self._prepared.values()))
        # A preference, not a rule: if that worker dies, Dask runs the job elsewhere (cold).
        placement = {"workers": [worker], "allow_other_workers": True} if worker else {}
        future = self.client.submit(run_job, [list(c) for c in job.commands], str(job.cwd), _remote_env(job.env),
                                    str(job.log), self._cancel_name, job.stage if job.nbprod_stage else None,
                                    key=f"nbprod-{job.stage}-{uuid.uuid4().hex[:8]}", pure=False, **placement)
        self._futures[future] = (job, time.monotonic(), worker)

    def running(self) -> int:
        return len(self._futures)

    def wait(self, timeout: float | None = None) -> list[JobResult]:
        from distributed import wait as dask_wait

        if not self._futures:
            if timeout:
                time.sleep(min(timeout, 0.05))
            return []
        try:
            with self.client.as_current():
                done, _ = dask_wait(list(self._futures), timeout=timeout, return_when="FIRST_COMPLETED")
        except TimeoutError:
            return []
        except CancelledError:
            # The scheduler connection was lost (killed, restarted): Dask cancels every future of this
            # client at once; each job then fails with the reason, as one line naming its stage.
            done = [f for f in self._futures if f.done()] or list(self._futures)
        results = []
        for future in done:
            job, start, _ = self._futures.pop(future)
            results.append(self._result(future, job, time.monotonic() - start))
        return results

    def _result(self, future, job: Job, duration: float) -> JobResult:
        try:
            outcome = future.result()
        except Exception as exc:  # noqa: BLE001 - a worker lost too often, or the task could not start
            message = f"stage '{job.stage}' could not finish on the Dask cluster: {_first_line(exc)}"
            _append(job.log, f"nbprod: {message}\n")
            return JobResult(job, 1, duration, message=message)
        if outcome["returncode"] != 0 and outcome.get("cancelled"):
            return JobResult(job, outcome["returncode"], duration)
        message = None
        if outcome["returncode"] != 0:
            message = (f"stage '{job.stage}' failed on Dask worker {outcome['worker']} with exit status "
                       f"{outcome['returncode']}; see {job.log}")
        return JobResult(job, outcome["returncode"], duration, message=message)

    def cancel(self) -> None:
        from distributed import Event

        Event(self._cancel_name, client=self.client).set()
        deadline = time.monotonic() + 30
        while self._futures and time.monotonic() < deadline:
            for future in [f for f in self._futures if f.done()]:
                self._futures.pop(future)
            time.sleep(0.1)
        if self._futures:
            self.client.cancel(list(self._futures))
            self._futures.clear()

    def close(self) -> None:
        if getattr(self, "_announced", None) and getattr(self, "client", None) is not None:
            self._release(sorted(self._announced))  # warm processes never given their stage
            self._announced = set()
        for resource in (getattr(self, "client", None), self.cluster):
            if resource is not None:
                try:
                    resource.close()
                except Exception:  # noqa: BLE001 - closing a cluster that is already gone
                    logging.getLogger(__name__).debug("closing %r", resource, exc_info=True)
        self.cluster = None


def _remote_env(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k not in LOCAL_ONLY_ENV and k != RUN_PID_ENV}


# On a worker: `nbprod exec` processes started ahead of their stage, by stage name.
_WARM: dict[str, subprocess.Popen] = {}


def _worker_env(env: dict[str, str], address: str) -> dict[str, str]:
    # The stage ends with this worker process (lifeline), and names it when it fails.
    return {**env, RUN_PID_ENV: str(os.getpid()), "NBPROD_WORKER": address}


def _prestart_on_worker(stage: str, cwd: str, env: dict[str, str], log: str, dask_worker=None) -> None:
    """On a worker (``client.run``): a pre-started `nbprod exec` for ``stage`` (nbprod.execution.prestart)
    that starts the stage's kernel now and runs the stage when its job arrives."""
    env = _worker_env(env, str(dask_worker.address))
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        process = subprocess.Popen([sys.executable, "-m", "nbprod.execution.prestart"], cwd=cwd, env=env,
                                   stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    line = json.dumps({"stage": stage, "cwd": cwd, "env": env, "log": log, "run": False}) + "\n"
    process.stdin.write(line.encode())
    process.stdin.flush()
    _discard_on_worker([stage])  # an older one for the same stage (a run cancelled before it ran)
    _WARM[stage] = process


def _discard_on_worker(stages: list[str]) -> None:
    """On a worker: end of input for these stages' warm processes: they stop their kernels and exit."""
    for stage in stages:
        process = _WARM.pop(stage, None)
        if process is not None:
            try:
                process.stdin.close()
            except OSError:
                pass


def run_job(commands: list[list[str]], cwd: str, env: dict[str, str], log: str, cancel_name: str,
            stage: str | None = None) -> dict:
    """On a worker: run the job's commands in order, stop at the first failure; interruptible by cancel.
    An nbprod stage announced to this worker runs in its warm process instead (same code, same exit)."""
    from distributed import Event, get_worker

    worker = get_worker()
    env = _worker_env(env, str(worker.address))
    cancel = Event(cancel_name)
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    warm = _WARM.pop(stage, None) if stage else None
    with open(log, "ab") as out:
        out.write(f"nbprod: running on Dask worker {worker.address}\n".encode())
        out.flush()
        if warm is not None and warm.poll() is None:
            try:
                warm.stdin.write(b"run\n")
                warm.stdin.close()
            except OSError:
                warm = None
            if warm is not None:
                code = _wait_or_cancel(warm, cancel)
                if code is None:
                    return {"returncode": 130, "worker": worker.address, "cancelled": True}
                return {"returncode": code, "worker": worker.address}
        for argv in commands:
            try:
                process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL, start_new_session=True)
            except OSError as exc:
                out.write(f"nbprod: cannot start {argv[0]} on {worker.address}: {exc}\n".encode())
                return {"returncode": 127, "worker": worker.address}
            code = _wait_or_cancel(process, cancel)
            if code is None:
                return {"returncode": 130, "worker": worker.address, "cancelled": True}
            if code != 0:
                return {"returncode": code, "worker": worker.address}
    return {"returncode": 0, "worker": worker.address}


def _wait_or_cancel(process: subprocess.Popen, cancel) -> int | None:
    """The process's exit status, or None after interrupting it because the run was cancelled."""
    while True:
        try:
            return process.wait(timeout=CANCEL_POLL)
        except subprocess.TimeoutExpired:
            pass
        if cancel.is_set():
            break
    from ..core.proc import stop_group

    stop_group(process, grace=20.0)  # Ctrl-C to the stage's process group, as locally; then SIGKILL
    return None


def _read_sentinel(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror}"


def _append(path: Path, text: str) -> None:
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(text)
    except OSError:
        pass


def _quiet_distributed() -> None:
    """distributed logs its attempts to reach a lost scheduler with tracebacks on stderr; the run says
    it as one line per stage, so distributed's own log shows in the run's process only with -v (debug)."""
    if not logging.getLogger(LOGGER).isEnabledFor(logging.DEBUG):
        for handler in logging.getLogger("distributed").handlers:
            handler.setLevel(logging.CRITICAL)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
