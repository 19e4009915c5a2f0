"""The git operations the lifecycle needs: commands, tags, worktrees and snapshot commits."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from . import proc
from .errors import NbprodError

# Lifecycle state that belongs to this clone only (worktrees of running candidates).
PRIVATE_DIR = "nbprod"


def git(root: Path, *args: str, check: bool = True, env: dict | None = None, input: str | None = None) -> str:
    """``git ARGS``'s stripped output; with ``check``, a failure is an NbprodError naming the command."""
    done = proc.git(root, *args, input=input, env={**os.environ, **(env or {})})
    if check and done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise NbprodError(f"'git {' '.join(args[:2])}' failed: {detail[-1] if detail else done.returncode}", root,
                          fix="check that this folder is a git repository with at least one commit")
    return done.stdout.strip() if check or done.returncode == 0 else ""


def require_repo(root: Path) -> None:
    done = proc.git(root, "rev-parse", "--verify", "HEAD")
    if done.returncode != 0:
        raise NbprodError("is not a git repository with a commit; the model registry lives in git tags", root,
                          fix="run 'git init' and commit the project first")


def require_unlocked_index(root: Path, outcome: str) -> None:
    """Refuse before changing anything when git's index is locked: the working-tree restore that
    follows would fail after the registry tags were written."""
    lock = git_dir(root) / "index.lock"
    if lock.exists():
        raise NbprodError(f"git's index is locked (another git command is running, or one was killed); {outcome}",
                          lock, fix="wait for that git command to end, or remove the file if none is running, "
                                    "then try again")


def git_dir(root: Path) -> Path:
    return Path(git(root, "rev-parse", "--absolute-git-dir"))


def identity_args(root: Path) -> list[str]:
    """A committer identity only when git has none (fresh machines, CI); the user's otherwise."""
    name = proc.git(root, "config", "user.name").stdout.strip()
    email = proc.git(root, "config", "user.email").stdout.strip()
    args = []
    if not name and not os.environ.get("GIT_COMMITTER_NAME"):
        args += ["-c", "user.name=nbprod"]
    if not email and not os.environ.get("GIT_COMMITTER_EMAIL"):
        args += ["-c", "user.email=nbprod@localhost"]
    return args


def rev_parse(root: Path, rev: str) -> str | None:
    done = proc.git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    return done.stdout.strip() if done.returncode == 0 else None


def show_file(root: Path, commit: str, path: str) -> bytes | None:
    done = proc.git(root, "show", f"{commit}:{path}", text=False)
    return done.stdout if done.returncode == 0 else None


def tracked_files(root: Path, commit: str) -> list[str]:
    out = git(root, "ls-tree", "-r", "-z", "--name-only", commit)
    return [p for p in out.split("\0") if p]


def snapshot_tree(root: Path) -> str:
    """The tree of the working state (tracked changes and untracked, not ignored, files) without
    touching the user's index."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        git(root, "read-tree", "HEAD", env=env)
        git(root, "add", "-A", "--", ".", env=env)
        return git(root, "write-tree", env=env)


def commit_tree(root: Path, tree: str, parent: str, message: str) -> str:
    return git(root, *identity_args(root), "commit-tree", tree, "-p", parent, "-F", "-", input=message)


def create_annotated_tag(root: Path, name: str, commit: str, message: str) -> None:
    git(root, *identity_args(root), "tag", "-a", name, commit, "-F", "-", input=message)


def list_tags(root: Path, pattern: str = "*") -> list[dict]:
    """Annotated tags as dicts: name, commit, tagger, date (ISO), message."""
    fmt = ("%(refname:short)%00%(*objectname)%00%(objectname)%00%(taggername)%00%(taggerdate:iso-strict)%00"
           "%(contents)%01")
    out = git(root, "for-each-ref", f"--format={fmt}", f"refs/tags/{pattern}")
    tags = []
    for record in out.split("\x01"):
        record = record.strip("\n")
        if not record:
            continue
        name, peeled, obj, tagger, date, message = record.split("\0", 5)
        tags.append({"name": name, "commit": peeled or obj, "tagger": tagger, "date": date,
                     "message": message.strip()})
    return tags


def set_ref(root: Path, ref: str, commit: str) -> None:
    git(root, "update-ref", ref, commit)


def add_worktree(root: Path, path: Path, commit: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    git(root, "worktree", "add", "--detach", "--force", str(path), commit)


def remove_worktree(root: Path, path: Path) -> None:
    proc.git(root, "worktree", "remove", "--force", str(path))
    proc.git(root, "worktree", "prune")


def changed_paths(root: Path) -> list[str]:
    """Tracked files changed in the working tree, and untracked files that are not ignored."""
    out = git(root, "ls-files", "-z", "--modified", "--others", "--exclude-standard")
    return sorted({p for p in out.split("\0") if p})


def deleted_paths(root: Path) -> list[str]:
    out = git(root, "ls-files", "-z", "--deleted")
    return sorted({p for p in out.split("\0") if p})
