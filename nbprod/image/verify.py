"""``nbprod image verify IMAGE``: the image's labels and the bundle inside it, checked against this
project's registry and DVC cache, so the model bytes it would serve are the approved ones. Files are
copied out of a created container; nothing in the image runs."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from ..core.errors import NbprodError
from ..core.project import Project
from ..lifecycle import bundle
from ..core.dvccache import sha256_bytes
from . import containers as engines
from .context import (APP_DIR, LABEL_PREFIX, RUN_COMMAND, UID, default_image_name, load_settings, resolve_spec,
                      serve_command)


@dataclass
class Verified:
    image: str
    image_id: str
    model: str
    version: str
    checks: list[str] = field(default_factory=list)


def _fail(image: str, what: str) -> NbprodError:
    return NbprodError(what, f"image {image}", fix="do not run this image; build the version again with "
                                                   "'nbprod image build'")


def verify_image(project: Project, image: str) -> Verified:
    tool = engines.engine(load_settings(project.root).engine)
    config = engines.inspect(tool, image)
    found = engines.labels(config)
    version = found.get(f"{LABEL_PREFIX}version")
    if not version:
        raise _fail(image, f"has no {LABEL_PREFIX}version label: not built by nbprod image build")
    spec = resolve_spec(project, version, None)
    result = Verified(image, str(config.get("Id", "")), spec.model, spec.version)
    for key, expected in spec.labels.items():
        if found.get(key) != expected:
            raise _fail(image, f"label {key} is {found.get(key)!r}, but the registry says {expected!r}")
    result.checks.append(f"{len(spec.labels)} labels match {spec.tag} (commit {spec.commit[:10]}, approved by "
                         f"{spec.record.get('by') or '-'})")
    # What the container would run, and as whom: a derived image could keep the labels and files
    # and change these.
    run_config = config.get("Config") or {}
    target = found.get(f"{LABEL_PREFIX}target")
    expected_cmd = {"serve": serve_command(spec.version), "run": RUN_COMMAND}.get(target or "")
    if expected_cmd is None or run_config.get("Cmd") != expected_cmd or run_config.get("Entrypoint") \
            or run_config.get("User") != f"{UID}:{UID}":
        raise _fail(image, f"its command, entrypoint or user is not what nbprod image build --target {target} "
                           f"writes (Cmd {run_config.get('Cmd')}, Entrypoint {run_config.get('Entrypoint')}, "
                           f"User {run_config.get('User')!r})")
    result.checks.append(f"target {target}: runs {' '.join(expected_cmd)} as uid {UID}")
    files = engines.copy_out(tool, image, APP_DIR)
    raw = files.get(bundle.MANIFEST)
    if raw is None:
        raise _fail(image, f"has no {APP_DIR}/{bundle.MANIFEST}")
    if raw != spec.manifest:
        listed = json.loads(raw).get("files", {})
        wanted = json.loads(spec.manifest)["files"]
        changed = sorted(p for p in set(listed) | set(wanted) if listed.get(p) != wanted.get(p))
        raise _fail(image, f"its bundle manifest differs from {spec.tag}'s ({len(changed)} file(s), first "
                           f"{changed[:1]})")
    for rel, entry in json.loads(raw)["files"].items():
        data = files.get(rel)
        if data is None or sha256_bytes(data) != entry["sha256"]:
            raise _fail(image, f"{APP_DIR}/{rel} is {'missing' if data is None else 'not the bundled file'} "
                               f"(sha256 differs from the manifest)")
    result.checks.append(f"{len(spec.files)} bundle files match {spec.tag}'s manifest (sha256)")
    model_path = spec.labels[f"{LABEL_PREFIX}model-path"]
    # What serve unpickles: cache objects, by md5 name. Every one in the image must hash to its
    # name, and the model's (its file, or its folder's listing and files) must be there.
    prefix = ".dvc/cache/files/md5/"
    objects = {rel[len(prefix):].replace("/", "", 1): data for rel, data in files.items() if rel.startswith(prefix)}
    for name, data in objects.items():
        if hashlib.md5(data).hexdigest() != name.removesuffix(".dir"):
            raise _fail(image, f"its DVC cache object {name} does not hash to its name (altered)")
    model_md5 = spec.labels[f"{LABEL_PREFIX}model-md5"]
    needed = [model_md5]
    if model_md5.endswith(".dir") and model_md5 in objects:
        needed += [e["md5"] for e in json.loads(objects[model_md5])]
    for h in needed:
        if h not in objects:
            raise _fail(image, f"its DVC cache lacks the approved model {model_path} ({h})")
    result.checks.append(f"{len(objects)} DVC cache objects hash to their names; the model {model_path} "
                         f"({model_md5}) is the approved one")
    return result


def image_name(project: Project, image: str | None) -> str:
    if image:
        return image
    spec_version = None
    from ..lifecycle import registry
    from ..lifecycle.settings import load_config

    config = load_config(project)
    current = registry.current(project.root, config.model_name)
    if current is not None:
        spec_version = current.version
    if spec_version is None:
        raise NbprodError("no image given and nothing is in production", "nbprod image verify",
                          fix="name the image: nbprod image verify NAME")
    return default_image_name(config.model_name, spec_version)
