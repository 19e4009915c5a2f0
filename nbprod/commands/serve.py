"""``nbprod serve``: real-time scoring of the production model (see nbprod/serve/)."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("serve", help="serve the production model over HTTP (FastAPI + uvicorn)")
    p.add_argument("--host", default=None, help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default 8000)")
    p.add_argument("--workers", type=int, default=None, metavar="N", help="worker processes (default 1)")
    p.add_argument("--version", dest="model_version", default=None, metavar="VERSION",
                   help="serve this registered version instead of production (no hot swap)")
    p.add_argument("--poll-interval", type=float, default=None, metavar="SECONDS",
                   help="how often each worker looks at the registry tags (default 1.0)")
    p.add_argument("--access-log", action="store_true", help="log every request (uvicorn's access log, JSON lines)")
    p.set_defaults(handler=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from ..lifecycle.settings import load_config
    from ..core.project import find_project
    from ..serve.startup import serve
    from ..serve.settings import load_settings

    project = find_project()
    config = load_config(project)
    from ..feedback.settings import load_feedback_settings

    load_feedback_settings(project.root)  # a bad [tool.nbprod.feedback] stops here, not in a worker
    settings = load_settings(project.root, config.model_name, host=args.host, port=args.port,
                             workers=args.workers, version=args.model_version, poll_interval=args.poll_interval)
    serve(settings, access_log=args.access_log)
    return 0
