"""The monitoring email: subject with the verdict, a plain-text and an HTML part (no JavaScript), the
key metrics against the previous record and the champion, the alerts, a PNG chart of the headline
metric inline (``cid:``), and where the dashboard is. Sent with smtplib; credentials come only from
``NBPROD_SMTP_USER`` / ``NBPROD_SMTP_PASSWORD``."""

from __future__ import annotations

import io
import os
import smtplib
import socket
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from html import escape
from pathlib import Path

from ..core.errors import NbprodError
from ..report.svg import format_number
from ..core.conditions import lookup
from .settings import NotifySettings
from .records import Record
from .rules import Verdict, value_of

USER_ENV, PASSWORD_ENV = "NBPROD_SMTP_USER", "NBPROD_SMTP_PASSWORD"
_BROKEN = {">=": "<", ">": "<=", "<=": ">", "<": ">=", "==": "!="}


class NotifyError(Exception):
    """The email could not be sent; monitoring data is already written when this is raised."""


@dataclass
class KeyMetric:
    name: str
    value: float | None
    previous: float | None
    champion: float | None


def subject(project: str, verdict: Verdict, headline: list[KeyMetric]) -> str:
    alerts = verdict.alerts
    if alerts:
        first = alerts[0]
        what = first.rule.split(" ")[0]
        detail = (f"{what} {format_number(first.value)} ({_BROKEN[first.rule.split(' ')[1]]} "
                  f"{format_number(first.threshold)})") if first.value is not None and first.threshold is not None \
            else f"{first.rule}: {first.note}"
        return f"[nbprod] {project}: {len(alerts)} alert{'s' if len(alerts) != 1 else ''} — {detail}"
    shown = ", ".join(f"{k.name} {format_number(k.value)}" for k in headline[:2] if k.value is not None)
    return f"[nbprod] {project}: all checks passed" + (f" — {shown}" if shown else "")


def key_metrics(names: list[str], record: Record, previous: Record | None, champion: dict | None) -> list[KeyMetric]:
    return [KeyMetric(n, value_of(record, n), value_of(previous, n) if previous else None,
                      _champion_value(champion, n)) for n in names]


def _champion_value(champion: dict | None, name: str) -> float | None:
    if champion is None or name.startswith("duration."):
        return None
    try:
        return lookup(champion, name, "monitor")
    except NbprodError:  # an ambiguous name is reported by the rules, not the email
        return None


def build_message(settings: NotifySettings, project: str, record: Record, verdict: Verdict,
                  metrics: list[KeyMetric], chart_png: bytes | None, dashboard: str) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = subject(project, verdict, metrics)
    message["From"] = settings.sender or f"nbprod@{socket.getfqdn()}"
    message["To"] = ", ".join(settings.to)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid("nbprod")
    when = record.time.strftime("%Y-%m-%d %H:%M UTC")
    production = record.production["version"] if record.production else "none"
    lines = [f"{project}: run of {when} (model in production: {production})", ""]
    lines.append(f"{len(verdict.alerts)} alert(s)" if verdict.alerts else "All checks passed.")
    for alert in verdict.alerts:
        lines.append(f"  ALERT {alert.rule}: value {_n(alert.value)}, threshold {_n(alert.threshold)}"
                     + (f" ({alert.note})" if alert.note else ""))
    lines += ["", "Key metrics (this run / previous run / champion):"]
    lines += [f"  {k.name}: {_n(k.value)} / {_n(k.previous)} / {_n(k.champion)}" for k in metrics]
    ab = ((record.live or {}).get("verdict") or {}).get("text")  # live outcomes (nbprod.feedback)
    if ab:
        lines += ["", f"A/B test: {ab}"]
    lines += ["", f"Dashboard: {dashboard}", f"Record: records/{record.name}"]
    message.set_content("\n".join(lines) + "\n")
    cid = make_msgid("chart")
    message.add_alternative(_html(project, when, production, verdict, metrics, cid if chart_png else None,
                                  dashboard, record.name, ab), subtype="html")
    if chart_png:
        message.get_payload()[1].add_related(chart_png, "image", "png", cid=cid, filename="chart.png",
                                             disposition="inline")
    return message


def _n(value) -> str:
    return "—" if value is None else format_number(value)


