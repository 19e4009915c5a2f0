"""``nbprod report``, ``nbprod metrics`` and ``nbprod compare``: parse arguments, call the report API, print."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..core.errors import NbprodError
from ..core.project import PREDICTIONS_DIR


def register(subparsers) -> None:
    p = subparsers.add_parser("report", help="render HTML reports of executed stages and reports/index.html")
    p.add_argument("stages", nargs="*", metavar="STAGE", help="stages to render (default: every executed stage)")
    p.add_argument("--no-input", action="store_true",
                   help="also write a code-free version (reports/<stage>.noinput.html) for business readers")
    p.set_defaults(handler=cmd_report)

    p = subparsers.add_parser("metrics", help="show the metrics recorded by each stage")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=cmd_metrics)

    p = subparsers.add_parser("compare", help="compare two runs: git revisions, experiment names or 'workspace'")
    p.add_argument("a", metavar="A", nargs="?")
    p.add_argument("b", metavar="B", nargs="?")
    p.add_argument("-o", "--output", type=Path, help="HTML page to write (default: reports/compare-A-B.html)")
    p.add_argument("--variants", nargs="?", const=PREDICTIONS_DIR, type=Path, metavar="LOG_DIR",
                   help="instead: compare the served variants from nbprod serve's prediction log")
    p.add_argument("--outcomes", type=Path, metavar="FILE",
                   help="with --variants: CSV or JSON lines of request_id,row,outcome joined for accuracy")
    p.add_argument("--json", action="store_true", help="with --variants: print JSON")
    p.set_defaults(handler=cmd_compare)


def cmd_report(args: argparse.Namespace) -> int:
    from ..core.project import find_project
    from ..report import render_reports

    project = find_project()
    for path in render_reports(project, args.stages or None, no_input=args.no_input):
        print(path.relative_to(project.root) if path.is_relative_to(project.root) else path)
    return 0


def cmd_metrics(args: argparse.Namespace) -> int:
    from ..core.project import find_project
    from ..report.metrics_table import print_metrics, read_metrics

    metrics = read_metrics(find_project().root)
    if args.json:
        print(json.dumps(metrics, indent=2, sort_keys=True))
    elif not metrics:
        print("No metrics yet: record numbers with nbprod.record(name, value) and run the pipeline.")
    else:
        print_metrics(metrics)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from ..core.project import find_project
    from ..report.comparison import compare, default_output, print_comparison, write_comparison_html

    project = find_project()
    if args.variants is not None:
        return _compare_variants(project.root, args)
    if args.a is None or args.b is None:
        raise NbprodError("compare needs two runs A and B (or --variants)", "nbprod compare",
                          fix="e.g. nbprod compare HEAD~1 workspace, or nbprod compare --variants")
    comparison = compare(project, args.a, args.b)
    print_comparison(comparison)
    out = write_comparison_html(comparison, args.output or default_output(project.root, args.a, args.b))
    print(f"Comparison: {out}")
    return 0


def _compare_variants(root: Path, args: argparse.Namespace) -> int:
    from ..serve.variants import compare_variants, print_variants

    folder = args.variants if args.variants.is_absolute() else root / args.variants
    stats = compare_variants(folder, args.outcomes)
    from ..feedback.live import attach_live, print_live

    rows, live = attach_live(root, folder, [s.to_dict() for s in stats])
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print_variants(stats)
        print_live(live)
    return 0
