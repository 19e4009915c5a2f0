"""The kernel pool: stages of an ``nbprod run`` get fresh kernels forked from a warm process.

A stage's fixed cost used to be a kernel start (a new Python importing ipykernel) plus
the stage's own imports (pandas, scikit-learn, matplotlib: often more than the kernel), paid again by every stage.
``nbprod run`` now starts one *zygote* per folder the stages run in (``nbprod/execution/_zygote.py``, run with
the kernel's interpreter): it imports ipykernel and the third-party modules the stages import, then
forks one kernel per stage on request. A forked kernel is a new process with its own empty
namespace, started with the stage's arguments, working directory, environment, standard streams,
session and fresh random seeds, exactly as jupyter_client would launch it; the only difference is
that the preloaded modules are already in ``sys.modules``. Results are bit-for-bit those of a
fresh kernel (``tests/func/test_kernelpool.py``).

What is preloaded, and what is not (see ``preload_modules``):
* third-party modules imported at the top level of stage cells (``import x`` / ``from x import y``);
* never the standard library (cheap), modules of the project itself, or modules a stage's folder
  shadows (a local ``utils.py``); never modules that are unsafe to fork or that pick state at import
  (``DENY``: GPU frameworks, Spark, Ray, GUI toolkits); ``matplotlib.pyplot`` only when the kernel's
  backend is the inline one (it picks its backend at import);
* ``[tool.nbprod] kernel_pool = false`` turns the pool off; ``preload = false`` keeps the pool (the
  kernel start is still saved) but preloads nothing; ``preload = ["x", ...]`` adds modules.

A stage falls back to an ordinary kernel start whenever the pool cannot serve it exactly: no pool
(plain ``dvc repro``, ``nbprod exec`` alone), another kernel spec or interpreter, another folder, an
environment that differs from the one the modules were imported in, a preload that failed. The
executed notebook's metadata (``nbprod.kernel``) says how its kernel was started.
"""

from __future__ import annotations

import ast
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

POOL_ENV = "NBPROD_KERNEL_POOL"
INDEX = "pool.json"
MAX_ZYGOTES = 4            # folders with their own zygote; stages elsewhere start kernels as usual
REPLY_TIMEOUT = 300.0      # a zygote still importing makes the stage wait, as its own imports would
DENY = ("torch", "tensorflow", "keras", "jax", "jaxlib", "cupy", "numba.cuda", "pyspark", "ray", "dask.distributed",
        "distributed", "tkinter", "PyQt5", "PyQt6", "PySide2", "PySide6", "wx", "gi", "pylab",
        "multiprocess", "IPython", "ipykernel", "nbprod.execution.debug")
# Imported by nbprod's own inputs/outputs cells when the named module's objects pass between stages.
IMPLIED = {"pandas": ("pyarrow.ipc", "pyarrow.parquet"), "sklearn": ("joblib",)}


def supported() -> bool:
    return sys.platform.startswith("linux") and hasattr(os, "pidfd_open") and hasattr(socket, "send_fds")


def preload_modules(sources: list[str], extra: list[str] | None = None) -> list[str]:
    """The third-party modules ``sources`` (stage cells, Python) import at their top level, in order."""
    found: list[str] = []
    stdlib = set(sys.stdlib_module_names)
    for source in sources:
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError, UnicodeError, RecursionError, MemoryError):
            continue  # compile reports what is wrong with the cell
        for node in tree.body:
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top in stdlib or top == "__future__" or _denied(name):
                    continue
                for module in (name, *IMPLIED.get(top, ())):
                    if module not in found:
                        found.append(module)
    for name in extra or []:
        if name not in found and not _denied(name):
            found.append(name)
    return found


def _denied(name: str) -> bool:
    return any(name == d or name.startswith(d + ".") for d in DENY)


