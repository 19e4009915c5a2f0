"""The Containerfile of a registered version and its build context: ``Containerfile`` and
``.containerignore`` kept in the project (the same version and settings give the same bytes), and
``.nbprod/image/context/`` staged from git and the DVC cache for one build, then removed."""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import NbprodError
from ..notebooks.notebook import atomic_write
from ..core.project import IMAGE_CONTEXT_DIR, PYPROJECT, STAGES_DIR, Project, read_config
from ..lifecycle import bundle, registry
from ..lifecycle.settings import load_config
from ..core.dvccache import parse_lock, sha256_bytes
from . import pins
from .wheel import build_wheel, file_sha256, repack

# Repacked wheels are kept between builds (the same installed files give the same wheel).
WHEEL_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nbprod" / "image-wheels"

CONTAINERFILE = "Containerfile"
IGNORE_FILE = ".containerignore"
CONTEXT_DIR = IMAGE_CONTEXT_DIR
VERSION_FILE = "nbprod-image.json"        # beside the bundle: the registration tag to recreate
APP_DIR = "/app"
PORT = 8000
UID = 10001
TARGETS = ("serve", "run")
MARK = "written by `nbprod image build`"
LABEL_PREFIX = "io.nbprod."


@dataclass(frozen=True)
class ImageSettings:
    """``[tool.nbprod.image]``: base image, engine, build network (all optional)."""
    base: str | None = None
    engine: str | None = None           # podman | docker (default: podman when installed)
    network: str | None = None          # passed to the build as --network (e.g. "host")


def load_settings(root: Path) -> ImageSettings:
    raw = read_config(root).get("image", {})
    if not isinstance(raw, dict):
        raise NbprodError("[tool.nbprod.image] must be a table", PYPROJECT,
                          fix='write [tool.nbprod.image] base = "..."')
    known = {"base", "engine", "network"}
    for key, value in raw.items():
        if key not in known:
            raise NbprodError(f"[tool.nbprod.image] {key} is not a setting (known: {', '.join(sorted(known))})",
                              PYPROJECT, fix="remove it or correct its spelling")
        if not isinstance(value, str) or not value.strip() or any(c in value for c in "\n\r\\\"'$` "):
            raise NbprodError(f"[tool.nbprod.image] {key} must be a plain non-empty string", PYPROJECT,
                              fix=f'write {key} = "VALUE" (an image name, "podman"/"docker", a network name)')
    if raw.get("engine") not in (None, "podman", "docker"):
        raise NbprodError(f"[tool.nbprod.image] engine {raw['engine']!r} is not podman or docker", PYPROJECT,
                          fix='write engine = "podman" or engine = "docker"')
    return ImageSettings(**raw)


@dataclass
class ImageSpec:
    """Everything the Containerfile and the context are made from."""
    model: str
    version: str
    tag: str
    commit: str
    record: dict
    base: str
    files: dict[str, bytes]
    source: str
    requirements: list[str]
    labels: dict[str, str] = field(default_factory=dict)
    env_key: str = ""                   # sha256 of the pins and of nbprod's wheel
    python: str = "3.11"                # major.minor the environment was locked under

    @property
    def manifest(self) -> bytes:
        # "created" is the registration time, so the same version always gives the same manifest.
        return bundle.manifest_bytes(self.files, self.source, str(self.record.get("when") or ""))


def default_base(python: str | None) -> str:
    """The official slim Python image of the lock's Python (major.minor), else of 3.11."""
    major_minor = ".".join((python or "3.11").split(".")[:2])
    return f"docker.io/library/python:{major_minor}-slim"


def default_image_name(model: str, version: str) -> str:
    return f"localhost/nbprod-{model.lower()}:{version}"


def labels_for(model: str, version: str, commit: str, record: dict, model_path: str, model_md5: str,
               manifest_sha256: str) -> dict[str, str]:
    """The OCI labels: standard ones plus nbprod's, all read back by ``nbprod image verify``."""
    schemas = record.get("schemas") or {}
    return {
        "org.opencontainers.image.title": model,
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.revision": commit,
        f"{LABEL_PREFIX}model": model,
        f"{LABEL_PREFIX}version": version,
        f"{LABEL_PREFIX}commit": commit,
        f"{LABEL_PREFIX}model-path": model_path,
        f"{LABEL_PREFIX}model-md5": model_md5,
        f"{LABEL_PREFIX}schemas-sha256": json.dumps(schemas, sort_keys=True, separators=(",", ":")),
        f"{LABEL_PREFIX}approved-by": str(record.get("by") or ""),
        f"{LABEL_PREFIX}approved-when": str(record.get("when") or ""),
        f"{LABEL_PREFIX}bundle-manifest-sha256": manifest_sha256,
    }


