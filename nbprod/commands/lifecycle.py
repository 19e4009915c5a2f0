"""Lifecycle commands: retrain, approve, reject, rollback, history, lineage, env, package, unpack.
Argument parsing and printing only; the work is in ``nbprod.lifecycle``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("retrain", help="run the pipeline as a candidate in a worktree and check the gates")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="change a parameter for this candidate only (repeatable)")
    p.add_argument("--note", default="", help="why this candidate was trained")
    p.add_argument("--keep-worktree", action="store_true", help="keep the candidate's worktree for inspection")
    p.add_argument("--json", action="store_true", help="print the candidate record as JSON")
    p.add_argument("--events", type=Path, help="append progress events (JSON lines) to this file, as 'nbprod run "
                                               "--events' does; the JupyterLab Models panel follows them")
    p.set_defaults(handler=cmd_retrain)

    p = subparsers.add_parser("approve", help="register a candidate as a model version and assign it to prod")
    p.add_argument("candidate")
    p.add_argument("--by", required=True, help="who approves")
    p.add_argument("--note", default="", help="why")
    p.add_argument("--override", metavar="REASON", help="promote although a gate failed, recording REASON")
    p.add_argument("--checkout", action="store_true",
                   help="also put the approved files and outputs in the working tree (its state is kept first)")
    p.set_defaults(handler=cmd_approve)

    p = subparsers.add_parser("reject", help="record that a candidate is rejected")
    p.add_argument("candidate")
    p.add_argument("--by", required=True)
    p.add_argument("--note", required=True, help="why")
    p.set_defaults(handler=cmd_reject)

    p = subparsers.add_parser("rollback", help="restore a model version with its code, params, data and "
                                               "environment lock, and assign it to prod")
    p.add_argument("version", nargs="?", help="e.g. v1.0.0 (default: the version in prod before the current one)")
    p.add_argument("--by", required=True)
    p.add_argument("--note", default="")
    p.set_defaults(handler=cmd_rollback)

    p = subparsers.add_parser("history", help="who promoted, rejected or rolled back which model version, and why")
    p.add_argument("model", nargs="?", help="registry name (default: [tool.nbprod] model_name)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_history)

    p = subparsers.add_parser("lineage", help="stage, commit, params, inputs and environment behind an output")
    p.add_argument("path", type=Path)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_lineage)

    p = subparsers.add_parser("env", help="environment capture: lock file and drift check")
    env_sub = p.add_subparsers(metavar="ACTION")
    p.set_defaults(handler=lambda args, parser=p: parser.print_help() or 2)
    q = env_sub.add_parser("check", help="what drifted since the lock file and the last run")
    q.set_defaults(handler=cmd_env_check)
    q = env_sub.add_parser("lock", help="write requirements.lock (a stage can depend on it)")
    q.set_defaults(handler=cmd_env_lock)

    p = subparsers.add_parser("package", help="bundle a version (or the working state) with data, model and a "
                                              "sha256 manifest")
    p.add_argument("version", nargs="?", help="registered version (default: the working state)")
    p.add_argument("-o", "--output", type=Path, required=True, help="the .zip to write")
    p.set_defaults(handler=cmd_package)

    p = subparsers.add_parser("unpack", help="verify a bundle's sha256 manifest and unpack it as a project")
    p.add_argument("bundle", type=Path)
    p.add_argument("directory", type=Path)
    p.add_argument("--sha256", metavar="SUM", help="the manifest sum 'nbprod package' printed (catches a rewritten "
                                                  "manifest)")
    p.set_defaults(handler=cmd_unpack)


def _project():
    from ..core.project import find_project

    return find_project()


def cmd_retrain(args: argparse.Namespace) -> int:
    from ..execution.events import EVENTS_ENV
    from ..lifecycle.candidates import CANDIDATES_DIR, retrain

    project = _project()
    if args.events:
        os.environ[EVENTS_ENV] = str(args.events.resolve())
    candidate = retrain(project, args.overrides, note=args.note, keep_worktree=args.keep_worktree,
                        echo=lambda text: print(text, file=sys.stderr, flush=True))
    record = candidate.record
    if args.json:
        print(json.dumps(dict(record, commit=candidate.commit), indent=2, sort_keys=True))
        return 0
    champion = record.get("champion")
    print(f"Candidate {candidate.id} ({candidate.commit[:10]})"
          + (f" vs champion {champion['version']}: {champion['scored']}" if champion else ", no champion yet"))
    for gate in record["gates"]:
        state = {True: "pass", False: "FAIL", None: "skip"}[gate["passed"]]
        value = "" if gate["value"] is None else f" = {gate['value']:.4g}"
        threshold = "" if gate["threshold"] is None else f" (threshold {gate['threshold']:.4g})"
        print(f"  {state:4}  {gate['gate']}{value}{threshold} {gate['note']}".rstrip())
    verdict = "passed its gates" if record["gates_passed"] else "FAILED a gate"
    print(f"Candidate {candidate.id} {verdict}; report: {CANDIDATES_DIR}/{candidate.id}/comparison.html")
    print(f"Decide: nbprod approve {candidate.id} --by NAME --note TEXT"
          + ("" if record["gates_passed"] else " --override REASON") + f"  |  nbprod reject {candidate.id} ...")
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    from ..lifecycle.decisions import approve

    done = approve(_project(), args.candidate, args.by, args.note, args.override, args.checkout)
    if done.kept:
        print(f"Kept the working state as {done.kept.tag}")
    print(f"Registered {done.version.tag} and assigned prod ({done.assignment_tag})"
          + (f", replacing {done.previous}" if done.previous else ""))
    if args.checkout:
        print("The working tree now holds the approved files and outputs; commit them to keep them on your branch.")
    print("Share the decision: git push --tags")
    return 0


def cmd_reject(args: argparse.Namespace) -> int:
    from ..lifecycle.decisions import reject

    tag = reject(_project(), args.candidate, args.by, args.note)
    print(f"Rejected {args.candidate} ({tag})")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from ..lifecycle.decisions import rollback
    from ..lifecycle.environment import drift
    from ..core.project import REPORTS_DIR

    project = _project()
    done = rollback(project, args.version, args.by, args.note)
    if done.kept:
        print(f"Kept the working state as {done.kept.tag}")
    print(f"Restored {done.version.tag} (code, params, dvc.lock, data and model) and assigned prod "
          f"({done.assignment_tag})" + (f", replacing {done.previous}" if done.previous else ""))
    drifted = [(src, lines) for src, lines in drift(project.root) if lines and not src.startswith(REPORTS_DIR + "/")]
    for source, lines in drifted:
        print(f"Environment differs from {source}: {'; '.join(lines[:5])}" + (" ..." if len(lines) > 5 else ""))
    print("Commit the restored files to keep them on your branch; share the decision with git push --tags")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from ..lifecycle.settings import load_config
    from ..lifecycle.registry import history

    project = _project()
    model = args.model or load_config(project).model_name
    events = history(project.root, model)
    if args.json:
        print(json.dumps([e.to_dict() for e in events], indent=2, sort_keys=True))
        return 0
    if not events:
        print(f"No registry history for {model!r} yet (run 'nbprod retrain', then 'nbprod approve').")
        return 0
    for event in events:
        print(_history_line(event) + _card_link(project.root, event))
    _print_waiting(project.root, model)
    return 0


def _print_waiting(root, model) -> None:
    from ..lifecycle.candidates import candidate_ids, load_candidate
    from ..lifecycle.registry import rejections, versions

    decided = {v.commit for v in versions(root, model)} | {e.commit for e in rejections(root, model)}
    for candidate_id in candidate_ids(root):
        candidate = load_candidate(root, candidate_id)
        if candidate.commit not in decided and candidate.record.get("model", model) == model:
            verdict = "passed its gates" if candidate.passed else "FAILED a gate"
            print(f"waiting for a decision: candidate {candidate_id} ({verdict}, trained "
                  f"{candidate.record.get('created', '?')[:19].replace('T', ' ')})")


def _card_link(root, event) -> str:
    """Where an approved version's model card is, or the command that writes it."""
    if event.action != "approve" or not event.version:
        return ""
    from ..modelcard.build import card_paths

    card = card_paths(root, event.model, event.version).html
    return f" [card: {card.relative_to(root).as_posix()}]" if card.is_file() else \
        f" [card: nbprod card {event.version}]"


