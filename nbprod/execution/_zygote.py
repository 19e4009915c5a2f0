"""A kernel zygote: a Python process that has imported ipykernel (and, optionally, the third-party
modules the pipeline's stages import), then forks one fresh kernel per stage on request.

Run by ``nbprod run`` with the kernel's own interpreter, as a script (so it needs only the standard
library and ipykernel, not nbprod). See ``nbprod/execution/kernelpool.py`` for the whole design; in short:

* argv: ``_zygote.py LISTEN_FD RUN_PID STATUS_DIR``. ``LISTEN_FD`` is a listening Unix socket the run
  created (so stages can connect before this process is ready: they wait in its backlog);
  ``RUN_PID`` is the run, whose end ends this process; ``STATUS_DIR`` receives each kernel's exit
  status as ``exit-PID``.
* stdin: one JSON line ``{"cwd": ..., "preload": [...]}``, then nothing; end of input ends the zygote.
* stdout: one JSON line once the preload is done or has stopped: ``{"preloaded": [...], "refusing":
  null | "why"}``.
* a request on the socket: one JSON line ``{"argv", "cwd", "env", "needs"}`` with two file
  descriptors (the kernel's stdout and stderr); ``needs`` are the modules the stage imports. The
  reply: ``{"pid": N, "preloaded": [...]}`` with a pidfd of the kernel; ``{"wait": true}`` while
  those modules are still being imported (they are imported next; the caller asks again); or
  ``{"refused": "why"}`` (the caller then starts its kernel the usual way).

A forked kernel is what ``python -m ipykernel_launcher ARGS`` started in ``cwd`` with ``env`` would be
(same interpreter, arguments, sys.argv, sys.path, working directory, environment, session, standard
streams, fresh numpy and ``random`` seeds), except that the preloaded modules are already imported.
"""

import sys

del sys.path[0]  # this script's folder (nbprod/) must not shadow any module the kernel imports

import gc  # noqa: E402 - imported after sys.path is fixed above
import json  # noqa: E402 - imported after sys.path is fixed above
import os  # noqa: E402 - imported after sys.path is fixed above
import select  # noqa: E402 - imported after sys.path is fixed above
import signal  # noqa: E402 - imported after sys.path is fixed above
import socket  # noqa: E402 - imported after sys.path is fixed above
import threading  # noqa: E402 - imported after sys.path is fixed above
import time  # noqa: E402 - imported after sys.path is fixed above

# Variables that legitimately differ between stages of one run; any other difference between a
# request's environment and this process's start-up environment (which the preloaded modules saw
# when they were imported) and the request is refused.
PER_STAGE_PREFIXES = ("NBPROD_", "JPY_", "DVC_")
LAUNCHER = ("-m", "ipykernel_launcher")
INLINE = "module://matplotlib_inline.backend_inline"
ORIGINAL_ENV = dict(os.environ)
BASE_PATH = list(sys.path)  # what ipykernel_launcher leaves: the interpreter's path without the cwd


def main():
    listen_fd, run_pid, status_dir = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    listener = socket.socket(fileno=listen_fd)
    run_fd = os.pidfd_open(run_pid)
    # What a kernel does first, before any user code: its matplotlib backend (IPKernelApp).
    if not os.environ.get("MPLBACKEND"):
        os.environ["MPLBACKEND"] = INLINE
    import ipykernel.ipkernel  # the kernel itself, IPython, zmq, tornado
    import ipykernel.kernelapp
    import ipykernel.zmqshell  # noqa: F401 - imported ahead, for the kernels

    line = sys.stdin.readline()
    if not line.strip():
        return None  # the run ended before it needed this zygote
    config = json.loads(line)
    os.chdir(config["cwd"])
    return Zygote(listener, run_fd, status_dir, Preloader(config.get("preload", []))).serve()


class Preloader:
    """The modules still to import, one at a time, those a waiting stage needs first."""

    def __init__(self, names: list):
        self.local = _local_names(os.getcwd())
        self.todo = list(names)
        self.done: list = []
        self.refusing = None  # why kernels can no longer be served exactly (then: refuse)

    def step(self, first: list) -> None:
        wanted = [name for name in self.todo if name in first]
        name = wanted[0] if wanted else self.todo[0]
        self.todo.remove(name)
        if name.split(".")[0] in self.local:
            return  # the stage imports its own file of that name
        if name == "matplotlib.pyplot" and os.environ.get("MPLBACKEND") != INLINE:
            return  # pyplot may pick a GUI backend at import; only the kernel's inline one is safe
        before = set(sys.modules)
        try:
            __import__(name)
        except BaseException as exc:  # noqa: BLE001 - the stage will meet the same error itself
            self.stop(f"preloading {name} failed ({type(exc).__name__})")
            return
        self.done.append(name)
        shadowed = sorted({m.split(".")[0] for m in set(sys.modules) - before} & self.local)
        if shadowed:  # a preloaded module imported something the stage's folder would provide
            self.stop(f"{shadowed[0]} is both a preloaded dependency and a file in the stage's folder")
        elif threading.active_count() > 1:  # a thread would not survive the fork into the kernels
            names = ", ".join(t.name for t in threading.enumerate() if t is not threading.main_thread())
            self.stop(f"a preloaded module started threads ({names})")

    def stop(self, why: str) -> None:
        self.refusing, self.todo = why, []
        print(json.dumps({"preloaded": self.done, "refusing": why}), flush=True)

    def ready_for(self, needs: list) -> bool:
        return self.refusing is not None or not any(name in self.todo for name in needs)


