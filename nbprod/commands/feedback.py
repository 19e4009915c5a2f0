"""``nbprod feedback``: import outcomes from a file, show how they join, export the labelled cases.
Argument parsing and printing only; the work is in ``nbprod.feedback``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PARTIAL = 1  # some rows were stored, some rejected (each rejected row printed on one line)


def register(subparsers) -> None:
    p = subparsers.add_parser("feedback", help="outcomes of served predictions: import, status, export")
    sub = p.add_subparsers(metavar="ACTION")
    p.set_defaults(handler=lambda args, parser=p: parser.print_help() or 2)

    q = sub.add_parser("import", help="store the outcomes of a CSV or Parquet file beside the prediction log")
    q.add_argument("file", type=Path)
    q.add_argument("--key-column", help="column holding the request id or key (default: [tool.nbprod.feedback] "
                                        "key_column, else key_field, else request_id)")
    q.add_argument("--outcome-column", help="column holding the outcome (default: outcome)")
    q.add_argument("--time-column", help="column holding when the outcome became known (default: time, if any)")
    q.set_defaults(handler=cmd_import)

    q = sub.add_parser("status", help="how many outcomes joined, matched nothing or were replaced; live quality")
    q.set_defaults(handler=cmd_status)

    q = sub.add_parser("export", help="write the labelled cases (inputs where logged, prediction, outcome) to "
                                      "a Parquet or CSV file, for retraining")
    q.add_argument("path", type=Path)
    q.set_defaults(handler=cmd_export)


def cmd_import(args: argparse.Namespace) -> int:
    from ..feedback.imports import import_outcomes
    from ..feedback.settings import load_feedback_settings
    from ..core.project import find_project

    project = find_project()
    settings = load_feedback_settings(project.root, key_column=args.key_column,
                                      outcome_column=args.outcome_column, time_column=args.time_column)
    result = import_outcomes(project.root, args.file, settings)
    for line in result.rejected[:20]:
        print(f"nbprod: {line}", file=sys.stderr)
    if len(result.rejected) > 20:
        print(f"nbprod: ... and {len(result.rejected) - 20} more rejected rows", file=sys.stderr)
    print(f"Stored {result.stored} outcome(s) from {args.file} in {project.rel(result.path) if result.path else '-'}"
          f"; {len(result.rejected)} row(s) rejected.")
    _print_counts(result.quality)
    return PARTIAL if result.rejected else 0


def cmd_status(args: argparse.Namespace) -> int:
    from ..feedback.live import live_quality
    from ..feedback.settings import load_feedback_settings
    from ..core.project import find_project

    project = find_project()
    quality = live_quality(project.root, load_feedback_settings(project.root))
    _print_counts(quality)
    for group in quality.details.get("groups") or []:
        label = f"{group['variant']}{' (shadow)' if group['shadow'] else ''} {group['version']}"
        figures = ", ".join(f"{k} {v:.4g}" for k, v in group.items()
                            if isinstance(v, float) and k not in ("coverage",))
        print(f"  {label}: {group['n_outcomes']} of {group['n_predictions']} rows labelled "
              f"(coverage {group['coverage']:.1%}); {group.get('quality') or figures}")
    return 0


def _print_counts(quality) -> None:
    print(f"Outcomes: {quality.note}")
    verdict = quality.details.get("verdict") if quality.details else None
    if verdict:
        print(f"A/B test: {verdict['text']}")


def cmd_export(args: argparse.Namespace) -> int:
    from ..feedback.training_set import export_labelled
    from ..feedback.settings import load_feedback_settings
    from ..core.project import find_project

    project = find_project()
    done = export_labelled(project.root, args.path, load_feedback_settings(project.root))
    print(f"Wrote {done.rows} labelled case(s) to {args.path} (predictions from {done.first or '-'} to "
          f"{done.last or '-'}; inputs {'included' if done.inputs else 'not logged'})")
    print("A retraining stage can declare it as a dependency (deps:" + str(args.path) + ")")
    return 0