def _history_line(event) -> str:
    r = event.record
    when = (r.get("when") or event.date)[:19].replace("T", " ")
    by = f" by {r['by']}" if r.get("by") else ""
    why = f": {r['note']}" if r.get("note") else ""
    if event.action == "approve":
        who = " BY POLICY" + (f" ({r['policy'].get('rule')})" if isinstance(r.get("policy"), dict) else "") \
            if r.get("approved_by") == "policy" else by
        text = f"prod <- {event.version} approved{who} (candidate {r.get('candidate')})"
        if r.get("approved_by") == "policy" and isinstance(r.get("policy"), dict):
            text += f" [gates passed: {len(r['policy'].get('gates') or [])}, drift share " \
                    f"{r['policy'].get('drift_share', 0):.0%} <= {r['policy'].get('max_drift_share', 0):.0%}]"
        if r.get("override"):
            text += f" OVERRIDING failed gates: {r['override']}"
        if r.get("fairness"):
            from ..fairness.compare import fairness_line

            text += f" [{fairness_line(r['fairness'])}]"
        if r.get("schemas"):
            text += " [schemas: " + ", ".join(f"{p} {h[:12]}" for p, h in sorted(r["schemas"].items())) + "]"
    elif event.action == "rollback":
        text = f"prod <- {event.version} rolled back{by} from {r.get('from')}"
        if r.get("kept"):
            text += f", kept working state as {r['kept']}"
    elif event.action == "reject":
        text = f"rejected candidate {r.get('candidate')}{by}"
    elif event.action == "register":
        kind = "working state kept" if r.get("action") == "kept" else f"candidate {r.get('candidate', '?')}"
        text = f"registered {event.version} ({kind})"
        why = ""
    else:
        text = f"{event.stage} <- {event.version} ({event.tag})"
    if r.get("malformed"):  # who and why are unknown: say so, with the text the tag holds
        raw = " ".join(str(r.get("raw", "")).split())
        text, why = f"{event.action} {event.version or ''} ({event.tag}): MALFORMED tag message, {r['malformed']}", ""
        text += f"; raw text: {raw[:300]}"
    return f"{when}  {text}{why}"


