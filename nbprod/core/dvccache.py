"""Reading dvc.lock and DVC's content-addressed cache: which file has which hash, and where its bytes are."""

from __future__ import annotations

import configparser
import hashlib
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from .errors import NbprodError
from .proc import tool, tool_env


@dataclass
class LockedStage:
    name: str
    cmd: str
    deps: dict[str, str]            # path -> md5 (".dir" suffix for folders)
    outs: dict[str, str]
    params: dict[str, dict]         # params file -> {key: value}


def parse_lock(text: str | bytes | None, where: str = "dvc.lock") -> dict[str, LockedStage]:
    if not text:
        return {}
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise NbprodError(f"is not valid YAML ({str(exc).splitlines()[0]})", where,
                          fix="restore it with git, or run 'nbprod run' to rewrite it") from None
    stages = {}
    try:
        for name, stage in (doc.get("stages") or {}).items():
            stage = stage or {}
            stages[name] = LockedStage(
                name=name, cmd=str(stage.get("cmd", "")),
                deps={d["path"]: d.get("md5", "") for d in stage.get("deps", []) or []},
                outs={o["path"]: o.get("md5", "") for o in stage.get("outs", []) or []},
                params={f: dict(v or {}) for f, v in (stage.get("params") or {}).items()})
    except (AttributeError, TypeError, KeyError, ValueError):  # YAML, but not the shape DVC writes
        raise NbprodError("is not a DVC lock file (its stages are not the mappings DVC writes; cut short?)", where,
                          fix="restore it with git, or run 'nbprod run' to rewrite it") from None
    return stages


def cache_dir(root: Path) -> Path:
    for name in ("config.local", "config"):
        parser = configparser.ConfigParser()
        try:
            parser.read(root / ".dvc" / name, encoding="utf-8")
        except configparser.Error:
            continue
        if parser.has_option("cache", "dir"):
            value = parser.get("cache", "dir").strip().strip("'\"")
            return (root / ".dvc" / value).resolve()
    return root / ".dvc" / "cache"


def object_path(cache: Path, md5: str) -> Path:
    return cache / "files" / "md5" / md5[:2] / md5[2:]


def md5_file(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def expand(cache: Path, path: str, md5: str) -> list[tuple[str, str]]:
    """(file path, md5) of every file an out holds: itself, or each file of a folder's manifest."""
    if not md5.endswith(".dir"):
        return [(path, md5)]
    manifest = object_path(cache, md5)
    if not manifest.is_file():
        raise NbprodError(f"the DVC cache has no listing of folder {path} ({md5})", manifest.parent,
                          fix="run 'dvc pull' or 'nbprod run' so the cache holds this version")
    entries = json.loads(manifest.read_text(encoding="utf-8"))
    return [(f"{path}/{e['relpath']}", e["md5"]) for e in entries]


def dir_md5(path: Path) -> str | None:
    """The hash DVC gives a folder (md5 of its sorted file listing), to compare with dvc.lock."""
    if not path.is_dir():
        return None
    entries = [{"md5": md5_file(p), "relpath": p.relative_to(path).as_posix()}
               for p in sorted(path.rglob("*")) if p.is_file()]
    entries.sort(key=lambda e: e["relpath"])
    return hashlib.md5(json.dumps(entries, sort_keys=True).encode()).hexdigest() + ".dir"


def current_md5(root: Path, path: str, locked: str) -> str | None:
    target = root / path
    if locked.endswith(".dir"):
        return dir_md5(target)
    return md5_file(target) if target.is_file() else None


def materialize(cache: Path, root: Path, path: str, md5: str) -> None:
    """Write an out's files from the cache to ``root/path`` (a copy, never a link into the cache)."""
    target = root / path
    if target.is_dir():
        shutil.rmtree(target)
    for file_path, file_md5 in expand(cache, path, md5):
        source = object_path(cache, file_md5)
        if not source.is_file():
            raise NbprodError(f"the DVC cache has no copy of {file_path} ({file_md5})", source.parent,
                              fix="run 'dvc pull' so the cache holds this version")
        destination = root / file_path
        destination.parent.mkdir(parents=True, exist_ok=True)
        if destination.exists() or destination.is_symlink():
            destination.unlink()
        shutil.copyfile(source, destination)


def dvc(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([tool("dvc"), *args], cwd=root, capture_output=True, text=True, env=tool_env())
    if check and done.returncode != 0:
        lines = [l for l in (done.stderr or done.stdout).splitlines() if l.strip()]
        error = next((l for l in lines if l.startswith("ERROR")), lines[-1] if lines else str(done.returncode))
        raise NbprodError(f"'dvc {' '.join(args[:2])}' failed: {error}", root,
                          fix="run the same dvc command here to see the full message")
    return done
