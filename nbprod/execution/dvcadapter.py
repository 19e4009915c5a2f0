"""Every use of DVC's internals, in one place: what nbprod's scheduler needs from DVC (3.x) to run
stages itself and still record them exactly as ``dvc repro`` does.

DVC has no public API for "run this stage's command elsewhere, then record it". So this module
imports private names (``dvc.stage.run._make_cmd``, ``_enforce_cmd_list``) and mirrors the steps of
``Stage.reproduce``, ``Stage.run`` and ``dvc.stage.run.run_stage`` around the command (skip an
unchanged stage, restore from the run cache, remove outputs, save deps; after the command: save
with the run cache, commit, dump the lock entry). tests/{unit,func}/test_dvcadapter.py pins each of these:
it fails loudly, naming the step, when a DVC release changes one (pyproject pins ``dvc<4``).
Modules import DVC lazily (inside functions): ``import dvc.repo`` is not free, and many callers never need it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import NbprodError
from ..core.proc import tool_env
from ..core.project import PASSED_DIR


def open_repo(root: Path):
    """DVC's ``Repo`` for the project; a project DVC cannot open is the user's to fix."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        return Repo(str(root))
    except DvcException as exc:
        raise NbprodError(f"DVC cannot open the project ({exc})", root, fix="run 'dvc doctor'") from None


@contextmanager
def locked(repo) -> Iterator[None]:
    """Hold DVC's repository lock (and its git context) as ``dvc repro`` does for a whole run."""
    from dvc.repo import lock_repo

    with lock_repo(repo), repo.scm_context(quiet=True):
        yield


@contextmanager
def logs_to(out) -> Iterator[None]:
    """DVC's own messages ("Updating lock file ...") go to ``out``, as they go to the terminal under
    ``dvc repro``."""
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


def status(root: Path) -> dict:
    """``dvc status`` of the project, as JSON-safe data."""
    import json

    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return json.loads(json.dumps(repo.status(), default=str))


@dataclass
class Plan:
    """What ``dvc repro`` would consider, in its order, with each stage's upstream stages."""

    graph: object
    stages: list                # DVC Stage objects in execution order
    upstream: dict              # stage -> the stages producing its deps (DVC graph successors)


def plan(repo, names: list[str], downstream: bool) -> Plan:
    """``dvc repro [--downstream] NAMES`` (all stages of the root dvc.yaml when empty): its plan."""
    from dvc.repo.reproduce import get_active_graph, plan_repro

    graph = get_active_graph(repo.index.graph)
    stages = plan_repro(graph, _collect(repo, graph, names), downstream=downstream)
    return Plan(graph, stages, {s: list(graph.successors(s)) for s in stages})


def _collect(repo, graph, names: list[str]) -> list:
    """The stages ``dvc repro NAMES`` starts from, taken from the graph already loaded (what
    ``collect_stages`` returns, without parsing dvc.yaml and dvc.lock a second time)."""
    from dvc.repo.reproduce import collect_stages

    dvc_yaml = os.path.join(repo.root_dir, "dvc.yaml")  # not relative to the caller's cwd
    in_root = [s for s in graph if getattr(s, "path", None) == dvc_yaml]
    if not names:
        return in_root
    by_name = {s.name: s for s in in_root if getattr(s, "name", None)}
    if all(n in by_name for n in names):
        return [by_name[n] for n in names]
    return collect_stages(repo, [f"{dvc_yaml}:{n}" for n in names])


def unchanged(stage, upstream: list) -> bool:
    """``Stage.reproduce``'s skip test (without ``--force``): nothing the stage depends on changed."""
    return not stage.changed(False, upstream)


def needs_command(stage) -> bool:
    """False for frozen stages and data sources, which DVC only verifies and records."""
    return not stage.frozen and bool(stage.cmd)


def verify(stage, force: bool) -> None:
    """A frozen stage or data source: ``Stage.run`` does everything (no command runs)."""
    stage.run(force=force)


