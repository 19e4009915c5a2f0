"""A pre-started ``nbprod exec``: Python up and Papermill imported, waiting on stdin for its one stage.

``LocalExecutor`` keeps one per slot, so a stage's process start-up happens while the previous stage
runs. It still runs exactly one stage, in its own fresh kernel, with the job's environment, working
directory and log, through the same ``nbprod exec`` code and exit codes; then it exits.
"""

from __future__ import annotations

import json
import os
import sys


def main() -> int:
    from .execute import _fast_imports

    _fast_imports()
    import jupyter_client.manager  # noqa: F401 - used by execute._start_kernel
    import jupyter_core.utils  # noqa: F401

    from . import cli

    line = sys.stdin.readline()
    if not line.strip():
        return 0  # the executor closed without a job for this process
    job = json.loads(line)
    os.environ.clear()
    os.environ.update(job["env"])
    os.chdir(job["cwd"])
    log = os.open(job["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(log, 1)  # the kernel inherits these, as it would under `nbprod exec`
    os.dup2(log, 2)
    os.close(log)
    return cli.main(["exec", job["stage"]])


if __name__ == "__main__":
    sys.exit(main())
