"""Faults in the production half, injected on real files and processes (git, DVC, kernels, a tmpfs,
an SMTP server): each case checks the one line the user is told and that no file the user or the
registry holds changed (tree_digest of the project, plus every tag's name, target and message).

The base project: the example pipeline run and committed, candidates c1 and c2 approved (v1.0.0, then
v1.1.0 in production and in the working tree), two recorded runs, retention that would remove the
older record. A full disk is a real tmpfs (``mount -t tmpfs -o size=...``, so writes fail with
ENOSPC as on a full volume); those cases are skipped where mounting is not allowed (not root).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from helpers.commands import nbprod, run
from helpers.projects import tree_digest
from helpers.servers import free_port
from nbprod.core.errors import NbprodError
from nbprod.core.dvccache import current_md5, parse_lock
from nbprod.monitor.gc import check_lock

pytestmark = pytest.mark.slow  # the base project trains and approves two candidates

MODEL = ".nbprod/data/notebooks__model/train/model"
RETENTION = "\n[tool.nbprod.records]\nkeep_last = 1\nkeep_days = 0\n"


@pytest.fixture(scope="module")
def prod_base(tmp_path_factory, ran_project) -> Path:
    root = tmp_path_factory.mktemp("prodfaults") / "proj"
    shutil.copytree(ran_project, root, symlinks=True)
    with open(root / "pyproject.toml", "a", encoding="utf-8") as handle:
        handle.write(RETENTION)
    run("git", "commit", "-qam", "retention", cwd=root)
    nbprod("retrain", cwd=root)
    nbprod("approve", "c1", "--by", "tester", "--note", "first", cwd=root)
    nbprod("retrain", "--set", "model.C=0.05", cwd=root)
    nbprod("approve", "c2", "--by", "tester", "--note", "second", "--checkout", cwd=root)
    nbprod("run", "--record", "--no-report", cwd=root)
    nbprod("run", "--record", "--no-report", cwd=root)
    return root


@pytest.fixture
def prod(prod_base, tmp_path) -> Path:
    root = tmp_path / "proj"
    shutil.copytree(prod_base, root, symlinks=True)
    return root


def registry_state(root: Path) -> str:
    return run("git", "for-each-ref", "--format=%(refname) %(objectname) %(*objectname) %(contents)",
               "refs/tags", cwd=root).stdout


def state(root: Path) -> tuple[dict, str]:
    return tree_digest(root), registry_state(root)


def records(root: Path) -> list[Path]:
    return sorted(p for p in (root / "records").iterdir() if p.is_dir() and not p.name.startswith("."))


def one_error_line(done, *parts: str, progress: bool = False) -> str:
    """The one error line (``progress``: `nbprod run` also reports its stages on stderr before it)."""
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    line, = [l for l in lines if l.startswith("nbprod: error: ")] if progress else lines
    assert line.startswith("nbprod: error: ") and "Traceback" not in done.stderr
    for part in parts:
        assert part in line, line
    return line


def damage(path: Path, content: bytes | None) -> None:
    """Change a file inside a read-only record folder (as a disk error or a hand edit would)."""
    path.parent.chmod(0o755)
    if content is None:
        path.unlink()
    else:
        path.chmod(0o644)
        path.write_bytes(content)


def local_remote(root: Path, tmp_path: Path) -> Path:
    remote = tmp_path / "remote"
    run("dvc", "remote", "add", "-f", "-d", "faults", str(remote), cwd=root)
    return remote


def pushed(remote: Path) -> list[str]:
    folder = remote / "nbprod-records"
    return sorted(p.name for p in folder.iterdir() if (p / "manifest.json").exists()) if folder.is_dir() else []


def test_a_damaged_record_json_is_named_and_stops_gc_and_monitor(prod, tmp_path):
    older, newer = records(prod)
    damage(older / "record.json", b'{"format": 1, "name": "cut sh')
    remote = local_remote(prod, tmp_path)
    before = state(prod)

    listed = nbprod("records", cwd=prod, check=False)
    assert listed.returncode == 1 and newer.name in listed.stdout and older.name not in listed.stdout
    assert f"damaged record: records/{older.name}: record.json is not readable JSON" in listed.stderr
    verified = nbprod("records", "verify", cwd=prod, check=False)
    assert verified.returncode == 1 and "2 record(s) checked, 1 problem(s)." in verified.stdout
    assert f"records/{older.name}: record.json is not readable JSON" in verified.stderr
    one_error_line(nbprod("gc", "--apply", cwd=prod, check=False), f"records/{older.name}", "nothing was changed")
    one_error_line(nbprod("monitor", cwd=prod, check=False), f"records/{older.name}")
    assert state(prod) == before

    push = nbprod("records", "push", cwd=prod, check=False)
    assert push.returncode == 1 and "1 record(s) pushed, 0 already there, 1 damaged (not pushed)." in push.stdout
    assert f"damaged record not pushed: records/{older.name}" in push.stderr
    assert pushed(remote) == [newer.name]
    assert state(prod) == before


def test_a_record_missing_its_manifest_or_a_file_is_named_and_never_pushed(prod, tmp_path):
    older, newer = records(prod)
    damage(older / "manifest.json", None)
    damage(newer / "params.yaml", None)
    remote = local_remote(prod, tmp_path)
    before = state(prod)
    verified = nbprod("records", "verify", cwd=prod, check=False)
    assert verified.returncode == 1
    assert f"{older.name}: manifest.json is missing or unreadable" in verified.stderr
    assert f"{newer.name}: params.yaml is missing" in verified.stderr
    push = nbprod("records", "push", cwd=prod, check=False)
    assert push.returncode == 1 and "0 record(s) pushed" in push.stdout
    assert f"records/{older.name}: manifest.json is missing" in push.stderr
    assert f"records/{newer.name}: params.yaml is missing" in push.stderr
    assert pushed(remote) == []
    assert state(prod) == before


def test_a_malformed_tag_message_is_shown_with_its_raw_text(prod):
    tag = "model#prod#1"
    message = run("git", "for-each-ref", "--format=%(contents)", f"refs/tags/{tag}", cwd=prod).stdout
    cut = message[:message.index('"by"') + 12]  # the record cut inside the approver's name
    commit = run("git", "rev-parse", f"{tag}^{{commit}}", cwd=prod).stdout.strip()
    subprocess.run(["git", "tag", "-f", "-a", tag, commit, "-F", "-"], cwd=prod, input=cut, text=True,
                   check=True, capture_output=True)
    before = state(prod)
    history = nbprod("history", cwd=prod)
    line, = [l for l in history.stdout.splitlines() if tag in l]
    assert "MALFORMED tag message, not JSON" in line and '"by": "teste' in line
    entry, = [e for e in json.loads(nbprod("history", "--json", cwd=prod).stdout) if e["tag"] == tag]
    assert entry["malformed"].startswith("not JSON") and entry["raw"] == cut.strip()
    assert state(prod) == before


def test_a_tag_pointing_at_a_missing_object_stops_gc(prod):
    before_tags = registry_state(prod)
    ref = prod / ".git" / "refs" / "tags" / "model#prod#1"
    if not ref.exists():  # packed by git: write it loose, as a broken disk or a bad copy leaves it
        ref.parent.mkdir(parents=True, exist_ok=True)
    ref.write_text("1" * 40 + "\n")
    before = tree_digest(prod)
    cache = sorted(p.name for p in (prod / ".dvc" / "cache").rglob("*") if p.is_file())
    one_error_line(nbprod("gc", "--apply", cwd=prod, check=False), "cannot read the model registry",
                   "missing object", "nothing was removed")
    assert tree_digest(prod) == before
    assert sorted(p.name for p in (prod / ".dvc" / "cache").rglob("*") if p.is_file()) == cache
    assert before_tags  # the registry was readable before the fault


def test_dvc_lock_truncated_mid_write_stops_gc(prod):
    whole = (prod / "dvc.lock").read_bytes()
    (prod / "dvc.lock").write_bytes(whole[:len(whole) // 2])
    before = state(prod)
    one_error_line(nbprod("gc", "--apply", cwd=prod, check=False), "dvc.lock", "nothing was removed")
    assert state(prod) == before


def test_every_truncation_of_dvc_lock_is_refused_or_a_whole_prefix_of_stages(prod):
    """At every byte a write can stop, gc either refuses the lock or reads only stages whose entries
    are exactly the whole file's (a cut between stages reads as stages not run yet)."""
    whole_bytes = (prod / "dvc.lock").read_bytes()
    whole = parse_lock(whole_bytes)
    refused = 0
    for size in range(1, len(whole_bytes)):
        (prod / "dvc.lock").write_bytes(whole_bytes[:size])
        try:
            check_lock(prod)
        except NbprodError as exc:
            assert exc.path == "dvc.lock"
            refused += 1
            continue
        for name, stage in parse_lock(whole_bytes[:size]).items():
            assert (stage.deps, stage.outs) == (whole[name].deps, whole[name].outs), (size, name)
    assert refused > 0.9 * len(whole_bytes)


