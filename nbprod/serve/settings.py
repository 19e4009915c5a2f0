"""Settings of ``nbprod serve``: ``[tool.nbprod.serve]`` in pyproject.toml, then command-line options.
They reach uvicorn's worker processes as JSON in one environment variable."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..core.errors import NbprodError
from ..core.project import PREDICTIONS_DIR

ENV = "NBPROD_SERVE_SETTINGS"
TOKEN_ENV = "NBPROD_SERVE_TOKEN"
LOG_INPUTS = ("values", "hash", "none")


@dataclass
class ServeSettings:
    root: str
    model: str = "model"                   # registry name ([tool.nbprod] model_name)
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    version: str | None = None             # pinned version: no polling, no swap
    poll_interval: float = 1.0             # seconds between looks at the registry tags (swap bound ~ this + load)
    split: dict = field(default_factory=dict)   # {"v1.3.0": 0.1}: share of traffic to a challenger
    shadow: str | None = None              # a version scored on every request, answer not returned
    route_header: str = "X-Route-Key"      # deterministic routing key; random when absent
    route_field: str | None = None         # or a top-level body field holding the key
    max_batch: int = 1000
    max_body_bytes: int = 1_000_000
    log: bool = True
    log_dir: str = PREDICTIONS_DIR
    log_inputs: str = "values"             # values | hash | none
    log_max_bytes: int = 10_000_000
    log_keep: int = 5
    log_queue: int = 10_000
    metrics_dir: str | None = None         # prometheus multiprocess folder (set when workers > 1)
    explain: bool = False                  # POST /explain: per-row SHAP contributions (off by default)
    explain_max_rows: int = 20             # rows one /explain request may ask for
    explain_timeout: float = 2.0           # seconds one /explain may compute before it answers 503
    explain_share: float = 0.05            # most of a worker's time spent explaining (else 429)

    @property
    def challenger(self) -> str | None:
        return next(iter(self.split), None) or self.shadow

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> ServeSettings:
        return cls(**json.loads(os.environ[ENV]))


_TYPES = {"poll_interval": (int, float), "route_header": str, "route_field": str, "max_batch": int,
          "max_body_bytes": int, "log": bool, "log_dir": str, "log_inputs": str, "log_max_bytes": int,
          "log_keep": int, "log_queue": int, "split": dict, "shadow": str,
          "explain": bool, "explain_max_rows": int, "explain_timeout": (int, float),
          "explain_share": (int, float)}


def load_settings(root: Path, model: str, **options) -> ServeSettings:
    """``[tool.nbprod.serve]`` checked key by key; ``options`` (the command line) win when not None."""
    raw = _read_table(root)
    known = {f.name for f in fields(ServeSettings)}
    values: dict = {}
    for key, value in raw.items():
        if key not in _TYPES:
            raise NbprodError(f"[tool.nbprod.serve] has an unknown key {key!r}", "pyproject.toml",
                              fix=f"use one of: {', '.join(sorted(_TYPES))}")
        wanted = _TYPES[key]
        if not isinstance(value, wanted) or (wanted is int and isinstance(value, bool)):
            raise NbprodError(f"[tool.nbprod.serve] {key} has the wrong type ({type(value).__name__})",
                              "pyproject.toml", fix="see the Serving section of the README for each key's type")
        values[key] = value
    values.update({k: v for k, v in options.items() if v is not None and k in known})
    settings = ServeSettings(root=str(root), model=model, **values)
    _check(settings)
    return settings


def _read_table(root: Path) -> dict:
    from ..core.project import read_config

    table = read_config(root).get("serve", {})
    if not isinstance(table, dict):
        raise NbprodError("[tool.nbprod] serve must be a table", "pyproject.toml", fix="write [tool.nbprod.serve]")
    return table


def _check(s: ServeSettings) -> None:
    def bad(key: str, why: str, fix: str) -> NbprodError:
        return NbprodError(f"[tool.nbprod.serve] {key} {why}", "pyproject.toml", fix=fix)

    if len(s.split) > 1:
        raise bad("split", "names more than one challenger", 'give one version, e.g. split = {"v1.3.0" = 0.1}')
    for version, share in s.split.items():
        if not isinstance(share, (int, float)) or isinstance(share, bool) or not 0 <= share <= 1:
            raise bad("split", f"share of {version} must be a number from 0 to 1", 'write split = {"v1.3.0" = 0.1}')
    if s.split and s.shadow:
        raise bad("shadow", "cannot be set together with split", "choose a split or a shadow version")
    if not 0.05 <= s.poll_interval <= 60:
        raise bad("poll_interval", "must be between 0.05 and 60 seconds", "the default is 1.0")
    if s.log_inputs not in LOG_INPUTS:
        raise bad("log_inputs", f"must be one of {', '.join(LOG_INPUTS)}", 'write log_inputs = "hash"')
    for key in ("max_batch", "max_body_bytes", "log_max_bytes", "log_keep", "log_queue"):
        if getattr(s, key) < 1:
            raise bad(key, "must be at least 1", "give a positive number")
    if s.explain_max_rows < 1:
        raise bad("explain_max_rows", "must be at least 1", "the default is 20")
    if not 0 < s.explain_share <= 1:
        raise bad("explain_share", "must be more than 0 and at most 1", "the default is 0.05")
    if not 0 < s.explain_timeout <= 60:
        raise bad("explain_timeout", "must be between 0 and 60 seconds", "the default is 2.0")
    if not 1 <= s.workers <= 64:
        raise NbprodError(f"--workers {s.workers} is out of range", "--workers", fix="give 1 to 64 workers")
    if s.route_header and not s.route_header.replace("-", "").isalnum():
        raise bad("route_header", "is not a valid header name", 'write route_header = "X-Route-Key"')
