"""``nbprod run``: compile when needed, reproduce with DVC, show progress and a summary table."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..notebooks.compile import compile_project
from nbprod.sql.queries import require_urls
from ..core.errors import NbprodError
from .lifeline import RUN_PID_ENV
from .events import EVENTS_ENV, emit, read_events
from .runfolder import RunFolder
from ..notebooks.pipeline import Pipeline
from ..core.proc import stop_group, tool, tool_env
from ..core.stagerun import EventKind, StageState, StatusState
from ..core.project import GENERATED_DIR, METRICS_DIR, Project



@dataclass
class StageOutcome:
    name: str
    state: StageState = StageState.UP_TO_DATE
    duration: float | None = None
    metrics: dict = field(default_factory=dict)
    message: str | None = None
    cells: int = 0
    cell: int = 0


@dataclass
class RunResult:
    ok: bool
    outcomes: list[StageOutcome]
    message: str | None
    events: Path
    log: Path


class RunLock:
    """One run per project at a time: a second run refuses with a clear message instead of racing DVC."""

    def __init__(self, project: Project, wait: float = 0.0):
        self.path = project.root / GENERATED_DIR / "run.lock"
        self.wait = wait          # seconds to wait for a run in progress (0: refuse at once)
        self.handle = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(self.path, "a+")
        deadline = time.monotonic() + self.wait
        while True:
            try:
                fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:  # polled, so that Ctrl-C still interrupts the wait
                    time.sleep(min(0.5, max(0.01, deadline - time.monotonic())))
                    continue
                self.handle.seek(0)
                holder = self.handle.read().strip() or "another process"
                self.handle.close()
                waited = f" after waiting {self.wait:g} s" if self.wait else ""
                raise NbprodError(f"another nbprod run is in progress ({holder}){waited}",
                                  self.path.parent.name + "/run.lock",
                                  fix="wait for it to finish, or cancel it, then run again") from None
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(f"pid {os.getpid()}")
        self.handle.flush()
        return self

    def __exit__(self, *exc) -> None:
        self.handle.seek(0)
        self.handle.truncate()
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


def run_pipeline(project: Project, targets: list[str] | None = None, *, from_stage: str | None = None,
                 force: bool = False, events_path: Path | None = None, on_event=None, jobs: int = 1,
                 executor: str | None = None, dvc_repro: bool = False, scheduler: str | None = None,
                 lock_timeout: float = 0.0, keep_going: bool = False) -> RunResult:
    """Compile, then reproduce the requested stages (all by default) as ``dvc repro`` would.

    nbprod's scheduler (nbprod.execution.scheduler) runs up to ``jobs`` independent stages at a time on the
    named executor and records them with DVC in this process, leaving dvc.lock as ``dvc repro``
    writes it. ``dvc_repro`` hands the whole run to a ``dvc repro`` process instead (serial only).
    ``on_event`` is called with each event dict as it arrives (the CLI draws progress from it).
    ``keep_going`` (``dvc repro --keep-going``): after a failure, stages that do not depend on the
    failed one still run; the result is still not ok.
    """
    if jobs < 1:
        raise NbprodError(f"-j {jobs}: the number of parallel stages must be at least 1", "nbprod run",
                          fix="use -j 1 (serial, the default) or more")
    if dvc_repro and jobs > 1:
        raise NbprodError("dvc repro runs stages one at a time, so --dvc-repro and -j N cannot be combined",
                          "nbprod run", fix="drop --dvc-repro to run stages in parallel")
    from_config = not executor
    executor = executor or project.executor
    backend = None
    if not dvc_repro:
        from .executors import make_executor

        # An unknown executor or an unreachable cluster fails before anything changes.
        backend = make_executor(executor, jobs, from_config=from_config,
                                scheduler=scheduler or project.dask.get("scheduler"), project_root=project.root)
    held = contextlib.ExitStack()
    held.enter_context(RunLock(project, wait=lock_timeout))  # first of all: a run refused here leaves no trace
    # A run the Jupyter server started already has its folder: the events file it named is in it.
    folder = (RunFolder.of_events(project.root, events_path) if events_path else None) or RunFolder.create(project.root)
    folder.path.mkdir(parents=True, exist_ok=True)
    run_id, run_dir = folder.id, folder.path
    events = events_path or folder.events
    events.parent.mkdir(parents=True, exist_ok=True)
    events.touch()
    log = folder.dvc_log
    os.environ[EVENTS_ENV] = str(events)
    os.environ[RUN_PID_ENV] = str(os.getpid())  # stage processes end with this run (execution/lifeline.py)
    # A pool's kernels run on this machine: stages on remote workers start their own.
    warmer = _Warmer(project, run_dir, backend, pool=executor == "local" or dvc_repro)
    held.callback(warmer.close_pool)
    if backend is not None:
        held.callback(backend.close)  # before the pool and the lock: its processes end first
    if dvc_repro or _edited_since_last_run(project):
        warmer.start()  # stages will run: the pool and stage processes start up while the pipeline compiles
    with held:
        compiled = compile_project(project)
        pipeline = compiled.pipeline
        names = _select(pipeline, targets, from_stage)
        order = [s.name for s in pipeline.order() if s.name in names]
        require_urls(project.root, {q.conn for n in order for q in pipeline.stage(n).queries})
        # a folder the notebooks did not announce (a stage of another notebook)
        warmer.folders({str((project.root / pipeline.stage(n).notebook).parent) for n in order})
        if compiled.changed:
            warmer.start()  # a generated stage notebook changed: its stage will run
        emit(EventKind.RUN_START, run=run_id, stages=order, compiled=compiled.changed)
        outcomes = {name: StageOutcome(name) for name in order}
        environment = _EnvironmentCapture()
        follower = _Follower(events, outcomes, environment.hook(on_event))
        follower.start()
        scheduled = None
        try:
            if dvc_repro:
                code = _dvc_repro(project, targets, from_stage, force, log, keep_going)
            else:
                scheduled = _scheduled_repro(project, targets, from_stage, force, log, backend, keep_going,
                                             on_run=warmer.start)
                code = 0 if scheduled.ok else 1
        finally:
            follower.stop()
        ok = code == 0 and not any(o.state == StageState.FAILED for o in outcomes.values())
        message = next((o.message for o in outcomes.values() if o.state == StageState.FAILED), None)
        if not ok and message is None and scheduled is not None:
            message = f"{scheduled.message}; see {project.rel(log.parent)}"
        if not ok and message is None:
            message = _dvc_error(log) or f"dvc repro exited with status {code}; see {project.rel(log)}"
        for outcome in outcomes.values():
            if outcome.state == StageState.UP_TO_DATE:
                if not ok:
                    outcome.state = (StageState.NOT_RUN if _lock_differs(project, outcome.name)
                                     else StageState.UP_TO_DATE)
                outcome.metrics = outcome.metrics or _metrics(project, outcome.name)
        if ok and any(o.state == StageState.RAN for o in outcomes.values()):
            _record_environment(project, environment.result())
        emit(EventKind.RUN_END, run=run_id, ok=ok, message=message)
        follower.drain()
    os.environ.pop(EVENTS_ENV, None)
    os.environ.pop(RUN_PID_ENV, None)
    return RunResult(ok, [outcomes[n] for n in order], message, events, log)


def _edited_since_last_run(project: Project) -> bool:
    """A cheap guess that stages will run: no dvc.lock yet, or params.yaml or a notebook changed
    after it was written. (A wrong guess either way costs only time: DVC still decides.)"""
    try:
        recorded = (project.root / "dvc.lock").stat().st_mtime_ns
    except OSError:
        return True
    try:
        sources = [project.root / "params.yaml", *project.notebooks()]
    except NbprodError:
        return False  # compile reports it next
    for path in sources:
        try:
            if path.stat().st_mtime_ns > recorded:
                return True
        except OSError:
            continue
    return False


class _Warmer:
    """Starts the run's kernel pool and the executor's stage processes once, when a stage is known
    (or, on a fresh project, bound) to run. A run with nothing to do starts neither: on a no-op run
    their imports competed on the second CPU with DVC's checks."""

    def __init__(self, project: Project, run_dir: Path, backend, pool: bool):
        self.project, self.run_dir, self.backend, self.want_pool = project, run_dir, backend, pool
        self.pool = None
        self.started = False
        self.known: set[str] = set()

    def start(self) -> None:
        if self.started:
            return
        self.started = True
        if self.want_pool:
            self.pool = _start_pool(self.project, self.run_dir)
            if self.pool is not None and self.known:
                self.pool.ensure(self.known)
        if self.backend is not None:
            self.backend.warm_up()

    def folders(self, folders: set[str]) -> None:
        self.known = folders
        if self.pool is not None:
            self.pool.ensure(folders)

    def close_pool(self) -> None:
        if self.pool is not None:
            self.pool.close()


