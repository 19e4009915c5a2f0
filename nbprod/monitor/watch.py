"""``nbprod monitor``: add the served inputs' drift to the latest record (``served_drift.json``), check
the rules on a record, write its ``alerts.json``, then the dashboard, then (optionally) the email.
The order is deliberate: a dashboard or email failure never loses the verdict."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, UTC
from pathlib import Path

from ..core.project import GENERATED_DIR, Project
from .settings import load_settings
from .dashboard import (
    git_revisions,
    headline_metrics,
    registry_markers,
    render_dashboard,
)
from .records import Record, find_record, list_records, model_settings, write_alerts, write_live, write_served
from .rules import ChampionMetrics, Verdict, evaluate_history
from .served_inputs import NO_LOG, ServedDrift, served_drift

EMAIL_DIR = f"{GENERATED_DIR}/monitor"


@dataclass
class MonitorOutcome:
    record: Record
    verdict: Verdict
    alerts_path: Path
    dashboard: Path
    email: str = "not requested"      # sent | written | not needed | not requested | failed
    email_path: Path | None = None
    email_error: str | None = None
    served: ServedDrift | None = None  # None when an older record was checked (its served drift is kept)
    live: object | None = None         # feedback.live.LiveQuality of the latest record, likewise
    policy: object | None = None       # feedback.policy.PolicyOutcome when rollback_on is set


def monitor(project: Project, record_name: str | None = None, notify: bool = False,
            dry_run: bool = False, since: datetime | None = None) -> MonitorOutcome:
    """Check the rules on ``record_name`` (default: the newest record). With ``since`` (when the run
    being followed started), a record older than that is refused before anything is written: its
    verdict is an older run's, and reporting it as this run's would hide that this run left no record."""
    settings = load_settings(project.root)  # a malformed rule stops here, before anything is written
    from ..feedback.settings import load_feedback_settings

    feedback = load_feedback_settings(project.root)
    if notify and not dry_run and not settings.notify.smtp:
        from ..core.errors import NbprodError

        raise NbprodError("--notify needs an SMTP server", "pyproject.toml",
                          fix='set smtp = "host:port", from and to under [tool.nbprod.notify], or use --dry-run')
    if notify and not settings.notify.to:
        from ..core.errors import NbprodError

        raise NbprodError("--notify needs recipients", "pyproject.toml",
                          fix='set to = ["team@example.com"] under [tool.nbprod.notify]')
    record = find_record(project, record_name)
    if since is not None:
        check_since(record, since)
    records = list_records(project)
    latest = records[-1].name == record.name
    records = records[:[r.name for r in records].index(record.name) + 1]  # the history up to this record
    served = live = None
    if latest:  # the log holds what was served up to now: it belongs with the newest record only
        served = served_drift(project, settings.served)
        if served.status != NO_LOG:
            write_served(record, served.to_dict())
        from ..feedback.live import NO_LOG as NO_PREDICTIONS, live_quality

        live = live_quality(project.root, feedback)
        if live.status != NO_PREDICTIONS:
            write_live(record, live.to_dict())
    champions = ChampionMetrics(project.root)
    verdicts = evaluate_history(records, settings.rules, champions)
    verdict = verdicts[-1]
    alerts_path = write_alerts(record, verdict.to_dict())
    policy = None
    if settings.rollback_on and latest:  # after the verdict is safe on disk, before the dashboard
        from ..feedback.policy import apply_rollback_policy

        policy = apply_rollback_policy(project, settings.rollback_on, verdict.checks, record.live, record.name,
                                       settings.rules)
        write_alerts(record, {**verdict.to_dict(), "policy": policy.to_dict()})
    model_name, _ = model_settings(project.root)
    title = project_title(project.root)
    dashboard = render_dashboard(project.root, title, records, verdicts, settings.rules,
                                 registry_markers(project.root, model_name), git_revisions(project.root))
    outcome = MonitorOutcome(record, verdict, alerts_path, dashboard, served=served, live=live, policy=policy)
    if notify:
        _notify(project, settings, records, verdicts, champions, outcome, dry_run)
    return outcome


def check_since(record: Record, since: datetime) -> None:
    since = (since if since.tzinfo else since.replace(tzinfo=UTC)).astimezone(UTC).replace(microsecond=0)
    if record.time < since:  # record times are whole seconds
        from ..core.errors import NbprodError

        raise NbprodError(f"the record to check ({record.name}, {record.data['time']}) is older than the run it "
                          f"follows (started {since.isoformat()}); that run left no record, so nothing was checked",
                          "records", fix="record the run first ('nbprod run --record'; in the Airflow DAG the "
                                         "nbprod_record task), or see why its stages failed")


def project_title(root: Path) -> str:
    """The name readers know the project by: pyproject.toml's [project] name, else the folder's."""
    import tomllib

    try:
        name = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8")).get("project", {}).get("name")
    except (OSError, tomllib.TOMLDecodeError):
        name = None
    return name if isinstance(name, str) and name else root.name


def _notify(project, settings, records, verdicts, champions, outcome: MonitorOutcome, dry_run: bool) -> None:
    from . import notify

    if not notify.should_send(settings.notify, outcome.verdict):
        outcome.email = "not needed"
        return
    record = outcome.record
    headline = headline_metrics(settings.rules, records) or []
    previous = records[-2] if len(records) > 1 else None
    metrics = notify.key_metrics(headline, record, previous, champions.of(record))
    png = notify.chart_png(headline[0], records, verdicts) if headline else None
    message = notify.build_message(settings.notify, project_title(project.root), record, outcome.verdict, metrics, png,
                                   str(outcome.dashboard))
    if dry_run:
        outcome.email_path = notify.write_eml(message, project.root / EMAIL_DIR / f"{record.name}.eml")
        outcome.email = "written"
        return
    try:
        notify.send(settings.notify, message)
        outcome.email = "sent"
    except notify.NotifyError as exc:
        outcome.email, outcome.email_error = "failed", str(exc)
