"""``nbprod.panel()``: the project's pipeline in any notebook front end that renders ipywidgets."""

from __future__ import annotations

import os
from pathlib import Path


def panel(path: str | Path | None = None, poll: float = 0.5):
    """Show the pipeline of the project around ``path`` (default: this notebook's folder).

    Every stage with its status and why, Run all / Run this stage / Run from here / Cancel / Refresh,
    live progress of any run of the project (started here, in Lab or in a terminal), the last
    metrics, and links to executed notebooks and HTML reports. Runs are ``nbprod run`` processes
    outside this kernel. Outside a kernel (plain Python, a terminal) it prints the status table.
    """
    from nbprod.core.project import find_project

    here = Path(path or Path.cwd()).resolve()
    project = find_project(here)
    if not in_kernel():
        from .status_probe import StatusError, stage_rows, stage_status, status_table

        try:
            print(status_table(stage_rows(project.root, stage_status(project.root))))
        except StatusError as exc:
            print(f"nbprod: {exc}")
        return None
    from .view import Panel

    folder = here if here.is_dir() else here.parent
    notebook = os.environ.get("JPY_SESSION_NAME")
    if path is None and notebook:
        folder = Path(notebook).parent
    return Panel(project.root, folder, poll=poll)


def in_kernel() -> bool:
    """Whether this code runs in a Jupyter kernel, the only place a widget can be shown."""
    import sys

    if "IPython" not in sys.modules:
        return False
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None
