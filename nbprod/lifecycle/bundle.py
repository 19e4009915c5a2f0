"""``nbprod package`` and ``nbprod unpack``: a zip holding a version's notebooks, generated stages,
dvc.yaml, dvc.lock, params, environment lock, and its data and model from the DVC cache, with a
manifest of sha256 sums that unpack verifies before writing anything."""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..core.errors import NbprodError
from ..core.project import Project
from . import environment, registry
from ..core import gitrepo
from .settings import load_config
from ..core.dvccache import cache_dir, dvc, expand, object_path, parse_lock, sha256_bytes

MANIFEST = "nbprod-bundle.json"
FORMAT = 1


@dataclass
class BundleResult:
    files: int
    size: int
    source: str
    manifest_sha256: str = ""


def collect(project: Project, version_text: str | None) -> tuple[dict[str, bytes], str]:
    """Every file a bundle of the version (or the working state) holds, by project-relative path, and
    where they came from: git's tracked files at its commit, the DVC outputs of its dvc.lock from the
    cache, and the environment lock. ``nbprod package`` zips them; ``nbprod image build`` copies them."""
    root = project.root
    gitrepo.require_repo(root)
    if version_text:
        config = load_config(project)
        version = registry.find_version(root, config.model_name, version_text)
        treeish, source = version.commit, f"{version.tag} ({version.commit[:10]})"
    else:
        treeish, source = gitrepo.snapshot_tree(root), "the working state"
    files: dict[str, bytes] = {}
    for rel in gitrepo.tracked_files(root, treeish):
        data = gitrepo.show_file(root, treeish, rel)
        if data is not None:
            files[rel] = data
    if "dvc.lock" not in files:
        raise NbprodError(f"{source} has no dvc.lock: it has not been run", "dvc.lock",
                          fix="run 'nbprod run' and commit, or package a registered version")
    cache = cache_dir(root)
    for stage in parse_lock(files["dvc.lock"]).values():
        for out, md5 in stage.outs.items():
            if out in files:
                continue  # uncached outputs (metrics) are in git already
            for file_path, file_md5 in expand(cache, out, md5):
                blob = object_path(cache, file_md5)
                if not blob.is_file():
                    raise NbprodError(f"the DVC cache has no copy of {file_path} ({file_md5})", blob.parent,
                                      fix="run 'dvc pull' (or 'nbprod run') so the cache holds it, then package again")
                files[file_path] = blob.read_bytes()
    if environment.LOCK_FILE not in files:
        captured = files.get(environment.CAPTURE_FILE)
        env = json.loads(captured) if captured else environment.capture()
        files[environment.LOCK_FILE] = environment.lock_text(env).encode()
    return files, source


def manifest_bytes(files: dict[str, bytes], source: str, created: str) -> bytes:
    """The bundle manifest (``nbprod-bundle.json``): every file's sha256 and size."""
    manifest = {"format": FORMAT, "source": source, "created": created,
                "files": {p: {"sha256": sha256_bytes(d), "size": len(d)} for p, d in sorted(files.items())}}
    return (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()


def package(project: Project, version_text: str | None, output: Path) -> BundleResult:
    files, source = collect(project, version_text)
    output = output if output.is_absolute() else Path.cwd() / output
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    manifest = manifest_bytes(files, source, registry.now())
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MANIFEST, manifest)
        for rel, data in sorted(files.items()):
            archive.writestr(rel, data)
    os.replace(partial, output)
    return BundleResult(len(files), output.stat().st_size, source, sha256_bytes(manifest))


def verify(bundle: Path, expected_manifest: str | None = None) -> tuple[dict, dict[str, bytes]]:
    """The manifest and every file's bytes, after checking each sha256; raises on any difference.

    ``expected_manifest`` (the sum ``nbprod package`` printed) also catches a manifest rewritten to
    match altered files."""
    try:
        archive = zipfile.ZipFile(bundle)
    except (OSError, zipfile.BadZipFile) as exc:
        raise NbprodError(f"is not a readable zip ({exc})", bundle, fix="package it again with 'nbprod package'") \
            from None
    with archive:
        names = archive.namelist()
        if MANIFEST not in names:
            raise NbprodError(f"has no {MANIFEST}: not an nbprod bundle", bundle, fix="make it with 'nbprod package'")
        raw = archive.read(MANIFEST)
        if expected_manifest and sha256_bytes(raw) != expected_manifest.lower():
            raise NbprodError(f"{MANIFEST} does not have the sha256 given with --sha256 (tampered or another bundle)",
                              bundle, fix="check the sum printed by 'nbprod package', or package the version again")
        try:
            manifest = json.loads(raw)
            expected = manifest["files"]
        except (ValueError, KeyError, TypeError):
            raise NbprodError(f"{MANIFEST} is unreadable", bundle, fix="package it again") from None
        files = {}
        for name in names:
            if name == MANIFEST or name.endswith("/"):
                continue
            _safe(bundle, name)
            if name not in expected:
                raise NbprodError(f"holds {name}, which the manifest does not list (tampered)", bundle,
                                  fix="do not use this bundle; package the version again")
            data = archive.read(name)
            if sha256_bytes(data) != expected[name]["sha256"]:
                raise NbprodError(f"{name} does not match its sha256 in the manifest (tampered or corrupted)", bundle,
                                  fix="do not use this bundle; package the version again")
            files[name] = data
        missing = sorted(set(expected) - set(files))
        if missing:
            raise NbprodError(f"lacks {missing[0]}, listed in the manifest ({len(missing)} missing)", bundle,
                              fix="do not use this bundle; package the version again")
    return manifest, files


def _safe(bundle: Path, name: str) -> None:
    parts = PurePosixPath(name).parts
    if name.startswith("/") or ".." in parts or (parts and parts[0] == ".git"):
        raise NbprodError(f"holds an unsafe path {name!r}", bundle, fix="do not use this bundle")


def unpack(bundle: Path, directory: Path, expected_manifest: str | None = None) -> BundleResult:
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise NbprodError("already exists and is not empty", directory, fix="unpack into a new folder")
    manifest, files = verify(bundle, expected_manifest)  # nothing is written unless every file checks out
    directory.mkdir(parents=True, exist_ok=True)
    for rel, data in files.items():
        target = directory / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    root = directory.resolve()
    gitrepo.git(root, "init", "-q")
    # Outputs go into this project's own DVC cache, so rollback and package work here too.
    dvc(root, "commit", "--force", "--quiet")
    gitrepo.git(root, "add", "-A")
    gitrepo.git(root, *gitrepo.identity_args(root), "commit", "-q", "-m",
                f"Unpacked nbprod bundle of {manifest.get('source')}")
    return BundleResult(len(files), bundle.stat().st_size, str(manifest.get("source")),
                        sha256_bytes(json.dumps(manifest, indent=1, sort_keys=True).encode() + b"\n"))
