"""Parallel reproduction: nbprod's own scheduler over DVC's stage graph (DVC has no parallel repro).

DVC decides, exactly as ``dvc repro`` does, which stages to consider (its plan), whether each one
changed, and how to record it (run cache, save, commit, lock entry). nbprod only decides *when*:
ready stages run at the same time on an ``Executor``, while every DVC call stays in this one
process, one at a time, under the repository lock. Lock entries are written in the plan's order,
so ``dvc.lock`` comes out as a serial ``dvc repro`` writes it.
"""

from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..compile import NBPROD_CMD
from ..errors import NbprodError
from .executors import Executor, Job, JobResult
from ..project import Project


@dataclass
class ScheduleResult:
    ok: bool
    ran: list[str] = field(default_factory=list)        # DVC stage names whose commands ran
    skipped: list[str] = field(default_factory=list)    # unchanged (or restored from the run cache)
    failed: str | None = None                           # the first stage that failed
    message: str | None = None


def reproduce(project: Project, executor: Executor, log: Path, *, targets: list[str] | None = None,
              from_stage: str | None = None, force: bool = False, keep_going: bool = False) -> ScheduleResult:
    """Reproduce like ``dvc repro [--force] [--keep-going] [--downstream FROM | TARGETS]``,
    ``executor.slots`` at a time. With ``keep_going``, a failure stops only the stages downstream of
    it; the others still run."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo, lock_repo

    try:
        repo = Repo(str(project.root))
    except DvcException as exc:
        raise NbprodError(f"DVC cannot open the project ({exc})", project.root, fix="run 'dvc doctor'") from None
    try:
        with lock_repo(repo), repo.scm_context(quiet=True), open(log, "a", encoding="utf-8") as out, \
                _dvc_logs_to(out):
            return _Scheduler(repo, executor, out, log.parent, force, keep_going).run(targets, from_stage)
    finally:
        repo.close()


@contextmanager
def _dvc_logs_to(out):
    """DVC's own messages ("Updating lock file ...") go to the run log, as under ``dvc repro``."""
    logger = logging.getLogger("dvc")
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(message)s"))
    saved = logger.handlers[:], logger.propagate, logger.level
    logger.handlers, logger.propagate = [handler], False
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.handlers, logger.propagate = saved[0], saved[1]
        logger.setLevel(saved[2])


