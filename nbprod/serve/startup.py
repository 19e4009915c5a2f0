"""Starting the service: the version is resolved and loaded (and smoke-tested) in the command's own
process first, so every reason not to start is one line before uvicorn runs; then uvicorn serves it,
in this process (one worker) or in N worker processes that each load and hot-swap on their own."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ..core.errors import NbprodError
from .loader import resolve
from .loaded import LoadedModel, load_version
from .settings import ENV, ServeSettings
from .swap import say


def preload(settings: ServeSettings) -> tuple[LoadedModel, LoadedModel | None]:
    """The production (or pinned) version and the challenger, loaded and smoke-tested, or NbprodError."""
    root = Path(settings.root)
    from nbprod.feedback.settings import request_keys

    extra = request_keys(root, settings.route_field)
    loaded = []
    for text in (settings.version, settings.challenger) if settings.challenger else (settings.version,):
        info = resolve(root, settings.model, text)
        try:
            loaded.append(load_version(root, info, settings.max_batch, extra))
        except NbprodError:
            raise
        except Exception as exc:  # noqa: BLE001 - the user's model code can raise anything: one line for it
            raise NbprodError(f"cannot serve {info.tag}: loading or its smoke prediction failed "
                              f"({type(exc).__name__}: {str(exc)[:200]})", info.model_path,
                              fix="serve another version (--version) or roll production back") from None
    return loaded[0], (loaded[1] if len(loaded) > 1 else None)


def _require_free(host: str, port: int) -> None:
    """One line instead of uvicorn's log when the address is taken (checked again by the real bind)."""
    import socket

    try:
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise NbprodError(f"cannot listen on {host}:{port} ({reason})", "--port",
                          fix="choose another --port, or stop what listens there") from None


def serve(settings: ServeSettings, access_log: bool = False) -> None:
    """Serve until stopped; nbprod's and uvicorn's logs go to stderr as JSON lines (``access_log``:
    one line a request, off by default: the prediction log already holds every answer)."""
    import logging

    import uvicorn

    from ..core.logger import NAME, configure, uvicorn_log_config

    level = min(logging.getLogger(NAME).getEffectiveLevel(), logging.INFO)  # -v / NBPROD_LOG_LEVEL may lower it
    configure(level, json_lines=True)
    _require_free(settings.host, settings.port)
    prod, challenger = preload(settings)
    where = f"http://{settings.host}:{settings.port}"
    mode = f"pinned to {prod.version}" if settings.version else f"polling tags every {settings.poll_interval:g} s"
    extra = f", challenger {challenger.version} ({'shadow' if settings.shadow else 'split'})" if challenger else ""
    say(f"serving {settings.model}@{prod.version} on {where} with {settings.workers} worker(s), {mode}{extra}")
    common = {"host": settings.host, "port": settings.port, "access_log": access_log,
              "log_config": uvicorn_log_config(level), "timeout_graceful_shutdown": 5}
    if settings.workers == 1:
        from .app import create_app

        uvicorn.run(create_app(settings, prod, challenger), **common)
        return
    metrics_dir = tempfile.mkdtemp(prefix="nbprod-serve-metrics-")
    settings.metrics_dir = metrics_dir
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    os.environ[ENV] = settings.to_env()
    try:
        uvicorn.run("nbprod.serve.app:app_from_env", factory=True, workers=settings.workers, **common)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
