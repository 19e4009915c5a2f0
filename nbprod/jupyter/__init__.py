"""The nbprod Jupyter server extension: REST endpoints for the JupyterLab UI, over nbprod's Python API."""

from __future__ import annotations


def _jupyter_server_extension_points() -> list[dict]:
    return [{"module": "nbprod.jupyter"}]


def _load_jupyter_server_extension(serverapp) -> None:
    from .handlers import setup_handlers

    setup_handlers(serverapp)
    serverapp.log.info("nbprod server extension loaded: /nbprod/api")
