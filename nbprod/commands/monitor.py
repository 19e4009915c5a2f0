"""``nbprod records``, ``nbprod monitor`` and ``nbprod gc``: parse arguments, call nbprod.monitor, print."""

from __future__ import annotations

import argparse
import json
import sys

EMAIL_FAILED = 3  # exit status when the verdict is written but the email could not be sent


def register(subparsers) -> None:
    p = subparsers.add_parser("records", help="list, verify, push or pull run records (nbprod run --record)")
    p.add_argument("action", nargs="?", default="list", choices=["list", "verify", "push", "pull"])
    p.add_argument("-r", "--remote", help="DVC remote for push/pull (default: the project's default remote)")
    p.add_argument("--json", action="store_true", help="list as JSON")
    p.set_defaults(handler=cmd_records)

    p = subparsers.add_parser("monitor", help="check [tool.nbprod.monitor] rules on the latest record, write "
                                              "alerts.json and reports/dashboard.html; exit 1 on alerts")
    p.add_argument("--record", metavar="NAME", help="check this record instead of the latest")
    p.add_argument("--since", metavar="TIME", type=_time,
                   help="refuse (exit 2) when the record is older than TIME (ISO 8601, UTC when no zone): the "
                        "start of the run it follows, so an older run's verdict is never reported as this one's")
    p.add_argument("--notify", action="store_true", help="send the email of [tool.nbprod.notify]")
    p.add_argument("--dry-run", action="store_true", help="with --notify: write the .eml instead of sending it")
    p.add_argument("--json", action="store_true", help="print the verdict as JSON")
    p.set_defaults(handler=cmd_monitor)

    p = subparsers.add_parser("gc", help="housekeeping: show what old records, runs, logs and cache objects "
                                         "can go; --apply removes them")
    p.add_argument("--apply", action="store_true", help="remove what is listed (default: only show it)")
    p.set_defaults(handler=cmd_gc)


def _time(text: str):
    from datetime import datetime

    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time (2026-01-31T06:00:00+00:00)") from None


def record_run(project, events) -> str:
    """Called by ``nbprod run --record`` after the run: store the record, return its name."""
    from ..monitor.records import create_record

    return create_record(project, events).name


def cmd_records(args: argparse.Namespace) -> int:
    from ..monitor import records as store
    from ..core.project import find_project

    project = find_project()
    if args.action in ("list", "verify"):
        scan = store.scan_records(project)
        for damaged in scan.damaged:  # named first, on stderr, whatever the action
            print(f"nbprod: damaged record: {damaged.line}", file=sys.stderr)
        if args.action == "verify":
            problems = [p for r in scan.records for p in store.verify_record(r)]
            for line in problems:
                print(line, file=sys.stderr)
            print(f"{len(scan.records) + len(scan.damaged)} record(s) checked, "
                  f"{len(problems) + len(scan.damaged)} problem(s).")
            return 1 if problems or scan.damaged else 0
        _list_records(scan.records, args.json)
        return 1 if scan.damaged else 0
    from ..monitor import remote

    result = (remote.push if args.action == "push" else remote.pull)(project, args.remote)
    verb = "pushed" if args.action == "push" else "pulled"
    for damaged in result.damaged:
        print(f"nbprod: damaged record not {verb}: {damaged.line}", file=sys.stderr)
    print(f"{len(result.copied)} record(s) {verb}, {len(result.present)} already there"
          + (f", {len(result.damaged)} damaged (not {verb})." if result.damaged else "."))
    return 1 if result.damaged else 0


