"""`nbprod monitor --notify` against a real SMTP server on 127.0.0.1 (aiosmtpd, started here): the
message, its two parts and inline chart, AUTH with the right and a wrong password, the server down,
--dry-run, and on = "alert" with nothing to report. A failed email never loses monitoring data."""

from __future__ import annotations

import email
import email.policy
import json
import shutil
from pathlib import Path

import pytest

from helpers.commands import nbprod, run
from helpers.mail import Mailbox
from helpers.servers import free_port
from nbprod.monitor.records import list_records, verify_record
from nbprod.core.project import load_project

pytestmark = [pytest.mark.slow,
              pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")]

NOTIFY = """
[tool.nbprod.notify]
smtp = "127.0.0.1:{port}"
from = "nbprod@example.com"
to = ["business@example.com", "ops@example.com"]
on = "{on}"
"""
CREDENTIALS = {"NBPROD_SMTP_USER": "monitor", "NBPROD_SMTP_PASSWORD": "s3cret"}


@pytest.fixture(scope="module")
def two_records(tmp_path_factory, ran_project) -> Path:
    """The example project with v1.0.0 in production and two recorded runs (nbprod run --record)."""
    from nbprod.lifecycle import registry

    root = tmp_path_factory.mktemp("email") / "proj"
    shutil.copytree(ran_project, root, symlinks=True)
    with open(root / "pyproject.toml", "a", encoding="utf-8") as handle:
        handle.write('\n[tool.nbprod.monitor]\naccuracy = ">= 0.999"\nroc_auc = ">= champion - 0.02"\n')
    run("git", "commit", "-qam", "rules", cwd=root)
    commit = run("git", "rev-parse", "HEAD", cwd=root).stdout.strip()
    registry.assign(root, "model", registry.register(root, "model", commit, {"by": "tests"}), {"by": "tests"})
    nbprod("run", "--record", "--no-report", cwd=root)
    nbprod("run", "--record", "--no-report", cwd=root)
    return root


@pytest.fixture
def proj(two_records, tmp_path) -> Path:
    target = tmp_path / "proj"
    shutil.copytree(two_records, target, symlinks=True)
    return target


def configure(root: Path, port: int, on: str = "alert") -> None:
    with open(root / "pyproject.toml", "a", encoding="utf-8") as handle:
        handle.write(NOTIFY.format(port=port, on=on))


def test_email_arrives_with_both_parts_the_chart_and_the_numbers_after_auth(proj):
    accuracy = json.loads((proj / "metrics/evaluate.json").read_text())["accuracy"]
    with Mailbox(user="monitor", password="s3cret") as box:
        configure(proj, box.port)
        done = nbprod("monitor", "--notify", cwd=proj, check=False, env=CREDENTIALS)
        assert done.returncode == 1, done.stderr  # the rule alerts; the email went out
        assert "Email: sent" in done.stdout
    assert box.logins == [("monitor", True)]
    message, = box.messages
    envelope, = box.handler.envelopes
    assert sorted(envelope.rcpt_tos) == ["business@example.com", "ops@example.com"]
    assert message["Subject"] == f"[nbprod] proj: 1 alert — accuracy {accuracy:g} (< 0.999)"
    assert message["From"] == "nbprod@example.com"
    text = message.get_body(("plain",)).get_content()
    assert f"ALERT accuracy >= 0.999: value {accuracy:g}, threshold 0.999" in text
    # this run / previous run / champion: both records and v1.0.0 have the same committed numbers
    assert f"accuracy: {accuracy:g} / {accuracy:g} / {accuracy:g}" in text
    assert "Dashboard: " in text and "reports/dashboard.html" in text
    html = message.get_body(("html",)).get_content()
    assert "<script" not in html.lower() and "accuracy &gt;= 0.999" in html and f"{accuracy:g}" in html
    related = message.get_body(("related",))
    image = next(p for p in related.iter_parts() if p.get_content_type() == "image/png")
    cid = image["Content-ID"].strip("<>")
    assert f'src="cid:{cid}"' in html
    assert image.get_content()[:8] == b"\x89PNG\r\n\x1a\n"


def test_wrong_password_is_one_clear_line_and_keeps_the_verdict(proj):
    with Mailbox(user="monitor", password="s3cret") as box:
        configure(proj, box.port)
        done = nbprod("monitor", "--notify", cwd=proj, check=False,
                      env={**CREDENTIALS, "NBPROD_SMTP_PASSWORD": "wrong"})
    # smtplib tries each mechanism the server offers (PLAIN, LOGIN): every one was refused
    assert done.returncode == 3 and box.messages == [] and box.logins and not any(ok for _, ok in box.logins)
    line, = done.stderr.strip().splitlines()
    assert "refused the login of 'monitor'" in line and "NBPROD_SMTP_PASSWORD" in line and "wrong" not in line
    record = list_records(load_project(proj))[-1]
    assert json.loads((record.path / "alerts.json").read_text())["alerts"] == 1 and verify_record(record) == []


def test_server_down_prints_one_line_keeps_record_and_alerts(proj):
    port = free_port()  # nothing listens here
    configure(proj, port)
    done = nbprod("monitor", "--notify", cwd=proj, check=False)
    assert done.returncode == 3
    line, = done.stderr.strip().splitlines()
    assert line.startswith("nbprod: error: email not sent: could not send the email through "
                           f"127.0.0.1:{port}") and "alerts.json" in line
    record = list_records(load_project(proj))[-1]
    alerts = json.loads((record.path / "alerts.json").read_text())
    assert alerts["status"] == "alert" and alerts["checks"][0]["rule"] == "accuracy >= 0.999"
    assert verify_record(record) == [] and (proj / "reports/dashboard.html").is_file()
    assert "accuracy >= 0.999" in done.stdout  # the table was printed before the email was tried


def test_dry_run_writes_the_eml_and_nothing_alerting_sends_nothing(proj):
    configure(proj, free_port())
    done = nbprod("monitor", "--notify", "--dry-run", cwd=proj, check=False)
    assert done.returncode == 1
    record = list_records(load_project(proj))[-1]
    eml = proj / ".nbprod/monitor" / f"{record.name}.eml"
    assert f"Email (not sent, --dry-run): .nbprod/monitor/{record.name}.eml" in done.stdout
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert message["Subject"].startswith("[nbprod] proj: 1 alert — accuracy")
    assert message.get_body(("plain",)) is not None and message.get_body(("html",)) is not None

    pyproject = proj / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('accuracy = ">= 0.999"', 'accuracy = ">= 0.9"'))
    with Mailbox() as box:
        configure(proj, box.port)  # a second [tool.nbprod.notify] would be invalid TOML: replace it
        text = pyproject.read_text()
        first = text.index("\n[tool.nbprod.notify]")
        second = text.index("\n[tool.nbprod.notify]", first + 1)
        pyproject.write_text(text[:first] + text[second:])
        done = nbprod("monitor", "--notify", cwd=proj, check=False)
    assert done.returncode == 0 and "Email: not needed" in done.stdout and box.messages == []