def test_the_git_index_locked_during_approve_changes_nothing(prod):
    nbprod("retrain", "--set", "model.C=0.5", cwd=prod)
    (prod / ".git" / "index.lock").write_text("")
    before = state(prod)
    one_error_line(nbprod("approve", "c3", "--by", "tester", "--checkout", cwd=prod, check=False),
                   ".git/index.lock", "git's index is locked", "nothing was approved")
    one_error_line(nbprod("rollback", "v1.0.0", "--by", "tester", cwd=prod, check=False),
                   ".git/index.lock", "nothing was rolled back")
    assert state(prod) == before
    (prod / ".git" / "index.lock").unlink()
    nbprod("approve", "c3", "--by", "tester", "--checkout", cwd=prod)
    assert "model@v1.2.0" in registry_state(prod)


def test_an_unparsable_params_yaml_is_never_recorded(prod):
    """`nbprod run` refuses such a file at compile; the record step (after a run, or the Airflow
    DAG's record task) refuses it too rather than storing it as {}."""
    from nbprod.monitor.records import create_record
    from nbprod.core.project import load_project

    (prod / "params.yaml").write_text((prod / "params.yaml").read_text() + "model: [unclosed\n")
    events = sorted((prod / ".nbprod" / "runs").glob("*/events.jsonl"))[-1]
    before = state(prod)
    with pytest.raises(NbprodError) as refused:
        create_record(load_project(prod), events)
    assert refused.value.path == "params.yaml" and "no record was written" in str(refused.value)
    assert len(records(prod)) == 2 and state(prod) == before


