"""``nbprod data infer|show|validate|drift``: parse arguments, call nbprod.contracts, print.

Exit status: 0 = valid / no data-set drift; 1 = violations / data-set drift (table printed);
2 = bad input (one line, from NbprodError).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..core.errors import NbprodError


def register(subparsers) -> None:
    data = subparsers.add_parser("data", help="data contracts: infer, show and validate schemas; measure drift")
    sub = data.add_subparsers(metavar="ACTION")
    data.set_defaults(handler=lambda args: data.print_help() or 2)

    p = sub.add_parser("infer", help="write schemas/NAME.yaml inferred from a Parquet or CSV file")
    p.add_argument("data", type=Path, metavar="DATA")
    p.add_argument("--name", help="schema name (default: the data file's name)")
    p.add_argument("--force", action="store_true", help="overwrite an existing schema file")
    p.set_defaults(handler=cmd_infer)

    p = sub.add_parser("show", help="print a schema readably")
    p.add_argument("schema", metavar="NAME", help="schema name under schemas/, or a path to its YAML file")
    p.set_defaults(handler=cmd_show)

    p = sub.add_parser("validate", help="check a data file against a schema (exit 1 on violations)")
    p.add_argument("data", type=Path, metavar="DATA")
    p.add_argument("--schema", required=True, metavar="NAME", help="schema name under schemas/, or a path")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=cmd_validate)

    p = sub.add_parser("drift", help="per-column drift of CUR against REF (exit 1 on data-set drift)")
    p.add_argument("reference", type=Path, metavar="REF")
    p.add_argument("current", type=Path, metavar="CUR")
    p.add_argument("--columns", help="comma-separated columns to test (default: all)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=cmd_drift)


def _root() -> Path | None:
    from ..contracts.schemas import project_root_of

    return project_root_of(Path.cwd())


def cmd_infer(args: argparse.Namespace) -> int:
    from ..contracts.datafile import read_data
    from ..contracts.schemas import SCHEMA_DIR, infer_schema, save_schema

    name = args.name or args.data.name.split(".", 1)[0]
    if not name or not all(ch.isalnum() or ch in "_-" for ch in name):
        raise NbprodError(f"schema name {name!r} must hold only letters, digits, '_' and '-'",
                          fix="pass --name NAME")
    root = _root() or Path.cwd()
    target = root / SCHEMA_DIR / f"{name}.yaml"
    if target.exists() and not args.force:
        raise NbprodError("already exists (a reviewed contract is never overwritten silently)", target,
                          fix="pass --force to replace it, or --name to write another one")
    frame = read_data(args.data, _root())
    save_schema(infer_schema(frame, name), target, source=args.data.as_posix())
    shown = target.relative_to(root) if target.is_relative_to(root) else target
    print(f"Wrote {shown}: {len(frame.columns)} columns from {len(frame)} rows. "
          "Review it (ranges, categories, nullability), then commit it.")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from ..contracts.schemas import resolve_schema, show_schema

    print(show_schema(resolve_schema(args.schema, Path.cwd(), _root())))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from ..contracts.datafile import read_data
    from ..contracts.schemas import load_schema, resolve_schema
    from ..contracts.validation import check_frame

    path = resolve_schema(args.schema, Path.cwd(), _root())
    load_schema(path)  # a bad schema file is bad input (exit 2) before the data is read
    result = check_frame(read_data(args.data, _root()), path)
    if args.json:
        print(json.dumps({"schema": result.schema, "path": str(result.path), "passed": result.passed,
                          "rows": result.rows, "failed_rows": result.failed_rows,
                          "failures": [vars(f) for f in result.failures]}, indent=2))
        return 0 if result.passed else 1
    if result.passed:
        print(f"{args.data}: valid against {result.path} ({result.rows} rows)")
        return 0
    print(f"{args.data}: {result.failed_rows} of {result.rows} rows fail {result.path}")
    rows = [("column", "check", "failing rows", "first failing values")]
    rows += [(f.column, f.check, "whole column" if f.rows is None else str(f.rows), ", ".join(f.values))
             for f in result.failures]
    _print_table(rows)
    return 1


def cmd_drift(args: argparse.Namespace) -> int:
    from ..contracts.datafile import read_data
    from ..contracts.drift import compute_drift, load_drift_config

    columns = [c.strip() for c in args.columns.split(",") if c.strip()] if args.columns else None
    root = _root()
    config = load_drift_config(root)
    report = compute_drift(read_data(args.reference, root), read_data(args.current, root), columns, config)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return 1 if report.dataset_drifted else 0
    tested = [c for c in report.columns if c.tested]
    print(f"{'Data-set drift' if report.dataset_drifted else 'No data-set drift'}: "
          f"{len(report.drifted_columns)} of {len(tested)} columns drifted (share {report.share:.2f}, "
          f"threshold {report.share_threshold:.2f})")
    rows = [("column", "type", "test", "score", "threshold", "drifted", "note")]
    for c in report.columns:
        rows.append((c.column, c.type, c.test or "-", "-" if c.score is None else f"{c.score:.4g}",
                     "-" if c.threshold is None else f"{c.threshold:g}",
                     "yes" if c.drifted else ("no" if c.tested else "-"), c.note))
    _print_table(rows)
    return 1 if report.dataset_drifted else 0


def _print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join([cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])] + [row[-1]]).rstrip())
