"""Wheels made from this environment: one of the running nbprod (it is not on PyPI: the package's
own files), and the installed distributions the image pins, repacked from their RECORD, so the image
gets the very bytes the environment was locked with and its build needs no package index. Entries
are sorted with fixed timestamps: the same files give the same wheel (and a reused image layer)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import zipfile
from importlib import metadata
from pathlib import Path

import nbprod

_EPOCH = (1980, 1, 1, 0, 0, 0)


def nbprod_version() -> str:
    try:
        return metadata.version("nbprod")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def _files() -> list[tuple[str, bytes]]:
    package = Path(nbprod.__file__).resolve().parent
    found = []
    for path in sorted(package.rglob("*")):
        rel = path.relative_to(package)
        if not path.is_file() or "__pycache__" in rel.parts or path.suffix in (".pyc", ".pyo"):
            continue
        found.append((f"nbprod/{rel.as_posix()}", path.read_bytes()))
    return found


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_wheel(folder: Path) -> Path:
    """Write ``nbprod-VERSION-py3-none-any.whl`` into ``folder`` (dependencies are pinned apart, in
    the image's requirements.txt, so the wheel names none)."""
    version = nbprod_version()
    info = f"nbprod-{version}.dist-info"
    files = _files()
    files.append((f"{info}/METADATA", f"Metadata-Version: 2.1\nName: nbprod\nVersion: {version}\n"
                                      "Requires-Python: >=3.11\n".encode()))
    files.append((f"{info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: nbprod image build\nRoot-Is-Purelib: true\n"
                                   b"Tag: py3-none-any\n"))
    files.append((f"{info}/entry_points.txt", b"[console_scripts]\nnbprod = nbprod.cli:main\n"))
    folder.mkdir(parents=True, exist_ok=True)
    return _write(folder / f"nbprod-{version}-py3-none-any.whl", files, info, zipfile.ZIP_DEFLATED)


def _write(target: Path, files: list[tuple[str, bytes]], info: str, compress: int) -> Path:
    record = [_record_line(name, data) for name, data in files] + [f"{info}/RECORD,,"]
    files = [*files, (f"{info}/RECORD", ("\n".join(record) + "\n").encode())]
    partial = target.with_name(target.name + ".partial")
    with zipfile.ZipFile(partial, "w", compress) as archive:
        for name, data in files:
            entry = zipfile.ZipInfo(name, _EPOCH)
            entry.external_attr = 0o644 << 16
            entry.compress_type = compress
            archive.writestr(entry, data)
    os.replace(partial, target)
    return target


_SKIP = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}


def repack(name: str, version: str, folder: Path) -> Path | None:
    """A wheel of the installed distribution ``name`` (at ``version``) from the files its RECORD
    lists, into ``folder`` (kept there: a wheel already made is reused); None when it cannot be made
    here (not installed at that version, no RECORD, an editable install)."""
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return None
    direct = json.loads(dist.read_text("direct_url.json") or "{}")
    if dist.version != version or not dist.files or direct.get("dir_info", {}).get("editable"):
        return None
    wheel_meta = dist.read_text("WHEEL") or ""
    from packaging.tags import sys_tags

    supported = {str(t) for t in sys_tags()}
    tags = [t for line in wheel_meta.splitlines() if line.startswith("Tag:")
            for t in [line.split(":", 1)[1].strip()] if t in supported]
    if not tags:
        return None
    stem = re.sub(r"[-_.]+", "_", dist.metadata["Name"])
    info = next((str(f).split("/")[0] for f in dist.files if str(f).endswith(".dist-info/METADATA")), None)
    if info is None:
        return None
    target = folder / f"{stem}-{version}-{tags[0]}.whl"
    if target.exists():
        return target
    data_dir = f"{stem}-{version}.data"
    files: list[tuple[str, bytes]] = []
    for entry in dist.files:
        rel = str(entry)
        path = Path(dist.locate_file(entry))
        if "__pycache__" in rel or rel.endswith((".pyc", ".pyo")) or not path.is_file():
            continue
        if rel.startswith(f"{info}/") and rel.split("/", 1)[1] in _SKIP:
            continue
        data = path.read_bytes()
        if rel.startswith("../"):
            parts = Path(os.path.normpath(rel)).parts
            while parts and parts[0] == "..":
                parts = parts[1:]
            if parts[:1] == ("bin",):
                if _is_entry_point(dist, parts[-1]):
                    continue  # pip writes console scripts itself, with the image's interpreter
                if data.startswith(b"#!") and b"python" in data.split(b"\n", 1)[0]:
                    data = b"#!python\n" + data.split(b"\n", 1)[1]
                files.append((f"{data_dir}/scripts/{parts[-1]}", data))
            else:
                files.append((f"{data_dir}/data/{'/'.join(parts)}", data))
            continue
        files.append((rel, data))
    folder.mkdir(parents=True, exist_ok=True)
    # Stored, not deflated: the wheel only crosses into the build context and is unpacked once.
    return _write(target, sorted(files), info, zipfile.ZIP_STORED)


def _is_entry_point(dist, script: str) -> bool:
    return any(ep.name == script for ep in dist.entry_points if ep.group in ("console_scripts", "gui_scripts"))
