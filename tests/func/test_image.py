"""``nbprod image build`` / ``verify`` with real podman: the example's approved version built as a
serve image, run on 127.0.0.1, answering the same predictions as ``nbprod serve`` from the checkout;
its labels and bundle verified against the registry (and an image with a swapped model refused); no
secret in any layer; the run target's record.

No registry is reachable here, so the base image is imported from a Debian root filesystem made with
mmdebstrap, cached as the Airflow venv is (NBPROD_TEST_CACHE, default ~/.cache/nbprod-tests), as are
pip's downloads. podman's storage lives in the session's temporary folder. Machine-specific settings
(runc, capped ulimits) are test configuration (CONTAINERS_CONF), never part of the image.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import httpx
import pytest

from helpers.commands import nbprod, run
from helpers.postgres import free_port
from helpers.projects import holdout_records
from helpers.servers import Serve

CACHE = Path(os.environ.get("NBPROD_TEST_CACHE", Path.home() / ".cache" / "nbprod-tests"))
ROOTFS = CACHE / "image" / "bookworm-python-git.tar"
BASE = "localhost/nbprod-test-base:bookworm"
TOKEN = "tok-3f9c2e7d1a5b8e60"            # the serve token and SMTP password: must never land in a layer
SMTP_PASSWORD = "smtp-pw-91d0c4b7e2a8f356"
HOST_ONLY = "host-only-5e1a7c3b9d"       # written into files .containerignore must keep out

pytestmark = pytest.mark.slow


def _podman_env(tmp: Path) -> dict:
    conf = tmp / "containers.conf"
    conf.write_text('[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n'
                    '[engine]\nruntime = "runc"\n')
    storage = tmp / "storage.conf"
    storage.write_text(f'[storage]\ndriver = "overlay"\ngraphroot = "{tmp / "graph"}"\nrunroot = "{tmp / "run"}"\n')
    return {**os.environ, "CONTAINERS_CONF": str(conf), "CONTAINERS_STORAGE_CONF": str(storage),
            "NBPROD_IMAGE_PIP_CACHE": str(CACHE / "pip")}


def podman(env: dict, *args, check: bool = True, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(["podman", *map(str, args)], env=env, capture_output=True, timeout=timeout, **kwargs)
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(map(str, args[:3]))} failed: {done.stderr[-2000:]!r}")
    return done


def _rootfs() -> Path:
    """A Debian bookworm root filesystem with python3, venv, git and CA certificates (~40-110 s once)."""
    ROOTFS.parent.mkdir(parents=True, exist_ok=True)
    with open(ROOTFS.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not ROOTFS.exists():
            partial = ROOTFS.with_suffix(".partial.tar")
            packages = "--include=python3,python3-venv,ca-certificates,git"
            done = subprocess.run(["mmdebstrap", "--variant=minbase", packages, "bookworm", str(partial)],
                                  capture_output=True, text=True, timeout=590)
            if done.returncode != 0:
                pytest.fail(f"mmdebstrap failed:\n{done.stderr[-2000:]}")
            partial.rename(ROOTFS)
    return ROOTFS


@pytest.fixture(scope="session")
def engine_env(tmp_path_factory) -> dict:
    missing = [t for t in ("podman", "runc", "mmdebstrap") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed ('make podman' installs Debian's podman, runc, mmdebstrap)")
    env = _podman_env(tmp_path_factory.mktemp("podman"))
    probe = podman(env, "info", check=False, timeout=120)
    if probe.returncode != 0:
        pytest.skip(f"podman cannot run here: {probe.stderr.decode(errors='replace').strip().splitlines()[-1:]}")
    podman(env, "import", "-q", _rootfs(), BASE)
    yield env
    # Only this session's storage (CONTAINERS_STORAGE_CONF): its containers and images go with it,
    # then the overlay mount podman made on its graph folder.
    podman(env, "rm", "--all", "--force", check=False, timeout=300)
    podman(env, "rmi", "--all", "--force", check=False, timeout=300)
    graph = Path(env["CONTAINERS_STORAGE_CONF"]).parent / "graph"
    with open("/proc/mounts") as mounts:
        mounted = [line.split()[1] for line in mounts if line.split()[1].startswith(str(graph))]
    for point in sorted(mounted, reverse=True):
        subprocess.run(["umount", point], capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def image_project(ran_project, tmp_path_factory, engine_env) -> Path:
    """The example with v1.0.0 approved (prod), configured for the local base image, plus files the
    build must never see (they hold HOST_ONLY)."""
    root = tmp_path_factory.mktemp("image") / "proj"
    shutil.copytree(ran_project, root, symlinks=True)
    nbprod("retrain", cwd=root)
    nbprod("approve", "c1", "--by", "alice", cwd=root)
    with open(root / "pyproject.toml", "a") as handle:
        handle.write(f'\n[tool.nbprod.image]\nbase = "{BASE}"\nnetwork = "host"\n')
    for rel in ("records/2026-01-01-x/secret.txt", ".venv/secret.txt", ".nbprod/serve/predictions/p.jsonl"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(HOST_ONLY)
    (root / ".git" / "nbprod-secret").write_text(HOST_ONLY)
    return root


def _build_env(engine_env: dict) -> dict:
    # The secrets are in the building process's environment, as they would be on a CI runner.
    return {**engine_env, "NBPROD_SERVE_TOKEN": TOKEN, "NBPROD_SMTP_PASSWORD": SMTP_PASSWORD}


@pytest.fixture(scope="module")
def serve_image(image_project, engine_env) -> str:
    name = "localhost/nbprod-test:serve"
    done = nbprod("image", "build", "--tag", name, cwd=image_project, env=_build_env(engine_env))
    assert f"Built {name}" in done.stdout, done.stdout + done.stderr
    assert not (image_project / ".nbprod/image/context").exists()   # the staged context is removed
    return name


def _inspect(env: dict, image: str) -> dict:
    return json.loads(podman(env, "image", "inspect", image).stdout)[0]


def test_containerfile_is_deterministic_and_never_overwrites_yours(image_project, engine_env, tmp_path):
    nbprod("image", "build", "--no-build", cwd=image_project, env=engine_env)
    text = (image_project / "Containerfile").read_text()
    again = nbprod("image", "build", "v1.0.0", "--no-build", cwd=image_project, env=engine_env)
    assert "Unchanged: Containerfile" in again.stdout
    assert (image_project / "Containerfile").read_text() == text
    # Environment before model, non-root, the version pinned in the command and the labels.
    venv, app = text.index("/opt/venv/bin/python -m pip install"), text.index("FROM env AS app")
    assert venv < app < text.index("context/bundle/")
    assert "USER 10001:10001" in text and '"--version", "v1.0.0"' in text and 'approved-by="alice"' in text
    ignore = (image_project / ".containerignore").read_text().splitlines()
    assert ignore[-2:] == ["*", "!.nbprod/image/context/"]
    other = tmp_path / "proj"
    shutil.copytree(image_project, other, symlinks=True)
    (other / "Containerfile").write_text("FROM scratch\n")
    done = nbprod("image", "build", "--no-build", cwd=other, env=engine_env, check=False)
    assert done.returncode == 2 and "not written by `nbprod image build`" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and (other / "Containerfile").read_text() == "FROM scratch\n"


class Container:
    """``podman run -d`` with the port published on 127.0.0.1 only; always removed."""

    def __init__(self, env: dict, image: str, *args: str):
        self.env, self.port = env, free_port()
        self.id = podman(env, "run", "-d", "-p", f"127.0.0.1:{self.port}:8000", *args, image).stdout.decode().strip()
        self.base = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, headers: dict, limit: float = 120) -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/readyz", headers=headers, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            state = podman(self.env, "inspect", "--format", "{{.State.Status}}", self.id).stdout.decode().strip()
            if state != "running":
                break
            time.sleep(0.5)
        logs = podman(self.env, "logs", self.id, check=False)
        raise AssertionError(f"the container did not get ready: {(logs.stdout + logs.stderr)[-3000:]!r}")

    def remove(self) -> None:
        podman(self.env, "rm", "--force", "--time", "5", self.id, check=False)


def test_serve_image_answers_like_the_checkout(serve_image, image_project, engine_env):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    rows = holdout_records(image_project, 25)
    container = Container(engine_env, serve_image, "-e", f"NBPROD_SERVE_TOKEN={TOKEN}")
    try:
        container.wait_ready(auth)
        assert httpx.get(f"{container.base}/healthz", timeout=5).status_code == 200
        assert httpx.get(f"{container.base}/readyz", timeout=5).status_code == 401   # the token from -e applies
        answer = httpx.post(f"{container.base}/predict", json={"records": rows}, headers=auth, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-model-version"] == "v1.0.0"
        uid = podman(engine_env, "exec", container.id, "id", "-u").stdout.decode().strip()
        health = podman(engine_env, "healthcheck", "run", container.id, check=False)
    finally:
        container.remove()
    assert uid == "10001"
    assert health.returncode == 0, health.stdout + health.stderr
    with Serve(image_project, "--version", "v1.0.0", env={"NBPROD_SERVE_TOKEN": TOKEN}) as checkout:
        expected = httpx.post(f"{checkout.base}/predict", json={"records": rows}, headers=auth, timeout=30)
    assert expected.status_code == 200
    assert answer.json()["predictions"] == expected.json()["predictions"]
    assert answer.json()["probabilities"] == expected.json()["probabilities"]
    assert len(answer.json()["predictions"]) == 25


def test_labels_and_verify(serve_image, image_project, engine_env):
    info = _inspect(engine_env, serve_image)
    labels = info["Config"]["Labels"]
    commit = run("git", "rev-list", "-n", "1", "model@v1.0.0", cwd=image_project).stdout.strip()
    assert labels["io.nbprod.model"] == "model" and labels["io.nbprod.version"] == "v1.0.0"
    assert labels["io.nbprod.commit"] == commit == labels["org.opencontainers.image.revision"]
    assert labels["io.nbprod.approved-by"] == "alice" and labels["io.nbprod.target"] == "serve"
    lock = (run("git", "show", f"{commit}:dvc.lock", cwd=image_project).stdout)
    assert labels["io.nbprod.model-md5"] in lock
    assert "schemas/breast_cancer.yaml" in json.loads(labels["io.nbprod.schemas-sha256"])
    assert info["Config"]["User"] == "10001:10001"
    assert info["Config"]["Cmd"] == ["nbprod", "serve", "--version", "v1.0.0", "--host", "0.0.0.0", "--port", "8000"]
    done = nbprod("image", "verify", serve_image, cwd=image_project, env=engine_env)
    assert f"Verified {serve_image}: model@v1.0.0 as registered" in done.stdout
    assert "target serve: runs nbprod serve --version v1.0.0" in done.stdout


def _derived(env: dict, base: str, tmp: Path, name: str, replace: dict[str, bytes]) -> str:
    """An image made from ``base`` with some files under /app replaced (a tampered image)."""
    context = tmp / name.replace(":", "-").replace("/", "-")
    context.mkdir()
    lines = [f"FROM {base}"]
    for i, (path, data) in enumerate(replace.items()):
        (context / f"f{i}").write_bytes(data)
        lines.append(f"COPY --chown=10001:10001 f{i} {path}")
    (context / "Containerfile").write_text("\n".join(lines) + "\n")
    podman(env, "build", "-q", "-t", name, context)
    return name


def test_verify_refuses_a_swapped_model(serve_image, image_project, engine_env, tmp_path):
    labels = _inspect(engine_env, serve_image)["Config"]["Labels"]
    listing_md5 = labels["io.nbprod.model-md5"]
    cache = image_project / ".dvc/cache/files/md5"
    entries = json.loads((cache / listing_md5[:2] / listing_md5[2:]).read_text())
    model = entries[0]
    swapped = b"not the approved model"
    # (a) the working-tree copy of the model replaced: the bundle manifest no longer matches
    path = f"/app/{labels['io.nbprod.model-path']}/{model['relpath']}"
    one = _derived(engine_env, serve_image, tmp_path, "localhost/nbprod-test:swapped-file", {path: swapped})
    done = nbprod("image", "verify", one, cwd=image_project, env=engine_env, check=False)
    assert done.returncode == 2 and f"{path} is not the bundled file" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    # (b) the cache object serve unpickles replaced (same name, other bytes)
    obj = f"/app/.dvc/cache/files/md5/{model['md5'][:2]}/{model['md5'][2:]}"
    two = _derived(engine_env, serve_image, tmp_path, "localhost/nbprod-test:swapped-cache", {obj: swapped})
    done = nbprod("image", "verify", two, cwd=image_project, env=engine_env, check=False)
    assert done.returncode == 2 and "does not hash to its name" in done.stderr, done.stderr
    # (c) the files untouched, the command changed
    context = tmp_path / "cmd"
    context.mkdir()
    (context / "Containerfile").write_text(f'FROM {serve_image}\nCMD ["python3", "-c", "print(1)"]\n')
    podman(engine_env, "build", "-q", "-t", "localhost/nbprod-test:other-cmd", context)
    done = nbprod("image", "verify", "localhost/nbprod-test:other-cmd", cwd=image_project, env=engine_env, check=False)
    assert done.returncode == 2 and "its command, entrypoint or user" in done.stderr, done.stderr
    podman(engine_env, "rmi", one, two, "localhost/nbprod-test:other-cmd", check=False)


def test_no_secret_or_host_file_in_any_layer(serve_image, engine_env, tmp_path):
    archive = tmp_path / "image.tar"
    podman(engine_env, "save", "--format", "docker-archive", "-o", archive, serve_image, timeout=590)
    needles = [TOKEN.encode(), SMTP_PASSWORD.encode(), HOST_ONLY.encode()]
    scanned = layers = 0
    with tarfile.open(archive) as outer:
        for member in outer:
            if not member.isfile():
                continue
            stream = outer.extractfile(member)
            if not member.name.endswith(".tar"):
                assert not any(n in stream.read() for n in needles), f"{member.name} (image config) holds a secret"
                continue
            layers += 1
            with tarfile.open(fileobj=stream, mode="r|") as layer:   # streamed: layers are hundreds of MB
                for entry in layer:
                    assert not entry.name.startswith(("app/records", "app/.venv", "app/.nbprod/serve")), entry.name
                    if entry.isfile():
                        content = layer.extractfile(entry).read()
                        assert not any(n in content for n in needles), f"{entry.name} in {member.name}"
                        scanned += 1
    assert layers >= 5 and scanned > 10_000


def test_run_target_runs_the_pipeline_and_records(serve_image, image_project, engine_env, tmp_path):
    name = "localhost/nbprod-test:run"
    nbprod("image", "build", "--target", "run", "--tag", name, cwd=image_project, env=_build_env(engine_env))
    serve_layers = _inspect(engine_env, serve_image)["RootFS"]["Layers"]
    run_layers = _inspect(engine_env, name)["RootFS"]["Layers"]
    assert run_layers == serve_layers     # one environment and bundle, two commands
    container = f"nbprod-run-{os.getpid()}"
    try:
        done = podman(engine_env, "run", "--name", container, "--network", "none", name, check=False)
        assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
        podman(engine_env, "cp", f"{container}:/app/records", tmp_path / "records")
    finally:
        podman(engine_env, "rm", "--force", container, check=False)
    records = [p for p in (tmp_path / "records").iterdir() if p.is_dir()]
    assert len(records) == 1
    assert (records[0] / "manifest.json").is_file()   # written last: the record is complete
    data = json.loads((records[0] / "record.json").read_text())
    labels = _inspect(engine_env, name)["Config"]["Labels"]
    assert data["ok"] is True and labels["io.nbprod.target"] == "run"
    assert data["model"]["md5"] == labels["io.nbprod.model-md5"]   # the image's model, as approved
    assert data["params"]["model"]["C"] == 1.0
