"""Plain helpers shared by the tests: running real commands, notebooks as JSON, tree digests.

Tests import them with ``from helpers import ...`` (pytest puts tests/ on sys.path); conftest.py holds
only fixtures.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

# Tests commit to git: give them an identity without touching the user's configuration.
os.environ.setdefault("GIT_AUTHOR_NAME", "nbprod tests")
os.environ.setdefault("GIT_AUTHOR_EMAIL", "tests@nbprod.invalid")
os.environ.setdefault("GIT_COMMITTER_NAME", "nbprod tests")
os.environ.setdefault("GIT_COMMITTER_EMAIL", "tests@nbprod.invalid")
os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
os.environ.pop("NBPROD_EVENTS", None)


def run(*command, cwd: Path, check: bool = True, env: dict | None = None, timeout: float = 600):
    """Run a real command; on unexpected failure show its output in the test report."""
    done = subprocess.run([str(c) for c in command], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"{command} exited {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}")
    return done


def nbprod(*args, cwd: Path, **kwargs):
    return run(BIN / "nbprod", *args, cwd=cwd, **kwargs)


def tree_digest(root: Path) -> dict[str, str]:
    """Hash of every file under root except git/DVC internals: proves that a command changed nothing."""
    digest = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and not rel.startswith((".git/", ".dvc/tmp", ".dvc/cache", ".nbprod/runs/")) \
                and rel != ".nbprod/run.lock":
            digest[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digest


def code_notebook(cells) -> dict:
    """A python3 notebook of code cells, from (tags, source) pairs."""
    return {
        "cells": [{"cell_type": "code", "execution_count": None, "metadata": {"tags": tags}, "outputs": [],
                   "source": source} for tags, source in cells],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                     "language_info": {"name": "python"}},
        "nbformat": 4, "nbformat_minor": 5,
    }


def load_nb(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def save_nb(path: Path, nb: dict) -> None:
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def find_cell(nb: dict, tag: str) -> dict:
    return next(c for c in nb["cells"] if tag in c.get("metadata", {}).get("tags", []))


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class JupyterServer:
    """A real Jupyter server (``module``: jupyter_server or jupyterlab) on 127.0.0.1 with token auth, as a
    subprocess with its own config, runtime and data folders under ``workdir``; always ``stop()`` it.
    ``config`` is the text of a jupyter_server_config.py (e.g. an identity provider that names users)."""

    def __init__(self, root: Path, workdir: Path, module: str = "jupyter_server", config: str | None = None,
                 env: dict | None = None):
        import secrets
        import time

        import requests

        self.root = root
        self.token = secrets.token_hex(16)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "config").mkdir(exist_ok=True)
        if config:
            (workdir / "config" / "jupyter_server_config.py").write_text(config, encoding="utf-8")
        environ = {**os.environ, "JUPYTER_CONFIG_DIR": str(workdir / "config"),
                   "JUPYTER_RUNTIME_DIR": str(workdir / "runtime"), "JUPYTER_DATA_DIR": str(workdir / "data"),
                   **(env or {})}
        self.log_path = workdir / "server.log"
        self.log = open(self.log_path, "wb")
        # The nbprod server extension is not named here: the config that pip installs must enable it.
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, "--no-browser", "--allow-root", f"--port={self.port}",
             "--ServerApp.port_retries=0", "--ServerApp.ip=127.0.0.1", f"--ServerApp.root_dir={root}",
             f"--IdentityProvider.token={self.token}"],
            cwd=workdir, env=environ, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 90
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(self.log_path.read_text())
            try:
                if requests.get(f"{self.base}/api/status", headers=self.auth, timeout=2).ok:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError("jupyter server did not answer in 90 s")

    @property
    def auth(self) -> dict:
        return {"Authorization": f"token {self.token}"}

    def api(self, method: str, endpoint: str, **kwargs):
        import requests

        headers = {**self.auth, **kwargs.pop("headers", {})}
        return requests.request(method, f"{self.base}/nbprod/api/{endpoint}", headers=headers, timeout=120, **kwargs)

    def browser_session(self):
        """A cookie-authenticated session, as JupyterLab in a browser has after logging in."""
        import requests

        session = requests.Session()
        session.get(f"{self.base}/login", timeout=10)
        xsrf = session.cookies.get("_xsrf")
        login = session.post(f"{self.base}/login", data={"password": self.token, "_xsrf": xsrf}, timeout=10,
                             allow_redirects=False)
        assert login.status_code in (302, 303), login.text
        return session

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=15)
        self.log.close()


# The fault pipeline (tests/test_faults.py, tests/test_concurrency.py; fixtures in conftest.py).
FAULT_STAGE_TWO = '''import os, pathlib, signal, time
fault = os.environ.get("NBPROD_TEST_FAULT", "")
marker = os.environ.get("NBPROD_TEST_MARKER")
if marker:
    pathlib.Path(marker).write_text(fault)
if fault == "raise":
    raise RuntimeError("injected failure")
if fault == "exit":
    os._exit(3)
if fault == "sigkill":
    os.kill(os.getpid(), signal.SIGKILL)
if fault == "oom":
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
    hog = [bytearray(64 << 20) for _ in range(64)]
if fault == "hang":
    release = os.environ.get("NBPROD_TEST_RELEASE", "")
    deadline = time.monotonic() + 90  # bounded even if nobody stops it
    while time.monotonic() < deadline and not (release and os.path.exists(release)):
        time.sleep(0.2)
size = 64 << 20 if fault == "bigwrite" else 0
with open("second.txt", "w") as out:
    out.write(f"{base * factor}\\n")
    for _ in range(size // (1 << 20)):
        out.write("x" * (1 << 20))
'''


def fault_notebook() -> dict:
    """A two-stage notebook whose second stage fails, dies, hangs or writes a lot as NBPROD_TEST_FAULT says."""
    cells = [("factor = 2", ["parameters"]),
             ("import pathlib\nbase = 21\npathlib.Path('first.txt').write_text(str(base))\n",
              ["stage:first", "outs:first.txt"]),
             (FAULT_STAGE_TWO, ["stage:second", "outs:second.txt"])]
    return {"cells": [{"cell_type": "code", "execution_count": None, "metadata": {"tags": tags}, "outputs": [],
                       "source": source} for source, tags in cells],
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


def fault_outputs(root: Path) -> dict:
    """What a user compares between runs: their files, the metrics, and what dvc.lock records of them."""
    from ruamel.yaml import YAML

    lock = YAML(typ="safe", pure=True).load((root / "dvc.lock").read_text(encoding="utf-8"))
    recorded = {}
    for name, stage in lock["stages"].items():
        recorded[name] = {"deps": {d["path"]: d.get("md5") for d in stage.get("deps", [])},
                          "params": stage.get("params"),
                          "outs": {o["path"]: o.get("md5") for o in stage.get("outs", [])
                                   if not o["path"].startswith("reports/")}}
    return {"first.txt": (root / "notebooks/first.txt").read_text(),
            "second.txt": (root / "notebooks/second.txt").read_text(),
            "metrics": {p.name: p.read_text() for p in sorted((root / "metrics").glob("*.json"))},
            "lock": recorded}


def wait_for(check, limit: float, what: str) -> None:
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {limit:.0f}s")
        time.sleep(0.2)


def wait_for_run(server: JupyterServer, run_id: str, timeout: float = 240) -> list[dict]:
    """The events of a run started through the server's REST API, once it has ended."""
    events: list[dict] = []
    offset = 0
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = server.api("GET", f"runs/{run_id}/events", params={"path": "proj", "offset": offset}).json()
        assert state["offset"] >= offset
        offset = state["offset"]
        events += state["events"]
        if not state["running"]:
            return events
        time.sleep(0.5)
    raise AssertionError(f"run {run_id} still going after {timeout} s")


