"""Every nbprod REST endpoint, in a real Jupyter server: no token -> refused; a state-changing request
without XSRF protection -> refused; no path outside the server root is read or written; nothing but
nbprod's own pipeline actions can be started, whatever the request holds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import requests

from helpers import JupyterServer

pytestmark = pytest.mark.slow

RUN_ID = "20240101T000000-abcdef"
# (method, endpoint, changes state)
ENDPOINTS = [
    ("GET", "schema", False),
    ("GET", "pipeline", False),
    ("GET", "status", False),
    ("GET", "runs", False),
    ("POST", "runs", True),
    ("POST", "debug", True),
    ("GET", f"runs/{RUN_ID}/events", False),
    ("POST", f"runs/{RUN_ID}/cancel", True),
]
PATH_ENDPOINTS = [e for e in ENDPOINTS if e[1] != "schema"]
HOSTILE_PATHS = ["..", "../..", "../outside", "/..", "proj/../../outside", "escape", "escape/proj",
                 "proj/../..", "./../outside", "..\\..", "~", "%2e%2e/outside"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    top = tmp_path_factory.mktemp("secure")
    root = top / "root"
    root.mkdir()
    subprocess.run([sys.executable, "-m", "nbprod", "init", str(root / "proj")], check=True, capture_output=True)
    # A whole nbprod project outside the server root, reachable only through a symlink inside it.
    subprocess.run([sys.executable, "-m", "nbprod", "init", "--no-git", str(top / "outside")], check=True,
                   capture_output=True)
    (root / "escape").symlink_to(top / "outside", target_is_directory=True)
    workdir = top / "jupyter"
    workdir.mkdir()
    srv = JupyterServer(root, workdir)
    srv.top = top
    yield srv
    srv.stop()


def _request(server, method, endpoint, path="proj", headers=None, session=None, **extra):
    url = f"{server.base}/nbprod/api/{endpoint}"
    kwargs = {"params": {"path": path}} if method == "GET" else {"json": {"path": path, "stages": [], **extra}}
    if endpoint == "debug" and method == "POST":
        kwargs["json"]["stage"] = extra.get("stage", "prepare")
    return (session or requests).request(method, url, headers=headers or {}, timeout=60, **kwargs)


def _snapshot(top: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in sorted(top.rglob("*"))
            if p.is_file() and "jupyter" not in p.relative_to(top).parts[:1] and ".dvc/tmp" not in str(p)}


def test_a_valid_request_is_served(server):
    # Positive control: the refusals below are about credentials and paths, not a broken server.
    assert _request(server, "GET", "schema", headers=server.auth).status_code == 200
    assert _request(server, "GET", "pipeline", headers=server.auth).status_code == 200


@pytest.mark.parametrize("method, endpoint, _", ENDPOINTS)
def test_every_endpoint_refuses_requests_without_a_valid_token(server, method, endpoint, _):
    before = _snapshot(server.top)
    for headers in ({}, {"Authorization": "token wrong"}, {"Authorization": "Bearer " + server.token[:-1] + "x"},
                    {"Authorization": ""}, {"Cookie": "_xsrf=1; username-127-0-0-1=forged"}):
        response = _request(server, method, endpoint, headers=headers)
        assert response.status_code in (401, 403), (method, endpoint, headers, response.status_code)
    wrong_query = requests.request(method, f"{server.base}/nbprod/api/{endpoint}",
                                   params={"path": "proj", "token": "wrong"}, timeout=30)
    assert wrong_query.status_code in (401, 403)
    assert _snapshot(server.top) == before


@pytest.mark.parametrize("method, endpoint, _", [e for e in ENDPOINTS if e[2]])
def test_state_changing_endpoints_refuse_cookie_requests_without_xsrf(server, method, endpoint, _):
    session = server.browser_session()
    before = _snapshot(server.top)
    for headers in ({}, {"X-XSRFToken": "forged"}, {"X-XSRFToken": ""}):
        response = _request(server, method, endpoint, headers=headers, session=session)
        assert response.status_code == 403, (endpoint, headers, response.status_code, response.text)
    # A form post from another site carries the cookie but never the XSRF header.
    form = session.post(f"{server.base}/nbprod/api/{endpoint}", data={"path": "proj"}, timeout=30,
                        headers={"Origin": "http://evil.example", "Referer": "http://evil.example/"})
    assert form.status_code in (403, 404)  # Jupyter answers a blocked cross-origin API request with 404
    assert _snapshot(server.top) == before


@pytest.mark.parametrize("method, endpoint, _", PATH_ENDPOINTS)
def test_no_endpoint_reaches_outside_the_server_root(server, method, endpoint, _):
    before = _snapshot(server.top)
    outside = str(server.top / "outside")
    for path in [*HOSTILE_PATHS, outside, outside + "/notebooks", "/etc", "/"]:
        response = _request(server, method, endpoint, path=path, headers=server.auth)
        assert response.status_code in (400, 403, 404), (endpoint, path, response.status_code, response.text)
        body = response.json()
        assert set(body) == {"message"} and "\n" not in body["message"], body
        # Messages speak of paths under the root as the UI does: the server's own folders stay private.
        assert str(server.root) not in body["message"] and "root:x:0" not in response.text
    assert _snapshot(server.top) == before
    assert not (server.top / "outside" / ".nbprod" / "runs").exists()


def test_only_nbprod_pipeline_actions_can_start(server):
    before = _snapshot(server.top)
    hostile_stages = [["$(touch pwned)"], ["prepare; touch pwned"], ["-f"], ["--help"], ["prepare", "`id`"],
                      ["../../bin/sh"], ["prepare\n"], [{"cmd": "touch pwned"}], "prepare", [None]]
    for stages in hostile_stages:
        response = requests.post(f"{server.base}/nbprod/api/runs", headers=server.auth, timeout=60,
                                 json={"path": "proj", "stages": stages})
        assert response.status_code == 400, (stages, response.status_code, response.text)
    for start in ["--force", "-f", "prepare --force", "$(id)", 3, ["prepare"]]:
        response = requests.post(f"{server.base}/nbprod/api/runs", headers=server.auth, timeout=60,
                                 json={"path": "proj", "stages": [], "from": start})
        assert response.status_code == 400, (start, response.status_code, response.text)
    for stage in ["$(touch pwned)", "../prepare", "prepare;id", None, 3, "nope"]:
        response = requests.post(f"{server.base}/nbprod/api/debug", headers=server.auth, timeout=60,
                                 json={"path": "proj", "stage": stage})
        assert response.status_code == 400, (stage, response.status_code, response.text)
    for run_id in ["..", "../../etc", "x;id", "20240101T000000-abcdef/../..", "%2e%2e"]:
        for method, suffix in (("GET", "events"), ("POST", "cancel")):
            response = requests.request(method, f"{server.base}/nbprod/api/runs/{run_id}/{suffix}",
                                        headers=server.auth, timeout=30, json={"path": "proj"},
                                        params={"path": "proj"})
            assert response.status_code in (400, 404), (run_id, suffix, response.status_code)
    # Methods an endpoint does not define are not served.
    for _method, endpoint, _ in ENDPOINTS:
        for other in ("PUT", "DELETE", "PATCH"):
            response = requests.request(other, f"{server.base}/nbprod/api/{endpoint}", headers=server.auth,
                                        timeout=30, json={"path": "proj"})
            assert response.status_code == 405, (other, endpoint, response.status_code)
    assert _snapshot(server.top) == before
    assert not list(server.top.rglob("pwned*"))
    assert not list((server.root / "proj" / ".nbprod").glob("runs/*T*"))
