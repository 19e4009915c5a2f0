"""The ``nbprod`` command line: assembles the command groups of ``nbprod/commands/`` (each has
``register(subparsers)``) and turns user errors into their exit status."""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__
from .core.errors import NbprodError, StageFailed, exit_status

# In the order `nbprod --help` lists them.
COMMAND_MODULES = ("nbprod.commands.workflow", "nbprod.commands.report", "nbprod.commands.lifecycle",
                   "nbprod.commands.data", "nbprod.commands.serve", "nbprod.commands.image",
                   "nbprod.commands.export", "nbprod.commands.monitor",
                   "nbprod.commands.card", "nbprod.commands.feedback", "nbprod.commands.db",
                   "nbprod.commands.learn")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        from .core.logger import configure, level_from

        configure(level_from(args.verbose))
        return int(args.handler(args) or 0)
    except (NbprodError, StageFailed, KeyboardInterrupt) as exc:
        return exit_status(exc)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nbprod", description="Tagged notebooks as DVC + Papermill pipelines.")
    parser.add_argument("--version", action="version", version=f"nbprod {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log what nbprod does (-v) and every error it gets past (-vv); or NBPROD_LOG_LEVEL")
    sub = parser.add_subparsers(metavar="COMMAND")

    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        module.register(sub)
    return parser


if __name__ == "__main__":
    sys.exit(main())
