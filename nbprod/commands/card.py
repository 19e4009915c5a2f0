"""``nbprod card VERSION``: write a registered version's model card (argument parsing and printing only;
the work is in ``nbprod.modelcard``)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("card", help="write a registered version's model card (HTML and Markdown)")
    p.add_argument("version", help="e.g. v1.0.0 or model@v1.0.0")
    p.add_argument("--model", help="registry name (default: [tool.nbprod] model_name)")
    p.add_argument("-o", "--output", type=Path, help="folder to write to (default: reports/cards/)")
    p.set_defaults(handler=cmd_card)


def cmd_card(args: argparse.Namespace) -> int:
    from ..lifecycle.settings import load_config
    from ..modelcard.build import write_card
    from ..core.project import find_project

    project = find_project()
    model = args.model or load_config(project).model_name
    written = write_card(project, model, args.version, args.output)
    print(f"model card: {written.html}")
    print(f"            {written.markdown}")
    return 0
