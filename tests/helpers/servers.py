"""Real servers a test starts on 127.0.0.1 and always stops: a free port, a Jupyter server with token
auth, ``nbprod serve`` (uvicorn) in its own process group; the paths every hostile-path test sends."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
from pathlib import Path

from helpers.paths import BIN
from helpers.waiting import wait_for

# Paths a client may send that must never reach outside a Jupyter server's root (tests/func/
# test_server_security.py and test_models_panel_security.py send every one to every endpoint).
# The server root holds proj/ (a project) and escape -> a project outside the root.
HOSTILE_PATHS = ["..", "../..", "../outside", "/..", "proj/../../outside", "escape", "escape/proj",
                 "escape/notebooks", "proj/../..", "./../outside", "..\\..", "~", "%2e%2e/outside", "proj/\u0000"]


def hostile_paths(method: str) -> list[str]:
    """HOSTILE_PATHS as a request with ``method`` can carry them: tornado drops control characters from
    query arguments, so a GET of "proj/\\0" asks for "proj/", the project itself."""
    return [p for p in HOSTILE_PATHS if method != "GET" or "\0" not in p]


def free_port() -> int:
    """A loopback port nothing listens on (the OS picks it; the caller binds it next)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_answers(process: subprocess.Popen, url: str, log_path: Path, limit: float = 90,
                       headers: dict | None = None) -> None:
    """Until ``url`` answers 2xx; fails with the log if the process ends first or nothing answers in time."""
    import requests

    def answers() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[:3]} exited {process.returncode}: {log_path.read_text()}")
        try:
            return requests.get(url, headers=headers or {}, timeout=2).ok
        except requests.ConnectionError:
            return False

    try:
        wait_for(answers, limit, f"{url} to answer", every=0.3)
    except AssertionError as error:
        raise RuntimeError(f"{error}: {log_path.read_text(errors='replace')}") from None


def stop_process(process: subprocess.Popen, grace: float = 15) -> None:
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=grace)


class JupyterServer:
    """A real Jupyter server (``module``: jupyter_server or jupyterlab) on 127.0.0.1 with token auth, as a
    subprocess with its own config, runtime and data folders under ``workdir``; always ``stop()`` it.
    ``config`` is the text of a jupyter_server_config.py (e.g. an identity provider that names users)."""

    def __init__(self, root: Path, workdir: Path, module: str = "jupyter_server", config: str | None = None,
                 env: dict | None = None):
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
        try:
            wait_until_answers(self.process, f"{self.base}/api/status", self.log_path, headers=self.auth)
        except BaseException:
            self.stop()
            raise

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
        stop_process(self.process)
        self.log.close()


def wait_for_run(server: JupyterServer, run_id: str, timeout: float = 240) -> list[dict]:
    """The events of a run started through the server's REST API, once it has ended."""
    events: list[dict] = []
    offset = 0

    def ended() -> bool:
        nonlocal offset
        state = server.api("GET", f"runs/{run_id}/events", params={"path": "proj", "offset": offset}).json()
        assert state["offset"] >= offset
        offset = state["offset"]
        events.extend(state["events"])
        return not state["running"]

    wait_for(ended, timeout, f"run {run_id} to end", every=0.5)
    return events


class Serve:
    """``nbprod serve`` in its own process group; use as a context manager."""

    def __init__(self, root: Path, *args: str, env: dict | None = None, ready_timeout: float = 90):
        self.root, self.port = root, free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = root.parent / f"serve-{self.port}.log"
        self.args, self.env, self.ready_timeout = args, env, ready_timeout
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Serve:
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen([str(BIN / "nbprod"), "serve", "--port", str(self.port), *self.args],
                                        cwd=self.root, stdout=self.log, stderr=subprocess.STDOUT,
                                        env={**os.environ, **(self.env or {})}, start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        import httpx

        def healthy() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"nbprod serve exited {self.process.returncode}: {self.output()}")
            try:
                return httpx.get(f"{self.base}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        try:
            wait_for(healthy, self.ready_timeout, "nbprod serve to answer")
        except AssertionError as error:
            raise RuntimeError(f"{error}: {self.output()}") from None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
            except ProcessLookupError:
                pass
        try:  # worker processes left behind by a killed supervisor
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.log.close()

    def __exit__(self, *exc) -> None:
        self.stop()


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of a Prometheus sample's values whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total
