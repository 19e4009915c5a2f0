"""The pipeline's own commands: init, compile, exec, run, status, debug, pipeline, schema."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..core.project import REPORTS_DIR
from ..execution.executors import EXECUTORS
from .scaffold import template_names


def register(sub) -> None:
    p = sub.add_parser("init", help="create a project with example notebooks, git and DVC")
    p.add_argument("path", type=Path)
    p.add_argument("--no-git", action="store_true", help="do not run git init (inside an existing repository)")
    p.add_argument("--template", default="example", metavar="NAME",
                   help="project template: " + ", ".join(template_names()) + " (default: example)")
    p.set_defaults(handler=cmd_init)

    p = sub.add_parser("compile", help="generate stage notebooks, dvc.yaml stages and params.yaml")
    p.add_argument("path", nargs="?", type=Path, default=None, help="project folder (default: here)")
    p.add_argument("--check", action="store_true", help="exit 1 when generated files are stale")
    p.set_defaults(handler=cmd_compile)

    p = sub.add_parser("exec", help="run one stage notebook (the cmd of each DVC stage)")
    p.add_argument("stage")
    p.set_defaults(handler=cmd_exec)

    p = sub.add_parser("run", help="compile when needed and reproduce the pipeline")
    p.add_argument("stages", nargs="*", help="stages to reproduce, with what they depend on (default: all)")
    p.add_argument("--from", dest="from_stage", metavar="STAGE", help="reproduce STAGE and everything after it")
    p.add_argument("--force", action="store_true", help="rerun stages even when up to date")
    p.add_argument("--events", type=Path, help="append run events (JSON lines) to this file")
    p.add_argument("--no-report", action="store_true", help="skip rendering HTML reports after the run")
    p.add_argument("-k", "--keep-going", action="store_true",
                   help="after a failure, still run the stages that do not depend on the failed one")
    p.add_argument("-j", "--jobs", type=int, default=1, metavar="N",
                   help="run up to N independent stages at a time (default 1)")
    p.add_argument("--executor", choices=tuple(EXECUTORS),
                   help="where stages run: " + " or ".join(EXECUTORS) + " (local processes or a Dask cluster; "
                        "default: [tool.nbprod] executor, else local)")
    p.add_argument("--lock-timeout", type=float, default=0.0, metavar="SECONDS",
                   help="wait up to SECONDS for another run of this project to finish (default: refuse at once)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="Dask scheduler, tcp://HOST:PORT (default: [tool.nbprod.dask] scheduler, "
                        "else a local cluster of processes)")
    p.add_argument("--dvc-repro", action="store_true",
                   help="let a 'dvc repro' process run the stages instead of nbprod's scheduler (serial)")
    p.add_argument("--record", action="store_true",
                   help="keep this run as an immutable record under records/ (for nbprod monitor)")
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser("status", help="each stage up to date or changed, and why")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_status)

    p = sub.add_parser("debug", help="a stage on its own, with its inputs loaded from the DVC cache")
    p.add_argument("stage")
    p.add_argument("--console", action="store_true", help="start IPython instead of writing a notebook")
    p.set_defaults(handler=cmd_debug)

    p = sub.add_parser("pipeline", help="print the stages, their edges and files as JSON")
    p.add_argument("--text", action="store_true", help="print them as text, with what compile carries between stages")
    p.set_defaults(handler=cmd_pipeline)

    p = sub.add_parser("schema", help="print the tag schema JSON that the JupyterLab extension loads")
    p.set_defaults(handler=cmd_schema)


def cmd_init(args) -> int:
    from .scaffold import init_project

    root = init_project(args.path, git=not args.no_git, template=args.template)
    print(f"Created nbprod project in {root}")
    print(f"Next: cd {args.path} && nbprod run")
    return 0


def cmd_compile(args) -> int:
    from ..notebooks.compile import compile_project
    from ..core.project import find_project

    project = find_project(args.path)
    result = compile_project(project, check=args.check)
    stale = result.changed + result.removed
    if args.check:
        if stale:
            print("Generated files are stale: " + ", ".join(stale), file=sys.stderr)
            print("Run 'nbprod compile' and commit the result.", file=sys.stderr)
            return 1
        print(f"Generated files are up to date ({len(result.pipeline.stages)} stages).")
        return 0
    if stale:
        for rel in result.changed:
            print(f"wrote {rel}")
        for rel in result.removed:
            print(f"removed {rel}")
    else:
        print(f"Nothing to change ({len(result.pipeline.stages)} stages up to date).")
    return 0


def cmd_exec(args) -> int:
    from ..execution.stage import exec_stage

    exec_stage(args.stage)
    return 0


def cmd_run(args) -> int:
    from .console import RunView, print_summary
    from ..core.project import find_project
    from ..execution.run import run_pipeline

    project = find_project()
    view = RunView()
    reports = None if args.no_report else _report_worker(project)

    def on_event(event: dict) -> None:
        view.on_event(event)
        if reports is not None:
            reports.on_event(event)  # each stage's report renders as it ends, while the next runs

    try:
        with view:
            result = run_pipeline(project, args.stages or None, from_stage=args.from_stage, force=args.force,
                                  events_path=args.events, on_event=on_event, jobs=args.jobs,
                                  executor=args.executor, dvc_repro=args.dvc_repro, scheduler=args.scheduler,
                                  keep_going=args.keep_going, lock_timeout=args.lock_timeout)
    except BaseException:
        if reports is not None:
            reports.close()
        raise
    print_summary(result.outcomes)
    if reports is not None:
        _finish_reports(project, reports)
    if args.record:  # after the reports, so the record holds this run's HTML too
        from .monitor import record_run

        print(f"Record: records/{record_run(project, result.events)}")
    if not result.ok:
        print(f"nbprod: {result.message}", file=sys.stderr)
        for outcome in result.outcomes:  # with --keep-going, every other failure too
            if outcome.state == "failed" and outcome.message and outcome.message != result.message:
                print(f"nbprod: {outcome.message}", file=sys.stderr)
        return 1
    return 0


def _report_worker(project):
    try:
        from ..report.worker import ReportWorker
    except ImportError:
        return None
    return ReportWorker(project)


def _finish_reports(project, reports) -> None:
    """Wait for the reports still rendering; a no-op run renders (and writes) nothing."""
    if reports.finish() != 0:
        print(f"nbprod: rendering the reports failed; see {project.rel(reports.log)}", file=sys.stderr)
    index = project.root / REPORTS_DIR / "index.html"
    if index.exists():
        print(f"Reports: {index}")


def cmd_status(args) -> int:
    from .console import print_status
    from ..core.project import find_project
    from ..execution.status import pipeline_status

    statuses = pipeline_status(find_project())
    if args.json:
        print(json.dumps([s.to_dict() for s in statuses], indent=2))
    else:
        print_status(statuses)
    return 0


def cmd_debug(args) -> int:
    from ..execution.debug import debug_console, debug_notebook
    from ..core.project import find_project

    project = find_project()
    if args.console:
        return debug_console(project, args.stage)
    path = debug_notebook(project, args.stage)
    print(f"Debug notebook: {path}")
    print("Open it in JupyterLab and run its cells; the stage's inputs load from the DVC cache.")
    return 0


def cmd_pipeline(args) -> int:
    from ..notebooks.pipeline import load_pipeline
    from ..core.project import find_project

    data = load_pipeline(find_project()).to_dict()
    if args.text:
        from .console import pipeline_text

        print(pipeline_text(data))
    else:
        print(json.dumps(data, indent=2))
    return 0


def cmd_schema(args) -> int:
    from ..notebooks.tags import SCHEMA

    print(json.dumps(SCHEMA, indent=2, sort_keys=True))
    return 0