def cmd_lineage(args: argparse.Namespace) -> int:
    from ..lifecycle.lineage import lineage

    facts = lineage(_project(), args.path)
    if args.json:
        print(json.dumps(facts.to_dict(), indent=2, sort_keys=True))
    else:
        for line in facts.lines():
            print(line)
    return 0 if not facts.mismatches else 1


def cmd_env_check(args: argparse.Namespace) -> int:
    from ..lifecycle.environment import capture, drift

    project = _project()
    checks = drift(project.root)
    env = capture()
    print(f"This environment: python {env['python']}, {len(env['packages'])} packages, "
          f"sha256 {env['packages_sha256'][:12]}")
    if not checks:
        print("No recorded environment to compare with: run 'nbprod env lock' or 'nbprod run' first.")
        return 0
    drifted = 0
    for source, lines in checks:
        if lines:
            drifted += 1
            print(f"{source}: {len(lines)} change(s)")
            for line in lines:
                print(f"  {line}")
        else:
            print(f"{source}: no drift")
    return 1 if drifted else 0


def cmd_env_lock(args: argparse.Namespace) -> int:
    from ..lifecycle.environment import write_lock

    path = write_lock(_project().root)
    print(f"wrote {path.name}")
    return 0


def cmd_package(args: argparse.Namespace) -> int:
    from ..lifecycle.bundle import package

    result = package(_project(), args.version, args.output)
    print(f"wrote {args.output} ({result.files} files, {result.size / 1e6:.1f} MB) from {result.source}")
    print(f"manifest sha256 {result.manifest_sha256} (give it to 'nbprod unpack --sha256' to check the bundle "
          "end to end)")
    return 0


def cmd_unpack(args: argparse.Namespace) -> int:
    from ..lifecycle.bundle import unpack

    result = unpack(args.bundle, args.directory, args.sha256)
    print(f"verified {result.files} files (sha256) and unpacked {result.source} into {args.directory}")
    print(f"Next: cd {args.directory} && nbprod run")
    return 0
