"""Environment lock and drift: the ``requirements.lock`` file (a stage may depend on it) and what
changed since the last capture or run. Capturing and listing packages is nbprod.core.provenance's job."""

from __future__ import annotations

import json
from pathlib import Path

from ..core.project import ENVIRONMENT_FILE, REPORTS_DIR
from ..core.provenance import canonical_name, capture, installed_packages, packages_hash
from ..core.stagerun import read_stage_run

__all__ = ["CAPTURE_FILE", "LOCK_FILE", "capture", "diff", "drift", "installed_packages", "lock_text",
           "packages_hash", "parse_lock", "write_capture", "write_lock"]

LOCK_FILE = "requirements.lock"
CAPTURE_FILE = ENVIRONMENT_FILE


def lock_text(env: dict) -> str:
    lines = [f"# python {env['python']} ({env['implementation']}, {env['platform']})",
             f"# packages sha256 {env['packages_sha256']}",
             "# written by 'nbprod env lock'; a stage can depend on this file (deps:requirements.lock)"]
    lines += [f"{name}=={version}" for name, version in env["packages"].items()]
    return "\n".join(lines) + "\n"


def parse_lock(text: str) -> dict:
    packages, python = {}, None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("# python "):
            python = line.split()[2]
        elif line and not line.startswith("#") and "==" in line:
            name, _, version = line.partition("==")
            packages[canonical_name(name.strip())] = version.strip()
    return {"python": python, "packages": packages, "packages_sha256": packages_hash(packages)}


def write_lock(root: Path) -> Path:
    path = root / LOCK_FILE
    path.write_text(lock_text(capture()), encoding="utf-8")
    return path


def write_capture(root: Path, env: dict | None = None) -> Path:
    path = root / CAPTURE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(env or capture(), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return path


def diff(recorded: dict, current: dict) -> list[str]:
    """What changed from ``recorded`` to ``current``, one line each; empty when nothing drifted."""
    lines = []
    if recorded.get("python") and recorded["python"] != current["python"]:
        lines.append(f"python {recorded['python']} -> {current['python']}")
    old, new = recorded.get("packages", {}), current.get("packages", {})
    for name in sorted(set(old) | set(new)):
        if name not in new:
            lines.append(f"{name} {old[name]} removed")
        elif name not in old:
            if recorded.get("complete", True):
                lines.append(f"{name} {new[name]} added")
        elif old[name] != new[name]:
            lines.append(f"{name} {old[name]} -> {new[name]}")
    return lines


def drift(root: Path) -> list[tuple[str, list[str]]]:
    """For each record of a past environment in the project, what differs from this one.

    Records: requirements.lock, the last capture (.nbprod/environment.json, written by retrain and
    approve), and the Python and key packages in each executed notebook of the last run.
    """
    current = capture()
    checks: list[tuple[str, list[str]]] = []
    lock = root / LOCK_FILE
    if lock.is_file():
        checks.append((LOCK_FILE, diff(parse_lock(lock.read_text(encoding="utf-8")), current)))
    captured = root / CAPTURE_FILE
    if captured.is_file():
        try:
            checks.append((CAPTURE_FILE, diff(json.loads(captured.read_text(encoding="utf-8")), current)))
        except ValueError:
            checks.append((CAPTURE_FILE, ["unreadable; run 'nbprod env lock' or retrain to record it again"]))
    for executed in sorted((root / REPORTS_DIR).glob("*.ipynb")):
        record = read_stage_run(executed)
        if record is None:
            continue
        recorded = {"python": record.python, "complete": False,
                    "packages": {canonical_name(k): v for k, v in record.packages.items()}}
        checks.append((executed.relative_to(root).as_posix(), diff(recorded, current)))
    return checks
