"""Running the tools nbprod drives (git, dvc, nbprod itself) from Python: where they are, the
environment they get, and how a process group started for them is stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path


def bin_dir() -> Path:
    """The folder of this interpreter's scripts (the venv's ``bin``), where pip put dvc and nbprod."""
    return Path(sys.executable).parent


def tool(name: str) -> str:
    """The command for ``name``: this environment's own copy when it has one (a venv that is not
    activated), otherwise the name, found on PATH."""
    local = bin_dir() / name
    return str(local) if local.exists() else name


def tool_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """A copy of ``env`` (default: this process's) with this environment's bin folder first on PATH,
    so that the ``nbprod exec`` in a stage's cmd (run by DVC, a shell or a kernel) is this nbprod."""
    env = dict(os.environ if env is None else env)
    env["PATH"] = str(bin_dir()) + os.pathsep + env.get("PATH", "")
    return env


def git(root: Path, *args: str, input: str | bytes | None = None, text: bool = True,
        env: dict[str, str] | None = None, timeout: float | None = None) -> subprocess.CompletedProcess:
    """``git ARGS`` in ``root``, output captured, never raising for a non-zero exit (the caller
    decides what a failure means). Raises OSError when git is missing and TimeoutExpired."""
    return subprocess.run(["git", *args], cwd=root, input=input, capture_output=True, text=text, env=env,
                          timeout=timeout, check=False)


def git_output(root: Path, *args: str, timeout: float | None = 30) -> str | None:
    """The stripped stdout of ``git ARGS``, or None when git failed, is missing or timed out."""
    try:
        done = git(root, *args, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def stop_group(process: subprocess.Popen, first: int = signal.SIGINT, grace: float = 30.0) -> int:
    """Stop a process started with ``start_new_session=True`` and everything it started: ``first``
    to its process group (SIGINT: what Ctrl-C in a terminal sends), SIGKILL to the group after
    ``grace`` seconds; returns its exit status."""
    for sig, wait in ((first, grace), (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass  # already gone (a zombie's group is empty)
        try:
            return process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    return process.wait()
