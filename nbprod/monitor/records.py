"""Run records: ``records/<UTC time>-<run id>/``, one immutable folder per recorded run (``nbprod run
--record``) holding what the run produced and what it was made from, with a sha256 manifest.

A record is assembled in a hidden temporary folder next to the others and renamed into place (a
reader never sees half a record; an existing record is never replaced), then made read-only. The
files added later are ``alerts.json`` and ``served_drift.json``, written by ``nbprod monitor``
(outside the manifest: the verdict on the record and the drift of the inputs ``nbprod serve``
answered up to then, not part of the run).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, UTC
from functools import cached_property
from pathlib import Path

import yaml

from ..core.errors import NbprodError
from ..core.proc import git_output
from ..core.project import ENVIRONMENT_FILE, REPORTS_DIR, Project
from ..core.stagerun import EventKind, StageState

RECORDS_DIR = "records"
MANIFEST = "manifest.json"
RECORD_FILE = "record.json"
ALERTS_FILE = "alerts.json"
SERVED_FILE = "served_drift.json"   # served.drift.* metrics (nbprod.monitor.served_inputs)
LIVE_FILE = "live_quality.json"     # live.* metrics: outcomes joined with predictions (nbprod.feedback.live)
ADDED_FILES = (ALERTS_FILE, SERVED_FILE, LIVE_FILE)  # written by nbprod monitor, outside the manifest
FORMAT = 1
_STAGE_EVENTS = {"run_start", "stage_start", "stage_end", "run_end"}


@dataclass
class Record:
    """One record folder; ``data`` is its record.json."""

    path: Path
    data: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def time(self) -> datetime:
        return datetime.fromisoformat(self.data["time"])

    @property
    def metrics(self) -> dict[str, dict]:
        """The run's metrics files, plus the served-input drift monitor added (as its own "file")."""
        metrics = dict(self.data.get("metrics", {}))
        for name, added in ((SERVED_FILE, self.served), (LIVE_FILE, self.live)):
            if added and added.get("metrics"):
                metrics[name] = added["metrics"]
        return metrics

    @property
    def durations(self) -> dict[str, float]:
        return {name: s["duration"] for name, s in self.data.get("stages", {}).items()
                if s.get("duration") is not None}

    @property
    def production(self) -> dict | None:
        return self.data.get("production")

    @cached_property
    def alerts(self) -> dict | None:
        return _read_json(self.path / ALERTS_FILE)

    @cached_property
    def served(self) -> dict | None:
        return _read_json(self.path / SERVED_FILE)

    @cached_property
    def live(self) -> dict | None:
        return _read_json(self.path / LIVE_FILE)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def records_dir(project: Project) -> Path:
    return project.root / RECORDS_DIR


@dataclass
class DamagedRecord:
    """A record folder whose record.json is missing or unreadable (or, for push, whose files do not
    match its manifest): listed by name, never skipped. ``reason`` starts with the file it is about."""

    path: Path
    reason: str

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def line(self) -> str:
        return f"{RECORDS_DIR}/{self.name}: {self.reason}"


@dataclass
class RecordScan:
    records: list[Record] = field(default_factory=list)    # intact record.json, oldest first
    damaged: list[DamagedRecord] = field(default_factory=list)