class _Scheduler:
    def __init__(self, repo, executor: Executor, out, log_dir: Path, force: bool, keep_going: bool = False):
        self.repo, self.executor, self.out, self.log_dir, self.force = repo, executor, out, log_dir, force
        self.keep_going = keep_going
        # stage -> "pending" | "running" | "done" | "skipped" | "failed" | "blocked" (downstream of a failure)
        self.state: dict = {}
        self.result = ScheduleResult(ok=True)

    def run(self, targets: list[str] | None, from_stage: str | None) -> ScheduleResult:
        from dvc.repo.reproduce import get_active_graph, plan_repro

        self.graph = get_active_graph(self.repo.index.graph)
        names = [from_stage] if from_stage else targets
        stages = self._collect(names or [])
        self.plan = plan_repro(self.graph, stages, downstream=bool(from_stage))
        in_plan = set(self.plan)
        # DVC's "upstream" of a stage: the stages producing its deps (graph successors).
        self.upstream = {s: [u for u in self.graph.successors(s)] for s in self.plan}
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

    def _collect(self, names: list[str]) -> list:
        """The stages ``dvc repro [NAMES]`` starts from, taken from the graph already loaded (what
        ``collect_stages`` would return, without parsing dvc.yaml and dvc.lock a second time)."""
        from dvc.repo.reproduce import collect_stages

        dvc_yaml = os.path.join(self.repo.root_dir, "dvc.yaml")  # not relative to the caller's cwd
        in_root = [s for s in self.graph if getattr(s, "path", None) == dvc_yaml]
        if not names:
            return in_root
        by_name = {s.name: s for s in in_root if getattr(s, "name", None)}
        if all(n in by_name for n in names):
            return [by_name[n] for n in names]
        return collect_stages(self.repo, [f"{dvc_yaml}:{n}" for n in names])

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
                exclusive = not _is_nbprod(stage)
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
        return any(self.state[s] == "running" and not _is_nbprod(s) for s in self.plan)

    def _start(self, stage) -> None:
        """Mirror of Stage.reproduce + Stage.run up to the command: skip, restore, or launch."""
        from dvc.stage.cache import RunCacheNotFoundError

        name = stage.addressing
        try:
            if not self.force and not stage.changed(False, self.upstream[stage]):
                self._log(f"Stage '{name}' didn't change, skipping")
                self.executor.discard(name)
                self.state[stage] = "skipped"
                self.result.skipped.append(name)
                return
            if stage.frozen or not stage.cmd:
                # Frozen stages and data sources: DVC only verifies and records them; do it serially.
                self._log(f"Verifying '{name}'")
                stage.run(force=self.force)
                self._recorded(stage)
                return
            stage.remove_outs(ignore_remove=False, force=False)
            if not self.force:
                try:
                    self.repo.stage_cache.restore(stage)
                    self._log(f"Stage '{name}' is cached - skipping run, checking out outputs")
                    self._save(stage)
                    self.result.skipped.append(name)
                    return
                except RunCacheNotFoundError:
                    stage.save_deps()
        except Exception as exc:  # noqa: BLE001 - DVC's own errors, reported like dvc repro
            self._fail(stage, f"failed to reproduce '{name}': {exc}")
            return
        self._log(f"Running stage '{name}':")
        for line in _enforce(stage.cmd):
            self._log(f"> {line}")
        self.state[stage] = "running"
        self.executor.submit(self._job(stage))

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
                self.announced.add(stage)
                self.executor.prepare(self._job(stage))

    def _job(self, stage) -> Job:
        from dvc.stage.run import _enforce_cmd_list, _make_cmd, get_executable, prepare_kwargs

        options = prepare_kwargs(stage)
        env = options["env"]
        bin_dir = str(Path(sys.executable).parent)
        env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")  # the stages' `nbprod exec`
        executable = get_executable()
        commands = []
        for line in _enforce_cmd_list(stage.cmd):
            argv = _make_cmd(executable, line)
            commands.append(tuple(argv) if isinstance(argv, list) else ("/bin/sh", "-c", argv))
        log = self.log_dir / "stages" / f"{stage.addressing.replace('/', '__').replace(':', '__')}.log"
        return Job(stage=stage.addressing, commands=tuple(commands), cwd=Path(options["cwd"]), env=env, log=log,
                   nbprod_stage=stage.cmd.split()[-1] if _is_nbprod(stage) else None)

    def _finish(self, finished: JobResult) -> None:
        stage = next(s for s in self.plan if s.addressing == finished.job.stage)
        if not finished.ok:
            self._fail(stage, finished.message or f"failed to reproduce '{stage.addressing}': failed to run: "
                              f"{' && '.join(_enforce(stage.cmd))}, exited with {finished.returncode}")
            return
        self.result.ran.append(stage.addressing)
        try:
            self._save(stage)
        except Exception as exc:  # noqa: BLE001 - any DVC error while saving fails this stage, as in dvc repro
            self._fail(stage, f"failed to reproduce '{stage.addressing}': {exc}")

    def _save(self, stage) -> None:
        """What Stage.run does after the command: hash deps and outs, fill the run cache, commit."""
        no_cache_outs = any(not out.use_cache for out in stage.outs if not (out.is_metric or out.is_plot))
        stage.save(allow_missing=False, run_cache=not no_cache_outs)
        stage.commit(allow_missing=False)
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
                stage.dump(update_pipeline=False)
            elif state != "skipped" and not final:
                return
            self.dumped += 1

    def _log(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()


def _is_nbprod(stage) -> bool:
    return isinstance(stage.cmd, str) and bool(NBPROD_CMD.match(stage.cmd))


def _enforce(cmd) -> list[str]:
    return cmd if isinstance(cmd, list) else str(cmd).splitlines()
