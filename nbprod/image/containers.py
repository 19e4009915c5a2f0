"""The container engine: podman, or docker when podman is absent. Building (with the host's CA bundle
and pip cache as build-time mounts under podman, never in a layer), reading an image's config, and
copying a folder out of an image without running it."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import NbprodError

PIP_CACHE_ENV = "NBPROD_IMAGE_PIP_CACHE"   # a host folder mounted as pip's cache during builds
CA_MOUNT = "/run/nbprod/ca.crt"


def engine(preferred: str | None = None) -> str:
    for name in ([preferred] if preferred else ["podman", "docker"]):
        path = shutil.which(name)
        if path:
            return path
    raise NbprodError(f"no container engine found ({preferred or 'podman or docker'})", "PATH",
                      fix="install podman (apt-get install podman) or docker")


def _ca_bundle() -> Path | None:
    for candidate in (os.environ.get("PIP_CERT"), os.environ.get("SSL_CERT_FILE"),
                      os.environ.get("REQUESTS_CA_BUNDLE"), "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def _pip_conf(folder: Path) -> tuple[Path, list[str]]:
    """A pip.conf for the build with the host's package sources (``pip config list``), and the
    read-only mounts they need: a local index (file://.../simple, whose pages link to files beside
    it) or find-links folder is mounted at the same path, as is the CA bundle. Nothing of it is
    written into a layer."""
    import sys

    lines, mounts = ["[global]"], []
    ca = _ca_bundle()
    if ca is not None:
        lines.append(f"cert = {CA_MOUNT}")
        mounts.append(f"{ca}:{CA_MOUNT}:ro")
    done = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True)
    settings: dict[str, list[str]] = {}
    for line in done.stdout.splitlines():
        key, _, value = line.partition("=")
        scope, _, name = key.partition(".")
        if scope not in ("global", ":env:") or name not in ("index-url", "extra-index-url", "find-links",
                                                             "trusted-host"):
            continue
        for item in value.strip().strip("'\"").split():
            if item not in settings.setdefault(name, []):
                settings[name].append(item)
    for name, items in settings.items():
        kept = []
        for item in items:
            local = item.removeprefix("file://") if item.startswith("file://") else (
                item if name == "find-links" and item.startswith("/") else None)
            if local is not None:
                folder_path = Path(local)
                shared = folder_path.parent if name != "find-links" else folder_path
                if not folder_path.exists():
                    continue
                mount = f"{shared}:{shared}:ro"
                if mount not in mounts:
                    mounts.append(mount)
            kept.append(item)
        if kept:
            lines.append(f"{name} = {' '.join(kept)}")
    path = folder / "pip.conf"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    mounts.append(f"{path}:/etc/pip.conf:ro")
    return path, mounts


@dataclass
class Built:
    image_id: str
    name: str


def build(tool: str, root: Path, containerfile: Path, target: str, name: str, network: str | None) -> Built:
    """Build ``target`` of the Containerfile with the project folder as context; output goes to the
    terminal (a build takes minutes)."""
    podman = Path(tool).name == "podman"
    with tempfile.TemporaryDirectory(prefix="nbprod-image-") as tmp:
        iid = Path(tmp) / "iid"
        args = [tool, "build", "--file", str(containerfile), "--target", target, "--tag", name,
                "--iidfile", str(iid)]
        if network:
            args += ["--network", network]
        if podman:
            args += ["--format", "docker"]  # keeps HEALTHCHECK (the OCI config has no field for it)
            for mount in _pip_conf(Path(tmp))[1]:
                args += ["--volume", mount]
            cache = os.environ.get(PIP_CACHE_ENV)
            if cache:
                Path(cache).mkdir(parents=True, exist_ok=True)
                args += ["--volume", f"{Path(cache).resolve()}:/root/.cache/pip"]
        done = subprocess.run([*args, str(root)])
        if done.returncode != 0:
            raise NbprodError(f"the image build failed ({Path(tool).name} exit {done.returncode}); its output is above",
                              containerfile, fix="read the failing step above; fix it, then build again")
        return Built(iid.read_text().strip(), name)


def inspect(tool: str, image: str) -> dict:
    done = subprocess.run([tool, "image", "inspect", image], capture_output=True, text=True)
    if done.returncode != 0:
        raise NbprodError(f"no image {image!r} ({done.stderr.strip().splitlines()[-1:] or ['not found']})",
                          image, fix="build it with 'nbprod image build', or give the right name")
    return json.loads(done.stdout)[0]


def labels(config: dict) -> dict[str, str]:
    return dict((config.get("Config") or {}).get("Labels") or config.get("Labels") or {})


def copy_out(tool: str, image: str, folder: str) -> dict[str, bytes]:
    """The regular files under ``folder`` in the image (by path relative to it), read from a created,
    never started, container: nothing in the image runs."""
    done = subprocess.run([tool, "create", image], capture_output=True, text=True)
    if done.returncode != 0:
        raise NbprodError(f"cannot create a container of {image!r}: {done.stderr.strip()[-300:]}", image,
                          fix="check the image name and the engine")
    container = done.stdout.strip().splitlines()[-1]
    try:
        out = subprocess.run([tool, "cp", f"{container}:{folder}/.", "-"], capture_output=True)
        if out.returncode != 0:
            raise NbprodError(f"the image has no {folder}: {out.stderr.decode(errors='replace').strip()[-300:]}",
                              image, fix="verify an image made by 'nbprod image build'")
    finally:
        subprocess.run([tool, "rm", "--force", container], capture_output=True)
    files = {}
    with tarfile.open(fileobj=io.BytesIO(out.stdout), mode="r:") as archive:
        for member in archive:
            if member.isfile():
                name = member.name.removeprefix("./")
                files[name] = archive.extractfile(member).read()
    return files