def _installed_spec(kernel: str) -> dict | None:
    """The ``kernel.json`` jupyter_client would pick for ``kernel``: the first ``<name>/kernel.json``
    on jupyter_path("kernels") (its IPython-dir entry comes last). Read directly, because importing
    jupyter_client to ask it is a cost on the start of every run, a no-op run included."""
    try:
        from jupyter_core.paths import jupyter_path

        for folder in jupyter_path("kernels"):
            path = Path(folder) / kernel.lower() / "kernel.json"
            if path.is_file():
                spec = json.loads(path.read_text(encoding="utf-8"))
                return spec if isinstance(spec, dict) and isinstance(spec.get("argv"), list) else None
    except (ImportError, OSError, ValueError):
        return None
    return None


def kernel_command(kernel: str) -> tuple[list[str], dict] | None:
    """The kernel spec's command (``python`` resolved as jupyter_client resolves it) and env, when it
    is an ipykernel the pool can fork; None otherwise."""
    installed = _installed_spec(kernel)
    if installed is not None:
        argv, env, metadata = list(installed["argv"]), installed.get("env") or {}, installed.get("metadata") or {}
    else:  # not installed as a file (ipykernel's built-in python3, say): jupyter_client decides
        try:
            from jupyter_client.kernelspec import KernelSpecManager

            spec = KernelSpecManager().get_kernel_spec(kernel)
        except Exception:  # noqa: BLE001 - exec reports a missing kernel; the pool just stands aside
            return None
        argv, env, metadata = list(spec.argv), spec.env, spec.metadata
    if metadata.get("kernel_provisioner") or len(argv) < 3 or tuple(argv[1:3]) != ("-m", "ipykernel_launcher"):
        return None
    if argv[0] in {"python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])}:
        argv[0] = sys.executable
    if not os.path.isabs(argv[0]):
        argv[0] = shutil.which(argv[0]) or argv[0]
    return argv, dict(env or {})


def preload_groups(project) -> dict[str, list[str]]:
    """For each folder holding source notebooks: the modules its zygote preloads (the imports of
    those notebooks' code cells). Read straight from the notebooks, so that the zygotes can start
    before the pipeline is compiled; a guess that misses a module only costs that stage its import."""
    from ..notebooks.analysis import sanitize

    sources: dict[str, list[str]] = {}
    for path in project.notebooks():
        try:
            cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
            code = [sanitize(_text(c.get("source", "")))[0] for c in cells if c.get("cell_type") == "code"]
        except (OSError, ValueError, AttributeError, TypeError):
            continue  # compile reports a broken notebook
        sources.setdefault(str(path.parent), []).extend(code)
    extra = project.preload if isinstance(project.preload, list) else []
    return {folder: preload_modules(code, extra) if project.preload is not False else []
            for folder, code in sources.items()}


def _text(source) -> str:
    return "".join(source) if isinstance(source, list) else str(source)


def _kernel_env(spec_env: dict) -> dict:
    """The environment a stage's kernel gets in this run (so the zygote imports under the same)."""
    env = dict(os.environ)
    env.update(spec_env)
    env.pop("PYTHONEXECUTABLE", None)
    # Stage processes get the run's environment with this venv's bin first (the scheduler and
    # run._dvc_repro, through nbprod.core.proc.tool_env); their kernels inherit it.
    from ..core.proc import tool_env

    return tool_env(env)


class _Zygote:
    def __init__(self, process: subprocess.Popen, socket_name: str):
        self.process, self.socket_name = process, socket_name


CLOSE_GRACE = 0.05  # seconds a zygote gets to exit on its own when the run ends


class KernelPool:
    """Owned by one ``nbprod run``: its zygotes (one per folder stages run in), their sockets, and
    the index (folder -> socket) stage processes read."""

    def __init__(self, python: str, env: dict, log: Path, groups: dict[str, list[str]]):
        self.python, self.env, self.log = python, env, log
        self.directory = Path(tempfile.mkdtemp(prefix="nbprod-k-"))  # short: socket paths are limited
        self.zygotes: dict[str, _Zygote] = {}
        for folder, modules in list(groups.items())[:MAX_ZYGOTES]:
            self._spawn(folder, modules)

    @classmethod
    def start(cls, kernel: str, log: Path, groups: dict[str, list[str]]) -> KernelPool | None:
        """A pool with a zygote for each folder of ``groups`` (folder -> modules to preload).

        The zygotes are spawned with this interpreter before the kernel spec is looked up (a
        zygote's start-up is on the first stage's critical path); when the spec asks for another
        interpreter or environment they are replaced."""
        if not supported():
            return None
        try:
            pool = cls(sys.executable, _kernel_env({}), log, groups)
            found = kernel_command(kernel)
            if found is None or found[0][0] != sys.executable or found[1]:
                pool.close()
                if found is None:
                    return None
                pool = cls(found[0][0], _kernel_env(found[1]), log, groups)
        except OSError:
            return None
        pool._publish()
        return pool

    def ensure(self, folders: set[str]) -> None:
        """Zygotes (preloading nothing) for stage folders that have none yet, within MAX_ZYGOTES."""
        added = False
        for folder in sorted(folders - set(self.zygotes)):
            if len(self.zygotes) < MAX_ZYGOTES:
                self._spawn(folder, [])
                added = True
        if added:
            self._publish()

    def _spawn(self, folder: str, modules: list[str]) -> None:
        name = f"z{len(self.zygotes)}.sock"
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(str(self.directory / name))
            listener.listen(64)
            with open(self.log, "ab") as log:
                process = subprocess.Popen(
                    [self.python, str(Path(__file__).with_name("_zygote.py")), str(listener.fileno()),
                     str(os.getpid()), str(self.directory)],
                    stdin=subprocess.PIPE, stdout=log, stderr=log, pass_fds=[listener.fileno()],
                    cwd=self.directory, env=self.env, start_new_session=True)
        except OSError:
            return  # stages in that folder start their kernels as usual
        finally:
            listener.close()  # the zygote holds it now; if it dies, connecting fails at once
        try:
            process.stdin.write(json.dumps({"cwd": folder, "preload": modules}).encode() + b"\n")
            process.stdin.flush()
        except OSError:
            pass  # it died already: connecting to it fails, stages start kernels as usual
        self.zygotes[folder] = _Zygote(process, name)

    def _publish(self) -> None:
        index = {folder: zygote.socket_name for folder, zygote in self.zygotes.items()}
        temporary = self.directory / (INDEX + ".tmp")
        temporary.write_text(json.dumps(index), encoding="utf-8")
        os.replace(temporary, self.directory / INDEX)
        os.environ[POOL_ENV] = str(self.directory)

    def close(self) -> None:
        os.environ.pop(POOL_ENV, None)
        for zygote in self.zygotes.values():
            try:
                zygote.process.stdin.close()  # end of input: it stops serving and exits
            except OSError:
                pass
        for zygote in self.zygotes.values():
            try:
                zygote.process.wait(timeout=CLOSE_GRACE)
            except subprocess.TimeoutExpired:
                # Still importing (it reads its input only between two imports, and a pandas or
                # scikit-learn import takes a second): every stage has ended, nothing it holds is
                # needed, so it is not waited for (a no-op run used to wait for it here).
                zygote.process.kill()
                zygote.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


# -- in the stage process (nbprod exec) ----------------------------------------------------------------

def pool_socket(cwd: Path) -> Path | None:
    """The zygote serving kernels that run in ``cwd`` in this run, if any."""
    directory = os.environ.get(POOL_ENV)
    if not directory:
        return None
    try:
        index = json.loads((Path(directory) / INDEX).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    name = index.get(str(cwd))
    return Path(directory) / name if isinstance(name, str) and "/" not in name else None


class ForkedKernel:
    """A kernel forked by a zygote, with the parts of ``subprocess.Popen`` jupyter_client uses.

    It is the zygote's child, not ours: its end is seen through a pidfd, signals go through the
    pidfd (never to a reused pid), and the exit status is the one the zygote recorded when it
    reaped the kernel."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int, pidfd: int, status_dir: Path, preloaded: list[str]):
        self.pid, self.pidfd, self.status_dir, self.preloaded = pid, pidfd, status_dir, preloaded
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None and self.pidfd >= 0:
            ready, _, _ = select.select([self.pidfd], [], [], 0)
            if ready:
                self.returncode = self._exit_status()
                os.close(self.pidfd)
                self.pidfd = -1
        return self.returncode

    def _exit_status(self) -> int:
        path = self.status_dir / f"exit-{self.pid}"
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            try:
                return int(path.read_text())
            except (OSError, ValueError):
                time.sleep(0.02)  # ended, not yet reaped by the zygote
        return -1  # the zygote is gone: the kernel ended, with a status nobody kept

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired("kernel", timeout)
            select.select([self.pidfd], [], [], 0.1 if deadline is None else max(0.0, deadline - time.monotonic()))
        return self.returncode  # type: ignore[return-value]

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            signal.pidfd_send_signal(self.pidfd, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


def request_kernel(path: Path, argv: list[str], cwd: str, env: dict, needs: list[str]) -> ForkedKernel | str:
    """Ask the zygote at ``path`` for a kernel; the kernel, or why it was not given (then the caller
    starts its kernel as usual). While the zygote is still importing the stage's modules it says
    so, imports those next, and is asked again."""
    message = json.dumps({"argv": argv, "cwd": cwd, "env": env, "needs": needs}).encode() + b"\n"
    deadline = time.monotonic() + REPLY_TIMEOUT
    while True:
        reply, fds = _ask(path, message, max(1.0, deadline - time.monotonic()))
        if not reply.get("wait"):
            break
        if time.monotonic() > deadline:
            return "the kernel pool did not get ready in time"
        time.sleep(0.02)
    if "pid" not in reply or len(fds) != 1:
        for fd in fds:
            os.close(fd)
        return str(reply.get("refused", "no kernel"))
    return ForkedKernel(int(reply["pid"]), fds[0], path.parent, list(reply.get("preloaded", [])))


def _ask(path: Path, message: bytes, timeout: float) -> tuple[dict, list[int]]:
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.settimeout(timeout)
    fds: list[int] = []
    try:
        connection.connect(str(path))
        sys.stdout.flush()
        sys.stderr.flush()
        socket.send_fds(connection, [message], [1, 2])  # the kernel's stdout and stderr: this process's
        data, fds, _, _ = socket.recv_fds(connection, 1 << 16, 1)
        while data and not data.endswith(b"\n"):
            more = connection.recv(1 << 16)
            if not more:
                break
            data += more
        return (json.loads(data) if data.endswith(b"\n") else {"refused": "no answer"}), fds
    except (OSError, ValueError) as exc:
        for fd in fds:
            os.close(fd)
        return {"refused": f"the kernel pool is not available ({type(exc).__name__})"}, []
    finally:
        connection.close()


def forking_provisioner_class():
    """jupyter_client's local provisioner, launching through the pool when it can (imported lazily:
    jupyter_client is only loaded by processes that start kernels)."""
    from jupyter_client.provisioning import LocalProvisioner

    class PoolProvisioner(LocalProvisioner):
        pool: Path | None = None
        needs: list[str] = []   # the modules the stage imports: the zygote loads those first
        started: dict = {}

        async def launch_kernel(self, cmd, **kwargs):
            env = dict(kwargs.get("env") or os.environ)
            env["JPY_PARENT_PID"] = str(os.getpid())  # what jupyter_client's launcher sets
            cwd = str(kwargs.get("cwd") or os.getcwd())
            got = request_kernel(self.pool, [os.path.expanduser(c) for c in cmd], cwd, env,
                                 list(self.needs)) if self.pool else "no pool"
            if isinstance(got, str):
                self.started = {"forked": False, "why": got}
                return await super().launch_kernel(cmd, **kwargs)
            self.started = {"forked": True, "preloaded": got.preloaded}
            self.process, self.pid, self.pgid, self.cwd = got, got.pid, got.pid, cwd
            return self.connection_info

    return PoolProvisioner