def test_the_dvc_remote_unreachable_during_push(prod):
    port = free_port()  # nothing listens there
    run("dvc", "remote", "add", "-f", "-d", "down", f"http://127.0.0.1:{port}/store", cwd=prod)
    before = state(prod)
    one_error_line(nbprod("records", "push", cwd=prod, check=False), ".dvc/config", "could not be reached",
                   "local records are unchanged")
    assert state(prod) == before


@pytest.fixture
def tmpfs(tmp_path):
    """Mount a tmpfs of a given size on a folder; always unmounted."""
    mounted = []

    def mount(folder: Path, size: int) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()})")
        mounted.append(folder)
        return folder

    yield mount
    for folder in reversed(mounted):
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_disk_full_while_writing_a_record(prod, tmpfs, tmp_path):
    kept = tmp_path / "kept-records"
    shutil.copytree(prod / "records", kept, symlinks=True)
    from nbprod.monitor.records import make_writable

    make_writable(prod / "records")
    shutil.rmtree(prod / "records")
    used = sum(p.stat().st_size for p in kept.rglob("*") if p.is_file())
    tmpfs(prod / "records", used + 256 * 1024)  # the old records fit; a new one (notebooks) does not
    for path in sorted(kept.iterdir()):
        (shutil.copytree if path.is_dir() else shutil.copy2)(path, prod / "records" / path.name)
    # Fill what is left, as other writers on a full volume would.
    with open(prod / "records" / ".fill", "wb") as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        except OSError:
            pass
    before = state(prod)
    done = nbprod("run", "--record", "--no-report", cwd=prod, check=False)
    one_error_line(done, "records", "No space left on device", "no record was kept", progress=True)
    assert state(prod) == before
    assert [p.name for p in records(prod)] == [p.name for p in sorted(kept.iterdir()) if p.is_dir()]
    assert sorted(p.name for p in (prod / "records").iterdir() if p.name.startswith(".")) == [".fill",
                                                                                                 ".gitignore"]
    (prod / "records" / ".fill").unlink()
    assert nbprod("records", "verify", cwd=prod).returncode == 0


