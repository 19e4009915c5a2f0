"""``[tool.nbprod.feedback]``: how outcomes are keyed and read, and the window live quality covers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nbprod.core.errors import NbprodError

WHERE = "pyproject.toml"


@dataclass
class FeedbackSettings:
    key_field: str | None = None        # a top-level request field joining outcomes instead of request_id
    key_column: str | None = None       # import: the key column (default request_id, or key_field)
    outcome_column: str = "outcome"     # import: the outcome column
    time_column: str | None = None      # import: when the outcome became known (default: "time" if present)
    row_column: str = "row"             # import: the row of a multi-row request (0 when absent)
    window_days: float | None = None    # live quality over predictions made in the last DAYS (None: all)
    min_outcomes: int = 30              # fewer outcomes than this per variant: metrics "not enough yet"

    @property
    def import_keys(self) -> list[str]:
        """The key columns to look for in a file, in order: the one named, else request_id, else key_field."""
        if self.key_column:
            return [self.key_column]
        return ["request_id"] + ([self.key_field] if self.key_field else [])


_TYPES = {"key_field": str, "key_column": str, "outcome_column": str, "time_column": str, "row_column": str,
          "window_days": (int, float), "min_outcomes": int}


def load_feedback_settings(root: Path, **options) -> FeedbackSettings:
    """The table checked key by key; ``options`` (command-line flags) win when not None."""
    from nbprod.core.project import read_config

    table = read_config(root).get("feedback", {})
    if not isinstance(table, dict):
        raise NbprodError("[tool.nbprod] feedback must be a table", WHERE, fix="write [tool.nbprod.feedback]")
    values = {}
    for key, value in table.items():
        if key not in _TYPES:
            raise NbprodError(f"[tool.nbprod.feedback] has an unknown key {key!r}", WHERE,
                              fix=f"use one of: {', '.join(sorted(_TYPES))}")
        wanted = _TYPES[key]
        if not isinstance(value, wanted) or isinstance(value, bool):
            raise NbprodError(f"[tool.nbprod.feedback] {key} has the wrong type ({type(value).__name__})", WHERE,
                              fix='e.g. key_field = "customer_id", window_days = 30, min_outcomes = 30')
        values[key] = value
    values.update({k: v for k, v in options.items() if v is not None})
    settings = FeedbackSettings(**values)
    if settings.window_days is not None and settings.window_days <= 0:
        raise NbprodError("[tool.nbprod.feedback] window_days must be positive", WHERE, fix="write window_days = 30")
    if settings.min_outcomes < 1:
        raise NbprodError("[tool.nbprod.feedback] min_outcomes must be at least 1", WHERE,
                          fix="write min_outcomes = 30")
    return settings


def request_keys(root: Path, route_field: str | None) -> frozenset:
    """Top-level request fields the serve contract accepts besides the rows: the routing field and
    the feedback ``key_field`` (one home, for the command's preload and every worker)."""
    return frozenset(k for k in (route_field, load_feedback_settings(root).key_field) if k)
