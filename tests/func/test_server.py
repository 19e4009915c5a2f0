"""The nbprod server extension in a real Jupyter server: auth, XSRF, path containment, and real runs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests

from helpers.servers import JupyterServer, wait_for_run
from helpers.waiting import wait_for

from nbprod.notebooks.tags import SCHEMA

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    top = tmp_path_factory.mktemp("server")
    # A DVC folder above the server root: a project found there lies outside what the server serves.
    (top / ".dvc").mkdir()
    root = top / "root"
    root.mkdir()
    subprocess.run([sys.executable, "-m", "nbprod", "init", str(root / "proj")], check=True, capture_output=True)
    outside = top / "outside"
    outside.mkdir()
    (root / "escape").symlink_to(outside, target_is_directory=True)
    workdir = tmp_path_factory.mktemp("jupyter")
    srv = JupyterServer(root, workdir)
    yield srv
    srv.stop()


def test_server_extension_is_enabled_by_the_installed_config():
    listing = subprocess.run([sys.executable, "-m", "jupyter_server", "extension", "list"], capture_output=True,
                             text=True, timeout=60)
    text = listing.stdout + listing.stderr
    assert "nbprod.jupyter" in text and "enabled" in text.split("nbprod.jupyter", 1)[1].splitlines()[0]


def test_requests_without_credentials_are_refused(server):
    for method, endpoint in [("GET", "schema"), ("GET", "pipeline"), ("GET", "status"), ("GET", "runs"),
                             ("POST", "runs")]:
        response = requests.request(method, f"{server.base}/nbprod/api/{endpoint}", params={"path": "proj"},
                                    timeout=10)
        assert response.status_code in (401, 403), (method, endpoint, response.status_code)
        wrong = requests.request(method, f"{server.base}/nbprod/api/{endpoint}", params={"path": "proj"},
                                 headers={"Authorization": "token not-the-token"}, timeout=10)
        assert wrong.status_code in (401, 403), (method, endpoint, wrong.status_code)
    assert not list((server.root / "proj" / ".nbprod").glob("runs/*T*"))


def test_cookie_posts_without_xsrf_or_from_another_site_are_refused(server):
    session = server.browser_session()
    assert session.get(f"{server.base}/nbprod/api/schema", timeout=10).status_code == 200
    no_xsrf = session.post(f"{server.base}/nbprod/api/runs", json={"path": "proj", "stages": []}, timeout=10)
    assert no_xsrf.status_code == 403
    xsrf = {"X-XSRFToken": session.cookies.get("_xsrf")}
    cross_site = session.post(f"{server.base}/nbprod/api/runs", json={"path": "proj", "stages": ["nope"]},
                              headers={**xsrf, "Origin": "http://evil.example"}, timeout=10)
    assert cross_site.status_code in (403, 404)
    # The same request from the page itself reaches the handler, which checks the stage name.
    same_site = session.post(f"{server.base}/nbprod/api/runs", json={"path": "proj", "stages": ["nope"]},
                             headers=xsrf, timeout=30)
    assert same_site.status_code == 400 and "nope" in same_site.json()["message"]
    assert not list((server.root / "proj" / ".nbprod").glob("runs/*T*"))


def test_paths_outside_the_server_root_are_refused(server):
    for path in ["..", "../..", "proj/../../outside", "escape", "escape/x", "/../.."]:
        response = server.api("GET", "pipeline", params={"path": path})
        assert response.status_code in (400, 403), (path, response.status_code)
        assert "message" in response.json()
    # Inside the root but the nearest .dvc is above it: that project is not the server's to run.
    above = server.api("GET", "status", params={"path": ""})
    assert above.status_code == 403 and "outside the server root" in above.json()["message"]
    run_escape = server.api("POST", "runs", json={"path": "../outside", "stages": []})
    assert run_escape.status_code == 403
    assert server.api("POST", "runs", json={"path": "proj/\u0000", "stages": []}).status_code == 400
    bad_id = requests.get(f"{server.base}/nbprod/api/runs/..%2F..%2Fetc/events", params={"path": "proj"},
                          headers=server.auth, timeout=10)
    assert bad_id.status_code == 404


def test_only_known_stage_names_start_a_run(server):
    for stages, start in [(["../../etc"], None), (["train; rm -rf /"], None), (["Train"], None),
                          (["not-a-stage"], None), ("train", None), ([], "--force"), ([3], None)]:
        response = server.api("POST", "runs", json={"path": "proj", "stages": stages, "from": start})
        assert response.status_code == 400, (stages, start, response.text)
    assert server.api("POST", "runs", data=b"not json").status_code == 400
    for keep_going in ("yes", 1, None):  # the panel's "Keep going" box sends true or false
        response = server.api("POST", "runs", json={"path": "proj", "stages": [], "keep_going": keep_going})
        assert response.status_code == 400 and "keep_going" in response.text
    assert not list((server.root / "proj" / ".nbprod").glob("runs/*T*"))


def test_schema_pipeline_and_status_are_the_python_api(server):
    assert server.api("GET", "schema").json() == json.loads(json.dumps(SCHEMA))
    pipeline = server.api("GET", "pipeline", params={"path": "proj/notebooks"}).json()
    assert pipeline["root"] == "proj"
    cli = json.loads(subprocess.run([sys.executable, "-m", "nbprod", "pipeline"], cwd=server.root / "proj",
                                    capture_output=True, text=True, check=True).stdout)
    assert [s["name"] for s in pipeline["stages"]] == [s["name"] for s in cli["stages"]]
    assert [s["name"] for s in pipeline["stages"]] == ["prepare", "train", "evaluate"]
    status = server.api("GET", "status", params={"path": "proj"}).json()
    assert status["running"] is None
    assert {s["name"]: s["state"] for s in status["stages"]} == dict.fromkeys(("prepare", "train", "evaluate"),
                                                                            "never run")


def test_a_run_started_and_followed_over_rest_brings_every_stage_up_to_date(server):
    session = server.browser_session()
    started = session.post(f"{server.base}/nbprod/api/runs", json={"path": "proj", "stages": []},
                           headers={"X-XSRFToken": session.cookies.get("_xsrf")}, timeout=60)
    assert started.status_code == 202, started.text
    run_id = started.json()["id"]
    second = server.api("POST", "runs", json={"path": "proj", "stages": []})
    assert second.status_code == 409
    assert server.api("GET", "status", params={"path": "proj"}).json()["running"] == run_id
    events = wait_for_run(server, run_id)
    kinds = [e["event"] for e in events]
    assert kinds[-1] == "run_end" and events[-1]["ok"] is True, events[-5:]
    ended = {e["stage"]: e for e in events if e["event"] == "stage_end"}
    assert {n: e["state"] for n, e in ended.items()} == {"prepare": "ran", "train": "ran", "evaluate": "ran"}
    assert ended["evaluate"]["metrics"]["accuracy"] > 0.9
    assert any(e["event"] == "cell" and e["stage"] == "train" for e in events)
    for stage in ended.values():
        assert (server.root / "proj" / stage["report"]).is_file()
    # Polling from the last offset gives nothing new; the run is listed for the panel to reload.
    state = server.api("GET", f"runs/{run_id}/events", params={"path": "proj", "offset": 10**9}).json()
    assert state["events"] == [] and state["running"] is False
    assert server.api("GET", "runs", params={"path": "proj"}).json()["runs"][0]["id"] == run_id
    status = server.api("GET", "status", params={"path": "proj"}).json()
    assert {s["name"]: s["state"] for s in status["stages"]} == dict.fromkeys(("prepare", "train", "evaluate"),
                                                                            "up to date")
    # The panel's "Keep going" box: `nbprod run --keep-going`, here with nothing to do.
    again = server.api("POST", "runs", json={"path": "proj", "stages": [], "keep_going": True})
    assert again.status_code == 202, again.text
    events = wait_for_run(server, again.json()["id"])
    assert events[-1]["event"] == "run_end" and events[-1]["ok"] is True


def test_debug_writes_the_stage_notebook_with_its_inputs(server):
    response = server.api("POST", "debug", json={"path": "proj", "stage": "evaluate"})
    assert response.status_code == 200, response.text
    notebook = response.json()["notebook"]
    # Jupyter hides dot-folders by default, so the notebook the UI opens is outside .nbprod/.
    assert notebook == "proj/nbprod-debug/evaluate.ipynb"
    opened = requests.get(f"{server.base}/api/contents/{notebook}", headers=server.auth, timeout=10)
    assert opened.status_code == 200 and opened.json()["type"] == "notebook"
    cells = json.loads((server.root / notebook).read_text())["cells"]
    assert any("predict_proba" in "".join(c["source"]) for c in cells)
    for stage in ["../train", "nope", None]:
        assert server.api("POST", "debug", json={"path": "proj", "stage": stage}).status_code == 400


def test_cancel_stops_a_run_even_from_another_server(server, tmp_path):
    """A run outlives the server that started it: a second server (as after a restart) sees it
    going, follows its events and cancels it."""
    params = server.root / "proj" / "params.yaml"
    # A seed never used before: DVC's run cache cannot restore prepare, so it really runs.
    params.write_text(params.read_text().replace("seed: 42", "seed: 4242"))
    # Up before the run starts: on a busy machine a server start can outlast the whole (fast) pipeline.
    other = JupyterServer(server.root, tmp_path)
    try:
        started = server.api("POST", "runs", json={"path": "proj", "stages": [], "from": "prepare"})
        assert started.status_code == 202, started.text
        run_id = started.json()["id"]
        offset, seen = 0, []

        def started_or_ended() -> bool:
            nonlocal offset
            state = other.api("GET", f"runs/{run_id}/events", params={"path": "proj", "offset": offset}).json()
            offset = state["offset"]
            seen.extend(state["events"])
            return any(e["event"] == "stage_start" for e in seen) or not state["running"]

        wait_for(started_or_ended, 60, "the second server to see a stage start")
        assert any(e["event"] == "stage_start" for e in seen), seen
        assert other.api("GET", "status", params={"path": "proj"}).json()["running"] == run_id
        assert other.api("POST", "runs", json={"path": "proj", "stages": []}).status_code == 409
        cancelled = other.api("POST", f"runs/{run_id}/cancel", json={"path": "proj"})
        assert cancelled.status_code == 200 and cancelled.json()["cancelled"] is True
        seen += wait_for_run(server, run_id, timeout=60)
        assert not any(e["event"] == "run_end" and e["ok"] for e in seen)
        wait_for(lambda: not other.api("GET", f"runs/{run_id}/events", params={"path": "proj"}).json()["running"],
                 30, "the second server to see the cancelled run end", every=0.3)
        assert server.api("POST", f"runs/{run_id}/cancel", json={"path": "proj"}).json()["cancelled"] is False
    finally:
        other.stop()


def test_a_broken_tag_comes_back_as_the_clis_one_line_message(server):
    notebook = server.root / "proj" / "notebooks" / "model.ipynb"
    original = notebook.read_text()
    data = json.loads(original)
    code = [i for i, c in enumerate(data["cells"]) if c["cell_type"] == "code"]
    data["cells"][code[-1]]["metadata"]["tags"] = ["stage:Bad Name"]
    notebook.write_text(json.dumps(data))
    try:
        response = server.api("GET", "pipeline", params={"path": "proj"})
        assert response.status_code == 400
        message = response.json()["message"]
        assert "\n" not in message
        assert "notebooks/model.ipynb" in message and "'stage:Bad Name' has an invalid stage name" in message
        assert f"cell {code[-1] + 1}" in message
    finally:
        notebook.write_text(original)
