"""Records in the project's DVC remote: ``nbprod records push`` / ``pull``.

Records are git-ignored, so they cannot travel as ``.dvc`` files (which live in git); they are
copied as plain folders under ``<remote>/nbprod-records/<name>/`` through the remote's own file
system (DVC's fsspec layer: local, S3, GCS, SSH... whatever ``dvc push`` uses), next to DVC's
``files/md5`` objects and never touched by ``dvc gc``. A record's ``manifest.json`` is uploaded last,
so a record without one in the remote is incomplete and is uploaded again; pulled records are
checked against their manifest before they appear under ``records/``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import NbprodError
from ..core.project import Project
from .records import (
    ADDED_FILES,
    MANIFEST,
    DamagedRecord,
    Record,
    scan_records,
    make_read_only,
    make_writable,
    records_dir,
    verify_record,
)

PREFIX = "nbprod-records"
log = logging.getLogger(__name__)


@dataclass
class Transfer:
    copied: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    damaged: list[DamagedRecord] = field(default_factory=list)   # local records not pushed (named by the CLI)


def _remote(project: Project, remote: str | None):
    from dvc.repo import Repo

    try:
        repo = Repo(str(project.root))
        found = repo.cloud.get_remote(remote, "push")
    except Exception as exc:  # noqa: BLE001 - DVC's config errors: one line for the user
        raise NbprodError(f"no usable DVC remote ({' '.join(str(exc).split())})", ".dvc/config",
                          fix="add one with 'dvc remote add -d NAME URL'") from None
    return found.fs, found.fs.join(found.path, PREFIX)


def _remote_names(fs, base: str) -> set[str]:
    if not fs.exists(base):
        return set()
    names = set()
    for entry in fs.ls(base, detail=False):
        name = entry.rstrip("/").rsplit("/", 1)[-1]
        if fs.exists(fs.join(base, name, MANIFEST)):
            names.add(name)
    return names


def push(project: Project, remote: str | None = None) -> Transfer:
    fs, base = _remote(project, remote)
    try:
        return _push(project, fs, base)
    except NbprodError:
        raise
    except Exception as exc:  # noqa: BLE001 - each fsspec backend raises its own kinds (OSError, HTTP, cloud SDKs)
        log.debug("records push failed", exc_info=True)
        raise NbprodError(f"the DVC remote {base} could not be reached ({type(exc).__name__}: "
                          f"{' '.join(str(exc).split())[:200]}); local records are unchanged", ".dvc/config",
                          fix="check the remote's address and the network, then push again (a record half "
                              "uploaded has no manifest there yet and is uploaded again)") from None


def _push(project: Project, fs, base: str) -> Transfer:
    there = _remote_names(fs, base)
    scan = scan_records(project)
    result = Transfer(damaged=scan.damaged)
    for record in scan.records:
        if record.name in there:
            result.present.append(record.name)
            continue
        problems = verify_record(record)
        if problems:  # never pushed (the remote keeps only intact records); the CLI names it
            result.damaged.append(DamagedRecord(record.path, problems[0].split(": ", 1)[-1]))
            continue
        files = [p for p in sorted(record.path.rglob("*")) if p.is_file() and p.name != MANIFEST]
        for path in [*files, record.path / MANIFEST]:
            target = fs.join(base, record.name, path.relative_to(record.path).as_posix())
            fs.makedirs(fs.parent(target), exist_ok=True)
            fs.put_file(str(path), target)
        result.copied.append(record.name)
    return result


def pull(project: Project, remote: str | None = None) -> Transfer:
    fs, base = _remote(project, remote)
    folder = records_dir(project)
    scan = scan_records(project)
    # A damaged local record is not replaced by the remote's copy: the user moves it away first.
    local = {r.name for r in scan.records} | {d.name for d in scan.damaged}
    result = Transfer(damaged=scan.damaged)
    for name in sorted(_remote_names(fs, base)):
        if name in local:
            result.present.append(name)
            continue
        folder.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=folder))
        try:
            manifest_text = fs.cat_file(fs.join(base, name, MANIFEST))
            manifest = json.loads(manifest_text)
            for rel in [*manifest.get("files", {}), *ADDED_FILES]:
                source = fs.join(base, name, rel)
                if rel in ADDED_FILES and not fs.exists(source):
                    continue
                target = tmp / rel
                if not target.resolve().is_relative_to(tmp.resolve()):
                    raise NbprodError(f"record {name} in the remote lists a path outside it ({rel})", "records",
                                      fix="remove that record from the remote")
                target.parent.mkdir(parents=True, exist_ok=True)
                fs.get_file(source, str(target))
            (tmp / MANIFEST).write_bytes(manifest_text)
            problems = verify_record(Record(tmp))
            if problems:
                raise NbprodError(f"record {name} in the remote does not match its manifest ({problems[0]})",
                                  "records", fix="push it again from a machine that has it intact")
            os.rename(tmp, folder / name)
        except BaseException:
            make_writable(tmp)
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        make_read_only(folder / name)
        result.copied.append(name)
    from .records import ignore_in_git

    if folder.is_dir():
        ignore_in_git(folder)
    return result