def model_md5_at(files: dict[str, bytes], model_path: str) -> str:
    lock = parse_lock(files["dvc.lock"], "dvc.lock")
    for stage in lock.values():
        if model_path in stage.outs:
            return stage.outs[model_path]
    raise NbprodError(f"the version's dvc.lock has no output {model_path}", "dvc.lock",
                      fix="set [tool.nbprod] model to the model's output, or build another version")


def resolve_spec(project: Project, version_text: str | None, base: str | None) -> ImageSpec:
    root = project.root
    config = load_config(project)
    if version_text:
        version = registry.find_version(root, config.model_name, version_text)
    else:
        version = registry.current(root, config.model_name)
        if version is None:
            raise NbprodError(f"nothing is in production for model {config.model_name!r}", "git tags",
                              fix="name the version to build: nbprod image build VERSION")
    files, source = bundle.collect(project, version.version)
    stages = {p: d for p, d in files.items() if p.startswith(STAGES_DIR + "/") and p.endswith(".ipynb")}
    requirements, python = pins.pinned(files, pins.imported_modules(stages))
    settings = load_settings(root)
    with tempfile.TemporaryDirectory(prefix="nbprod-wheel-") as tmp:
        nbprod_sha = file_sha256(build_wheel(Path(tmp)))
    env_key = sha256_bytes(("\n".join(requirements) + f"\nnbprod {nbprod_sha}\n").encode())[:32]
    model_path = version.record.get("model_path") or config.model_path
    spec = ImageSpec(config.model_name, version.version, version.tag, version.commit, version.record,
                     base or settings.base or default_base(python), files, source, requirements,
                     env_key=env_key, python=".".join((python or platform.python_version()).split(".")[:2]))
    spec.labels = labels_for(spec.model, spec.version, spec.commit, spec.record, model_path,
                             model_md5_at(files, model_path), sha256_bytes(spec.manifest))
    return spec


RUN_COMMAND = ["nbprod", "run", "--record"]


def serve_command(version: str) -> list[str]:
    return ["nbprod", "serve", "--version", version, "--host", "0.0.0.0", "--port", str(PORT)]


def _label_value(value: str) -> str:
    # A JSON string is a valid double-quoted Containerfile word once `$` cannot start a variable.
    return json.dumps(value).replace("$", "\\$")


def render_containerfile(spec: ImageSpec) -> str:
    labels = " \\\n      ".join(f"{key}={_label_value(value)}" for key, value in spec.labels.items())
    serve_cmd = json.dumps(serve_command(spec.version))
    health = json.dumps(["python3", "-m", "nbprod.image.health", str(PORT)])
    return f"""\
# Containerfile of {spec.model}@{spec.version} ({spec.commit[:10]}), {MARK}: build again instead of editing.
# Context: this project folder. {IGNORE_FILE} lets in only {CONTEXT_DIR}/, which the build stages from
# git and the DVC cache (the files and manifest of `nbprod package {spec.version}`) and removes after.
# Stages: env (the venv) -> app (user, bundle, labels) -> run | serve. The app stage grows from env
# rather than copying its venv: nothing of the build is left in env to leave behind (the wheels are
# mounted, pip is uninstalled), and a copy would add a second layer as large as the venv. No .pyc is
# written at build time (a container compiles what it imports, in memory).
# Layers: the environment comes before the model, so a new version reuses it: the pinned distributions
# (requirements.txt) as wheels repacked from the environment the lock was made in, a wheel of nbprod,
# and from an index only those pins this environment lacks (download.txt). Nothing secret is read at
# build time: the serve token (NBPROD_SERVE_TOKEN) and SMTP credentials come from the container's
# environment when it runs.

FROM {spec.base} AS env
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
# The wheels are mounted, not copied (no layer of them); the key names what they hold (the pins and
# nbprod's wheel), so a change to them is a change to this line and reruns it. The pins were locked
# under Python {spec.python}: the base must have the same major.minor (the wheels' ABI); a patch-level
# Requires-Python bound is not checked again.
RUN --mount=type=bind,source={CONTEXT_DIR}/env,target=/build \\
    echo "environment {spec.env_key}" \\
 && python3 -c 'import sys; v = "%d.%d" % sys.version_info[:2]; sys.exit(v != "{spec.python}" and \\
        "the base image has Python " + v + ", the environment was locked under {spec.python}")' \\
 && python3 -m venv /opt/venv \\
 && /opt/venv/bin/python -m pip install --quiet --no-deps --no-index --no-compile --ignore-requires-python \\
        /build/wheels/*.whl \\
 && /opt/venv/bin/python -m pip install --quiet --no-deps --no-compile --prefer-binary -r /build/download.txt \\
 && /opt/venv/bin/python -m pip uninstall --quiet --yes pip

FROM env AS app
RUN command -v git >/dev/null 2>&1 || {{ apt-get update && apt-get install -y --no-install-recommends git \\
    && rm -rf /var/lib/apt/lists/*; }}
RUN useradd --uid {UID} --user-group --create-home --home-dir /home/nbprod --shell /usr/sbin/nologin nbprod \\
 && install -d -o {UID} -g {UID} {APP_DIR}
ENV PATH=/opt/venv/bin:/usr/local/bin:/usr/bin:/bin VIRTUAL_ENV=/opt/venv HOME=/home/nbprod \\
    PYTHONUNBUFFERED=1 DVC_NO_ANALYTICS=1
WORKDIR {APP_DIR}
COPY --chown={UID}:{UID} {CONTEXT_DIR}/bundle/ {APP_DIR}/
USER {UID}:{UID}
RUN python3 -m nbprod.image.assemble {APP_DIR}
LABEL {labels}

FROM app AS run
LABEL {LABEL_PREFIX}target="run"
CMD {json.dumps(RUN_COMMAND)}

FROM app AS serve
LABEL {LABEL_PREFIX}target="serve"
EXPOSE {PORT}
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 CMD {health}
CMD {serve_cmd}
"""


