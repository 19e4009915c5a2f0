"""Metric files as git remembers them: ``metrics/<stage>.json`` at each commit that changed them."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from ..core import proc
from ..core.project import METRICS_DIR


@dataclass
class Revision:
    commit: str
    short: str
    date: str
    subject: str
    metrics: dict[str, dict] = field(default_factory=dict)  # stage -> {name: value}


def git(root: Path, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess:
    """``git ARGS`` with bytes in and out (blobs are read as they are stored)."""
    return proc.git(root, *args, input=input, text=False)


def git_prefix(root: Path) -> str | None:
    """The project root's path inside its git repository ('' at the top), or None outside git."""
    done = git(root, "rev-parse", "--show-prefix")
    if done.returncode != 0:
        return None
    return done.stdout.decode().strip()


def read_blobs(root: Path, specs: list[str]) -> list[bytes | None]:
    """``git cat-file --batch`` for many ``REV:path`` at once; None where the file is missing."""
    if not specs:
        return []
    done = git(root, "cat-file", "--batch", input="".join(s + "\n" for s in specs).encode())
    out, pos, result = done.stdout, 0, []
    for _ in specs:
        end = out.index(b"\n", pos)
        header = out[pos:end].split()
        pos = end + 1
        if len(header) == 3 and header[1] == b"blob":
            size = int(header[2])
            result.append(out[pos:pos + size])
            pos += size + 1
        else:
            if len(header) == 3:  # not a blob (a tree, say): skip its content too
                pos += int(header[2]) + 1
            result.append(None)
    return result


def _parse_metrics(raw: bytes | None) -> dict | None:
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def metric_history(root: Path, stages: list[str], limit: int = 50) -> list[Revision]:
    """Commits that changed ``metrics/``, oldest first, with each stage's metrics at that commit."""
    root = Path(root)
    prefix = git_prefix(root)
    if prefix is None:
        return []
    log = git(root, "log", f"-n{limit}", "--format=%H%x1f%h%x1f%cs%x1f%s", "--", METRICS_DIR)
    if log.returncode != 0:
        return []
    revisions = []
    for line in reversed(log.stdout.decode(errors="replace").splitlines()):
        commit, short, date, subject = (line.split("\x1f") + ["", "", ""])[:4]
        revisions.append(Revision(commit, short, date, subject))
    specs = [f"{r.commit}:{prefix}{METRICS_DIR}/{s}.json" for r in revisions for s in stages]
    blobs = iter(read_blobs(root, specs))
    for revision in revisions:
        for stage in stages:
            data = _parse_metrics(next(blobs))
            if data is not None:
                revision.metrics[stage] = data
    return revisions


def workspace_metrics(root: Path, stage: str) -> dict | None:
    path = Path(root) / METRICS_DIR / f"{stage}.json"
    return _parse_metrics(path.read_bytes()) if path.is_file() else None
