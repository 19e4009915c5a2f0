"""Executors: where a stage's commands run. The scheduler (nbprod.execution.scheduler) decides what runs when;
an executor only runs jobs and reports when they finish. ``LocalExecutor`` runs them as processes here.

A new backend (a Dask cluster, say) implements ``Executor`` and registers itself in ``EXECUTORS``;
nothing else changes. See docs/architecture.md, section "Executors".
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Job:
    """One stage's commands, exactly as DVC would run them: argv lists run in order in ``cwd``."""

    stage: str                       # DVC stage name (nbprod stages: the nbprod stage name)
    commands: tuple[tuple[str, ...], ...]
    cwd: Path
    env: dict[str, str] = field(hash=False, compare=False)
    log: Path                        # the commands' stdout and stderr go here
    nbprod_stage: str | None = None  # set when the commands are exactly `nbprod exec NAME`; a backend
                                     # may then run that stage in a pre-started nbprod process


@dataclass(frozen=True)
class JobResult:
    job: Job
    returncode: int                  # 0 when every command succeeded; else the first failure's code
    duration: float
    message: str | None = None       # a backend's own words for a failure (a remote worker lost, say)

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class Executor(ABC):
    """Runs at most ``slots`` jobs at a time. The scheduler's whole view of a backend.

    Contract: ``submit`` never blocks and is only called while ``running() < slots``; ``running``
    counts jobs submitted whose results ``wait`` has not yet returned (so a finished job is never
    lost between the two calls); ``wait`` returns the jobs that finished since the last call,
    blocking until at least one has (or the timeout passes); ``cancel`` interrupts every running
    job and returns once they have stopped;
    ``close`` releases the backend. Jobs read and write the project's files in place, so a remote
    backend needs the project on a shared file system (or to sync it around each job).
    """

    def __init__(self, slots: int):
        if slots < 1:
            raise ValueError("an executor needs at least one slot")
        self.slots = slots

    @abstractmethod
    def submit(self, job: Job) -> None:
        ...

    @abstractmethod
    def running(self) -> int:
        ...

    @abstractmethod
    def wait(self, timeout: float | None = None) -> list[JobResult]:
        ...

    @abstractmethod
    def cancel(self) -> None:
        ...

    def warm_up(self) -> None:
        """Hint: jobs will follow soon (the run has started); a backend may start its workers. Optional."""

    def prepare(self, job: Job) -> None:
        """Hint: ``job`` will probably be submitted soon; a backend may warm up for it. Optional."""

    def discard(self, stage: str) -> None:
        """Hint: the job announced by ``prepare`` for ``stage`` will not be submitted. Optional."""

    def close(self) -> None:
        pass

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LocalExecutor(Executor):
    """Each job is a child process group on this machine; one thread per running job waits for it.

    nbprod stages run in ``nbprod exec`` processes (nbprod.execution.prestart) that ``prepare`` starts ahead of
    their stage, so the next stage's Python start-up, imports and kernel start overlap the running
    stage. Each process still runs one stage, with a fresh kernel, the job's env, cwd and log, then
    exits. ``warm_up`` starts one per slot once the run knows a stage will run; those never given a
    job are killed at the end (they hold no kernel).
    """

    def __init__(self, slots: int, warm: bool = True):
        super().__init__(slots)
        self.warm = warm
        self._prepared: dict[str, subprocess.Popen] = {}   # stage -> process starting its kernel
        self._idle: list[subprocess.Popen] = []              # started by warm_up, no stage yet
        self._retired: list[subprocess.Popen] = []
        self._done: queue.Queue[JobResult] = queue.Queue()
        self._processes: dict[str, subprocess.Popen | None] = {}
        self._outstanding = 0           # submitted, result not yet returned by wait()
        self._cancelled = threading.Event()
        self._lock = threading.Lock()

    def submit(self, job: Job) -> None:
        if self.running() >= self.slots:
            raise RuntimeError(f"all {self.slots} slots are busy")
        with self._lock:
            self._processes[job.stage] = None  # reserved until its first command starts
            self._outstanding += 1
        warm = None  # (process, whether it already has this job)
        if job.nbprod_stage and self.warm and not self._cancelled.is_set():
            # Chosen now, not in the job's thread: a stage announced next must not take the
            # process (already started up) that this one is due.
            with self._lock:
                announced = self._prepared.pop(job.stage, None)
            alive = announced is not None and announced.poll() is None
            warm = (announced, True) if alive else (self._take_idle(), False)
        threading.Thread(target=self._run, args=(job, warm), name=f"nbprod-job-{job.stage}", daemon=True).start()

    def _run(self, job: Job, warm: tuple[subprocess.Popen, bool] | None = None) -> None:
        started = time.monotonic()
        code = 0
        job.log.parent.mkdir(parents=True, exist_ok=True)
        if warm is not None:
            code = self._run_warm(job, *warm)
            with self._lock:
                self._processes.pop(job.stage, None)
            self._done.put(JobResult(job, code, time.monotonic() - started))
            return
        with open(job.log, "ab") as out:
            for argv in job.commands:
                if self._cancelled.is_set():
                    code = 130
                    break
                try:
                    process = subprocess.Popen(list(argv), cwd=job.cwd, env=job.env, stdout=out,
                                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                               close_fds=True, start_new_session=True)
                except OSError as exc:
                    out.write(f"nbprod: cannot start {argv[0]}: {exc}\n".encode())
                    code = 127
                    break
                with self._lock:
                    self._processes[job.stage] = process
                code = process.wait()
                if code != 0:
                    break
        with self._lock:
            self._processes.pop(job.stage, None)
        self._done.put(JobResult(job, code, time.monotonic() - started))

    def prepare(self, job: Job) -> None:
        """Start the announced nbprod stage's kernel in a pre-started process, while others run."""
        if not (self.warm and job.nbprod_stage) or self._cancelled.is_set():
            return
        with self._lock:
            if job.stage in self._prepared:
                return
        process = self._take_idle()
        if self._send(process, self._request(job, run=False), close=False):
            with self._lock:
                self._prepared[job.stage] = process

    def discard(self, stage: str) -> None:
        with self._lock:
            process = self._prepared.pop(stage, None)
        if process is not None:
            self._send(process, "", close=True)  # end of input: it stops the kernel and exits
            with self._lock:
                self._retired.append(process)

    def _run_warm(self, job: Job, process: subprocess.Popen, announced: bool) -> int:
        with self._lock:
            self._processes[job.stage] = process
        if announced:  # it has the job and is starting the kernel: run it
            self._send(process, "run\n", close=True)
        else:
            self._send(process, self._request(job, run=True), close=True)
        return process.wait()

    @staticmethod
    def _request(job: Job, run: bool) -> str:
        return json.dumps({"stage": job.nbprod_stage, "cwd": str(job.cwd), "env": job.env, "log": str(job.log),
                           "run": run}) + "\n"

    @staticmethod
    def _send(process: subprocess.Popen, text: str, close: bool) -> bool:
        try:
            if text:
                process.stdin.write(text.encode())
                process.stdin.flush()
            if close:
                process.stdin.close()
            return True
        except (BrokenPipeError, OSError):
            return False  # it died before its job: its exit code says so

    def warm_up(self) -> None:
        """Start one ``nbprod exec`` process per slot now: the first stages' Python start-up and
        imports then overlap the run's compile and DVC start-up instead of following them."""
        if not self.warm:
            return
        with self._lock:
            missing = self.slots - len(self._idle)
        started = [self._spawn() for _ in range(max(0, missing))]
        with self._lock:
            self._idle.extend(started)

    def _take_idle(self) -> subprocess.Popen:
        with self._lock:
            while self._idle:
                process = self._idle.pop(0)
                if process.poll() is None:
                    return process
                self._retired.append(process)
        return self._spawn()

    def _spawn(self) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "nbprod.execution.prestart"], stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=True,
                                start_new_session=True)

    def close(self) -> None:
        with self._lock:
            idle = self._idle
            spares = list(self._prepared.values()) + self._retired
            self._prepared, self._idle, self._retired = {}, [], []
        for process in idle:  # never given a job: no kernel, nothing to stop; may still be importing
            try:
                process.kill()
            except OSError:
                pass
            process.wait()
        for process in spares:  # not run: end of input, they stop their kernel and exit
            try:
                process.stdin.close()
            except OSError:
                pass
        for process in spares:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def running(self) -> int:
        with self._lock:
            return self._outstanding

    def wait(self, timeout: float | None = None) -> list[JobResult]:
        results = []
        try:
            results.append(self._done.get(timeout=timeout))
        except queue.Empty:
            return results
        while True:
            try:
                results.append(self._done.get_nowait())
            except queue.Empty:
                break
        with self._lock:
            self._outstanding -= len(results)
        return results

    def cancel(self) -> None:
        """Ctrl-C for every running job (what a terminal does to a serial run), then kill stragglers."""
        self._cancelled.set()
        deadline = time.monotonic() + 30
        for sig in (signal.SIGINT, signal.SIGKILL):
            with self._lock:
                processes = [p for p in self._processes.values() if p is not None]
            for process in processes:
                try:
                    os.killpg(process.pid, sig)
                except ProcessLookupError:
                    pass
            while self._alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            if not self._alive():
                return
            deadline = time.monotonic() + 5


    def _alive(self) -> bool:
        with self._lock:
            return bool(self._processes)


def _dask_executor(slots: int, **options) -> Executor:
    from .dask_executor import DaskExecutor  # dask is an optional extra, imported only when asked for

    return DaskExecutor(slots, **options)


# Backends by name, for ``nbprod run --executor``. Each takes the slot count and keyword options
# (``scheduler``, ``project_root``) that it may ignore.
EXECUTORS = {"local": lambda slots, **_: LocalExecutor(slots), "dask": _dask_executor}


def make_executor(name: str, slots: int, from_config: bool = False, **options) -> Executor:
    """The backend registered as ``name``; ``from_config``: the name came from ``[tool.nbprod] executor``."""
    from ..core.errors import NbprodError

    factory = EXECUTORS.get(name)
    if factory is None:
        names = sorted(EXECUTORS)
        if from_config:
            raise NbprodError(f"[tool.nbprod] executor {name!r} is not known (available: {', '.join(names)})",
                              "pyproject.toml", fix=" or ".join(f'write executor = "{n}"' for n in names))
        raise NbprodError(f"unknown executor {name!r} (available: {', '.join(names)})",
                          "nbprod run", fix=" or ".join(f"use --executor {n}" for n in names))
    return factory(slots, **options)