IGNORE_TEXT = f"""\
# {MARK}: the build sees only the context it stages. So .git, .dvc/cache (the
# version's own objects are staged), .venv, records/ and the prediction logs (.nbprod/serve/) stay out.
*
!{CONTEXT_DIR}/
"""


def _write_owned(path: Path, text: str) -> bool:
    """Write a file nbprod owns (marked); never overwrite one the user wrote. True when changed."""
    if path.exists():
        current = path.read_text(encoding="utf-8", errors="replace")
        if current == text:
            return False
        if MARK not in current:
            raise NbprodError(f"exists and was not {MARK}", path,
                              fix="move it away (or build from another folder); nbprod never overwrites it")
    atomic_write(path, text)
    return True


def write_build_files(root: Path, spec: ImageSpec) -> tuple[Path, bool]:
    """Write ``Containerfile`` and ``.containerignore``; returns the Containerfile and whether it changed."""
    text = render_containerfile(spec)
    changed = _write_owned(root / CONTAINERFILE, text)
    _write_owned(root / IGNORE_FILE, IGNORE_TEXT)
    return root / CONTAINERFILE, changed


def stage_context(root: Path, spec: ImageSpec) -> Path:
    """Fill ``.nbprod/image/context/``: env/ (requirements.txt, nbprod's wheel), bundle/ (the files,
    their manifest and the registration to recreate)."""
    context = root / CONTEXT_DIR
    shutil.rmtree(context, ignore_errors=True)
    env = context / "env"
    env.mkdir(parents=True)
    (env / "requirements.txt").write_text(
        "# nbprod's dependencies and the notebooks' imports, pinned as in the version's requirements.lock\n"
        + "\n".join(spec.requirements) + "\n", encoding="utf-8")
    wheels = env / "wheels"
    build_wheel(wheels)
    download = []
    for line in spec.requirements:
        name, _, version = line.partition("==")
        made = repack(name, version, WHEEL_CACHE)
        if made is None:
            download.append(line)
            continue
        try:
            os.link(made, wheels / made.name)
        except OSError:
            shutil.copyfile(made, wheels / made.name)
    (env / "download.txt").write_text("# pins this environment could not provide as wheels\n"
                                      + "".join(f"{line}\n" for line in download), encoding="utf-8")
    app = context / "bundle"
    for rel, data in spec.files.items():
        target = app / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    (app / bundle.MANIFEST).write_bytes(spec.manifest)
    registration = {"model": spec.model, "version": spec.version, "tag": spec.tag,
                    "message": registry.tag_message(f"Registering artifact {spec.model} version {spec.version}",
                                                    spec.record)}
    (app / VERSION_FILE).write_text(json.dumps(registration, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return context


def remove_context(root: Path) -> None:
    shutil.rmtree(root / CONTEXT_DIR, ignore_errors=True)