def scan_records(project: Project) -> RecordScan:
    """Every record folder, oldest first (names start with the UTC time), split into readable records
    and damaged ones. Hidden folders are records being assembled (or pulled) and are not listed."""
    folder = records_dir(project)
    scan = RecordScan()
    if not folder.is_dir():
        return scan
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_dir():
            continue
        try:
            data = json.loads((path / RECORD_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            scan.damaged.append(DamagedRecord(path, f"{RECORD_FILE} is missing"))
            continue
        except (OSError, ValueError) as exc:
            detail = " ".join(str(exc).split())
            scan.damaged.append(DamagedRecord(path, f"{RECORD_FILE} is not readable JSON ({detail})"))
            continue
        if not isinstance(data, dict) or not isinstance(data.get("time"), str):
            scan.damaged.append(DamagedRecord(path, f"{RECORD_FILE} has no \"time\" (not a record nbprod wrote)"))
            continue
        try:
            datetime.fromisoformat(data["time"])
        except ValueError:
            scan.damaged.append(DamagedRecord(path, f"{RECORD_FILE} has an invalid \"time\" ({data['time']!r})"))
            continue
        scan.records.append(Record(path, data))
    return scan


def list_records(project: Project) -> list[Record]:
    """Every record, oldest first. A damaged record stops the caller (NbprodError naming it): what
    reads the history (monitor, gc) must not silently work on part of it."""
    scan = scan_records(project)
    if scan.damaged:
        raise damaged_error(scan.damaged)
    return scan.records


def damaged_error(damaged: list[DamagedRecord]) -> NbprodError:
    first = damaged[0]
    more = f" (and {len(damaged) - 1} more damaged record(s))" if len(damaged) > 1 else ""
    return NbprodError(f"{first.reason}; the record is damaged and nothing was changed{more}",
                       f"{RECORDS_DIR}/{first.name}",
                       fix="move that folder out of records/ ('nbprod records pull' then restores it if it was "
                           "pushed); 'nbprod records verify' lists every damaged record")


def find_record(project: Project, name: str | None = None) -> Record:
    records = list_records(project)
    if not records:
        raise NbprodError("there are no run records yet", RECORDS_DIR,
                          fix="run 'nbprod run --record' (or 'nbprod records pull' in a fresh clone)")
    if name is None:
        return records[-1]
    matches = [r for r in records if r.name == name or r.name.endswith("-" + name) or r.data.get("run") == name]
    if len(matches) != 1:
        raise NbprodError(f"no single record named {name!r}", RECORDS_DIR,
                          fix="run 'nbprod records' to list them")
    return matches[0]


def create_record(project: Project, events: Path, when: datetime | None = None) -> Record:
    """Record the project's state after the run whose events file is ``events``.

    ``when`` defaults to now (UTC); it names the record and orders the history.
    """
    root = project.root
    when = (when or datetime.now(UTC)).astimezone(UTC)
    run_events = _stage_events(events)
    run_id = next((e.get("run") for e in run_events if e.get("event") == "run_start"), None) or events.parent.name
    name = f"{when.strftime('%Y%m%dT%H%M%SZ')}-{run_id}"
    folder = records_dir(project)
    final = folder / name
    if final.exists():
        raise NbprodError(f"record {name} already exists; records are never overwritten", RECORDS_DIR,
                          fix="record a new run instead")
    folder.mkdir(parents=True, exist_ok=True)
    ignore_in_git(folder)
    stages = _stage_summary(run_events)
    lock_text = _read(root / "dvc.lock")
    data = {
        "format": FORMAT, "name": name, "run": run_id, "time": when.isoformat(timespec="seconds"),
        "ok": next((bool(e.get("ok")) for e in run_events if e.get("event") == "run_end"), False),
        "git": _git_state(root), "stages": stages, "params": _yaml(root / "params.yaml"),
        "lock": _lock_hashes(lock_text), "environment": _environment_summary(root),
    }
    data["model"], data["production"] = _model_and_production(project, data["lock"])
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=folder))
        _assemble(root, tmp, final, data, stages, run_events)
    except OSError as exc:  # a full disk, a read-only folder: no half record, one line naming the folder
        raise NbprodError(f"cannot write record {name} ({exc.strerror or exc}); no record was kept", RECORDS_DIR,
                          fix="free space (or fix the folder's permissions) and record the next run") from None
    make_read_only(final)
    return Record(final, data)