class _HangUp:
    """aiosmtpd handler that drops the connection once the message's data is in, before answering."""

    def __init__(self):
        self.seen = 0

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.seen += 1
        server.transport.abort()  # the client is left waiting for the reply to its message
        await asyncio.sleep(0)
        return "250 never sent"


def test_the_smtp_server_closing_mid_message(prod):
    from aiosmtpd.controller import Controller

    handler = _HangUp()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    with open(prod / "pyproject.toml", "a", encoding="utf-8") as out:
        out.write(f'\n[tool.nbprod.monitor]\naccuracy = ">= 0.999"\n\n[tool.nbprod.notify]\n'
                  f'smtp = "127.0.0.1:{port}"\nfrom = "nbprod@example.com"\nto = ["ops@example.com"]\n')
    newest = records(prod)[-1]
    controller.start()
    try:
        done = nbprod("monitor", "--notify", cwd=prod, check=False)
    finally:
        controller.stop()
    assert handler.seen == 1
    assert done.returncode == 3, (done.stdout, done.stderr)
    line, = done.stderr.strip().splitlines()
    assert "email not sent" in line and f"127.0.0.1:{port}" in line and f"records/{newest.name}/alerts.json" in line
    verdict = json.loads((newest / "alerts.json").read_text())
    assert verdict["alerts"] == 1 and verdict["record"] == newest.name  # the verdict is never lost


