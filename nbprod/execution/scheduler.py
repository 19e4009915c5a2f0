"""Parallel reproduction: nbprod's own scheduler over DVC's stage graph (DVC has no parallel repro).

DVC decides, exactly as ``dvc repro`` does, which stages to consider (its plan), whether each one
changed, and how to record it (run cache, save, commit, lock entry). nbprod only decides *when*:
ready stages run at the same time on an ``Executor``, while every DVC call stays in this one
process, one at a time, under the repository lock. Lock entries are written in the plan's order,
so ``dvc.lock`` comes out as a serial ``dvc repro`` writes it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..notebooks.compile import NBPROD_CMD
from nbprod.sql.queries import SNAPSHOT_CMD
from . import dvcadapter as dvc
from .executors import Executor, Job, JobResult
from ..core.project import Project


@dataclass
class ScheduleResult:
    ok: bool
    failed: str | None = None                           # the first stage that failed
    message: str | None = None


def reproduce(project: Project, executor: Executor, log: Path, *, targets: list[str] | None = None,
              from_stage: str | None = None, force: bool = False, keep_going: bool = False,
              on_run: Callable[[], None] | None = None) -> ScheduleResult:
    """Reproduce like ``dvc repro [--force] [--keep-going] [--downstream FROM | TARGETS]``,
    ``executor.slots`` at a time. With ``keep_going``, a failure stops only the stages downstream of
    it; the others still run. ``on_run`` is called once, as soon as a stage is found to need running
    (before any job is built or announced), so warm-ups start only when there is work."""
    repo = dvc.open_repo(project.root)
    try:
        with dvc.locked(repo), open(log, "a", encoding="utf-8") as out, dvc.logs_to(out):
            scheduler = _Scheduler(repo, executor, out, log.parent, force, keep_going)
            scheduler.on_run = on_run
            return scheduler.run(targets, from_stage)
    finally:
        repo.close()


class _Scheduler:
    def __init__(self, repo, executor: Executor, out, log_dir: Path, force: bool, keep_going: bool = False):
        self.repo, self.executor, self.out, self.log_dir, self.force = repo, executor, out, log_dir, force
        self.keep_going = keep_going
        # stage -> "pending" | "running" | "done" | "skipped" | "failed" | "blocked" (downstream of a failure)
        self.state: dict = {}
        self.result = ScheduleResult(ok=True)
        self.on_run: Callable[[], None] | None = None

    def _work_ahead(self) -> None:
        """A stage will run: let the run start its kernel pool and stage processes (once)."""
        if self.on_run is not None:
            on_run, self.on_run = self.on_run, None
            on_run()

    def run(self, targets: list[str] | None, from_stage: str | None) -> ScheduleResult:
        names = [from_stage] if from_stage else targets
        planned = dvc.plan(self.repo, names or [], downstream=bool(from_stage))
        self.plan, self.upstream = planned.stages, planned.upstream
        in_plan = set(self.plan)
        self.needs = {s: [u for u in self.upstream[s] if u in in_plan] for s in self.plan}
        self.state = {s: "pending" for s in self.plan}
        self.announced: set = set()
        self.dumped = 0
        try:
            self._loop()
        except BaseException:
            self.executor.cancel()
            raise
        self._dump_ready(final=True)
        return self.result

    # -- the loop: start what is ready, wait, record what finished ----------------------------------

    def _loop(self) -> None:
        while True:
            if self._may_start():
                self._start_ready()
                self._announce_next()
            if not self.executor.running():
                return
            for finished in self.executor.wait(timeout=1.0):
                self._finish(finished)
            self._dump_ready()

    def _start_ready(self) -> None:
        progress = True
        while progress:
            progress = False
            for stage in self.plan:
                if not self._may_start() or self.executor.running() >= self.executor.slots:
                    return
                if self.state[stage] != "pending" or not self._ready(stage):
                    continue
                exclusive = not (_is_nbprod(stage) or _is_snapshot(stage))
                if self._exclusive_running() or (exclusive and self.executor.running()):
                    return  # hand-written stages run alone, as under dvc repro
                self._start(stage)
                progress = True
                if exclusive and self.state[stage] == "running":
                    return

    def _may_start(self) -> bool:
        return self.result.ok or self.keep_going

    def _ready(self, stage) -> bool:
        return all(self.state[u] in ("done", "skipped") for u in self.needs[stage])

    def _exclusive_running(self) -> bool:
        return any(self.state[s] == "running" and not (_is_nbprod(s) or _is_snapshot(s)) for s in self.plan)

    def _start(self, stage) -> None:
        """Mirror of Stage.reproduce + Stage.run up to the command: skip, restore, or launch."""
        name = stage.addressing
        try:
            if not self.force and dvc.unchanged(stage, self.upstream[stage]):
                self._log(f"Stage '{name}' didn't change, skipping")
                self.executor.discard(name)
                self.state[stage] = "skipped"
                return
            if dvc.needs_command(stage) and _is_nbprod(stage):
                self._work_ahead()  # before the deps are hashed: the warm-up overlaps that
            if not dvc.needs_command(stage):
                # Frozen stages and data sources: DVC only verifies and records them; do it serially.
                self._log(f"Verifying '{name}'")
                dvc.verify(stage, self.force)
                self._recorded(stage)
                return
            if dvc.prepare_to_run(stage, self.force):
                self._log(f"Stage '{name}' is cached - skipping run, checking out outputs")
                self._save(stage)
                return
        except Exception as exc:  # noqa: BLE001 - DVC's own errors, reported like dvc repro
            self._fail(stage, f"failed to reproduce '{name}': {exc}")
            return
        if _is_snapshot(stage):
            self._snapshot(stage)
            return
        self._log(f"Running stage '{name}':")
        for line in dvc.cmd_lines(stage.cmd):
            self._log(f"> {line}")
        self.state[stage] = "running"
        self.executor.submit(self._job(stage))

    def _snapshot(self, stage) -> None:
        """A generated SQL snapshot stage runs in this process: its command, ``nbprod db snapshot ID``,
        would pay a Python start and the pandas, SQLAlchemy and pyarrow imports again for each query
        (see benchmarks/README.md). It blocks the loop while it queries; running jobs go on."""
        from nbprod.core.errors import NbprodError
        from nbprod.sql.snapshot import snapshot

        name, query = stage.addressing, stage.cmd.split()[-1]
        self._log(f"Running stage '{name}' in the run's process:")
        self._log(f"> {stage.cmd}")
        try:
            rows = snapshot(Path(self.repo.root_dir), query)
        except NbprodError as exc:
            self._fail(stage, f"stage '{name}': {exc}")
            return
        except Exception as exc:  # noqa: BLE001 - a value the snapshot cannot store: one line, the stage failed
            first = str(exc).splitlines()[0] if str(exc) else ""
            self._fail(stage, f"stage '{name}' failed: {type(exc).__name__}: {first}")
            return
        self._log(f"nbprod: query {query}: {rows} rows")
        try:
            self._save(stage)
        except Exception as exc:  # noqa: BLE001 - any DVC error while saving fails this stage, as in dvc repro
            self._fail(stage, f"failed to reproduce '{name}': {exc}")

    def _announce_next(self) -> None:
        """Tell the executor which nbprod stages come next (one per slot, in plan order), so it can
        start their kernels while the current stages run. Whether they run is decided later."""
        budget = self.executor.slots
        for stage in self.plan:
            if budget == 0:
                return
            if self.state[stage] != "pending" or not _is_nbprod(stage):
                continue
            budget -= 1
            if stage not in self.announced:
                self._work_ahead()
                self.announced.add(stage)
                self.executor.prepare(self._job(stage))

    def _job(self, stage) -> Job:
        run = dvc.commands(stage)
        log = self.log_dir / "stages" / f"{stage.addressing.replace('/', '__').replace(':', '__')}.log"
        return Job(stage=stage.addressing, commands=run.argv, cwd=run.cwd, env=run.env, log=log,
                   nbprod_stage=stage.cmd.split()[-1] if _is_nbprod(stage) else None)

    def _finish(self, finished: JobResult) -> None:
        stage = next(s for s in self.plan if s.addressing == finished.job.stage)
        if not finished.ok:
            self._fail(stage, finished.message or f"failed to reproduce '{stage.addressing}': failed to run: "
                              f"{' && '.join(dvc.cmd_lines(stage.cmd))}, exited with {finished.returncode}")
            return
        try:
            self._save(stage)
        except Exception as exc:  # noqa: BLE001 - any DVC error while saving fails this stage, as in dvc repro
            self._fail(stage, f"failed to reproduce '{stage.addressing}': {exc}")

    def _save(self, stage) -> None:
        """What Stage.run does after the command: hash deps and outs, fill the run cache, commit."""
        dvc.commit_stage(stage)
        self._recorded(stage)

    def _recorded(self, stage) -> None:
        self.state[stage] = "done"  # recorded in the cache; its lock entry is written in plan order

    def _fail(self, stage, message: str) -> None:
        self.state[stage] = "failed"
        self.executor.discard(stage.addressing)
        self._log(f"ERROR: {message}")
        if self.result.ok:
            self.result.ok, self.result.failed, self.result.message = False, stage.addressing, message
        if self.keep_going:
            self._block_downstream()

    def _block_downstream(self) -> None:
        """Stages that need a failed stage can never run (the plan is in dependency order, so one
        pass reaches the whole downstream); their prepared kernels are let go."""
        for stage in self.plan:
            if self.state[stage] == "pending" and any(self.state[u] in ("failed", "blocked")
                                                      for u in self.needs[stage]):
                self.state[stage] = "blocked"
                self.executor.discard(stage.addressing)

    def _dump_ready(self, final: bool = False) -> None:
        """Write lock entries in plan order (a serial run's order); after a failure, those that finished."""
        while self.dumped < len(self.plan):
            stage = self.plan[self.dumped]
            state = self.state[stage]
            if state == "done":
                dvc.write_lock_entry(stage)
            elif state != "skipped" and not final:
                return
            self.dumped += 1

    def _log(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()


def _is_nbprod(stage) -> bool:
    return isinstance(stage.cmd, str) and bool(NBPROD_CMD.match(stage.cmd))


def _is_snapshot(stage) -> bool:
    return isinstance(stage.cmd, str) and bool(SNAPSHOT_CMD.match(stage.cmd))
