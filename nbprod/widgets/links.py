"""Links from a panel in a notebook to a project's files, as the front end serving it can open them."""

from __future__ import annotations

import html
import json
import os
from pathlib import Path


def _server() -> tuple[Path, str] | None:
    """(root_dir, base_url) of the Jupyter server that started this kernel, from its runtime file.

    jupyter_client gives every kernel ``JPY_PARENT_PID`` (the server's pid) and the server writes
    ``jpserver-<pid>.json``; VS Code and plain IPython have neither, and get ``file:`` links.
    """
    pid = os.environ.get("JPY_PARENT_PID")
    if not pid:
        return None
    try:
        from jupyter_core.paths import jupyter_runtime_dir

        info = json.loads((Path(jupyter_runtime_dir()) / f"jpserver-{pid}.json").read_text(encoding="utf-8"))
        return Path(info["root_dir"]).expanduser().resolve(), info.get("base_url", "/")
    except (OSError, ValueError, KeyError, ImportError):
        return None


def href(path: Path, here: Path) -> str:
    """A URL for ``path``: an executed notebook opens in the front end (relative to the notebook's
    folder: Lab's /lab/tree/... and Notebook 7's /notebooks/... both resolve it), any other file
    through the server's /files/ handler."""
    server = _server()
    if server is None:
        return path.resolve().as_uri()
    root, base = server
    if path.suffix == ".ipynb":
        return os.path.relpath(path, here).replace(os.sep, "/")
    try:
        return base.rstrip("/") + "/files/" + path.resolve().relative_to(root).as_posix()
    except ValueError:
        return path.resolve().as_uri()


def anchor(path: Path, here: Path, label: str) -> str:
    return f'<a href="{html.escape(href(path, here))}" target="_blank">{html.escape(label)}</a>'
