"""The opt-in rollback policy of ``nbprod monitor``: ``[tool.nbprod.monitor] rollback_on = ["live.accuracy"]``.
When a rule on one of those metrics alerts, production goes back to the version before it through
``lifecycle.decisions.rollback`` (the code path of ``nbprod rollback``), recorded as done by
"nbprod monitor, policy rollback_on" with the rule, the value and the outcomes it rests on.

Never twice for one alert: the alert is about the version the live figures measured; once that
version is no longer in production (rolled back already, by anyone), nothing is done. Never to a
worse version: when the previous version's own live figure (``live.versions.<v>.<figure>``, from
the same window) is worse than the current one's, production stays and the outcome says why.
"""

from __future__ import annotations

from dataclasses import dataclass

from nbprod.core.errors import NbprodError

BY = "nbprod monitor, policy rollback_on"


@dataclass
class PolicyOutcome:
    action: str          # rolled back | kept | not needed
    text: str

    def to_dict(self) -> dict:
        return {"action": self.action, "text": self.text}


def apply_rollback_policy(project, metrics: list[str], checks, live: dict | None, record_name: str,
                          rules) -> PolicyOutcome:
    """Act on the first alerting check whose metric is in ``metrics`` (``rollback_on``)."""
    from nbprod.lifecycle import registry
    from nbprod.lifecycle.settings import load_config

    by_text = {rule.text: rule for rule in rules}
    alerting = [c for c in checks if c.passed is False and by_text.get(c.rule) and by_text[c.rule].metric in metrics]
    if not alerting:
        return PolicyOutcome("not needed", "no rollback_on rule alerted")
    check = alerting[0]
    rule = by_text[check.rule]
    model = load_config(project).model_name
    current = registry.current(project.root, model)
    measured = _measured_version(live)
    if current is None or measured is None or measured != current.version:
        return PolicyOutcome("kept", f"{check.rule} alerted on {measured or 'no version'}, which is not in "
                                     f"production now ({current.version if current else 'none'}): already rolled "
                                     "back, nothing done")
    previous = _previous(project.root, model, current.version)
    if previous is None:
        return PolicyOutcome("kept", f"{check.rule} alerted but {model} has no earlier production version")
    figure = rule.metric.split(".")[-1]
    metrics_now = (live or {}).get("metrics") or {}
    mine = metrics_now.get(f"live.versions.{current.version}.{figure}")
    theirs = metrics_now.get(f"live.versions.{previous}.{figure}")
    higher_is_better = rule.op in (">=", ">")
    if theirs is not None and mine is not None and (theirs < mine if higher_is_better else theirs > mine):
        return PolicyOutcome("kept", f"{check.rule} alerted, but {previous}'s own live {figure} ({theirs:.4g}) "
                                     f"was worse than {current.version}'s ({mine:.4g}): not rolled back")
    outcomes = metrics_now.get(f"live.versions.{current.version}.n_outcomes")
    reason = (f"{check.rule} alerted: {rule.metric} = {check.value:.4g} (threshold {check.threshold:.4g}) on "
              f"{outcomes if outcomes is not None else '?'} outcomes of {current.version}; record {record_name}"
              + (f"; {previous}'s live {figure} was {theirs:.4g}" if theirs is not None else ""))
    from nbprod.lifecycle.decisions import rollback

    try:
        done = rollback(project, previous, BY, reason)
    except NbprodError as exc:
        return PolicyOutcome("kept", f"{check.rule} alerted, but the rollback to {previous} failed: {exc}")
    return PolicyOutcome("rolled back", f"rolled {model} back from {current.version} to {done.version.version} "
                                        f"({done.assignment_tag}): {reason}")


def _measured_version(live: dict | None) -> str | None:
    """The production version whose rows the live.* figures measured (the newest prod group)."""
    groups = [g for g in (live or {}).get("groups") or [] if g["variant"] == "prod" and not g["shadow"]]
    return (live or {}).get("prod_version") or (groups[-1]["version"] if groups else None)


def _previous(root, model: str, version: str) -> str | None:
    from nbprod.lifecycle import registry

    for event in reversed(registry.assignments(root, model)):
        if event.version and event.version != version:
            return event.version
    return None
