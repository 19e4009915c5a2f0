"""Reading and writing notebooks as plain JSON: fast (no nbformat import) and byte-deterministic."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from ..core.errors import NbprodError


def read_notebook(path: Path, display: str | None = None) -> dict:
    """Load a .ipynb file; a file that is not a v4 notebook raises NbprodError naming it."""
    shown = display or str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise NbprodError(f"cannot be read ({exc.strerror})", shown) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise NbprodError(
            f"is not UTF-8 (bad byte at offset {exc.start})", shown,
            fix="re-save the notebook from JupyterLab, which writes UTF-8",
        ) from None
    try:
        nb = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NbprodError(
            f"is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})", shown,
            fix="restore it with git or re-save it from JupyterLab",
        ) from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise NbprodError("is not a Jupyter notebook (no 'cells' list)", shown,
                          fix="pass a .ipynb file saved by Jupyter")
    if nb.get("nbformat") != 4:
        raise NbprodError(f"uses notebook format {nb.get('nbformat')!r}; nbprod reads format 4", shown,
                          fix="open and save it in JupyterLab to upgrade it")
    for number, cell in enumerate(nb["cells"], start=1):
        if not isinstance(cell, dict) or cell.get("cell_type") not in ("code", "markdown", "raw"):
            raise NbprodError("is not a valid cell (missing or unknown cell_type)", shown, number,
                              fix="delete and recreate the cell in JupyterLab")
        source = cell.get("source", "")
        if isinstance(source, list):
            if not all(isinstance(line, str) for line in source):
                raise NbprodError("has a source that is not text", shown, number,
                                  fix="delete and recreate the cell in JupyterLab")
        elif not isinstance(source, str):
            raise NbprodError("has a source that is not text", shown, number,
                              fix="delete and recreate the cell in JupyterLab")
        metadata = cell.get("metadata", {})
        tags = metadata.get("tags", []) if isinstance(metadata, dict) else None
        if not isinstance(tags, list):
            raise NbprodError("has metadata.tags that is not a list", shown, number,
                              fix="retag the cell in JupyterLab")
        if not _is_unicode(cell_source(cell)) or not all(_is_unicode(t) for t in tags if isinstance(t, str)):
            # JSON allows "\udcff" escapes that decode to lone surrogates, which no file or kernel accepts.
            raise NbprodError("holds text that is not valid Unicode (a lone surrogate escape)", shown, number,
                              fix="delete and retype the cell's code and tags in JupyterLab")
    return nb


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def cell_source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def cell_tags(cell: dict) -> list:
    metadata = cell.get("metadata")
    return list(metadata.get("tags", [])) if isinstance(metadata, dict) else []


def split_lines(text: str) -> list[str]:
    """nbformat's on-disk form of a source: lines with their newlines."""
    return text.splitlines(keepends=True)


def code_cell(source: str, tags: list[str] | None = None) -> dict:
    metadata = {"tags": list(tags)} if tags else {}
    return {"cell_type": "code", "execution_count": None, "metadata": metadata, "outputs": [],
            "source": split_lines(source)}


def markdown_cell(source: str) -> dict:
    return {"cell_type": "markdown", "metadata": {}, "source": split_lines(source)}


def dumps_notebook(nb: dict) -> str:
    """Serialise the way nbformat does (indent 1, sorted keys), so diffs stay small and stable."""
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write through a temporary file and rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
