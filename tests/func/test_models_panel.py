"""The Models panel's REST endpoints in real Jupyter servers, over a trained project with real git, DVC,
GTO and kernels: retrain as a followed and cancellable run, candidates with gates, approve, reject and
rollback writing the CLI's tags, the approver taken from the server's authenticated user, and the run
lock refusing decisions while a run holds it."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from helpers.commands import nbprod, run
from helpers.paths import BIN
from helpers.servers import JupyterServer
from helpers.waiting import wait_for

pytestmark = pytest.mark.slow

GATES = '\n[tool.nbprod.gates]\nroc_auc = ">= 0.9"\naccuracy = ">= champion - 0.01"\n'
MODEL = ".nbprod/data/notebooks__model/train/model/value.joblib"
ADA_TOKEN = "ada-" + "5" * 28
# An identity provider as a deployment behind JupyterHub has one: each person has their own token and
# the server knows their name. The shared server token still works (as an anonymous user).
NAMED_USERS = f'''
from jupyter_server.auth.identity import IdentityProvider, User

class NamedUsers(IdentityProvider):
    users = {{"{ADA_TOKEN}": User("ada", name="Ada Lovelace", display_name="Ada Lovelace")}}

    async def get_user_token(self, handler):
        token = self.get_token(handler)
        if token in self.users:
            return self.users[token]
        return await super().get_user_token(handler)

c.ServerApp.identity_provider_class = NamedUsers
'''


def tag_record(root: Path, tag: str) -> dict:
    message = run("git", "tag", "-l", "--format=%(contents)", tag, cwd=root).stdout
    return json.loads(message.split("--- nbprod record ---", 1)[1])


def tags(root: Path) -> list[str]:
    return sorted(run("git", "tag", cwd=root).stdout.split())


def follow(server: JupyterServer, run_id: str, timeout: float = 300, until=None) -> list[dict]:
    """Events of a run until it ends (or ``until(events)`` holds), polled as the panel does."""
    events: list[dict] = []
    offset, state = 0, {}

    def done() -> bool:
        nonlocal offset, state
        state = server.api("GET", f"runs/{run_id}/events", params={"path": "proj", "offset": offset}).json()
        offset = state["offset"]
        events.extend(state["events"])
        return not state["running"] or bool(until and until(events))

    wait_for(done, timeout, f"run {run_id} to end", every=0.4)
    return events + ([{"event": "_state", **state}] if not state["running"] else [])


def retrain(server: JupyterServer, **body) -> tuple[str, list[dict]]:
    started = server.api("POST", "models/retrain", json={"path": "proj", **body})
    assert started.status_code == 202, started.text
    run_id = started.json()["id"]
    return run_id, follow(server, run_id)


@pytest.fixture(scope="module")
def servers(ran_project, tmp_path_factory):
    """One project; a server with one shared token and one whose identity provider names people."""
    top = tmp_path_factory.mktemp("models")
    root = top / "root"
    project = root / "proj"
    shutil.copytree(ran_project, project, symlinks=True)
    with open(project / "pyproject.toml", "a", encoding="utf-8") as handle:
        handle.write(GATES)
    run("git", "commit", "-q", "-am", "gates", cwd=project)
    shared = JupyterServer(root, top / "shared")
    try:
        named = JupyterServer(root, top / "named", config=NAMED_USERS)
    except Exception:
        shared.stop()
        raise
    yield {"shared": shared, "named": named, "root": project}
    shared.stop()
    named.stop()


@pytest.fixture(scope="module")
def story(servers):
    """Retrain c1 from the panel, approve it as Ada; retrain c2 (a weak model) and reject it with a typed
    name; retrain c3 and approve it; then roll back to v1.0.0 with unsaved work in params.yaml."""
    shared, named, root = servers["shared"], servers["named"], servers["root"]
    s = {"empty": shared.api("GET", "models", params={"path": "proj/notebooks"}).json()}
    s["c1_run"], s["c1_events"] = retrain(shared, note="first from the panel")
    s["after_c1"] = shared.api("GET", "models", params={"path": "proj"}).json()
    s["report"] = shared.api("GET", "models/candidates/c1/report", params={"path": "proj"})
    s["approve_no_note"] = named.api("POST", "models/approve", json={"path": "proj", "candidate": "c1"})
    s["approve_c1"] = named.api("POST", "models/approve", headers={"Authorization": f"token {ADA_TOKEN}"},
                                json={"path": "proj", "candidate": "c1", "note": "looks good",
                                      "by": "mallory", "name": "mallory"})
    s["v1"] = {"model": hashlib.sha256((root / MODEL).read_bytes()).hexdigest(),
               "params": (root / "params.yaml").read_bytes()}

    _, s["c2_events"] = retrain(shared, set=["model.C=0.001"])
    s["approve_c2_refused"] = shared.api("POST", "models/approve",
                                         json={"path": "proj", "candidate": "c2", "note": "x", "name": "Bob"})
    s["reject_no_name"] = shared.api("POST", "models/reject", json={"path": "proj", "candidate": "c2", "note": "x"})
    s["reject_c2"] = shared.api("POST", "models/reject", json={"path": "proj", "candidate": "c2",
                                                                "note": "too weak", "name": "Carol Typed"})
    _, s["c3_events"] = retrain(shared, set=["model.C=0.5"])
    s["approve_c3"] = named.api("POST", "models/approve", headers={"Authorization": f"token {ADA_TOKEN}"},
                                json={"path": "proj", "candidate": "c3", "note": "second model"})
    params = root / "params.yaml"
    params.write_text(params.read_text().replace("threshold: 0.5", "threshold: 0.6"))  # unsaved user work
    s["preview"] = shared.api("GET", "models/versions/v1.0.0", params={"path": "proj"}).json()
    s["rollback"] = shared.api("POST", "models/rollback", json={"path": "proj", "version": "v1.0.0",
                                                                 "note": "c3 misses positives", "name": "Erin"})
    s["after_rollback"] = {"model": hashlib.sha256((root / MODEL).read_bytes()).hexdigest(),
                           "params": params.read_bytes()}
    s["final"] = shared.api("GET", "models", params={"path": "proj"}).json()
    s["cli_history"] = json.loads(nbprod("history", "--json", cwd=root).stdout)
    return s


def test_an_empty_registry_shows_nothing_in_production(story):
    empty = story["empty"]
    assert empty["root"] == "proj" and empty["model"] == "model"
    assert empty["production"] is None and empty["candidates"] == [] and empty["history"] == []
    assert empty["running"] is None
    assert empty["user"]["shared_token"] is True


def test_retrain_runs_as_a_followed_run_and_leaves_a_candidate_with_gates(story, servers):
    events = story["c1_events"]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "retrain_step" and "run_start" in kinds and "run_end" in kinds
    end = next(e for e in events if e["event"] == "retrain_end")
    assert end["candidate"] == "c1" and end["gates_passed"] is True
    assert events[-1]["event"] == "_state" and events[-1]["returncode"] == 0
    # A retrain is a run of the project: the pipeline panel lists it like any other.
    runs = servers["shared"].api("GET", "runs", params={"path": "proj"}).json()["runs"]
    assert story["c1_run"] in [r["id"] for r in runs]
    candidate = story["after_c1"]["candidates"][0]
    assert candidate["id"] == "c1" and candidate["note"] == "first from the panel"
    gates = {g["gate"]: g["passed"] for g in candidate["gates"]}
    assert gates == {"roc_auc >= 0.9": True, "accuracy >= champion - 0.01": None}
    assert candidate["metrics"]["metrics/evaluate.json"]["accuracy"] > 0.9
    assert candidate["report"] == ".nbprod/candidates/c1/comparison.html"
    report = story["report"]
    assert report.status_code == 200 and report.headers["Content-Type"].startswith("text/html")
    assert "c1" in report.text and "roc_auc" in report.text
    assert "script-src" not in report.headers["Content-Security-Policy"]


def test_the_approver_is_the_servers_user_not_a_name_in_the_request(story, servers):
    assert story["approve_no_note"].status_code == 400 and "note" in story["approve_no_note"].json()["message"]
    approved = story["approve_c1"]
    assert approved.status_code == 200, approved.text
    assert approved.json()["version"] == "v1.0.0" and approved.json()["assignment"] == "model#prod#1"
    record = tag_record(servers["root"], "model@v1.0.0")
    assert record["by"] == "Ada Lovelace (ada)" and record["note"] == "looks good" and record["candidate"] == "c1"
    assert record["identity"] == {"source": "jupyter server user", "username": "ada", "display_name": "Ada Lovelace"}
    assert "mallory" not in json.dumps(record)
    assert tag_record(servers["root"], "model#prod#1")["by"] == "Ada Lovelace (ada)"


def test_a_shared_token_server_records_the_typed_name_and_says_so(story, servers):
    assert story["reject_no_name"].status_code == 400
    assert "name" in story["reject_no_name"].json()["message"]
    assert story["reject_c2"].status_code == 200, story["reject_c2"].text
    record = tag_record(servers["root"], "nbprod-rejected/model/c2")
    assert record["by"] == "Carol Typed (typed name; single-user token server)" and record["note"] == "too weak"
    assert record["identity"]["source"] == "single-user token server"
    assert record["identity"]["typed_name"] == "Carol Typed"
    assert record["identity"]["display_name"].startswith("Anonymous")


def test_a_failed_gate_is_refused_with_the_clis_message(story):
    refused = story["approve_c2_refused"]
    assert refused.status_code == 400
    message = refused.json()["message"]
    assert "candidate c2 failed gates: accuracy >= champion - 0.01" in message and "--override" in message


def test_rollback_preview_and_rollback_restore_the_first_version(story, servers):
    assert story["approve_c3"].status_code == 200 and story["approve_c3"].json()["version"] == "v1.1.0"
    preview = story["preview"]
    assert preview["version"] == "v1.0.0" and preview["stage"] == "train"
    assert preview["params"]["model.C"] == 1.0 and preview["record"]["by"] == "Ada Lovelace (ada)"
    assert {"kind": "param", "name": "model.threshold", "now": 0.6, "then": 0.5} in preview["changes"]
    done = story["rollback"]
    assert done.status_code == 200, done.text
    assert done.json()["version"] == "v1.0.0" and done.json()["previous"] == "v1.1.0" and done.json()["kept"]
    assert story["after_rollback"] == story["v1"]
    final = story["final"]
    assert final["production"]["version"] == "v1.0.0" and final["production"]["action"] == "rollback"
    assert final["production"]["by"] == "Erin (typed name; single-user token server)"
    assert final["candidates"] == []
    # The panel's history is the CLI's history: one code path, the same tags.
    assert final["history"] == story["cli_history"]
    actions = [(e["action"], e.get("by", "").split(" (")[0], e.get("version"))
               for e in final["history"] if e["action"] in ("approve", "reject", "rollback")]
    assert actions == [("approve", "Ada Lovelace", "v1.0.0"), ("reject", "Carol Typed", None),
                       ("approve", "Ada Lovelace", "v1.1.0"), ("rollback", "Erin", "v1.0.0")]
    gto = json.loads(run(BIN / "gto", "show", "--json", cwd=servers["root"]).stdout)
    assert "v1.0.0" in json.dumps(gto)


def test_decisions_are_refused_while_a_run_holds_the_lock(story, servers):
    root, shared = servers["root"], servers["shared"]
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        "f = open('.nbprod/run.lock', 'a+'); fcntl.flock(f, fcntl.LOCK_EX)\n"
        "f.seek(0); f.truncate(); f.write(f'pid {os.getpid()}'); f.flush()\n"
        "print('held', flush=True); time.sleep(60)\n")], cwd=root, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = tags(root)
        cli = nbprod("rollback", "v1.1.0", "--by", "x", cwd=root, check=False)
        assert cli.returncode == 2 and f"another nbprod run is in progress (pid {holder.pid})" in cli.stderr
        cli_line = cli.stderr.strip().removeprefix("nbprod: error: ")
        for endpoint, body in [("approve", {"candidate": "c3", "note": "x"}),
                               ("rollback", {"version": "v1.1.0", "note": "x"}),
                               ("reject", {"candidate": "c3", "note": "x"})]:
            response = shared.api("POST", f"models/{endpoint}", json={"path": "proj", "name": "Zed", **body})
            assert response.status_code == 409, (endpoint, response.text)
            # The CLI's one line, word for word.
            assert response.json()["message"] == cli_line
        assert tags(root) == before
    finally:
        holder.kill()
        holder.wait()


def test_a_retrain_can_be_cancelled(story, servers):
    shared, root = servers["shared"], servers["root"]
    refs_before = run("git", "for-each-ref", "refs/nbprod/candidates", cwd=root).stdout
    # A seed never used before: DVC's run cache cannot restore prepare, so the stages really run.
    started = shared.api("POST", "models/retrain", json={"path": "proj", "set": ["prepare.seed=4243"]})
    assert started.status_code == 202, started.text
    run_id = started.json()["id"]
    events = follow(shared, run_id, timeout=120, until=lambda ev: any(e["event"] == "stage_start" for e in ev))
    assert any(e["event"] == "stage_start" for e in events), events
    assert shared.api("POST", "models/retrain", json={"path": "proj"}).status_code == 409
    assert shared.api("GET", "models", params={"path": "proj"}).json()["running"] == run_id
    cancelled = shared.api("POST", f"runs/{run_id}/cancel", json={"path": "proj"})
    assert cancelled.status_code == 200 and cancelled.json()["cancelled"] is True
    events += follow(shared, run_id, timeout=60)
    assert not any(e["event"] == "retrain_end" for e in events)
    assert run("git", "for-each-ref", "refs/nbprod/candidates", cwd=root).stdout == refs_before


def test_unknown_candidates_and_versions_are_refused(story, servers):
    shared = servers["shared"]
    for body, status in [({"candidate": "c99"}, 404), ({"candidate": "c1;id"}, 400), ({"candidate": 1}, 400),
                         ({"candidate": "../c1"}, 400)]:
        response = shared.api("POST", "models/approve", json={"path": "proj", "note": "n", "name": "n", **body})
        assert response.status_code == status, (body, response.text)
    for version, status in [("v9.9.9", 404), ("v1.0", 400), ("v1.0.0;id", 400)]:
        response = shared.api("POST", "models/rollback",
                              json={"path": "proj", "version": version, "note": "n", "name": "n"})
        assert response.status_code == status, (version, response.text)
        details = requests.get(f"{shared.base}/nbprod/api/models/versions/{version}", params={"path": "proj"},
                               headers=shared.auth, timeout=30)
        assert details.status_code == status, (version, details.text)
    for bad in [["model.nope=1"], ["--force"], ["model.C=1\nx"], "model.C=1", [3]]:
        response = shared.api("POST", "models/retrain", json={"path": "proj", "set": bad})
        assert response.status_code == 400, (bad, response.text)
