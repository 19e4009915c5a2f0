"""A simulated month of scheduled runs, then the dashboard in headless Chromium.

What is real: the project (`nbprod init`, one `nbprod run`, committed), its trained model, its
train/test split, the drift computation (``nbprod.contracts.drift.compute_drift``, what the example's
prepare stage calls), the records API writing real record folders, the registry's git tags, `nbprod
monitor` (in process) with its rules, alerts.json, dashboard and emails sent to a real SMTP server on
127.0.0.1, and Chromium.

What is simulated, to avoid 30 full pipeline runs: each day's *data*. Ten feature columns of the test
split are shifted a little more every day (by day/29 x 0.3 standard deviations of the training data);
the real model scores the shifted rows and compute_drift compares them with the training split; the
day's numbers are written into the metrics files the real run produced, and the record is made from
that real run's outputs and events, dated that day. Stage durations are the real run's, with a small
deterministic jitter, and the train stage is recorded 4x slower on day 24 (a simulated slow job).
Promotions happen at simulated dates too (tags written through the registry API with the tag date set).
"""

from __future__ import annotations

import json
import shutil
import statistics
from datetime import datetime, timedelta, UTC
from pathlib import Path

import pytest

from helpers.commands import run
from helpers.mail import Mailbox
from helpers.paths import REPO, ARTIFACTS as ALL_ARTIFACTS

pytestmark = pytest.mark.slow

DAYS = 30
START = datetime(2026, 10, 1, 6, 0, tzinfo=UTC)
SHIFTED = ["mean_radius", "mean_texture", "mean_perimeter", "mean_area", "worst_radius", "worst_texture",
           "worst_perimeter", "worst_area", "mean_smoothness", "worst_smoothness"]
SLOW_DAY = 24
RULES = """
[tool.nbprod.monitor]
accuracy = [">= 0.95", ">= median(last 7) - 0.02"]
"drift.share" = "<= 0.2"
roc_auc = ">= champion - 0.02"
"duration.train" = "<= 2 * median(last 10)"

[tool.nbprod.notify]
smtp = "127.0.0.1:{port}"
from = "nbprod@example.com"
to = ["business@example.com"]
on = "alert"
"""
ARTIFACTS = ALL_ARTIFACTS / "monitor"


def day_metrics(root: Path, day: int, model, train, test) -> tuple[dict, dict]:
    """The evaluate metrics and drift metrics of one simulated day (real model, real drift code)."""
    from sklearn import metrics

    from nbprod.contracts.drift import compute_drift

    current = test.copy()
    for column in SHIFTED:
        current[column] = current[column] + day / (DAYS - 1) * 0.3 * train[column].std()
    X, y = current.drop(columns="target"), current["target"]
    proba = model.predict_proba(X)[:, 1]
    predicted = (proba >= 0.5).astype(int)
    evaluate = {"accuracy": round(metrics.accuracy_score(y, predicted), 4),
                "precision": round(metrics.precision_score(y, predicted), 4),
                "recall": round(metrics.recall_score(y, predicted), 4),
                "f1": round(metrics.f1_score(y, predicted), 4),
                "roc_auc": round(metrics.roc_auc_score(y, proba), 4)}
    drift = compute_drift(train.drop(columns="target"), X).metrics()
    return evaluate, drift


def day_events(real: list[dict], day: int, path: Path) -> dict[str, float]:
    """The real run's stage events under this day's run id, durations jittered; train slow on SLOW_DAY."""
    durations = {}
    lines = []
    for event in real:
        event = dict(event)
        if "run" in event:
            event["run"] = f"sim-day{day:02d}"
        if event["event"] == "stage_end":
            factor = 1 + 0.1 * ((day * 7) % 5) / 5
            if event["stage"] == "train" and day == SLOW_DAY:
                factor = 4.0
            event["duration"] = round(event["duration"] * factor, 3)
            durations[event["stage"]] = event["duration"]
        lines.append(json.dumps(event))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return durations


def drift_metrics_file(root: Path) -> Path:
    """The metrics file where the example's run recorded its drift (the stage that checks drift)."""
    found = [p for p in sorted((root / "metrics").glob("*.json")) if "drift.share" in json.loads(p.read_text())]
    assert len(found) == 1, f"the example run recorded drift.share in {found}"
    return found[0]


def tag_at(monkeypatch, when: datetime, action) -> None:
    monkeypatch.setenv("GIT_COMMITTER_DATE", when.isoformat())
    try:
        action()
    finally:
        monkeypatch.delenv("GIT_COMMITTER_DATE")


