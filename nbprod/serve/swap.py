"""Hot swap: each worker process polls the registry tags itself (one ``git for-each-ref`` per
interval) and, when production moved, loads the new version completely and passes its smoke
prediction before replacing the served model with one reference assignment. A request reads that
reference once, so it is answered by exactly one version; a version that fails to load is not
swapped in, the old one keeps serving, and the failure is counted in /metrics."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from collections.abc import Callable

from .loader import prod_tags, resolve
from .loaded import LoadedModel


class ModelSlot:
    """The model a variant serves now; replaced whole, never changed in place."""

    def __init__(self, model: LoadedModel):
        self.model = model

    def swap(self, model: LoadedModel) -> LoadedModel:
        previous, self.model = self.model, model
        return previous


class Poller:
    def __init__(self, root: Path, name: str, slot: ModelSlot, interval: float,
                 load: Callable, on_swap: Callable[[str, str], None], on_failure: Callable[[str, str], None]):
        self.root, self.name, self.slot, self.interval = root, name, slot, interval
        self.load, self.on_swap, self.on_failure = load, on_swap, on_failure
        self._seen = prod_tags(root, name)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="nbprod-swap", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception as exc:  # noqa: BLE001 - the poller must survive anything; the old model keeps serving
                log.debug("registry poll failed", exc_info=True)
                self.on_failure("?", f"{type(exc).__name__}: {exc}")

    def check(self) -> bool:
        """Swap when the production assignment changed; True when a new version was swapped in."""
        tags = prod_tags(self.root, self.name)
        if tags == self._seen:
            return False
        info = resolve(self.root, self.name)
        self._seen = tags  # after resolve: a failed git read is retried next time, a failed load is not
        current = self.slot.model.info
        if info.version == current.version and info.model_md5 == current.model_md5:
            return False
        try:
            loaded = self.load(info)
        except Exception as exc:  # noqa: BLE001 - a user's model can raise anything; it is not swapped in
            log.debug("loading %s failed", info.version, exc_info=True)
            self.on_failure(info.version, f"{type(exc).__name__}: {exc}")
            return False
        previous = self.slot.swap(loaded)
        self.on_swap(previous.version, loaded.version)
        return True


log = logging.getLogger(__name__)


def say(message: str) -> None:
    """What the service tells its operator: an info line of the nbprod logger (JSON lines under serve)."""
    log.info(message)
