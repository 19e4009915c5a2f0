"""How ``nbprod exec`` starts, connects to and stops a stage's kernel: the jupyter_client parts.

Every stage gets a fresh kernel, started exactly as nbclient would start it (same kernel spec,
working directory, arguments and environment); Papermill's client then connects to it instead of
launching its own. Within a ``nbprod run`` the kernel is forked from the run's kernel pool when the
pool can serve it exactly (``nbprod.execution.kernelpool``); otherwise it is a new process as usual.

Two of jupyter_client's fixed waits are shortened, with the same checks:

* readiness: ``wait_for_ready`` sends ``kernel_info`` and, after the reply, waits up to 0.2 s for an
  IOPub message to be sure IOPub is connected; the first one is usually lost while the subscription
  is still being set up, so every connection paid 0.2 s. nbprod's client asks again at once (each
  ``kernel_info`` makes the kernel publish its status), so it is ready as soon as IOPub is.
* shutdown: after the shutdown request jupyter_client checks every 0.1 s whether the kernel has
  exited; nbprod checks every 0.01 s. The kernel still exits on its own (atexit handlers run).
"""

from __future__ import annotations

import time
from pathlib import Path

from . import kernelpool
from ..core.errors import NbprodError

# nbclient passes this to every kernel it starts; a pre-started kernel gets the same arguments.
KERNEL_ARGUMENTS = ["--HistoryManager.hist_file=:memory:"]
_CLASSES: dict = {}


def manager_class():
    """The manager and client classes (built lazily: jupyter_client loads only where kernels start)."""
    if not _CLASSES:
        from queue import Empty

        from jupyter_client.asynchronous import AsyncKernelClient
        from jupyter_client.manager import AsyncKernelManager
        from jupyter_core.utils import ensure_async

        class StageKernelClient(AsyncKernelClient):
            async def _async_wait_for_ready(self, timeout: float | None = None) -> None:
                deadline = time.monotonic() + (timeout if timeout is not None else float("inf"))
                replied = None
                while True:
                    self.kernel_info()
                    try:
                        msg = await ensure_async(self.shell_channel.get_msg(timeout=0.5 if replied is None else 0.02))
                    except Empty:
                        msg = None
                    if msg is not None and msg["msg_type"] == "kernel_info_reply":
                        replied = msg
                    if replied is not None:
                        try:  # IOPub connected: it delivers the status of one of our requests
                            await ensure_async(self.iopub_channel.get_msg(timeout=0.02))
                        except Empty:
                            pass
                        else:
                            self._handle_kernel_info_reply(replied)
                            break
                    if not await self._async_is_alive():
                        raise RuntimeError("Kernel died before replying to kernel_info")
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"Kernel didn't respond in {int(timeout)} seconds")
                while True:  # flush what IOPub has left of those requests, as jupyter_client does
                    try:
                        await ensure_async(self.iopub_channel.get_msg(timeout=0.02))
                    except Empty:
                        break

            wait_for_ready = _async_wait_for_ready  # jupyter_client binds the public name to its own

        class StageKernelManager(AsyncKernelManager):
            def _client_factory_default(self):
                return StageKernelClient

            async def _async_finish_shutdown(self, waittime=None, pollinterval=0.1, restart=False):
                await super()._async_finish_shutdown(waittime, min(pollinterval, 0.01), restart)

        _CLASSES.update(manager=StageKernelManager, client=StageKernelClient)
    return _CLASSES["manager"]


def start_kernel(kernel: str, cwd: Path, needs: list[str] | None = None):
    """Launch this stage's fresh kernel now; return its (async) kernel manager. ``needs``: the
    modules the stage imports (a pool zygote still preloading loads them first)."""
    from jupyter_core.utils import run_sync

    manager = manager_class()(kernel_name=kernel)
    pool = kernelpool.pool_socket(cwd)
    if pool is not None:  # this run keeps a warm zygote for this folder: fork the kernel from it
        try:
            spec = manager.kernel_spec
        except Exception:  # noqa: BLE001 - start_kernel below reports a missing kernel spec
            spec = None
        if spec is not None and not spec.metadata.get("kernel_provisioner"):
            import uuid

            manager.kernel_id = str(uuid.uuid4())
            provisioner = kernelpool.forking_provisioner_class()
            manager.provisioner = provisioner(kernel_id=manager.kernel_id, kernel_spec=spec, parent=manager)
            manager.provisioner.pool = pool
            manager.provisioner.needs = list(needs or [])
    try:
        run_sync(manager.start_kernel)(extra_arguments=list(KERNEL_ARGUMENTS), cwd=str(cwd))
    except Exception as exc:  # noqa: BLE001 - a missing kernel spec is the user's to fix
        raise NbprodError(f"cannot start kernel {kernel!r} ({type(exc).__name__}: {exc})", "pyproject.toml",
                          fix="install the kernel (jupyter kernelspec list) or set [tool.nbprod] kernel") from None
    return manager


def describe(manager) -> dict:
    """How the stage's kernel was started, for the executed notebook's metadata."""
    started = getattr(getattr(manager, "provisioner", None), "started", None)
    if started and started.get("forked"):
        return {"start": "forked from the run's kernel pool", "preloaded": started.get("preloaded", [])}
    if started:
        return {"start": "new process", "pool": started.get("why")}
    return {"start": "new process"}


def stop_kernel(manager) -> None:
    """Shut the stage's kernel down gracefully (its atexit handlers run, so files it wrote are flushed)."""
    from jupyter_core.utils import run_sync

    try:
        if run_sync(manager.is_alive)():
            run_sync(manager.shutdown_kernel)(now=False)
    finally:
        run_sync(manager.cleanup_resources)()
