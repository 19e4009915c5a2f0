"""Every nbprod REST endpoint, in a real Jupyter server: no token -> refused; a state-changing request
without XSRF protection -> refused; no path outside the server root is read or written; nothing but
nbprod's own pipeline actions can be started, whatever the request holds."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from helpers.servers import hostile_paths

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


def _request(server, method, endpoint, path="proj", headers=None, session=None, **extra):
    url = f"{server.base}/nbprod/api/{endpoint}"
    kwargs = {"params": {"path": path}} if method == "GET" else {"json": {"path": path, "stages": [], **extra}}
    if endpoint == "debug" and method == "POST":
        kwargs["json"]["stage"] = extra.get("stage", "prepare")
    return (session or requests).request(method, url, headers=headers or {}, timeout=60, **kwargs)


def _snapshot(top: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in sorted(top.rglob("*"))
            if p.is_file() and "jupyter" not in p.relative_to(top).parts[:1] and ".dvc/tmp" not in str(p)}


def test_a_valid_request_is_served(contained_server):
    # Positive control: the refusals below are about credentials and paths, not a broken server.
    assert _request(contained_server, "GET", "schema", headers=contained_server.auth).status_code == 200
    assert _request(contained_server, "GET", "pipeline", headers=contained_server.auth).status_code == 200


@pytest.mark.parametrize("method, endpoint, _", ENDPOINTS)
def test_every_endpoint_refuses_requests_without_a_valid_token(contained_server, method, endpoint, _):
    before = _snapshot(contained_server.top)
    for headers in ({}, {"Authorization": "token wrong"}, {"Authorization": ""},
                    {"Authorization": "Bearer " + contained_server.token[:-1] + "x"},
                    {"Cookie": "_xsrf=1; username-127-0-0-1=forged"}):
        response = _request(contained_server, method, endpoint, headers=headers)
        assert response.status_code in (401, 403), (method, endpoint, headers, response.status_code)
    wrong_query = requests.request(method, f"{contained_server.base}/nbprod/api/{endpoint}",
                                   params={"path": "proj", "token": "wrong"}, timeout=30)
    assert wrong_query.status_code in (401, 403)
    assert _snapshot(contained_server.top) == before


@pytest.mark.parametrize("method, endpoint, _", [e for e in ENDPOINTS if e[2]])
def test_state_changing_endpoints_refuse_cookie_requests_without_xsrf(contained_server, method, endpoint, _):
    session = contained_server.browser_session()
    before = _snapshot(contained_server.top)
    for headers in ({}, {"X-XSRFToken": "forged"}, {"X-XSRFToken": ""}):
        response = _request(contained_server, method, endpoint, headers=headers, session=session)
        assert response.status_code == 403, (endpoint, headers, response.status_code, response.text)
    # A form post from another site carries the cookie but never the XSRF header.
    form = session.post(f"{contained_server.base}/nbprod/api/{endpoint}", data={"path": "proj"}, timeout=30,
                        headers={"Origin": "http://evil.example", "Referer": "http://evil.example/"})
    assert form.status_code in (403, 404)  # Jupyter answers a blocked cross-origin API request with 404
    assert _snapshot(contained_server.top) == before


@pytest.mark.parametrize("method, endpoint, _", PATH_ENDPOINTS)
def test_no_endpoint_reaches_outside_the_server_root(contained_server, method, endpoint, _):
    before = _snapshot(contained_server.top)
    outside = str(contained_server.top / "outside")
    for path in [*hostile_paths(method), outside, outside + "/notebooks", "/etc", "/"]:
        response = _request(contained_server, method, endpoint, path=path, headers=contained_server.auth)
        assert response.status_code in (400, 403, 404), (endpoint, path, response.status_code, response.text)
        body = response.json()
        assert set(body) == {"message"} and "\n" not in body["message"], body
        # Messages speak of paths under the root as the UI does: the server's own folders stay private.
        assert str(contained_server.root) not in body["message"] and "root:x:0" not in response.text
    assert _snapshot(contained_server.top) == before
    assert not (contained_server.top / "outside" / ".nbprod" / "runs").exists()


def test_only_nbprod_pipeline_actions_can_start(contained_server):
    before = _snapshot(contained_server.top)
    hostile_stages = [["$(touch pwned)"], ["prepare; touch pwned"], ["-f"], ["--help"], ["prepare", "`id`"],
                      ["../../bin/sh"], ["prepare\n"], [{"cmd": "touch pwned"}], "prepare", [None]]
    for stages in hostile_stages:
        response = requests.post(f"{contained_server.base}/nbprod/api/runs", headers=contained_server.auth, timeout=60,
                                 json={"path": "proj", "stages": stages})
        assert response.status_code == 400, (stages, response.status_code, response.text)
    for start in ["--force", "-f", "prepare --force", "$(id)", 3, ["prepare"]]:
        response = requests.post(f"{contained_server.base}/nbprod/api/runs", headers=contained_server.auth, timeout=60,
                                 json={"path": "proj", "stages": [], "from": start})
        assert response.status_code == 400, (start, response.status_code, response.text)
    for stage in ["$(touch pwned)", "../prepare", "prepare;id", None, 3, "nope"]:
        response = requests.post(f"{contained_server.base}/nbprod/api/debug", headers=contained_server.auth, timeout=60,
                                 json={"path": "proj", "stage": stage})
        assert response.status_code == 400, (stage, response.status_code, response.text)
    for run_id in ["..", "../../etc", "x;id", "20240101T000000-abcdef/../..", "%2e%2e"]:
        for method, suffix in (("GET", "events"), ("POST", "cancel")):
            response = requests.request(method, f"{contained_server.base}/nbprod/api/runs/{run_id}/{suffix}",
                                        headers=contained_server.auth, timeout=30, json={"path": "proj"},
                                        params={"path": "proj"})
            assert response.status_code in (400, 404), (run_id, suffix, response.status_code)
    # Methods an endpoint does not define are not served.
    for _method, endpoint, _ in ENDPOINTS:
        for other in ("PUT", "DELETE", "PATCH"):
            response = requests.request(other, f"{contained_server.base}/nbprod/api/{endpoint}",
                                        headers=contained_server.auth, timeout=30, json={"path": "proj"})
            assert response.status_code == 405, (other, endpoint, response.status_code)
    assert _snapshot(contained_server.top) == before
    assert not list(contained_server.top.rglob("pwned*"))
    assert not list((contained_server.root / "proj" / ".nbprod").glob("runs/*T*"))