def _start_pool(project: Project, run_dir: Path):
    """The run's kernel pool (nbprod.execution.kernelpool), started (by ``_Warmer``) as soon as stages
    are expected to run, so that its zygotes import ipykernel and the stages' modules while the
    pipeline compiles or DVC checks; None when off or impossible."""
    if not project.kernel_pool:
        return None
    from .kernelpool import KernelPool, preload_groups

    log = run_dir / "kernel-pool.log"
    try:
        return KernelPool.start(project.kernel, log, preload_groups(project))
    except Exception:  # noqa: BLE001 - the pool only saves time: without it stages start kernels as usual
        import traceback

        with open(log, "a", encoding="utf-8") as out:
            out.write("nbprod: the kernel pool did not start\n" + traceback.format_exc())
        return None


class _EnvironmentCapture:
    """Lists the installed packages in a thread started when the first stage starts: the
    run process is idle then, and a run with nothing to do never pays for it (a thread from the
    start competed with DVC's checks for the GIL and slowed no-op runs)."""

    def __init__(self):
        self._thread: threading.Thread | None = None
        self._box: dict = {}

    def hook(self, on_event):
        def forward(event: dict) -> None:
            if event.get("event") == EventKind.STAGE_START and self._thread is None:
                self._thread = threading.Thread(target=self._work, name="nbprod-environment", daemon=True)
                self._thread.start()
            if on_event is not None:
                on_event(event)

        return forward

    def _work(self) -> None:
        from ..core.provenance import capture

        try:
            self._box["value"] = capture()
        except Exception as exc:  # noqa: BLE001 - raised where the result is asked for
            self._box["error"] = exc

    def result(self) -> dict:
        if self._thread is None:
            self._work()
        else:
            self._thread.join()
        if "error" in self._box:
            raise self._box["error"]
        return self._box["value"]


