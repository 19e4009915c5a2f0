"""``[tool.nbprod.online]``: when an incremental candidate may be approved by policy, and how it learns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from nbprod.core.errors import NbprodError

WHERE = "pyproject.toml"


@dataclass
class OnlineSettings:
    auto_approve: bool = False        # approve without a human when every gate passes and drift is in bound
    max_drift_share: float = 0.2      # the share of features allowed to drift since the parent's training data
    batch_size: int = 50              # rows per test-then-train step
    min_rows: int = 30                # fewer labelled rows in the window: nothing is learned
    gates: list = field(default_factory=list)   # more gates for incremental candidates only (e.g. holdout.*)


_TYPES = {"auto_approve": bool, "max_drift_share": (int, float), "batch_size": int, "min_rows": int, "gates": dict}
_EXAMPLE = "e.g. auto_approve = true, max_drift_share = 0.2, batch_size = 50, min_rows = 30"


def load_online_settings(root: Path) -> OnlineSettings:
    from nbprod.core.project import read_config

    table = read_config(root).get("online", {})
    if not isinstance(table, dict):
        raise NbprodError("[tool.nbprod] online must be a table", WHERE, fix="write [tool.nbprod.online]")
    values = {}
    for key, value in table.items():
        if key not in _TYPES:
            raise NbprodError(f"[tool.nbprod.online] has an unknown key {key!r}", WHERE,
                              fix=f"use one of: {', '.join(sorted(_TYPES))}")
        wanted = _TYPES[key]
        if not isinstance(value, wanted) or (isinstance(value, bool) and wanted is not bool):
            raise NbprodError(f"[tool.nbprod.online] {key} has the wrong type ({type(value).__name__})", WHERE,
                              fix=_EXAMPLE)
        values[key] = value
    from nbprod.core.conditions import parse_rules

    values["gates"] = parse_rules(values.get("gates", {}), "online.gates", history=False)
    settings = OnlineSettings(**values)
    if not 0 <= settings.max_drift_share <= 1:
        raise NbprodError("[tool.nbprod.online] max_drift_share must be between 0 and 1", WHERE, fix=_EXAMPLE)
    if settings.batch_size < 1 or settings.min_rows < 1:
        raise NbprodError("[tool.nbprod.online] batch_size and min_rows must be at least 1", WHERE, fix=_EXAMPLE)
    return settings