def flow_project(root: Path, cells, name: str = "flow") -> Path:
    """A committed git + DVC project whose pipeline is one notebook (notebooks/flow.ipynb) of the given
    (tags, source) code cells, compiled."""
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text(f'[project]\nname = "{name}"\nversion = "0"\n\n[tool.nbprod]\n'
                                         'notebooks = ["notebooks"]\nkernel = "python3"\n', encoding="utf-8")
    (root / "notebooks").mkdir()
    (root / "notebooks" / "flow.ipynb").write_text(json.dumps(code_notebook(cells), indent=1), encoding="utf-8")
    run("git", "init", "-q", cwd=root)
    run("dvc", "init", "-q", cwd=root)
    nbprod("compile", cwd=root)
    run("git", "add", "-A", cwd=root)
    run("git", "commit", "-q", "-m", "pipeline", cwd=root)
    return root


def lock_entries(root: Path) -> dict:
    """dvc.lock's stages as data, with the hashes of executed notebooks blanked (they hold run
    timestamps): two runs that recorded the same results compare equal, whatever order they wrote."""
    import yaml

    stages = yaml.safe_load((root / "dvc.lock").read_text(encoding="utf-8"))["stages"]
    for entry in stages.values():
        for out in entry.get("outs", []):
            if re.search(r"reports/[\w-]+\.ipynb$", out["path"]):
                out["md5"], out["size"] = "*", "*"
    return stages
