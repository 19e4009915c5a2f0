"""Stage processes end with the run that started them, even when that run is killed with SIGKILL.

The executor starts each stage in its own session (so Ctrl-C reaches the run first, which then stops
its stages in order), and jupyter_client starts each kernel in yet another session: nothing would
take them down with a ``kill -9``-ed ``nbprod run``. A daemon thread in the stage process watches the
run's pid; when the run is gone it kills the stage's descendants (the kernel) and exits, so no
orphan goes on writing into the project after the next run has started.
"""

from __future__ import annotations

import os
import signal
import threading

RUN_PID_ENV = "NBPROD_RUN_PID"
_watching = False


def watch_run(interval: float = 0.5) -> None:
    """Start watching the run named in NBPROD_RUN_PID (set by ``nbprod run``); no-op otherwise."""
    try:
        run_pid = int(os.environ.get(RUN_PID_ENV, ""))
    except ValueError:
        return
    global _watching
    if run_pid <= 1 or run_pid == os.getpid() or _watching:
        return
    _watching = True
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval):
            if not pid_alive(run_pid):
                _kill_descendants(os.getpid())
                os._exit(137)

    threading.Thread(target=loop, name="nbprod-lifeline", daemon=True).start()


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie left unreaped counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed run that nobody reaped yet is a zombie: gone all the same
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def _kill_descendants(root: int) -> None:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                ppid = int(handle.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    todo, found = [root], []
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    for pid in found:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