def _html(project, when, production, verdict: Verdict, metrics: list[KeyMetric], cid, dashboard, name,
          ab: str | None = None) -> str:
    colour = "#b3261e" if verdict.alerts else "#137333"
    state = f"{len(verdict.alerts)} alert(s)" if verdict.alerts else "All checks passed"
    alerts = "".join(f"<li><b>{escape(a.rule)}</b>: value {_n(a.value)}, threshold {_n(a.threshold)}"
                     f"{' (' + escape(a.note) + ')' if a.note else ''}</li>" for a in verdict.alerts)
    rows = "".join(f"<tr><td>{escape(k.name)}</td><td align=\"right\">{_n(k.value)}</td>"
                   f"<td align=\"right\">{_n(k.previous)}</td><td align=\"right\">{_n(k.champion)}</td></tr>"
                   for k in metrics)
    image = f'<p><img src="cid:{cid[1:-1]}" alt="headline metric over time" width="560"></p>' if cid else ""
    return (f"<!DOCTYPE html><html><body style=\"font-family:Arial,sans-serif;color:#202124\">"
            f"<h2 style=\"margin:0\">{escape(project)}</h2><p>Run of {escape(when)} · model in production: "
            f"{escape(production)}</p><p style=\"color:{colour};font-weight:bold;font-size:16px\">{state}</p>"
            + (f"<ul>{alerts}</ul>" if alerts else "")
            + "<table cellpadding=\"6\" style=\"border-collapse:collapse\" border=\"1\"><tr><th>Metric</th>"
              "<th>This run</th><th>Previous run</th><th>Champion</th></tr>" + rows + "</table>"
            + (f"<p><b>A/B test:</b> {escape(ab)}</p>" if ab else "")
            + image + f"<p>Dashboard: {escape(dashboard)}<br>Record: records/{escape(name)}</p></body></html>")


def chart_png(metric: str, records: list[Record], verdicts: list[Verdict]) -> bytes | None:
    """The headline metric over the records, its threshold and alerts, as a PNG (matplotlib, Agg)."""
    points = [(r.time, value_of(r, metric), v) for r, v in zip(records, verdicts)]
    points = [(t, value, v) for t, value, v in points if value is not None]
    if not points:
        return None
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 2.8), dpi=100)
    axes = figure.add_subplot()
    axes.plot([t for t, _, _ in points], [value for _, value, _ in points], color="#1a73e8", marker="o",
              markersize=3, label=metric)
    limits = [(t, _threshold(v, metric)) for t, _, v in points]
    limits = [(t, x) for t, x in limits if x is not None]
    if limits:
        axes.plot([t for t, _ in limits], [x for _, x in limits], color="#d93025", linestyle="--", label="threshold")
    alerts = [(t, value) for t, value, v in points if any(c.rule.split(" ")[0] == metric for c in v.alerts)]
    if alerts:
        axes.scatter([t for t, _ in alerts], [x for _, x in alerts], color="#d93025", zorder=3, label="alert")
    axes.set_title(f"{metric} over recorded runs")
    axes.legend(loc="best", fontsize=8)
    figure.autofmt_xdate()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _threshold(verdict: Verdict, metric: str) -> float | None:
    return next((c.threshold for c in verdict.checks if c.rule.split(" ")[0] == metric and c.threshold is not None),
                None)


def should_send(settings: NotifySettings, verdict: Verdict) -> bool:
    return settings.on == "always" or bool(verdict.alerts)


def send(settings: NotifySettings, message: EmailMessage) -> None:
    """Deliver ``message``; any failure becomes one NotifyError line that names the server and the fix."""
    where = f"{settings.host}:{settings.port}"
    user, password = os.environ.get(USER_ENV), os.environ.get(PASSWORD_ENV)
    try:
        if settings.security == "ssl":
            client = smtplib.SMTP_SSL(settings.host, settings.port, timeout=settings.timeout,
                                      context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
        with client:
            if settings.security == "starttls":
                client.starttls(context=ssl.create_default_context())
            if user:
                client.login(user, password or "")
            client.send_message(message)
    except smtplib.SMTPAuthenticationError as exc:
        raise NotifyError(f"the SMTP server {where} refused the login of {user!r} ({exc.smtp_code} "
                          f"{_text(exc.smtp_error)}); check {USER_ENV} and {PASSWORD_ENV}") from None
    except smtplib.SMTPNotSupportedError as exc:
        raise NotifyError(f"the SMTP server {where} does not support this ({exc}); check starttls/ssl in "
                          "[tool.nbprod.notify]") from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise NotifyError(f"the SMTP server {where} refused the recipients {', '.join(exc.recipients)}") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise NotifyError(f"could not send the email through {where} ({type(exc).__name__}: "
                          f"{_text(str(exc)) or 'no answer'})") from None


def _text(value) -> str:
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    return " ".join(str(value).split())


def write_eml(message: EmailMessage, path: Path) -> Path:
    from ..notebooks.notebook import atomic_write

    atomic_write(path, message.as_bytes())
    return path

