"""Environment capture: Python version, platform and a hash of every installed package; the
``requirements.lock`` file (a stage may depend on it); drift since the last capture or run."""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from importlib import metadata
from pathlib import Path

LOCK_FILE = "requirements.lock"
CAPTURE_FILE = ".nbprod/environment.json"


def installed_packages() -> dict[str, str]:
    packages = {}
    for dist in metadata.distributions():
        name = (dist.metadata.get("Name") or "").strip()
        if name:
            packages[_canonical(name)] = dist.version
    return dict(sorted(packages.items()))


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def capture() -> dict:
    packages = installed_packages()
    return {"python": platform.python_version(), "implementation": sys.implementation.name,
            "platform": platform.platform(terse=True), "packages_sha256": packages_hash(packages),
            "packages": packages}


def packages_hash(packages: dict[str, str]) -> str:
    text = "".join(f"{name}=={version}\n" for name, version in sorted(packages.items()))
    return hashlib.sha256(text.encode()).hexdigest()


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
            packages[_canonical(name.strip())] = version.strip()
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
    for executed in sorted((root / "reports").glob("*.ipynb")):
        try:
            info = json.loads(executed.read_text(encoding="utf-8"))["metadata"]["nbprod"]
        except (ValueError, KeyError, OSError):
            continue
        recorded = {"python": info.get("python"), "complete": False,
                    "packages": {_canonical(k): v for k, v in (info.get("packages") or {}).items()}}
        checks.append((executed.relative_to(root).as_posix(), diff(recorded, current)))
    return checks
