"""``nbprod.record(name, value)``: record a value in the running notebook, in Scrapbook's output format.

Importing this module costs only the standard library: scrapbook itself pulls in pandas, pyarrow and
papermill, seconds of a kernel's start. pandas is imported only to encode a DataFrame, and matplotlib is
never imported here (a figure already brought it in).
"""

from __future__ import annotations

import sys

# base64, io and json are imported where used: in a kernel they are loaded already, and a plain
# interpreter importing this module then pays for nothing it does not call.

SCRAP_MIME = "application/scrapbook.scrap.{encoder}+json"
SCRAP_VERSION = 1


def _module_of(value: object) -> str:
    return type(value).__module__ or ""


def _is_dataframe(value: object) -> bool:
    return _module_of(value).startswith("pandas") and type(value).__name__ == "DataFrame"


def _is_figure(value: object) -> bool:
    return _module_of(value).startswith("matplotlib") and hasattr(value, "savefig")


def _is_display_object(value: object) -> bool:
    # IPython.display objects (Image, HTML, Markdown, ...) and anything with a rich repr.
    return hasattr(value, "_repr_mimebundle_") or (
        _module_of(value).startswith("IPython") and hasattr(value, "data")
    )


def _plain(value: object) -> object:
    """numpy scalars/arrays to Python values, for JSON; anything else unchanged."""
    if _module_of(value) == "numpy":
        if hasattr(value, "tolist"):
            return value.tolist()
        if hasattr(value, "item"):
            return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _json_payload(name: str, value: object) -> object:
    import json

    try:
        text = json.dumps(value, default=_plain, allow_nan=False)
    except ValueError as error:
        raise ValueError(
            f"nbprod.record({name!r}): NaN and infinity cannot be recorded as JSON; "
            "record a finite number or a string instead"
        ) from error
    except TypeError as error:
        raise TypeError(
            f"nbprod.record({name!r}): cannot record a {type(value).__name__}; record a number, string, "
            "dict, list, pandas DataFrame or matplotlib figure"
        ) from error
    return json.loads(text)


def encode(name: str, value: object) -> tuple[str, object]:
    """The Scrapbook encoder name and encoded data for ``value`` (not for figures)."""
    if _module_of(value) == "numpy" and hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, str):
        return "text", value
    if value is None:
        raise TypeError(f"nbprod.record({name!r}): None cannot be recorded (Scrapbook has no null scrap)")
    if isinstance(value, (bool, int, float, list, tuple, dict)) or _module_of(value) == "numpy":
        return "json", _json_payload(name, value)
    if _is_dataframe(value):
        import base64
        import io

        buffer = io.BytesIO()
        value.to_parquet(buffer, engine="pyarrow")
        return "pandas", base64.b64encode(buffer.getvalue()).decode("ascii")
    raise TypeError(
        f"nbprod.record({name!r}): cannot record a {type(value).__name__}; record a number, string, "
        "dict, list, pandas DataFrame or matplotlib figure"
    )


def data_output(name: str, value: object) -> tuple[dict, dict]:
    """The ``(data, metadata)`` of the display output Scrapbook reads as a data scrap."""
    encoder, data = encode(name, value)
    payload = {"name": name, "data": data, "encoder": encoder, "version": SCRAP_VERSION}
    metadata = {"scrapbook": {"name": name, "data": True, "display": False}}
    return {SCRAP_MIME.format(encoder=encoder): payload}, metadata


def figure_output(name: str, figure: object) -> tuple[dict, dict]:
    """The ``(data, metadata)`` of a display scrap holding a figure as PNG."""
    import base64
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    png = base64.b64encode(buffer.getvalue()).decode("ascii")
    data = {"image/png": png, "text/plain": f"<Figure: {name}>"}
    return data, {"scrapbook": {"name": name, "data": False, "display": True}}


def _display_output(name: str, value: object) -> tuple[dict, dict]:
    from IPython.core.formatters import format_display_data

    data, metadata = format_display_data(value)
    metadata = dict(metadata or {})
    metadata["scrapbook"] = {"name": name, "data": False, "display": True}
    return data, metadata


def kernel_display():
    """IPython's ``display`` when running inside IPython, else None (plain ``python script.py``)."""
    ipython = sys.modules.get("IPython")
    if ipython is None or ipython.get_ipython() is None:
        return None
    from IPython.display import display

    return display


def record(name: str, value: object, *, display: bool = False) -> None:
    """Record ``value`` under ``name`` in this notebook's outputs.

    Numbers, strings, dicts and lists are stored as JSON; DataFrames with Scrapbook's pandas (Parquet)
    encoder; matplotlib figures and IPython display objects as display scraps (the figure is shown
    once, as the recorded output, and closed in pyplot so it is not shown again at the end of the
    cell). Numbers become the stage's DVC metrics. ``display=True`` also shows a data value.
    ``scrapbook.read_notebook(path).scraps`` and ``nbprod.executed.scraps.read_scraps`` both read it back.
    Outside IPython the call checks the value and writes nothing.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"nbprod.record: the name must be a non-empty string, not {name!r}")
    show = kernel_display()
    if _is_figure(value):
        data, metadata = figure_output(name, value)
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is not None:
            pyplot.close(value)
        if show is not None:
            show(data, metadata=metadata, raw=True)
        return
    if _is_display_object(value) and not _is_dataframe(value):
        if show is not None:
            show(*_display_output(name, value), raw=True)
        return
    data, metadata = data_output(name, value)
    if show is None:
        return
    show(data, metadata=metadata, raw=True)
    if display:
        show(*_display_output(name, value), raw=True)
