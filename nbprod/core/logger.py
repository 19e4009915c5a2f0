"""The one ``nbprod`` logger: every module logs to ``logging.getLogger(__name__)`` (a child of it),
the CLI sets its level (``-v``/``-vv`` or ``NBPROD_LOG_LEVEL``) and ``nbprod serve`` writes it, with
uvicorn's loggers, as JSON lines. An error nbprod deliberately gets past leaves a debug line."""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import datetime, UTC

from ..core.errors import NbprodError

NAME = "nbprod"
ENV = "NBPROD_LOG_LEVEL"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def level_from(verbose: int = 0, environ: dict[str, str] | None = None) -> int:
    """WARNING by default; ``-v`` INFO, ``-vv`` DEBUG; NBPROD_LOG_LEVEL (a level name) when no -v."""
    if verbose:
        return logging.INFO if verbose == 1 else logging.DEBUG
    text = (os.environ if environ is None else environ).get(ENV, "").strip().upper()
    if not text:
        return logging.WARNING
    if text not in LEVELS:
        raise NbprodError(f"{text.lower()!r} is not a log level", ENV,
                          fix=f"use one of {', '.join(LEVELS)} (or unset it)")
    return getattr(logging, text)


def configure(level: int, json_lines: bool = False) -> logging.Logger:
    """Send the nbprod logger to stderr at ``level`` (replacing a handler set before), one line a record."""
    logger = logging.getLogger(NAME)
    for handler in [h for h in logger.handlers if getattr(h, "_nbprod", False)]:
        logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._nbprod = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonLinesFormatter() if json_lines else logging.Formatter("nbprod: %(levelname)s: "
                                                                                   "%(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return logger


class JsonLinesFormatter(logging.Formatter):
    """One JSON object a line: time (UTC), level, logger, message, and the exception when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                 "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, sort_keys=False)


def uvicorn_log_config(level: int) -> dict:
    """uvicorn's ``log_config``: its loggers and nbprod's as JSON lines on stderr, in every worker
    process (uvicorn applies it in each)."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    name = logging.getLevelName(level)
    return {
        "version": 1, "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonLinesFormatter"}},
        "handlers": {"json": handler},
        "loggers": {"uvicorn": {"handlers": ["json"], "level": "WARNING", "propagate": False},
                    "uvicorn.error": {"level": "WARNING"},
                    "uvicorn.access": {"handlers": ["json"], "level": "INFO", "propagate": False},
                    NAME: {"handlers": ["json"], "level": name, "propagate": False}},
    }
