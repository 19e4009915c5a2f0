"""Monitoring settings from pyproject.toml: ``[tool.nbprod.monitor]`` (rules, and the window of served
inputs checked for drift), ``[tool.nbprod.notify]``
(email), ``[tool.nbprod.records]`` (retention) and ``[tool.nbprod.gc]`` (housekeeping limits)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


from ..core.errors import NbprodError
from ..core.conditions import Rule, parse_rules

WHERE = "pyproject.toml"


@dataclass
class NotifySettings:
    smtp: str | None = None          # host:port
    security: str = "none"           # none | starttls | ssl
    sender: str = ""
    to: list[str] = field(default_factory=list)
    on: str = "alert"                # always | alert
    timeout: float = 20.0

    @property
    def host(self) -> str:
        return (self.smtp or "").rpartition(":")[0] or (self.smtp or "")

    @property
    def port(self) -> int:
        host, _, port = (self.smtp or "").rpartition(":")
        return int(port) if host and port.isdigit() else {"ssl": 465, "starttls": 587}.get(self.security, 25)


@dataclass
class Retention:
    keep_last: int | None = None     # records
    keep_days: float | None = None
    keep_runs: int = 20              # .nbprod/runs folders
    max_log_mb: float = 50.0         # a log file over this size is removed
    debug_days: float = 7.0          # nbprod-debug/ notebooks older than this


@dataclass
class ServedWindow:
    """Which served inputs (nbprod serve's prediction log) are compared with the training data."""
    rows: int = 5000                 # the newest rows answered
    hours: float | None = None       # and only those answered in the last HOURS (None: no time limit)


SERVED_KEYS = {"served_rows": "rows", "served_hours": "hours"}  # settings, not rules, under [tool.nbprod.monitor]


@dataclass
class MonitorSettings:
    rules: list[Rule] = field(default_factory=list)
    notify: NotifySettings = field(default_factory=NotifySettings)
    retention: Retention = field(default_factory=Retention)
    served: ServedWindow = field(default_factory=ServedWindow)
    rollback_on: list[str] = field(default_factory=list)  # metrics whose alert rolls production back


def load_settings(root: Path) -> MonitorSettings:
    from ..core.project import read_config

    raw = read_config(root)
    table = raw.get("monitor", {})
    served = _served(table) if isinstance(table, dict) else ServedWindow()
    rollback_on = table.get("rollback_on", []) if isinstance(table, dict) else []
    if isinstance(table, dict):
        table = {k: v for k, v in table.items() if k not in SERVED_KEYS and k != "rollback_on"}
    rules = parse_rules(table, "monitor")
    _check_rollback_on(rollback_on, rules)
    for rule in rules:
        if rule.metric.startswith("duration.") and not rule.metric[len("duration."):]:
            raise NbprodError("[tool.nbprod.monitor] duration. needs a stage name", WHERE,
                              fix='write duration.train = "<= 2 * median(last 10)"')
    return MonitorSettings(rules, _notify(raw.get("notify", {})), _retention(raw.get("records", {}), raw.get("gc", {})),
                           served, list(rollback_on))


def _check_rollback_on(names, rules: list[Rule]) -> None:
    """``rollback_on``: a list of live.* metrics, each checked by a rule of the same table."""
    if not isinstance(names, list) or not all(isinstance(n, str) and n.startswith("live.") for n in names):
        raise NbprodError(f"[tool.nbprod.monitor] rollback_on = {names!r} must be a list of live.* metrics", WHERE,
                          fix='write rollback_on = ["live.accuracy"]')
    checked = {rule.metric for rule in rules}
    for name in names:
        if name not in checked:
            raise NbprodError(f"[tool.nbprod.monitor] rollback_on names {name}, which no rule checks", WHERE,
                              fix=f'add a rule such as "{name}" = ">= 0.9" to [tool.nbprod.monitor]')


def _served(table: dict) -> ServedWindow:
    window = ServedWindow()
    for key, attribute in SERVED_KEYS.items():
        if key not in table:
            continue
        value = table[key]
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0 or \
                (key == "served_rows" and not float(value).is_integer()):
            raise NbprodError(f"[tool.nbprod.monitor] {key} = {value!r} must be a positive "
                              + ("whole number of rows" if key == "served_rows" else "number of hours"), WHERE,
                              fix="write served_rows = 5000" if key == "served_rows" else "write served_hours = 24")
        setattr(window, attribute, int(value) if key == "served_rows" else float(value))
    return window


def _notify(table) -> NotifySettings:
    if not isinstance(table, dict):
        raise NbprodError("[tool.nbprod.notify] must be a table", WHERE, fix='write smtp = "host:port" under it')
    known = {"smtp", "starttls", "ssl", "from", "to", "on", "timeout"}
    for key in table:
        if key not in known:
            raise NbprodError(f"[tool.nbprod.notify] has an unknown key {key!r}", WHERE,
                              fix="use " + ", ".join(sorted(known)))
    smtp = table.get("smtp")
    if smtp is not None and not (isinstance(smtp, str) and smtp.rpartition(":")[2].isdigit() and ":" in smtp):
        raise NbprodError(f"[tool.nbprod.notify] smtp = {smtp!r} is not host:port", WHERE,
                          fix='write smtp = "smtp.example.com:587"')
    if table.get("starttls") and table.get("ssl"):
        raise NbprodError("[tool.nbprod.notify] starttls and ssl are both set", WHERE,
                          fix="use ssl = true for port 465, starttls = true for port 587")
    for key in ("starttls", "ssl"):
        if key in table and not isinstance(table[key], bool):
            raise NbprodError(f"[tool.nbprod.notify] {key} must be true or false", WHERE, fix=f"write {key} = true")
    to = table.get("to", [])
    if isinstance(to, str):
        to = [to]
    if not isinstance(to, list) or not all(isinstance(t, str) and "@" in t for t in to):
        raise NbprodError("[tool.nbprod.notify] to must be a list of email addresses", WHERE,
                          fix='write to = ["team@example.com"]')
    on = table.get("on", "alert")
    if on not in ("always", "alert"):
        raise NbprodError(f"[tool.nbprod.notify] on = {on!r} is neither \"always\" nor \"alert\"", WHERE,
                          fix='write on = "alert" (only when a rule alerts) or on = "always"')
    sender = table.get("from", "")
    if not isinstance(sender, str):
        raise NbprodError("[tool.nbprod.notify] from must be an email address", WHERE,
                          fix='write from = "nbprod@example.com"')
    security = "ssl" if table.get("ssl") else "starttls" if table.get("starttls") else "none"
    timeout = table.get("timeout", 20.0)
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
        raise NbprodError("[tool.nbprod.notify] timeout must be a number of seconds", WHERE, fix="write timeout = 20")
    return NotifySettings(smtp, security, sender, to, on, float(timeout))


def _retention(records, gc) -> Retention:
    result = Retention()
    for section, table, keys in (("records", records, ("keep_last", "keep_days")),
                                 ("gc", gc, ("keep_runs", "max_log_mb", "debug_days"))):
        if not isinstance(table, dict):
            raise NbprodError(f"[tool.nbprod.{section}] must be a table", WHERE, fix=f"write {keys[0]} = 30 under it")
        for key, value in table.items():
            if key not in keys:
                raise NbprodError(f"[tool.nbprod.{section}] has an unknown key {key!r}", WHERE,
                                  fix="use " + ", ".join(keys))
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise NbprodError(f"[tool.nbprod.{section}] {key} = {value!r} must be a number of 0 or more", WHERE,
                                  fix=f"write {key} = 30")
            setattr(result, key, int(value) if key in ("keep_last", "keep_runs") else float(value))
    return result
