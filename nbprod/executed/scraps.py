"""Reading scraps (values recorded with ``nbprod.record`` or ``sb.glue``) out of an executed notebook.

Works on the notebook's plain JSON dict, so reading metrics needs neither nbformat nor scrapbook.
"""

from __future__ import annotations

import base64
import io
import json
import math
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Iterator

# Scrapbook's data outputs: ``application/scrapbook.scrap.<encoder>+json``.
SCRAP_MIME_PREFIX = "application/scrapbook.scrap."
# Papermill's older ``pm.record`` outputs: ``application/papermill.record/<encoder>+json``.
PAPERMILL_RECORD_PREFIX = "application/papermill.record"


@dataclass
class DisplayScrap:
    """A scrap recorded for display only (a figure, an HTML snippet): its MIME bundle."""

    name: str
    data: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def png(self) -> str | None:
        """The base64 PNG of the display, if it has one."""
        value = self.data.get("image/png")
        if isinstance(value, list):  # nbformat may split long strings into lines
            value = "".join(value)
        return value


def _decode(encoder: str, data: Any, include_frames: bool) -> tuple[bool, Any]:
    """Turn an encoded payload into its value; ``(False, None)`` when it is left out."""
    if encoder == "json":
        if isinstance(data, str):
            try:
                return True, json.loads(data)
            except ValueError:
                return True, data
        return True, data
    if encoder == "text":
        return True, data if isinstance(data, str) else str(data)
    if encoder in ("pandas", "arrow"):
        if not include_frames:
            return False, None
        import pandas as pd  # only when a DataFrame scrap is present

        raw = io.BytesIO(base64.b64decode(data))
        return True, pd.read_parquet(raw, engine="pyarrow")
    # An encoder we do not know: keep the raw payload rather than lose the value.
    return True, data


def _bundle(output: dict) -> dict:
    return output.get("data") or {}


def iter_scrap_outputs(nb: dict) -> Iterator[tuple[int, dict]]:
    """Yield ``(cell_index, output)`` for every output of every code cell."""
    for index, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        for output in cell.get("outputs", []) or []:
            if output.get("output_type") in ("display_data", "execute_result"):
                yield index, output


def read_scraps(nb: dict, *, include_frames: bool = True) -> dict[str, Any]:
    """Every scrap in an executed notebook, by name, in recording order (a later record wins).

    Values come back decoded: numbers, strings, dicts and lists as they were recorded; DataFrames as
    pandas DataFrames (pandas is imported only if one is present; ``include_frames=False`` leaves
    them out); display-only scraps such as figures as :class:`DisplayScrap`. A scrap that has both
    data and a display keeps its data.
    """
    scraps: dict[str, Any] = {}
    has_data: set[str] = set()
    for _, output in iter_scrap_outputs(nb):
        bundle = _bundle(output)
        for mime, payload in bundle.items():
            if mime.startswith(SCRAP_MIME_PREFIX) and isinstance(payload, dict):
                name = payload.get("name")
                encoder = payload.get("encoder") or mime[len(SCRAP_MIME_PREFIX):].split("+", 1)[0]
                if name is None or "data" not in payload:
                    continue
                keep, value = _decode(encoder, payload["data"], include_frames)
                if keep:
                    scraps.pop(name, None)  # re-recording moves the name to the end
                    scraps[name] = value
                    has_data.add(name)
            elif mime.startswith(PAPERMILL_RECORD_PREFIX) and isinstance(payload, dict):
                encoder = mime[len(PAPERMILL_RECORD_PREFIX):].lstrip("/+").split("+", 1)[0] or "json"
                for name, data in payload.items():
                    keep, value = _decode(encoder, data, include_frames)
                    if keep:
                        scraps.pop(name, None)
                        scraps[name] = value
                        has_data.add(name)
        meta = (output.get("metadata") or {}).get("scrapbook") or {}
        name = meta.get("name")
        if meta.get("display") and name and name not in has_data:
            visible = {k: v for k, v in bundle.items() if not k.startswith(SCRAP_MIME_PREFIX)}
            scraps.pop(name, None)
            scraps[name] = DisplayScrap(name, visible, dict(output.get("metadata") or {}))
    return scraps


def is_number(value: Any) -> bool:
    """True for finite ints and floats (numpy scalars included); False for bools."""
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return isinstance(value, int) or math.isfinite(value)
    # numpy scalars without importing numpy: they expose .item() returning a Python number
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        return is_number(value.item())
    return False


def numeric_metrics(scraps: dict[str, Any]) -> dict[str, int | float]:
    """The scraps that are metrics: finite numbers only (bools, strings, NaN and infinities left out)."""
    metrics: dict[str, int | float] = {}
    for name, value in scraps.items():
        if is_number(value):
            if type(value).__module__ == "numpy":
                value = value.item()
            metrics[name] = value
    return metrics