def expected_alerts(days: list[dict], champion_auc: float) -> list[set[str]]:
    """What the rules imply, computed here from the day's numbers, independently of nbprod."""
    result = []
    for i, day in enumerate(days):
        alerts = set()
        if day["accuracy"] < 0.95:
            alerts.add("accuracy >= 0.95")
        earlier = [d["accuracy"] for d in days[:i]][-7:]
        if earlier and day["accuracy"] < statistics.median(earlier) - 0.02:
            alerts.add("accuracy >= median(last 7) - 0.02")
        if day["share"] > 0.2:
            alerts.add("drift.share <= 0.2")
        if day["auc"] < champion_auc - 0.02:
            alerts.add("roc_auc >= champion - 0.02")
        durations = [d["train"] for d in days[:i]][-10:]
        if durations and day["train"] > 2 * statistics.median(durations):
            alerts.add("duration.train <= 2 * median(last 10)")
        result.append(alerts)
    return result


@pytest.fixture(scope="module")
def month(tmp_path_factory, ran_project):
    import joblib
    import pandas as pd

    from nbprod.lifecycle import registry
    from nbprod.monitor.records import create_record
    from nbprod.monitor.watch import monitor
    from nbprod.core.project import load_project

    monkeypatch = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("month") / "proj"
    shutil.copytree(ran_project, root, symlinks=True)
    with Mailbox() as box:
        with open(root / "pyproject.toml", "a", encoding="utf-8") as handle:
            handle.write(RULES.replace("{port}", str(box.port)))
        run("git", "commit", "-qam", "monitoring rules", cwd=root)
        project = load_project(root)
        first_commit = run("git", "rev-parse", "HEAD", cwd=root).stdout.strip()
        model = joblib.load(next((root / ".nbprod/data").rglob("model/value.joblib")))
        train = pd.read_parquet(root / "notebooks/data/train.parquet")
        test = pd.read_parquet(root / "notebooks/data/test.parquet")
        real_run = sorted((root / ".nbprod/runs").iterdir())[-1] / "events.jsonl"
        real_events = [json.loads(line) for line in real_run.read_text().splitlines()]
        real_events = [e for e in real_events if e["event"] != "cell"]
        champion_auc = json.loads((root / "metrics/evaluate.json").read_text())["roc_auc"]
        drift_file = drift_metrics_file(root)

        days, outcomes = [], []
        for day in range(DAYS):
            when = START + timedelta(days=day)
            if day == 0:  # v1.0.0 goes to production the hour before the first scheduled run
                tag_at(monkeypatch, when - timedelta(hours=1), lambda: registry.assign(
                    root, "model", registry.register(root, "model", first_commit, {"by": "sim"}),
                    {"by": "sim", "action": "approve"}))
            if day == 20:  # a new version (a documentation commit stands in for retraining)
                (root / "NOTES.md").write_text("retrained on October data\n")
                run("git", "add", "NOTES.md", cwd=root)
                run("git", "commit", "-qm", "v1.1", cwd=root)
                second = run("git", "rev-parse", "HEAD", cwd=root).stdout.strip()
                tag_at(monkeypatch, when - timedelta(hours=1), lambda: registry.assign(
                    root, "model", registry.register(root, "model", second, {"by": "sim"}),  # noqa: B023 - called at once
                    {"by": "sim", "action": "approve"}))
            if day == 26:
                tag_at(monkeypatch, when - timedelta(hours=1), lambda: registry.assign(
                    root, "model", registry.find_version(root, "model", "v1.0.0"), {"by": "sim", "action": "rollback"}))
            evaluate, drift = day_metrics(root, day, model, train, test)
            (root / "metrics/evaluate.json").write_text(json.dumps(evaluate, indent=2))
            merged = {**json.loads(drift_file.read_text()), **drift}
            drift_file.write_text(json.dumps(merged, indent=2, sort_keys=True))
            events = root / ".nbprod/runs" / f"sim-day{day:02d}" / "events.jsonl"
            durations = day_events(real_events, day, events)
            create_record(project, events, when=when)
            outcomes.append(monitor(project, notify=True))
            days.append({"accuracy": evaluate["accuracy"], "auc": evaluate["roc_auc"],
                         "share": drift["drift.share"], "train": durations["train"]})
        messages = list(box.messages)
    monkeypatch.undo()
    return {"root": root, "days": days, "outcomes": outcomes, "messages": messages,
            "expected": expected_alerts(days, champion_auc)}