def _local_names(folder: str) -> set:
    names = set()
    for entry in os.listdir(folder):
        if entry.endswith(".py") or os.path.isdir(os.path.join(folder, entry)):
            names.add(entry[:-3] if entry.endswith(".py") else entry)
        elif entry.endswith((".so", ".pyd")):
            names.add(entry.split(".")[0])
    return names


class Zygote:
    """Imports the preload list between requests; forks a kernel for a request as soon as the
    modules its stage imports are loaded (the first stage need not wait for the last stage's).

    A request that arrives too early is answered ``{"wait": true}`` and asked again by its stage
    process; its modules are imported next. No accepted connection is ever held across a fork."""

    WAIT_MEMORY = 2.0  # seconds a stage that was told to wait keeps its modules first in line

    def __init__(self, listener, run_fd: int, status_dir: str, preloader: Preloader):
        self.listener, self.run_fd, self.status_dir, self.preloader = listener, run_fd, status_dir, preloader
        self.wanted: dict = {}  # stage process pid -> (modules it waits for, when it last asked)

    def serve(self):
        """Until the run ends; returns (in the forked kernel only) the kernel's request."""
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        stdin_fd = sys.stdin.fileno()
        announced = False
        while True:
            busy = bool(self.preloader.todo)
            ready, _, _ = select.select([self.listener, wake_r, self.run_fd, stdin_fd], [], [], 0 if busy else None)
            if self.run_fd in ready or stdin_fd in ready:
                # The run is over (or gone); kernels still running end with their own stage.
                # Nothing here needs flushing, so the teardown of the preloaded modules is skipped.
                os._exit(0)
            if wake_r in ready:
                os.read(wake_r, 4096)
                _reap(self.status_dir)
            if self.listener in ready:
                child = self._answer()
                if child is not None:  # in the forked kernel: leave the zygote's loop
                    for fd in (wake_r, wake_w, self.run_fd):
                        os.close(fd)
                    self.listener.close()
                    return child
            if self.preloader.todo:
                self.preloader.step(self._first())
            elif not announced:
                announced = True
                print(json.dumps({"preloaded": self.preloader.done, "refusing": self.preloader.refusing}),
                      flush=True)

    def _first(self) -> list:
        """The modules of the stage that has waited longest (and asked again recently)."""
        now = time.monotonic()
        for owner, (_needs, asked) in list(self.wanted.items()):
            if now - asked > self.WAIT_MEMORY:
                del self.wanted[owner]
        return next(iter(self.wanted.values()))[0] if self.wanted else []

    def _answer(self):
        """Read one request and answer it: a kernel (forked now), wait, or refused."""
        connection, _ = self.listener.accept()
        connection.settimeout(30)
        fds: list = []
        try:
            data, fds, _, _ = socket.recv_fds(connection, 1 << 16, 2)
            while not data.endswith(b"\n"):
                more = connection.recv(1 << 16)
                if not more:
                    raise ValueError("truncated request")
                data += more
            request = json.loads(data)
            why = self.preloader.refusing or _refusal(request, len(fds))
            if why:
                _reply(connection, {"refused": why})
                return None
            creds = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
            owner = int.from_bytes(creds[:4], sys.byteorder)
            needs = request.get("needs") or []
            if not self.preloader.ready_for(needs):
                self.wanted[owner] = (needs, time.monotonic())  # a known stage keeps its place in line
                _reply(connection, {"wait": True})
                return None
            self.wanted.pop(owner, None)
            child = self._fork(connection, request, fds, owner)
            if child is not None:
                fds = []  # the kernel keeps them as its standard streams
            return child
        except (OSError, ValueError) as exc:
            _reply(connection, {"refused": f"bad request ({type(exc).__name__})"})
            return None
        finally:
            _close(connection, fds)

    def _fork(self, connection, request: dict, fds: list, owner: int):
        """Fork the kernel for one request; returns its job in the child, None here."""
        # What the zygote imported lives as long as the kernels do: keep it out of their garbage
        # collections (the documented use of gc.freeze before fork). IPython collects at every
        # reset and at exit; a scan of pandas, scikit-learn and friends cost each kernel time.
        gc.freeze()
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError as exc:
            _reply(connection, {"refused": f"cannot fork ({exc.strerror})"})
            return None
        if pid == 0:
            return {"request": request, "fds": list(fds), "owner": owner}
        try:
            pidfd = os.pidfd_open(pid)
            try:
                socket.send_fds(connection, [json.dumps({"pid": pid, "preloaded": self.preloader.done}).encode()
                                             + b"\n"], [pidfd])
            finally:
                os.close(pidfd)
        except OSError:
            pass  # the stage process is gone; the kernel notices (it watches it) and ends
        return None


