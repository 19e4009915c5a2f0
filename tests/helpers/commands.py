"""Running real commands (git, dvc, nbprod) in a test, their output shown when they fail unexpectedly."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from helpers.paths import BIN

# pytest's own per-test limit (timeout in pyproject.toml): no command of a test may outlast it.
PYTEST_TIMEOUT = 600


def run(*command, cwd: Path, check: bool = True, env: dict | None = None, timeout: float = PYTEST_TIMEOUT):
    """Run a real command; on unexpected failure show its output in the test report."""
    assert timeout <= PYTEST_TIMEOUT, f"a command timeout of {timeout} s outlasts pytest's {PYTEST_TIMEOUT} s"
    done = subprocess.run([str(c) for c in command], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"{command} exited {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}")
    return done


def nbprod(*args, cwd: Path, **kwargs):
    return run(BIN / "nbprod", *args, cwd=cwd, **kwargs)
