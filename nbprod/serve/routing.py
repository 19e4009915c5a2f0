"""Which variant answers a request: the production version, or a challenger taking a share of the
traffic (A/B split) or scoring every request in the background (shadow). Routing by a request key is
deterministic (the same key always reaches the same variant); without a key it is random."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

PROD = "prod"
CHALLENGER = "challenger"


def bucket(key: str) -> float:
    """A stable number in [0, 1) for a key (sha256, so no process-dependent hash seed)."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()[:8], "big") / 2.0 ** 64


@dataclass(frozen=True)
class Router:
    share: float = 0.0          # challenger's share of answered traffic (split)
    shadow: bool = False        # challenger scores every request, its answer is not returned

    @property
    def mode(self) -> str:
        return "shadow" if self.shadow else ("split" if self.share > 0 else "single")

    def choose(self, key: str | None) -> str:
        if self.share <= 0:
            return PROD
        draw = bucket(key) if key is not None else random.random()
        return CHALLENGER if draw < self.share else PROD