def test_gc_apply_after_the_faults_removes_nothing_then_rollback_works(prod):
    """Each fault present, `gc --apply` refuses and removes nothing; with the faults repaired it removes
    what retention allows, and rolling production back to v1.0.0 still restores it from the cache."""
    older, _ = records(prod)
    cache_before = sorted(str(p) for p in (prod / ".dvc" / "cache").rglob("*") if p.is_file())
    original = (older / "record.json").read_bytes()
    damage(older / "record.json", b"{")
    lock = (prod / "dvc.lock").read_bytes()
    (prod / "dvc.lock").write_bytes(lock[:len(lock) // 3])
    for _ in range(2):  # the damaged record first; repaired, the cut lock next
        before = state(prod)
        assert nbprod("gc", "--apply", cwd=prod, check=False).returncode == 2
        assert state(prod) == before
        damage(older / "record.json", original)
    (prod / "dvc.lock").write_bytes(lock)
    assert sorted(str(p) for p in (prod / ".dvc" / "cache").rglob("*") if p.is_file()) == cache_before
    applied = nbprod("gc", "--apply", cwd=prod)
    assert "Removed " in applied.stdout
    rolled = nbprod("rollback", "v1.0.0", "--by", "tester", "--note", "after gc", cwd=prod)
    assert "v1.0.0" in rolled.stdout
    locked = parse_lock(run("git", "show", "model@v1.0.0:dvc.lock", cwd=prod).stdout)["train"].outs[MODEL]
    assert current_md5(prod, MODEL, locked) == locked
    assert "C: 1.0" in (prod / "params.yaml").read_text()


def test_disk_full_while_writing_the_prediction_log(tmpfs, tmp_path, caplog):
    """The log's folder on a full tmpfs: every entry the disk refuses is counted as dropped, the file
    keeps only whole lines, the error is said once, and writing resumes when space comes back."""
    import logging

    from nbprod.serve.predlog import PredictionLog, read_log

    folder = tmpfs(tmp_path / "log", 64 * 1024)
    filler = folder / "filler"
    with open(filler, "wb") as handle:  # leave ~8 KB free
        handle.write(b"\0" * (56 * 1024))
    drops = []
    log = PredictionLog(folder, max_bytes=10**6, keep=1, queue_size=10_000, inputs="values",
                        on_drop=lambda: drops.append(1))
    caplog.set_level(logging.DEBUG, logger="nbprod.serve.predlog")
    log.start()
    submitted = 400
    for n in range(submitted):
        log.submit({"request_id": str(n), "predictions": [n % 2]}, {"records": [{"x": float(n)}] * 3}, ("x",))
    deadline = time.monotonic() + 30
    while len(list(read_log(folder))) + log.dropped < submitted and time.monotonic() < deadline:
        time.sleep(0.05)
    written = [e["request_id"] for e in read_log(folder)]  # raises on half a line
    assert 0 < len(written) < submitted
    assert log.dropped == len(drops) == submitted - len(written)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "No space left on device" in errors[0].getMessage()
    filler.unlink()  # space comes back: the writer goes on
    log.submit({"request_id": "after", "predictions": [1]}, None)
    log.close()
    assert [e["request_id"] for e in read_log(folder)][-1] == "after"
    assert log.path.read_bytes().endswith(b"\n")


def test_approve_from_the_cli_and_the_models_panel_at_the_same_instant(prod, tmp_path):
    """Both start together: exactly one approval is written (one version, one assignment); the other
    is refused with one line (the run lock, or the candidate already approved), and says so."""
    import threading

    from helpers.servers import JupyterServer

    nbprod("retrain", "--set", "model.C=0.5", cwd=prod)
    before = registry_state(prod)
    server = JupyterServer(prod.parent, tmp_path / "jupyter")
    results: dict = {}
    start = threading.Barrier(2, timeout=60)

    def from_cli() -> None:
        start.wait()
        results["cli"] = nbprod("approve", "c3", "--by", "terminal user", "--note", "from the terminal", cwd=prod,
                                check=False)

    def from_panel() -> None:
        start.wait()
        results["panel"] = server.api("POST", "models/approve",
                                      json={"path": "proj", "candidate": "c3", "note": "from the panel",
                                            "name": "panel user"})

    try:
        threads = [threading.Thread(target=from_cli), threading.Thread(target=from_panel)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(180)
    finally:
        server.stop()
    cli, panel = results["cli"], results["panel"]
    refusals = ("another nbprod run is in progress", "was already approved")
    assert (cli.returncode == 0) != (panel.status_code == 200), (cli.stderr, panel.text)
    if cli.returncode == 0:
        assert panel.status_code in (400, 409) and any(r in panel.json()["message"] for r in refusals), panel.text
    else:
        line = one_error_line(cli)
        assert any(r in line for r in refusals), line
    added = sorted(set(registry_state(prod).splitlines()) - set(before.splitlines()))
    names = sorted(line.split()[0] for line in added if line.startswith("refs/tags/"))
    assert names == ["refs/tags/model#prod#3", "refs/tags/model@v1.2.0"], added
    history = nbprod("history", cwd=prod).stdout
    assert history.count("prod <- v1.2.0 approved") == 1