def _reply(connection, message: dict) -> None:
    try:
        connection.sendall(json.dumps(message).encode() + b"\n")
    except OSError:
        pass


def _close(connection, fds: list) -> None:
    for fd in fds:
        os.close(fd)
    connection.close()


def _reap(status_dir: str) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        code = os.waitstatus_to_exitcode(status)
        path = os.path.join(status_dir, f"exit-{pid}")
        with open(path + ".tmp", "w") as handle:
            handle.write(str(code))
        os.replace(path + ".tmp", path)


def _refusal(request: dict, fds: int):
    argv = request.get("argv") or []
    if fds != 2:
        return "the kernel's standard streams were not passed"
    if not argv or os.path.realpath(argv[0]) != os.path.realpath(sys.executable) or tuple(argv[1:3]) != LAUNCHER:
        return "the kernel is not this interpreter's ipykernel"
    if os.path.realpath(request.get("cwd") or "") != os.path.realpath(os.getcwd()):
        return "the stage runs in another folder"
    env = request.get("env") or {}
    for key in set(env) | set(ORIGINAL_ENV):
        if key.startswith(PER_STAGE_PREFIXES) or key == "PYTHONEXECUTABLE":
            continue
        if env.get(key) != ORIGINAL_ENV.get(key):
            return f"the stage's environment differs ({key})"
    return None


def become_kernel(child: dict) -> None:
    """In the forked process: turn into ``python -m ipykernel_launcher ARGS`` and run the kernel."""
    request, (out, err), owner = child["request"], child["fds"], child["owner"]
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.setsid()  # as jupyter_client's launcher does: interrupts reach the kernel's whole group
    null = os.open(os.devnull, os.O_RDONLY)
    for fd, target in ((null, 0), (out, 1), (err, 2)):
        os.dup2(fd, target)
        os.close(fd)
    os.environ.clear()
    os.environ.update(request["env"])
    import importlib.util

    sys.argv = [importlib.util.find_spec("ipykernel_launcher").origin] + list(request["argv"][3:])
    sys.path[:] = BASE_PATH
    _reseed()
    _watch_owner(owner)
    from ipykernel import kernelapp

    app = kernelapp.IPKernelApp.instance()
    # Two defaults ipykernel reads from the environment when it is imported (in the zygote).
    app.parent_handle = int(os.environ.get("JPY_PARENT_PID") or 0)
    app.interrupt = int(os.environ.get("JPY_INTERRUPT_EVENT") or 0)
    app.initialize()
    app.start()
    # The kernel was shut down. End as the interpreter would (non-daemon threads joined, atexit
    # handlers run: IPython's resets the user namespace, which closes and flushes the files it
    # holds), minus the module teardown of everything the zygote imported (slow, and useless here), as
    # multiprocessing's forked children do.
    import atexit

    # A shutdown request is answered on the control thread, which then flushes the output streams
    # through the IOPub thread and stops; ipykernel's atexit handler stops IOPub first and then
    # joins the control thread, which can leave that flush waiting (then the kernel hung until
    # jupyter_client's SIGTERM, 2.5 s later). Let the control thread finish first.
    control = getattr(app, "control_thread", None)
    if control is not None and control.is_alive():
        control.join(timeout=1.0)
    threading._shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(0)


def _reseed() -> None:
    """Fresh seeds, as a new process gets: the stdlib's ``random`` reseeds itself at fork; numpy's
    global generator was seeded when the zygote imported it, so it is reseeded from the OS here."""
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        numpy_random.seed()


def _watch_owner(owner: int) -> None:
    """End with the stage process that asked for this kernel, as a kernel ends with its parent."""
    try:
        owner_fd = os.pidfd_open(owner)
    except OSError:
        os._exit(1)

    def watch() -> None:
        select.select([owner_fd], [], [])
        try:
            os.killpg(os.getpid(), signal.SIGKILL)  # with whatever the kernel started
        finally:
            os._exit(1)

    threading.Thread(target=watch, name="nbprod-owner", daemon=True).start()


if __name__ == "__main__":
    _child = main()  # returns only in a forked kernel (None: the zygote is done)
    if _child is not None:
        become_kernel(_child)