def _record_environment(project: Project, captured: dict) -> None:
    """Python, platform and a hash of every installed package of the run that produced the outputs
    (`.nbprod/environment.json`); `nbprod env check` reports drift from it."""
    from ..notebooks.notebook import atomic_write
    from ..core.project import ENVIRONMENT_FILE

    path = project.root / ENVIRONMENT_FILE
    text = json.dumps(captured, indent=1, sort_keys=True) + "\n"
    try:
        if path.read_text(encoding="utf-8") == text:
            return
    except OSError:
        pass
    atomic_write(path, text)


def _select(pipeline: Pipeline, targets: list[str] | None, from_stage: str | None) -> set[str]:
    if from_stage:
        pipeline.stage(from_stage)
        return pipeline.downstream({from_stage})
    if not targets:
        return {s.name for s in pipeline.stages}
    chosen: set[str] = set()
    by_name = {s.name: s for s in pipeline.stages}
    for name in targets:
        pipeline.stage(name)
        todo = [name]
        while todo:  # dvc repro STAGE also reproduces what the stage depends on
            current = todo.pop()
            if current not in chosen:
                chosen.add(current)
                todo.extend(by_name[current].upstream)
    return chosen


def _dvc_repro(project: Project, targets, from_stage, force: bool, log: Path, keep_going: bool = False) -> int:
    command = [tool("dvc"), "repro"]
    if force:
        command.append("--force")
    if keep_going:
        command.append("--keep-going")
    if from_stage:
        command += ["--downstream", from_stage]
    elif targets:
        command += list(targets)
    env = tool_env()  # so the stages' `nbprod exec` is this nbprod
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=project.root, stdout=out, stderr=subprocess.STDOUT, env=env,
                                   start_new_session=True)
        try:
            return process.wait()
        except KeyboardInterrupt:
            # Ctrl-C: stop DVC and its stage (DVC then leaves dvc.lock as it was for that stage).
            stop_group(process)
            raise


def _scheduled_repro(project: Project, targets, from_stage, force: bool, log: Path, backend,
                     keep_going: bool = False, on_run=None):
    from .scheduler import reproduce

    return reproduce(project, backend, log, targets=targets, from_stage=from_stage, force=force,
                     keep_going=keep_going, on_run=on_run)


def _dvc_error(log: Path) -> str | None:
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    errors = [l for l in lines if l.startswith("ERROR")]
    return errors[-1] if errors else None


def _lock_differs(project: Project, name: str) -> bool:
    from .status import pipeline_status

    try:
        return any(s.name == name and s.state != StatusState.UP_TO_DATE for s in pipeline_status(project))
    except Exception:  # noqa: BLE001 - status is best effort here; the run already failed (and says why)
        logging.getLogger(__name__).debug("status after a failed stage %s", name, exc_info=True)
        return True


def _metrics(project: Project, name: str) -> dict:
    try:
        return json.loads((project.root / METRICS_DIR / f"{name}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


class _Follower:
    """Reads the run's events file while DVC runs and folds them into the outcomes."""

    def __init__(self, path: Path, outcomes: dict[str, StageOutcome], on_event):
        self.path, self.outcomes, self.on_event = path, outcomes, on_event
        self.offset = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.drain()

    def _loop(self) -> None:
        while not self._stop.wait(0.1):
            self.drain()

    def drain(self) -> None:
        events, self.offset = read_events(self.path, self.offset)
        for event in events:
            outcome = self.outcomes.get(event.get("stage", ""))
            kind = event.get("event")
            if outcome is not None:
                if kind == EventKind.STAGE_START:
                    outcome.state, outcome.cells = StageState.RUNNING, event.get("cells", 0)
                elif kind == EventKind.CELL:
                    outcome.cell = event.get("index", 0)
                elif kind == EventKind.STAGE_END:
                    outcome.state = event.get("state", StageState.RAN)  # the same strings, from JSON
                    outcome.duration = event.get("duration")
                    outcome.metrics = event.get("metrics") or {}
                    outcome.message = event.get("message")
            if self.on_event is not None:
                self.on_event(event)
