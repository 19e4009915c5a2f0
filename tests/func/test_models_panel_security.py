"""The Models panel's endpoints under the same rules as every nbprod endpoint, in a real Jupyter server:
no token -> refused; a state-changing cookie request without XSRF -> refused; no path outside the
server root; candidate ids, versions, params and names from the client are checked before anything
starts or is written; nothing changes on disk when a request is refused."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import requests

from helpers.servers import hostile_paths

pytestmark = pytest.mark.slow

# (method, endpoint, changes state)
ENDPOINTS = [
    ("GET", "models", False),
    ("GET", "models/versions/v1.0.0", False),
    ("GET", "models/candidates/c1/report", False),
    ("POST", "models/retrain", True),
    ("POST", "models/approve", True),
    ("POST", "models/reject", True),
    ("POST", "models/rollback", True),
]
BODIES = {"models/retrain": {"note": "n", "set": []},
          "models/approve": {"candidate": "c1", "note": "n", "name": "n"},
          "models/reject": {"candidate": "c1", "note": "n", "name": "n"},
          "models/rollback": {"version": "v1.0.0", "note": "n", "name": "n"}}


def _request(server, method, endpoint, path="proj", headers=None, session=None, **extra):
    url = f"{server.base}/nbprod/api/{endpoint}"
    if method == "GET":
        kwargs = {"params": {"path": path}}
    else:
        kwargs = {"json": {"path": path, **BODIES.get(endpoint, {}), **extra}}
    return (session or requests).request(method, url, headers=headers or {}, timeout=60, **kwargs)


def _snapshot(top: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in sorted(top.rglob("*"))
            if p.is_file() and "jupyter" not in p.relative_to(top).parts[:1] and ".dvc/tmp" not in str(p)
            and not p.name.endswith(".lock") and "/.git/" not in str(p)}


def _tags(server) -> str:
    return subprocess.run(["git", "show-ref"], cwd=server.root / "proj", capture_output=True, text=True).stdout


def test_the_overview_is_served_with_the_token(contained_server):
    response = _request(contained_server, "GET", "models", headers=contained_server.auth)
    assert response.status_code == 200, response.text
    assert response.json()["production"] is None and response.json()["user"]["shared_token"] is True


@pytest.mark.parametrize("method, endpoint, _", ENDPOINTS)
def test_every_models_endpoint_refuses_requests_without_a_valid_token(contained_server, method, endpoint, _):
    before, refs = _snapshot(contained_server.top), _tags(contained_server)
    for headers in ({}, {"Authorization": "token wrong"}, {"Authorization": ""},
                    {"Authorization": "Bearer " + contained_server.token[:-1] + "x"},
                    {"Cookie": "_xsrf=1; username-127-0-0-1=forged"}):
        response = _request(contained_server, method, endpoint, headers=headers)
        assert response.status_code in (401, 403), (method, endpoint, headers, response.status_code)
    wrong_query = requests.request(method, f"{contained_server.base}/nbprod/api/{endpoint}",
                                   params={"path": "proj", "token": "wrong"}, timeout=30)
    assert wrong_query.status_code in (401, 403)
    assert _snapshot(contained_server.top) == before and _tags(contained_server) == refs


@pytest.mark.parametrize("method, endpoint, _", [e for e in ENDPOINTS if e[2]])
def test_state_changing_models_endpoints_refuse_cookie_requests_without_xsrf(contained_server, method, endpoint, _):
    session = contained_server.browser_session()
    before, refs = _snapshot(contained_server.top), _tags(contained_server)
    for headers in ({}, {"X-XSRFToken": "forged"}, {"X-XSRFToken": ""}):
        response = _request(contained_server, method, endpoint, headers=headers, session=session)
        assert response.status_code == 403, (endpoint, headers, response.status_code, response.text)
    form = session.post(f"{contained_server.base}/nbprod/api/{endpoint}", data={"path": "proj"}, timeout=30,
                        headers={"Origin": "http://evil.example", "Referer": "http://evil.example/"})
    assert form.status_code in (403, 404)
    # With the XSRF header the same session reaches the handler (which then checks the candidate, etc.).
    xsrf = {"X-XSRFToken": session.cookies.get("_xsrf")}
    reached = _request(contained_server, method, endpoint, headers=xsrf, session=session, note="", candidate="c0",
                       version="v0.0.0", set=["--force"])
    assert reached.status_code in (400, 404) and "message" in reached.json(), reached.text
    assert _snapshot(contained_server.top) == before and _tags(contained_server) == refs


@pytest.mark.parametrize("method, endpoint, _", ENDPOINTS)
def test_no_models_endpoint_reaches_outside_the_server_root(contained_server, method, endpoint, _):
    before = _snapshot(contained_server.top)
    outside = str(contained_server.top / "outside")
    for path in [*hostile_paths(method), outside, outside + "/notebooks", "/etc", "/"]:
        response = _request(contained_server, method, endpoint, path=path, headers=contained_server.auth)
        assert response.status_code in (400, 403, 404), (endpoint, path, response.status_code, response.text)
        body = response.json()
        assert set(body) == {"message"} and "\n" not in body["message"], body
        assert str(contained_server.root) not in body["message"] and "root:x:0" not in response.text
    assert _snapshot(contained_server.top) == before
    assert not (contained_server.top / "outside" / ".nbprod" / "runs").exists()


def test_ids_params_and_names_from_the_client_are_checked(contained_server):
    before, refs = _snapshot(contained_server.top), _tags(contained_server)
    post = lambda endpoint, **body: requests.post(  # noqa: E731
        f"{contained_server.base}/nbprod/api/models/{endpoint}", headers=contained_server.auth, timeout=60,
        json={"path": "proj", **body})
    for candidate in ["../c1", "c1;id", "c1\n", "$(id)", "c1 --override x", "-c1", "C1", None, 1, ["c1"],
                      "c" + "9" * 20]:
        for endpoint in ("approve", "reject"):
            response = post(endpoint, candidate=candidate, note="n", name="n")
            assert response.status_code in (400, 404), (endpoint, candidate, response.text)
    for version in ["../v1.0.0", "v1.0.0;id", "HEAD", "model@v1.0.0", "v1", None, 3]:
        response = post("rollback", version=version, note="n", name="n")
        assert response.status_code in (400, 404), (version, response.text)
    # (A literal ".." segment is resolved by the client before sending: only encoded ones reach the server.)
    for version in ["v1.0.0%2F..", "%2e%2e", "%2e%2e%2f%2e%2e", "v1.0.0;id"]:
        response = requests.get(f"{contained_server.base}/nbprod/api/models/versions/{version}",
                                params={"path": "proj"}, headers=contained_server.auth, timeout=30)
        assert response.status_code in (400, 404), (version, response.status_code)
    for candidate in ["c1%2F..%2F..", "%2e%2e", "c1;id"]:
        response = requests.get(f"{contained_server.base}/nbprod/api/models/candidates/{candidate}/report",
                                params={"path": "proj"}, headers=contained_server.auth, timeout=30)
        assert response.status_code in (400, 404), (candidate, response.status_code)
        assert "<html" not in response.text.lower()
    for overrides in [["--force"], ["model.C=1; touch pwned"], ["model.C=1\n"], ["model.C=$(id)"], ["model.nope=1"],
                      ["model.C=1\n--x"], "model.C=1",
                      [{"model.C": 1}], ["x" * 300 + ".a=1"], ["model.C=1"] * 21]:
        response = post("retrain", set=overrides)
        assert response.status_code == 400, (overrides, response.text)
    for note in [3, "x" * 5000, "a\u0000b"]:
        response = post("retrain", note=note)
        assert response.status_code == 400, (note, response.text)
    # On a shared-token server the typed name is required, one line, and short.
    for name in [None, "", "   ", "a\nb", "x" * 200, 7]:
        response = post("approve", candidate="c1", note="n", name=name)
        assert response.status_code in (400, 404), (name, response.text)
    assert _snapshot(contained_server.top) == before and _tags(contained_server) == refs
    assert not list(contained_server.top.rglob("pwned*"))
    assert not list((contained_server.root / "proj" / ".nbprod").glob("runs/*T*"))


def test_methods_the_models_endpoints_do_not_define_are_not_served(contained_server):
    for _, endpoint, _ in ENDPOINTS:
        for other in ("PUT", "DELETE", "PATCH"):
            response = requests.request(other, f"{contained_server.base}/nbprod/api/{endpoint}",
                                        headers=contained_server.auth, timeout=30, json={"path": "proj"})
            assert response.status_code == 405, (other, endpoint, response.status_code)