def _assemble(root: Path, tmp: Path, final: Path, data: dict, stages: dict, run_events: list[dict]) -> None:
    """Write the record into ``tmp`` and rename it to ``final``; on any failure ``tmp`` is removed."""
    name = final.name
    try:
        files: dict[str, bytes] = {}
        metrics = {}
        for rel in _metrics_files(root):
            content = _read(root / rel)
            if content is not None:
                files[f"metrics/{rel}"] = content
                metrics[rel] = flatten_metrics(content)
        data["metrics"] = metrics
        for stage, info in stages.items():
            for key, sub in (("notebook", "notebooks"), ("report", "reports")):
                source = info.pop(f"_{key}", None)
                content = _read(root / source) if source else None
                if content is not None:
                    info[key] = f"{sub}/{stage}{Path(source).suffix}"
                    files[info[key]] = content
        for rel, dest in (("dvc.lock", "dvc.lock"), ("params.yaml", "params.yaml"),
                          (ENVIRONMENT_FILE, "environment.json")):
            content = _read(root / rel)
            if content is not None:
                files[dest] = content
        files["events.jsonl"] = b"".join(json.dumps(e).encode() + b"\n" for e in run_events)
        files[RECORD_FILE] = (json.dumps(data, indent=1, sort_keys=True) + "\n").encode()
        for rel, content in files.items():
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        manifest = {"format": FORMAT, "record": name,
                    "files": {rel: {"sha256": hashlib.sha256(c).hexdigest(), "size": len(c)}
                              for rel, c in sorted(files.items())}}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        _fsync_tree(tmp)
        os.rename(tmp, final)  # atomic; fails if a folder of that name appeared meanwhile
    except BaseException:
        make_writable(tmp)
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def verify_record(record: Record) -> list[str]:
    """Problems with a record's files against its manifest; empty when it is intact."""
    try:
        manifest = json.loads((record.path / MANIFEST).read_text(encoding="utf-8"))
        listed = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return [f"{record.name}: {MANIFEST} is missing or unreadable"]
    problems = []
    present = {p.relative_to(record.path).as_posix() for p in record.path.rglob("*") if p.is_file()}
    for rel, entry in sorted(listed.items()):
        path = record.path / rel
        if rel not in present:
            problems.append(f"{record.name}: {rel} is missing")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != entry.get("sha256"):
            problems.append(f"{record.name}: {rel} was changed (sha256 differs from the manifest)")
    for rel in sorted(present - set(listed) - {MANIFEST, *ADDED_FILES}):
        problems.append(f"{record.name}: {rel} is not in the manifest")
    return problems


def write_alerts(record: Record, alerts: dict) -> Path:
    """Write (or rewrite, when the rules changed) the record's alerts.json; the record stays read-only."""
    return _write_added(record, ALERTS_FILE, alerts)


def write_live(record: Record, live: dict) -> Path:
    """Write (or rewrite: more outcomes arrived) the record's live_quality.json; read-only stays."""
    return _write_added(record, LIVE_FILE, live)


def write_served(record: Record, served: dict) -> Path:
    """Write (or rewrite: the log grew) the record's served_drift.json; the record stays read-only."""
    return _write_added(record, SERVED_FILE, served)


def _write_added(record: Record, name: str, content: dict) -> Path:
    path = record.path / name
    text = json.dumps(content, indent=1, sort_keys=True) + "\n"
    record.path.chmod(0o755)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=record.path)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o444)
        os.replace(tmp, path)
    finally:
        record.path.chmod(0o555)
    record.__dict__.pop("alerts", None)
    record.__dict__.pop("served", None)
    record.__dict__.pop("live", None)
    return path


def remove_record(record: Record) -> None:
    make_writable(record.path)
    shutil.rmtree(record.path)


def flatten_metrics(content: bytes | str) -> dict[str, float]:
    """Numbers of a metrics JSON file, nested keys joined with "." as DVC shows them (drift.share)."""
    try:
        data = json.loads(content)
    except ValueError:
        return {}
    flat: dict[str, float] = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}{key}.", inner)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[prefix[:-1]] = value

    walk("", data)
    return flat


def make_read_only(path: Path) -> None:
    for item in sorted(path.rglob("*"), reverse=True):
        item.chmod(0o555 if item.is_dir() else 0o444)
    path.chmod(0o555)


def make_writable(path: Path) -> None:
    if not path.exists():
        return
    path.chmod(0o755)
    for item in path.rglob("*"):
        item.chmod(0o755 if item.is_dir() else 0o644)