def _list_records(found, as_json: bool) -> None:
    if as_json:
        print(json.dumps([{"name": r.name, "time": r.data["time"], "ok": r.data.get("ok"),
                           "production": r.production, "alerts": (r.alerts or {}).get("alerts")}
                          for r in found], indent=2))
        return
    if not found:
        print("No records yet: run 'nbprod run --record'.")
    for record in found:
        alerts = record.alerts
        verdict = ("not monitored" if alerts is None
                   else f"{alerts['alerts']} alert(s)" if alerts["alerts"] else "ok")
        version = record.production["version"] if record.production else "-"
        print(f"{record.name}  run {'ok' if record.data.get('ok') else 'FAILED'}  model {version}  {verdict}")


def cmd_monitor(args: argparse.Namespace) -> int:
    from ..monitor.watch import monitor
    from ..core.project import find_project

    project = find_project()
    outcome = monitor(project, args.record, notify=args.notify, dry_run=args.dry_run, since=args.since)
    rel = project.rel
    if args.json:
        served = outcome.served and {"status": outcome.served.status, "note": outcome.served.note}
        live = outcome.live and {"status": outcome.live.status, "note": outcome.live.note,
                                 "verdict": outcome.live.details.get("verdict")}
        print(json.dumps({**outcome.verdict.to_dict(), "dashboard": rel(outcome.dashboard),
                          "email": outcome.email, "served": served, "live": live,
                          "policy": outcome.policy and outcome.policy.to_dict()}, indent=2))
    else:
        _print_checks(outcome)
        if outcome.served is not None:
            print(f"Served inputs: {outcome.served.note}")
        if outcome.live is not None:
            print(f"Live quality: {outcome.live.note}")
            verdict = outcome.live.details.get("verdict")
            if verdict:
                print(f"A/B test: {verdict['text']}")
        if outcome.policy is not None:
            print(f"Policy rollback_on: {outcome.policy.text}")
        print(f"Alerts: {rel(outcome.alerts_path)}")
        print(f"Dashboard: {rel(outcome.dashboard)}")
        if outcome.email == "written":
            print(f"Email (not sent, --dry-run): {rel(outcome.email_path)}")
        elif outcome.email in ("sent", "not needed"):
            print(f"Email: {outcome.email}")
    if outcome.email_error:
        print(f"nbprod: error: email not sent: {outcome.email_error}; the verdict is in "
              f"{rel(outcome.alerts_path)}", file=sys.stderr)
        return EMAIL_FAILED
    return 1 if outcome.verdict.alerts else 0


def _print_checks(outcome) -> None:
    from rich.console import Console
    from rich.table import Table

    from ..report.svg import format_number

    table = Table(title=f"nbprod monitor: {outcome.record.name}")
    for column in ("rule", "result", "value", "threshold", "why"):
        table.add_column(column)
    for check in outcome.verdict.checks:
        state = {True: "[green]ok[/]", False: "[red bold]ALERT[/]", None: "[dim]not checked[/]"}[check.passed]
        table.add_row(check.rule, state, "—" if check.value is None else format_number(check.value),
                      "—" if check.threshold is None else format_number(check.threshold), check.note)
    if not outcome.verdict.checks:
        table.add_row("(no rules under [tool.nbprod.monitor])", "", "", "", "")
    Console(width=120).print(table)


def cmd_gc(args: argparse.Namespace) -> int:
    from ..monitor import gc
    from ..core.project import find_project

    project = find_project()
    planned = gc.plan(project)
    for name in planned.protected:
        print(f"keep   record {name} (lineage of a model version that was in production)")
    for item in planned.items:
        print(f"{'remove' if args.apply else 'would remove'}  {item.kind:8} {_size(item.size):>9}  {item.path}  "
              f"({item.why})")
    if planned.cache_error:
        print(f"nbprod: DVC cache not checked: {planned.cache_error}", file=sys.stderr)
    if not args.apply:
        print(f"{len(planned.items)} item(s), {_size(planned.size)} in total. Run 'nbprod gc --apply' to remove them.")
        return 0
    removed = gc.apply(project, planned)
    print(f"Removed {len(removed)} item(s), {_size(sum(i.size for i in removed))}.")
    return 0


def _size(count: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return str(count)
