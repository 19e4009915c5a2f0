"""How importances are named as metrics, and read back from a metrics dict (stdlib only).

    importance.<feature>    the feature's share of the model's total importance (0..1, shares sum to 1)
"""

from __future__ import annotations

import re

PREFIX = "importance."
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def slug(feature: object) -> str:
    """A feature name safe inside a metric name: letters, digits, ``_`` and ``-``."""
    return _UNSAFE.sub("_", str(feature)).strip("_") or "_"


def metric_name(feature: object) -> str:
    return PREFIX + slug(feature)


def read_recorded(metrics: dict) -> dict[str, float]:
    """``{feature: share}`` from one flat ``{name: value}`` dict or a ``{file: {name: value}}`` one,
    largest share first."""
    flat: dict[str, float] = {}
    for name, value in (metrics or {}).items():
        if isinstance(value, dict):
            flat.update(read_recorded(value))
        elif name.startswith(PREFIX) and isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[name[len(PREFIX):]] = float(value)
    return dict(sorted(flat.items(), key=lambda item: (-item[1], item[0])))
