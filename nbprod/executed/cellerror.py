"""Which cell of an executed notebook failed, and with what message, including errors the kernel
reports without an ``error`` output: IPython's ``UsageError`` (an unknown line or cell magic) and
errors a magic only prints to stderr. Papermill then marks the cell (``metadata.papermill.exception``)
and raises a bare ``CellExecutionError`` with an empty message; the message is in the cell's stderr."""

from __future__ import annotations

import re

# "UsageError: Line magic function `%x` not found." / "ModuleNotFoundError: No module named 'y'"
_NAMED = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt)):\s*(.*)$")


def has_error_output(cell: dict) -> bool:
    return any(o.get("output_type") == "error" for o in cell.get("outputs", []) or [])


def cell_failed(cell: dict) -> bool:
    """The cell raised: an ``error`` output, or Papermill's mark when the kernel sent none."""
    if cell.get("cell_type") != "code":
        return False
    marked = ((cell.get("metadata") or {}).get("papermill") or {}).get("exception") is True
    return has_error_output(cell) or marked


def failed_cell_index(nb: dict) -> int | None:
    """Index of the first code cell that failed (see ``cell_failed``)."""
    for index, cell in enumerate(nb.get("cells", [])):
        if cell_failed(cell):
            return index
    return None


def _text(output: dict) -> str:
    text = output.get("text", "")
    return "".join(text) if isinstance(text, list) else str(text)


def printed_error(cell: dict) -> tuple[str, str]:
    """``(ename, evalue)`` of a failed cell: from its ``error`` output, else from what the kernel
    printed to stderr (its last line naming an error, else its last non-empty line; ename is then
    empty). ``("", "")`` when the cell printed nothing."""
    outputs = cell.get("outputs", []) or []
    for output in outputs:
        if output.get("output_type") == "error":
            return str(output.get("ename", "")), str(output.get("evalue", ""))
    streams = [o for o in outputs if o.get("output_type") == "stream"]
    printed = [o for o in streams if o.get("name") == "stderr"] or streams
    lines = [line.strip() for o in printed for line in _text(o).splitlines() if line.strip()]
    for line in reversed(lines):
        named = _NAMED.match(line)
        if named:
            return named.group(1), named.group(2)
    return ("", lines[-1]) if lines else ("", "")


def describe(ename: str, evalue: str) -> str:
    """``ename: evalue``, or whichever of them is there."""
    return ": ".join(part for part in (ename, evalue) if part) or "the kernel reported an error without a message"
