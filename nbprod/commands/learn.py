"""``nbprod learn``: update the production model on its labelled feedback as a gated candidate version.
Argument parsing and printing only; the work is in ``nbprod.online``."""

from __future__ import annotations

import argparse
import json
import sys

HELD = 1  # the candidate is registered but waits for a human decision


def register(subparsers) -> None:
    p = subparsers.add_parser("learn", help="update the production model (partial_fit) on its labelled feedback, "
                                            "as a candidate approved by policy or held for a human")
    p.add_argument("--note", default="", help="why this update was made")
    p.add_argument("--json", action="store_true", help="print the candidate record and the decision as JSON")
    p.set_defaults(handler=cmd_learn)


def cmd_learn(args: argparse.Namespace) -> int:
    from ..core.project import find_project
    from ..lifecycle.candidates import CANDIDATES_DIR
    from ..online.incremental import learn

    done = learn(find_project(), note=args.note, echo=lambda text: print(text, file=sys.stderr, flush=True))
    record, held = done.candidate.record, done.approved is None
    if args.json:
        print(json.dumps({**record, "commit": done.candidate.commit, "decision": done.decision}, indent=2,
                         sort_keys=True))
        return HELD if held else 0
    window = record["window"]
    print(f"Candidate {done.candidate.id} ({done.candidate.commit[:10]}): {record['parent']['version']} updated on "
          f"{window['rows']} labelled rows ({window['first_prediction']} to {window['last_prediction']}, "
          f"sha256 {window['sha256'][:12]}) in {window['batches']} test-then-train batches")
    live = record["parent_live"]
    for name, value in record["metrics"]["online"].items():
        parent = live.get("live." + name.removeprefix("online."))
        print(f"  {name} = {value:.4g}" + (f" (parent live {parent:.4g})" if parent is not None else ""))
    for gate in record["gates"]:
        state = {True: "pass", False: "FAIL", None: "skip"}[gate["passed"]]
        value = "" if gate["value"] is None else f" = {gate['value']:.4g}"
        threshold = "" if gate["threshold"] is None else f" (threshold {gate['threshold']:.4g})"
        print(f"  {state:4}  {gate['gate']}{value}{threshold} {gate['note']}".rstrip())
    drift = record["drift"]
    print(f"  drift since {record['parent']['version']}: {drift['share']:.0%} of features"
          + (f" ({', '.join(drift['features'][:5])})" if drift["features"] else ""))
    print(f"Candidate {done.candidate.id} {done.decision}; report: {CANDIDATES_DIR}/{done.candidate.id}/"
          "comparison.html")
    if held:
        print(f"Decide: nbprod approve {done.candidate.id} --by NAME"
              + ("" if record["gates_passed"] else " --override REASON") + f"  |  nbprod reject {done.candidate.id} "
              "--by NAME --note TEXT")
    else:
        print("Share the decision: git push --tags")
    return HELD if held else 0
