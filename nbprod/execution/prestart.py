"""A pre-started ``nbprod exec``: Python up and Papermill imported, waiting on stdin for its one stage.

Protocol: one JSON line ``{"stage", "cwd", "env", "log", "run"}``. With ``"run": false`` the stage
is only announced: its kernel is started at once, and the stage runs when the line ``run`` follows
(end of input instead: the kernel is shut down and nothing runs).

``LocalExecutor`` keeps one per slot, so a stage's process start-up happens while the previous stage
runs. It still runs exactly one stage, in its own fresh kernel, with the job's environment, working
directory and log, through the same code and exit statuses as ``nbprod exec``; then it exits.
"""

from __future__ import annotations

import json
import os
import sys


def main() -> int:
    from .stage import import_papermill
    from .lifeline import watch_run

    watch_run()  # before the slow imports: a run killed meanwhile takes this process with it

    import_papermill()
    from .kernel import manager_class

    manager_class()  # jupyter_client's manager and client, used by nbprod.kernel.start_kernel

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
    if not job.get("run", True):
        # Announced ahead: start the stage's kernel now, run the stage only when told to.
        from .stage import prestart_kernel, stop_prestarted

        try:
            prestart_kernel(job["stage"])
        except Exception:  # noqa: BLE001 - exec_stage starts its own kernel and reports any error
            stop_prestarted()
        if sys.stdin.readline().strip() != "run":
            stop_prestarted()  # not needed after all (stage unchanged, run stopped)
            return 0
    from ..core.errors import NbprodError, StageFailed, exit_status
    from .stage import exec_stage, stop_prestarted

    try:
        exec_stage(job["stage"])  # what `nbprod exec STAGE` runs, with the same exit statuses
        return 0
    except (NbprodError, StageFailed, KeyboardInterrupt) as exc:
        return exit_status(exc)
    finally:
        stop_prestarted()  # a stage that stopped before using its kernel must not leave it running


if __name__ == "__main__":
    code = main()
    # This process ran its one stage and its kernel has exited: skip the interpreter's teardown of
    # Papermill, jupyter_client and friends (nothing of the user's lives here), as forked children do.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code if isinstance(code, int) else 1)
