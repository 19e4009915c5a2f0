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

import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, UTC
from pathlib import Path

import yaml

from ..core import proc
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
    """Commits and model md5s of every version ever assigned to production. An unreadable registry
    or dvc.lock is an NbprodError: gc must not take "unreadable" for "nothing was in production"."""
    from ..lifecycle import registry

    name, path = model_settings(root)
    events = _read_registry(root, lambda: registry.assignments(root, name))
    commits = {e.commit for e in events}
    md5s = set()
    for commit in commits:
        lock = _version_lock(root, commit)
        md5s |= {s.outs[path] for s in lock.values() if path and path in s.outs}
    return commits, md5s


def _read_registry(root: Path, read):
    """``read()`` of the registry tags; [] when the project is not a git repository (so it has no
    registry); any failure to read tags that exist stops gc."""
    if proc.git_output(root, "rev-parse", "--git-dir") is None:
        return []
    try:
        return read()
    except (NbprodError, OSError, subprocess.SubprocessError, ValueError) as exc:
        detail = exc.message.split(" failed: ", 1)[-1] if isinstance(exc, NbprodError) else str(exc)
        raise NbprodError(f"cannot read the model registry ({' '.join(detail.split())}); nothing was removed",
                          "git tags (.git/refs/tags)",
                          fix="repair the tag ('git tag -v NAME', 'git fsck'), then run 'nbprod gc' again") from None


def _version_lock(root: Path, commit: str) -> dict:
    """The dvc.lock of a registered version's commit; a commit git no longer has stops gc."""
    from ..core import gitrepo
    from ..core.dvccache import parse_lock

    if gitrepo.rev_parse(root, commit) is None:
        raise NbprodError(f"commit {commit[:10]} of a registered model version is missing from git; nothing "
                          "was removed", "git tags (.git/refs/tags)",
                          fix="fetch it ('git fetch --tags') or repair the repository ('git fsck')")
    return parse_lock(gitrepo.show_file(root, commit, "dvc.lock"), where=f"dvc.lock at commit {commit[:10]}")


def plan(project: Project, now: datetime | None = None) -> Plan:
    root = project.root
    retention = load_settings(root).retention
    check_lock(root)  # an unreadable or incomplete workspace lock stops gc here, naming it
    now = now or datetime.now(UTC)
    result = Plan()
    kept = _plan_records(root, list_records(project), retention, now, result)
    _plan_runs(root, retention, result)
    _plan_debug(root, retention, result)
    _plan_worktrees(root, retention, result)
    _plan_cache(root, kept, result)
    return result


_MD5 = re.compile(r"[0-9a-f]{32}(\.dir)?")


def check_lock(root: Path) -> None:
    """The workspace dvc.lock parses and is whole: every entry has its hash, and each locked stage lists
    every dep and out dvc.yaml gives it. A lock cut short mid-write is usually still valid YAML, so
    parsing alone would let gc protect only part of the workspace's objects."""
    from ..lifecycle.settings import read_dvc_yaml
    from ..core.dvccache import parse_lock

    text = _read_bytes(root / "dvc.lock")
    lock = parse_lock(text)
    raw = (yaml.safe_load(text) or {}).get("stages") or {} if lock else {}
    declared = (read_dvc_yaml(root).get("stages") or {}) if lock else {}
    for name, stage in lock.items():
        entries = [e for key in ("deps", "outs") for e in (raw.get(name) or {}).get(key) or []]
        # An entry cut short has only its path, "hash: md5" without the md5, or an md5 shorter than DVC
        # writes (a URL dep, with an etag and no md5, is whole).
        cut = [e.get("path") for e in entries if not isinstance(e, dict) or set(e) == {"path"}
               or ("md5" in e and not _MD5.fullmatch(str(e["md5"]))) or ("hash" in e and "md5" not in e)]
        if cut:
            raise NbprodError(f"stage {name!r}: {cut[0]} has no whole md5 (the file looks cut short); nothing was "
                              "removed", "dvc.lock",
                              fix="restore it ('git checkout dvc.lock') or rerun the stage ('nbprod run'), then run "
                                  "'nbprod gc' again")
        spec = declared.get(name) if isinstance(declared.get(name), dict) else {}
        absent = [p for key, locked in (("deps", stage.deps), ("outs", stage.outs), ("metrics", stage.outs))
                  for p in map(_entry_path, spec.get(key) or []) if p not in locked]
        if absent:
            raise NbprodError(f"stage {name!r} lacks {absent[0]}, which dvc.yaml lists (the file was cut short, or "
                              "the stage changed since it last ran); nothing was removed", "dvc.lock",
                              fix="run 'nbprod run' (or restore dvc.lock with git), then run 'nbprod gc' again")


def _entry_path(entry) -> str:
    return str(next(iter(entry))) if isinstance(entry, dict) else str(entry)


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


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

    git_dir = proc.git_output(root, "rev-parse", "--absolute-git-dir")
    if git_dir is None:  # not a git repository: no candidate worktrees
        return
    folder = Path(git_dir) / gitrepo.PRIVATE_DIR / "worktrees"
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
        command = [proc.tool("dvc"), "gc", "--workspace", "--all-branches", "--all-tags",
                   "--all-commits", "--force", "--projects", keep]
        if dry:
            command.append("--dry")
        return subprocess.run(command, cwd=root, capture_output=True, text=True, check=False, env=proc.tool_env())


def _keep_project(root: Path, keep: Path, kept: list[Record]) -> None:
    """A DVC project with no git that shares this project's cache and lists, as .dvc files, every
    object the kept records refer to: `dvc gc --projects` then keeps them."""
    from ..core.dvccache import cache_dir

    dvc = proc.tool("dvc")
    for args in (["init", "-q", "--no-scm"], ["config", "cache.dir", str(cache_dir(root))]):
        done = subprocess.run([dvc, *args], cwd=keep, capture_output=True, text=True, check=False, env=proc.tool_env())
        if done.returncode != 0:
            raise NbprodError(f"'dvc {args[0]}' of gc's keep list failed: "
                              f"{(done.stderr.strip().splitlines() or ['?'])[-1]}; nothing was removed", ".dvc/cache",
                              fix="check that 'dvc' runs in this environment")
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
    from ..lifecycle import registry

    name, _ = model_settings(root)
    found: set[str] = set()
    for version in _read_registry(root, lambda: registry.versions(root, name)):
        for stage in _version_lock(root, version.commit).values():
            found |= {*stage.deps.values(), *stage.outs.values()}
    return found


def apply(project: Project, planned: Plan) -> list[Item]:
    """Remove what ``planned`` lists; the cache through `dvc gc` with the same scope (not file by file)."""
    root = project.root
    if planned.cache_error:  # dvc gc could not read a dvc.lock (or the cache): nothing is removed
        raise NbprodError(f"the DVC cache could not be checked ({planned.cache_error}); nothing was removed",
                          "dvc.lock", fix="run 'dvc gc -w -a -T -A --dry' to see which file DVC cannot read, repair "
                                          "it (git checkout dvc.lock), then run 'nbprod gc --apply' again")
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
            proc.git(root, "worktree", "remove", "--force", item.path)
            shutil.rmtree(item.path, ignore_errors=True)
            proc.git(root, "worktree", "prune")
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