def test_exactly_the_alerts_the_rules_imply(month):
    expected = month["expected"]
    got = []
    for outcome in month["outcomes"]:
        alerts = json.loads((outcome.record.path / "alerts.json").read_text())
        got.append({c["rule"] for c in alerts["checks"] if c["passed"] is False})
    assert got == expected, [(i, d, g, e) for i, (d, g, e) in enumerate(zip(month["days"], got, expected)) if g != e]
    # the month has what it was built to show: a quiet start, then threshold crossings of each kind
    assert expected[0] == set() and expected[1] == set()
    crossed = {rule for alerts in expected for rule in alerts}
    assert {"accuracy >= 0.95", "drift.share <= 0.2", "duration.train <= 2 * median(last 10)"} <= crossed
    assert expected[SLOW_DAY] >= {"duration.train <= 2 * median(last 10)"}
    assert "duration.train <= 2 * median(last 10)" not in expected[SLOW_DAY + 1]
    # the champion the records ran under follows the registry at each simulated date
    versions = [o.record.production["version"] for o in month["outcomes"]]
    assert versions == ["v1.0.0"] * 20 + ["v1.1.0"] * 6 + ["v1.0.0"] * 4


def test_one_email_per_alerting_record(month):
    alerting = [o for o, e in zip(month["outcomes"], month["expected"]) if e]
    assert [o.email for o in month["outcomes"]] == ["sent" if e else "not needed" for e in month["expected"]]
    messages = month["messages"]
    assert len(messages) == len(alerting)
    for message, outcome in zip(messages, alerting):
        count = len(outcome.verdict.alerts)
        assert message["Subject"].startswith(f"[nbprod] proj: {count} alert{'s' if count != 1 else ''} — ")
        assert outcome.record.name in message.get_body(("plain",)).get_content()
        related = message.get_body(("related",))
        assert related is not None and any(p.get_content_type() == "image/png" for p in related.iter_parts())


def test_dashboard_shows_drift_thresholds_markers_and_links(month):
    root, expected = month["root"], month["expected"]
    page = (root / "reports/dashboard.html").read_text()
    assert "<script" not in page and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    last = month["outcomes"][-1]
    assert f'{len(last.verdict.alerts)} alert' in page.split("</header>")[0]
    # drift: the overall share with its threshold, and the columns that moved
    drift = page.split('id="drift"')[1].split("</div>")[0]
    assert "share of columns that drifted" in drift and 'class="threshold"' in drift
    assert "mean_radius" in drift or "worst_radius" in drift
    # accuracy: its threshold lines and one red point per record where an accuracy rule alerted
    accuracy = page.split('aria-label="accuracy over time"')[1].split("</svg>")[0]
    assert accuracy.count('class="threshold"') == 2
    accuracy_alerts = sum(1 for e in expected if any(r.startswith("accuracy ") for r in e))
    assert accuracy.count('class="alert"') == accuracy_alerts > 0
    assert accuracy.count('data-kind="promoted"') == 2 and accuracy.count('data-kind="rollback"') == 1
    assert 'aria-label="duration per stage (seconds) over time"' in page
    # every record listed, newest first, with links into its folder
    rows = page.split('id="records"')[1].count("<tr data-record=")
    assert rows == 30
    first = month["outcomes"][0].record
    link = f"../records/{first.name}/notebooks/evaluate.ipynb"
    assert link in page and (root / "reports" / link).resolve().is_file()


@pytest.mark.browser
def test_dashboard_in_headless_chromium_without_javascript(month):
    from playwright.sync_api import sync_playwright

    chromium = "/usr/bin/chromium"
    if not Path(chromium).is_file():
        pytest.fail(f"{chromium} is missing: apt-get install -y chromium")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run"]
    dashboard = month["root"] / "reports/dashboard.html"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    requests = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=flags, headless=True)
        try:
            for javascript in (False, True):
                context = browser.new_context(java_script_enabled=javascript, viewport={"width": 1280, "height": 900})
                page = context.new_page()
                page.on("request", lambda request: requests.append(request.url))
                page.goto(dashboard.as_uri())
                assert page.locator("header .verdict").inner_text().endswith("alerts in the latest run")
                assert page.locator("#alerts tbody tr").count() >= 5
                charts = page.locator("svg.chart")
                assert charts.count() == 5 and charts.first.bounding_box()["width"] > 400
                assert page.locator("#drift svg.chart").count() >= 2
                assert page.locator("#records tbody tr").count() == 30
                last_accuracy = month["days"][-1]["accuracy"]
                row = page.locator("#records tbody tr").first.inner_text()
                assert f"{last_accuracy:.4f}".rstrip("0") in row and "v1.0.0" in row
                if not javascript:
                    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
                context.close()
        finally:
            browser.close()
    assert all(url.startswith("file://") for url in requests)  # nothing fetched from the network
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 20_000
    assert REPO  # the README's picture, docs/img/monitor-dashboard.png, is this screenshot