def prepare_to_run(stage, force: bool) -> bool:
    """``Stage.run`` and ``run_stage`` before the command: remove the outputs, then unless
    ``force`` restore them from the run cache. True when restored (the command need not run;
    call ``record`` next); otherwise the deps are hashed and the command should run."""
    from dvc.stage.cache import RunCacheNotFoundError

    stage.remove_outs(ignore_remove=False, force=False)
    if force:
        return False
    try:
        stage.repo.stage_cache.restore(stage)
        return True
    except RunCacheNotFoundError:
        stage.save_deps()
        return False


@dataclass
class Commands:
    argv: tuple[tuple[str, ...], ...]  # one argv per line of the stage's cmd, run in order
    cwd: Path
    env: dict[str, str]


def commands(stage) -> Commands:
    """How ``dvc repro`` runs the stage's cmd: each line through ``$SHELL --noprofile --norc -c``
    (DVC's per-shell flags), in the stage's wdir, with DVC's environment (``DVC_ROOT``,
    ``DVC_STAGE``) and this environment's bin folder first on PATH (for ``nbprod exec``)."""
    from dvc.stage.run import _enforce_cmd_list, _make_cmd, get_executable, prepare_kwargs

    options = prepare_kwargs(stage)
    executable = get_executable()
    argv = []
    for line in _enforce_cmd_list(stage.cmd):
        made = _make_cmd(executable, line)
        argv.append(tuple(made) if isinstance(made, list) else ("/bin/sh", "-c", made))
    return Commands(tuple(argv), Path(options["cwd"]), tool_env(options["env"]))


def cmd_lines(cmd) -> list[str]:
    """The lines of a stage's cmd, as DVC prints them ("> line")."""
    return cmd if isinstance(cmd, list) else str(cmd).splitlines()


def commit_stage(stage) -> None:
    """``Stage.run`` after the command: hash deps and outs, fill the run cache (unless an output
    is not cached), commit the outputs to the cache.

    A variable passed between stages (under ``.nbprod/data/``) is hard-linked into the cache
    instead of copied: one copy on disk, no second write. Only nbprod writes those files, and it
    always replaces them (``nbprod.artifacts.save`` unlinks, DVC's ``remove_outs`` removes), never
    writes into one, so the cache's bytes cannot change under it. Every other output keeps the
    link type the project's DVC config names (a file a user rewrites in place must stay a copy)."""
    no_cache_outs = any(not out.use_cache for out in stage.outs if not (out.is_metric or out.is_plot))
    stage.save(allow_missing=False, run_cache=not no_cache_outs)
    linked = [out for out in stage.outs if _hardlink_safe(stage, out)]
    if not linked:
        stage.commit(allow_missing=False)
        return
    for out in stage.outs:  # one output at a time (Stage.commit's own loop, with its lock)
        with _hardlinks(out.cache) if out in linked else contextlib.nullcontext():
            stage.commit(allow_missing=False, filter_info=out.fs_path)


def _hardlink_safe(stage, out) -> bool:
    """A cached output nbprod owns (a passed variable) on the cache's file system."""
    if not out.use_cache or out.is_metric or out.is_plot:
        return False
    root = Path(stage.repo.root_dir)
    path = Path(out.fs_path)
    cache = Path(out.cache.path)
    while not cache.exists() and cache != cache.parent:  # a first commit creates the cache folder
        cache = cache.parent
    try:
        inside = path.relative_to(root).as_posix().startswith(PASSED_DIR + "/")
        return inside and os.stat(path).st_dev == os.stat(cache).st_dev
    except (ValueError, OSError):
        return False


@contextmanager
def _hardlinks(cache) -> Iterator[None]:
    """DVC's ``Output.commit`` links an output into the cache when the cache's first link type
    is ``hardlink`` (and checks it out again as a hard link, falling back to the next type)."""
    saved = cache.cache_types
    cache.cache_types = ["hardlink", *(t for t in saved if t != "hardlink")]
    try:
        yield
    finally:
        cache.cache_types = saved


def write_lock_entry(stage) -> None:
    """The stage's entry in dvc.lock (``Stage.dump`` as ``dvc repro`` calls it)."""
    stage.dump(update_pipeline=False)
