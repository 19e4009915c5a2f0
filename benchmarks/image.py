"""Container images (issue 30): the example's serve image, its size, a cold build, a rebuild of the
same version, and a rebuild after only the model changed (a new approved version), which must reuse
the environment layer.

    python -m benchmarks.image            # about 5-8 minutes on 2 cores (one build of each kind)

Needs podman, runc and mmdebstrap (`make podman`). The base image is imported from the Debian root
filesystem the tests cache (~/.cache/nbprod-tests/image/); podman's storage is a temporary folder.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CACHE = Path(os.environ.get("NBPROD_TEST_CACHE", Path.home() / ".cache" / "nbprod-tests"))
ROOTFS = CACHE / "image" / "bookworm-python-git.tar"
BASE = "localhost/nbprod-test-base:bookworm"
BIN = Path(sys.executable).parent


def _run(*cmd, cwd=None, env=None) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"{cmd[:4]} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return done


def _env(tmp: Path) -> dict:
    (tmp / "containers.conf").write_text('[containers]\ndefault_ulimits = ["nofile=20000:20000", '
                                         '"nproc=32768:32768"]\n[engine]\nruntime = "runc"\n')
    (tmp / "storage.conf").write_text(f'[storage]\ndriver = "overlay"\ngraphroot = "{tmp / "graph"}"\n'
                                      f'runroot = "{tmp / "run"}"\n')
    return {**os.environ, "CONTAINERS_CONF": str(tmp / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(tmp / "storage.conf"), "NBPROD_IMAGE_PIP_CACHE": str(CACHE / "pip")}


def _build(root: Path, env: dict, *args: str) -> tuple[float, str]:
    started = time.monotonic()
    done = _run(BIN / "nbprod", "image", "build", *args, cwd=root, env=env)
    return time.monotonic() - started, done.stdout + done.stderr


def _layers(env: dict, image: str) -> list[str]:
    return json.loads(_run("podman", "image", "inspect", image, env=env).stdout)[0]["RootFS"]["Layers"]


def _env_step_cached(output: str) -> bool:
    """Whether the environment's RUN step (the venv) came from the layer cache."""
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if "STEP" in line and "python3 -m venv /opt/venv" in line:
            return any("Using cache" in later for later in lines[i + 1:i + 4])
    return False


def main() -> None:
    if not ROOTFS.exists():
        raise SystemExit(f"{ROOTFS} is missing: run tests/test_image.py once (it makes it with mmdebstrap)")
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="nbprod-bench-image-") as tmp_name:
        tmp = Path(tmp_name)
        env = _env(tmp)
        try:
            _run("podman", "import", "-q", ROOTFS, BASE, env=env)
            _run(BIN / "nbprod", "init", "proj", cwd=tmp, env=env)
            root = tmp / "proj"
            for cmd in (["run", "--no-report"],):
                _run(BIN / "nbprod", *cmd, cwd=root, env=env)
            _run("git", "add", "-A", cwd=root)
            _run("git", "commit", "-q", "-m", "run", cwd=root)
            _run(BIN / "nbprod", "retrain", cwd=root, env=env)
            _run(BIN / "nbprod", "approve", "c1", "--by", "bench", cwd=root, env=env)
            with open(root / "pyproject.toml", "a") as handle:
                handle.write(f'\n[tool.nbprod.image]\nbase = "{BASE}"\nnetwork = "host"\n')
            cold, _ = _build(root, env, "v1.0.0", "--tag", "localhost/bench:v1")
            size = json.loads(_run("podman", "image", "inspect", "localhost/bench:v1", env=env).stdout)[0]["Size"]
            again, _ = _build(root, env, "v1.0.0", "--tag", "localhost/bench:v1")
            _run(BIN / "nbprod", "retrain", "--set", "model.C=0.05", cwd=root, env=env)
            _run(BIN / "nbprod", "approve", "c2", "--by", "bench", cwd=root, env=env)
            model_only, output = _build(root, env, "v1.1.0", "--tag", "localhost/bench:v2")
            one, two = _layers(env, "localhost/bench:v1"), _layers(env, "localhost/bench:v2")
            shared = next((i for i, (a, b) in enumerate(zip(one, two)) if a != b), min(len(one), len(two)))
            history = json.loads(_run("podman", "history", "--format", "json", "localhost/bench:v1", env=env).stdout)
        finally:
            for what in (["rm", "--all", "--force"], ["rmi", "--all", "--force"]):
                subprocess.run(["podman", *what], env=env, capture_output=True, timeout=300)
            with open("/proc/mounts") as mounts:   # the overlay mount podman made on its graph folder
                points = [line.split()[1] for line in mounts if line.split()[1].startswith(str(tmp / "graph"))]
            for point in sorted(points, reverse=True):
                subprocess.run(["umount", point], capture_output=True, timeout=60)
    biggest = sorted(history, key=lambda h: -int(h.get("size") or h.get("Size") or 0))[:3]
    print(f"machine: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, Python "
          f"{platform.python_version()}, load {load:.2f} at start; one build of each kind")
    print(f"serve image of the example: {size / 1e6:.0f} MB")
    for layer in biggest:
        print(f"  layer {int(layer.get('size') or layer.get('Size') or 0) / 1e6:.0f} MB: "
              f"{(layer.get('CreatedBy') or layer.get('createdBy') or '')[:90]}")
    print(f"cold build (base imported, nothing cached but repacked wheels): {cold:.0f} s")
    print(f"rebuild, same version: {again:.0f} s")
    print(f"rebuild after only the model changed (v1.1.0): {model_only:.0f} s; environment layer reused: "
          f"{_env_step_cached(output)}; {shared} of {len(two)} layers shared with v1.0.0's image")


if __name__ == "__main__":
    main()
