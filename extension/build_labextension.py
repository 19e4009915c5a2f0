"""hatch-jupyter-builder build function: build the labextension into extension/labextension for the wheel.

Builds with @jupyterlab/builder's own ``build-labextension --core-path <jupyterlab>/staging`` instead of
``jupyter labextension build``, which looks up @jupyterlab/core-meta online (see docs/extension.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXTENSION = Path(__file__).resolve().parent
BUILT = EXTENSION / "labextension"


def _jlpm() -> list[str]:
    """The yarn that the installed JupyterLab ships, run with this interpreter."""
    try:
        import jupyter_builder.jlpm  # noqa: F401  (JupyterLab >= 4.6)

        module = "jupyter_builder.jlpm"
    except ImportError:
        module = "jupyterlab.jlpmapp"
    return [sys.executable, "-c", f"import sys; from {module} import main; sys.exit(main())"]


def build(target_name: str, version: str, **_: object) -> None:
    if target_name != "wheel":
        return  # the sdist carries sources; a wheel built from it runs this again
    import jupyterlab

    staging = Path(jupyterlab.__file__).resolve().parent / "staging"
    env = {**os.environ, "NBPROD_JUPYTERLAB_STAGING": str(staging)}
    subprocess.run([*_jlpm(), "install"], cwd=EXTENSION, env=env, check=True)
    subprocess.run([*_jlpm(), "run", "build:prod"], cwd=EXTENSION, env=env, check=True)
    if not (BUILT / "package.json").is_file() or not list((BUILT / "static").glob("remoteEntry.*.js")):
        raise RuntimeError(f"the labextension build left no remoteEntry in {BUILT / 'static'}")
