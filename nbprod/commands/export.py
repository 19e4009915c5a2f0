"""``nbprod export airflow``: parse arguments, write the DAG file, print where it went."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("export", help="export the pipeline to another engine")
    targets = p.add_subparsers(metavar="TARGET")
    a = targets.add_parser("airflow", help="write an Airflow DAG: one task per stage, recorded with DVC")
    a.add_argument("--out", type=Path, help="DAG file to write (default: dags/nbprod_<project>.py)")
    a.add_argument("--schedule", default="@daily", help='Airflow preset or cron expression, or "none" '
                                                        "(default: @daily)")
    a.add_argument("--project-dir", type=Path,
                   help="where the project is on the Airflow workers (default: this project's path)")
    a.add_argument("--retries", type=int, default=1, help="retries per task (default 1)")
    a.add_argument("--lock-timeout", type=int, default=3600, metavar="SECONDS",
                   help="how long a task waits for another task's recording step (default 3600)")
    a.add_argument("--image", help="one KubernetesPodOperator task running this image (nbprod image build "
                                   "--target run) instead of a BashOperator per stage")
    a.add_argument("--namespace", default="default", help="Kubernetes namespace of that pod (default: default)")
    a.set_defaults(handler=cmd_export_airflow)
    p.set_defaults(handler=lambda args: p.print_help() or 2)


def cmd_export_airflow(args: argparse.Namespace) -> int:
    from ..export.airflow import AirflowOptions, export_airflow
    from ..notebooks.pipeline import load_pipeline
    from ..core.project import find_project

    project = find_project()
    pipeline = load_pipeline(project)
    options = AirflowOptions(project_dir=(args.project_dir or project.root).resolve() if args.project_dir is None
                             else args.project_dir, schedule=args.schedule, retries=args.retries,
                             lock_timeout=args.lock_timeout, image=args.image, namespace=args.namespace)
    path, written = export_airflow(pipeline, args.out.resolve() if args.out else None, options)
    tasks = "1 KubernetesPodOperator task" if args.image else f"{len(pipeline.stages)} tasks"
    print(f"{'Wrote' if written else 'Unchanged:'} {path} ({tasks})")
    return 0