def ignore_in_git(folder: Path) -> None:
    # The folder ignores itself, so projects created before `records/` was in the template's
    # .gitignore keep records out of git too.
    marker = folder / ".gitignore"
    if not marker.exists():
        marker.write_text("# nbprod run records: kept in the DVC remote (nbprod records push), not in git\n*\n",
                          encoding="utf-8")


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _yaml(path: Path) -> dict:
    """params.yaml as a mapping; a file that does not parse is refused, never recorded as empty."""
    content = _read(path)
    if not content:
        return {}
    try:
        data = yaml.safe_load(content)
    except yaml.YAMLError as exc:
        raise NbprodError(f"is not valid YAML ({str(exc).splitlines()[0]}); no record was written", path.name,
                          fix="fix or restore it (git checkout params.yaml), then record again") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise NbprodError("does not hold a mapping of notebook sections; no record was written", path.name,
                          fix="fix or restore it (git checkout params.yaml), then record again")
    return data


def _stage_events(events: Path) -> list[dict]:
    from ..execution.events import read_events

    found, _ = read_events(events)
    return [e for e in found if e.get("event") in _STAGE_EVENTS]


def _stage_summary(events: list[dict]) -> dict[str, dict]:
    stages: dict[str, dict] = {}
    for event in events:
        name = event.get("stage")
        if event["event"] == EventKind.RUN_START:
            for stage in event.get("stages", []):
                stages.setdefault(stage, {"state": StageState.UP_TO_DATE.value, "duration": None})
        elif event["event"] == EventKind.STAGE_END and name:
            stages[name] = {"state": event.get("state", StageState.RAN.value), "duration": event.get("duration"),
                            "_notebook": event.get("notebook"),
                            "_report": event.get("report")}
    for name, info in stages.items():  # an up-to-date stage's executed notebook is still the current one
        info.setdefault("_notebook", f"{REPORTS_DIR}/{name}.ipynb")
        info.setdefault("_report", f"{REPORTS_DIR}/{name}.html")
    return stages


def _lock_hashes(lock_text: bytes | None) -> dict:
    from ..core.dvccache import parse_lock

    return {name: {"deps": s.deps, "outs": s.outs} for name, s in parse_lock(lock_text).items()}


def _metrics_files(root: Path) -> list[str]:
    from ..lifecycle.settings import metrics_files

    try:
        return metrics_files(root)
    except NbprodError:
        return []


def _git_state(root: Path) -> dict:
    commit = git_output(root, "rev-parse", "HEAD")
    dirty = git_output(root, "status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": bool(dirty) if commit else None}


def _environment_summary(root: Path) -> dict:
    captured = _read(root / ENVIRONMENT_FILE)
    try:
        env = json.loads(captured) if captured else {}
    except ValueError:
        env = {}
    return {"python": env.get("python", platform.python_version()),
            "platform": env.get("platform", platform.platform()),
            "packages_sha256": env.get("packages_sha256")}


def model_settings(root: Path) -> tuple[str, str | None]:
    """The registry name and the model's path from [tool.nbprod] (path None when it cannot be told)."""
    name, path = "model", None
    from ..core.errors import NbprodError
    from ..core.project import read_config

    try:
        raw = read_config(root)
        name = raw.get("model_name", name) if isinstance(raw.get("model_name", name), str) else name
    except NbprodError:
        pass  # an invalid pyproject.toml: the record keeps the default name
    try:
        from ..lifecycle.settings import load_config
        from ..core.project import load_project

        path = load_config(load_project(root)).model_path
    except (NbprodError, OSError):
        path = None
    return name, path


def _model_and_production(project: Project, lock: dict) -> tuple[dict | None, dict | None]:
    name, path = model_settings(project.root)
    model = None
    if path:
        md5 = next((s["outs"][path] for s in lock.values() if path in s["outs"]), None)
        model = {"name": name, "path": path, "md5": md5}
    return model, production_version(project.root, name)


def production_version(root: Path, model: str) -> dict | None:
    from ..lifecycle import registry

    try:
        version = registry.current(root, model)
    except (NbprodError, subprocess.CalledProcessError, OSError):
        return None
    return None if version is None else {"model": model, "version": version.version, "commit": version.commit}


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def is_read_only(path: Path) -> bool:
    return not any(p.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) for p in [path, *path.rglob("*")])
