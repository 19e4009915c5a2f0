"""The user's working tree: keep its state as a commit before replacing it, and restore a version's
code, params, dvc.lock, environment lock and DVC outputs into it."""

from __future__ import annotations

from pathlib import Path

from ..core.errors import NbprodError
from ..core import gitrepo
from ..core.dvccache import cache_dir, current_md5, dvc, expand, md5_file, object_path, parse_lock


def unsaved_outputs(root: Path) -> list[str]:
    """DVC outputs changed in the working tree whose bytes are not in the cache (a restore would lose them)."""
    lock_file = root / "dvc.lock"
    if not lock_file.is_file():
        return []
    cache = cache_dir(root)
    lost = []
    for stage in parse_lock(lock_file.read_text(encoding="utf-8")).values():
        for path, md5 in stage.outs.items():
            now = current_md5(root, path, md5)
            if now is None or now == md5:
                continue
            target = root / path
            files = [p for p in ([target] if target.is_file() else target.rglob("*")) if p.is_file()]
            if any(not object_path(cache, md5_file(p)).is_file() for p in files):
                lost.append(path)
    return lost


def state_tree(root: Path) -> str:
    return gitrepo.snapshot_tree(root)


def tree_of(root: Path, commit: str) -> str:
    return gitrepo.git(root, "rev-parse", f"{commit}^{{tree}}")


def require_cached(root: Path, commit: str) -> None:
    """Refuse, before anything changes, when the cache lacks an output of ``commit``'s dvc.lock."""
    text = gitrepo.show_file(root, commit, "dvc.lock")
    cache = cache_dir(root)
    missing = [p for s in parse_lock(text).values() for path, md5 in s.outs.items()
               for p, m in _files(cache, path, md5) if not object_path(cache, m).is_file()]
    if missing:
        raise NbprodError(f"the DVC cache lacks {len(missing)} file(s) of this version, first {missing[0]}",
                          cache, fix="run 'dvc pull' to fetch them from the remote, then try again")


def restore(root: Path, commit: str) -> list[str]:
    """Make the working tree hold ``commit``'s files and the DVC outputs its dvc.lock names.

    Returns the outputs whose restored bytes do not match dvc.lock (empty when all match).
    """
    require_cached(root, commit)
    gitrepo.git(root, "restore", f"--source={commit}", "--staged", "--worktree", "--", ".")
    lock_file = root / "dvc.lock"
    if not lock_file.is_file():
        return []
    stages = parse_lock(lock_file.read_text(encoding="utf-8"))
    dvc(root, "checkout", "--force", "--quiet")
    return [path for s in stages.values() for path, md5 in s.outs.items()
            if current_md5(root, path, md5) != md5]


def _files(cache: Path, path: str, md5: str) -> list[tuple[str, str]]:
    if md5.endswith(".dir") and not object_path(cache, md5).is_file():
        return [(path, md5)]
    return expand(cache, path, md5)
