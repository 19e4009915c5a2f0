"""``nbprod gc``: housekeeping. Plans what can go (records beyond retention, old run folders, oversized
logs, stale debug notebooks and candidate worktrees, DVC cache objects nothing kept refers to) and
removes it only with ``apply=True``.

What is never removed: a record in the lineage of a model version that was ever in production (its
model's md5 or its commit is that version's), the newest record, any cache object used by a git
commit, tag, kept record or the workspace, and every output (metrics too) of a registered version.
The cache part is ``dvc gc`` itself, scoped with ``--workspace --all-branches --all-tags
--all-commits`` plus a throw-away DVC project (``--projects``) whose ``.dvc`` files name the outputs
and inputs of every kept record and registered version.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, UTC
from pathlib import Path

import yaml

from ..core.errors import NbprodError
from ..core.project import DEBUG_DIR, GENERATED_DIR, RUNS_DIR, Project
from .settings import Retention, load_settings
from .records import Record, list_records, model_settings, remove_record
from .watch import EMAIL_DIR


@dataclass
class Item:
    kind: str          # record | run | log | debug | worktree | cache
    path: str          # project-relative (cache objects: the cache path)
    size: int
    why: str


@dataclass
class Plan:
    items: list[Item] = field(default_factory=list)
    protected: list[str] = field(default_factory=list)   # records kept for a production lineage
    cache_error: str | None = None

    @property
    def size(self) -> int:
        return sum(i.size for i in self.items)


def size_of(path: Path) -> int:
    if path.is_file() or path.is_symlink():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def production_lineage(root: Path) -> tuple[set[str], set[str]]:
    """Commits and model md5s of every version ever assigned to production."""
    from ..core import gitrepo
    from ..lifecycle import registry
    from ..core.dvccache import parse_lock

    name, path = model_settings(root)
    try:
        events = registry.assignments(root, name)
    except Exception:  # noqa: BLE001 - no git, no tags: nothing was ever in production
        return set(), set()
    commits = {e.commit for e in events}
    md5s = set()
    for commit in commits:
        lock = parse_lock(gitrepo.show_file(root, commit, "dvc.lock"))
        md5s |= {s.outs[path] for s in lock.values() if path and path in s.outs}
    return commits, md5s


def plan(project: Project, now: datetime | None = None) -> Plan:
    root = project.root
    retention = load_settings(root).retention
    now = now or datetime.now(UTC)
    result = Plan()
    kept = _plan_records(root, list_records(project), retention, now, result)
    _plan_runs(root, retention, result)
    _plan_debug(root, retention, result)
    _plan_worktrees(root, retention, result)
    _plan_cache(root, kept, result)
    return result


def _plan_records(root: Path, records: list[Record], retention: Retention, now: datetime, result: Plan) -> list[Record]:
    if retention.keep_last is None and retention.keep_days is None:
        return records
    commits, md5s = production_lineage(root)
    kept = []
    for index, record in enumerate(records):
        newest = len(records) - index  # 1 for the latest
        young = retention.keep_days is not None and record.time >= now - timedelta(days=retention.keep_days)
        recent = retention.keep_last is not None and newest <= retention.keep_last
        if young or recent or newest == 1:
            kept.append(record)
            continue
        model = (record.data.get("model") or {}).get("md5")
        commit = (record.data.get("git") or {}).get("commit")
        if (model and model in md5s) or (commit in commits and not record.data["git"].get("dirty")):
            result.protected.append(record.name)
            kept.append(record)
            continue
        result.items.append(Item("record", f"records/{record.name}", size_of(record.path),
                                 "beyond keep_last/keep_days"))
    return kept


def _plan_runs(root: Path, retention: Retention, result: Plan) -> None:
    folder = root / RUNS_DIR
    runs = sorted((p for p in folder.iterdir() if p.is_dir()), key=lambda p: p.name) if folder.is_dir() else []
    finished = [p for p in runs if _finished(p)]
    old = finished[:-retention.keep_runs] if retention.keep_runs else finished
    for path in old:
        result.items.append(Item("run", path.relative_to(root).as_posix(), size_of(path),
                                 f"more than keep_runs = {retention.keep_runs} run folders"))
    limit = retention.max_log_mb * 1024 * 1024
    logs = [log for path in finished[len(old):] for log in path.rglob("*.log")]
    logs += sorted((root / GENERATED_DIR).glob("*.log"))  # logs of nbprod's own helpers (report worker, ...)
    for log in logs:
        if log.stat().st_size > limit:
            result.items.append(Item("log", log.relative_to(root).as_posix(), log.stat().st_size,
                                     f"log over max_log_mb = {retention.max_log_mb:g}"))


def _finished(run: Path) -> bool:
    """A run folder whose run ended (or that nobody has written to for a day: a killed run)."""
    events = run / "events.jsonl"
    try:
        if time.time() - events.stat().st_mtime > 86400:
            return True
        with open(events, "rb") as handle:
            handle.seek(max(0, events.stat().st_size - 4096))
            return b'"run_end"' in handle.read()
    except OSError:
        return time.time() - run.stat().st_mtime > 86400


def _plan_debug(root: Path, retention: Retention, result: Plan) -> None:
    cutoff = time.time() - retention.debug_days * 86400
    for folder, what in ((root / DEBUG_DIR, "debug notebook"), (root / EMAIL_DIR, "email written by --dry-run")):
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.stat().st_mtime < cutoff:
                result.items.append(Item("debug", path.relative_to(root).as_posix(), size_of(path),
                                         f"{what} older than debug_days = {retention.debug_days:g}"))


def _plan_worktrees(root: Path, retention: Retention, result: Plan) -> None:
    from ..core import gitrepo

    try:
        folder = gitrepo.git_dir(root) / gitrepo.PRIVATE_DIR / "worktrees"
    except Exception:  # noqa: BLE001 - not a git repository
        return
    if not folder.is_dir():
        return
    cutoff = time.time() - retention.debug_days * 86400
    for path in sorted(folder.iterdir()):
        if path.is_dir() and path.stat().st_mtime < cutoff:
            result.items.append(Item("worktree", str(path), size_of(path),
                                     "candidate worktree kept with --keep-worktree, older than debug_days"))


def _plan_cache(root: Path, kept: list[Record], result: Plan) -> None:
    done = _dvc_gc(root, kept, dry=True)
    if done.returncode != 0:
        result.cache_error = (done.stderr.strip().splitlines() or ["dvc gc failed"])[-1]
        return
    for line in done.stdout.splitlines():
        if line.startswith("Removing "):
            path = Path(line[len("Removing "):].strip())
            try:
                size = path.stat().st_size
            except OSError:
                size = 0
            result.items.append(Item("cache", str(path), size, "used by no commit, tag, record or the workspace"))


def _dvc_gc(root: Path, kept: list[Record], dry: bool) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="nbprod-gc-") as keep:
        _keep_project(root, Path(keep), kept)
        command = [str(Path(sys.executable).parent / "dvc"), "gc", "--workspace", "--all-branches", "--all-tags",
                   "--all-commits", "--force", "--projects", keep]
        if dry:
            command.append("--dry")
        return subprocess.run(command, cwd=root, capture_output=True, text=True, check=False)


def _keep_project(root: Path, keep: Path, kept: list[Record]) -> None:
    """A DVC project with no git that shares this project's cache and lists, as .dvc files, every
    object the kept records refer to: `dvc gc --projects` then keeps them."""
    from ..core.dvccache import cache_dir

    dvc = str(Path(sys.executable).parent / "dvc")
    subprocess.run([dvc, "init", "-q", "--no-scm"], cwd=keep, check=True, capture_output=True)
    subprocess.run([dvc, "config", "cache.dir", str(cache_dir(root))], cwd=keep, check=True, capture_output=True)
    wanted: set[str] = set()
    for record in kept:
        for stage in (record.data.get("lock") or {}).values():
            wanted |= {*stage.get("deps", {}).values(), *stage.get("outs", {}).values()}
    wanted |= _version_objects(root)
    for count, md5 in enumerate(sorted(m for m in wanted if m)):
        (keep / f"k{count}.dvc").write_text(
            yaml.safe_dump({"outs": [{"md5": md5, "path": f"k{count}", "hash": "md5"}]}), encoding="utf-8")


def _version_objects(root: Path) -> set[str]:
    """Every dep and out md5 in the dvc.lock of every registered model version. `dvc gc` skips outputs
    with ``cache: false`` (metrics), but the run cache stored them and rollback restores a version's
    outputs from the cache and checks each one, so a version needs all of them."""
    from ..core import gitrepo
    from ..lifecycle import registry
    from ..core.dvccache import parse_lock

    name, _ = model_settings(root)
    try:
        versions = registry.versions(root, name)
    except Exception:  # noqa: BLE001 - no git or no tags: no versions
        return set()
    found: set[str] = set()
    for version in versions:
        for stage in parse_lock(gitrepo.show_file(root, version.commit, "dvc.lock")).values():
            found |= {*stage.deps.values(), *stage.outs.values()}
    return found


def apply(project: Project, planned: Plan) -> list[Item]:
    """Remove what ``planned`` lists; the cache through `dvc gc` with the same scope (not file by file)."""
    root = project.root
    removed = []
    records = {r.name: r for r in list_records(project)}
    for item in planned.items:
        if item.kind == "record":
            remove_record(records[item.path.split("/", 1)[1]])
        elif item.kind in ("run", "debug"):
            target = root / item.path
            shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
        elif item.kind == "log":
            (root / item.path).unlink(missing_ok=True)
        elif item.kind == "worktree":
            subprocess.run(["git", "worktree", "remove", "--force", item.path], cwd=root, capture_output=True,
                           check=False)
            shutil.rmtree(item.path, ignore_errors=True)
            subprocess.run(["git", "worktree", "prune"], cwd=root, capture_output=True, check=False)
        else:
            continue
        removed.append(item)
    if any(i.kind == "cache" for i in planned.items):
        kept = list_records(project)  # after the records above are gone
        done = _dvc_gc(root, kept, dry=False)
        if done.returncode != 0:
            raise NbprodError(f"dvc gc failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}", ".dvc/cache",
                              fix="run 'dvc gc -w -a -T -A' yourself to see why")
        removed += [i for i in planned.items if i.kind == "cache"]
    return removed
