"""Reading a data file for the ``nbprod data`` commands: Parquet or CSV, from the workspace or, for
a DVC output not checked out, from DVC's cache by the hash dvc.lock records; or the folder of
``nbprod serve``'s prediction log (the inputs served)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..core.errors import NbprodError

if TYPE_CHECKING:
    import pandas

# .arrow: a DataFrame passed between stages (nbprod.artifacts writes Arrow IPC files)
READERS = {".parquet": "read_parquet", ".pq": "read_parquet", ".arrow": "read_feather", ".csv": "read_csv"}


def read_data(path: str | Path, root: Path | None = None) -> pandas.DataFrame:
    """The DataFrame in ``path`` (relative to the current folder); NbprodError when it cannot be read."""
    import pandas as pd

    path = Path(path)
    if path.is_dir() and any(path.glob("predictions-*.jsonl*")):
        # nbprod serve's prediction log: the inputs production answered, in the training layout.
        from ..serve.predlog import served_inputs

        return served_inputs(path)
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise NbprodError(f"cannot read {path.suffix or 'a file without extension'} data", path,
                          fix="give a .parquet or .csv file")
    source = path if path.is_file() else _from_dvc_cache(path, root)
    try:
        frame = getattr(pd, reader)(source)
    except Exception as exc:  # noqa: BLE001 - pyarrow, the CSV parser and the OS each raise their own kinds
        message = " ".join(str(exc).split())[:160]
        raise NbprodError(f"cannot read the data file ({type(exc).__name__}: {message})", path,
                          fix="give a readable Parquet or CSV file") from None
    if not isinstance(frame, pd.DataFrame):
        raise NbprodError("does not hold a table", path, fix="give a Parquet or CSV file holding one table")
    return frame


def _from_dvc_cache(path: Path, root: Path | None) -> Path:
    """The cached bytes of a DVC output missing from the workspace (e.g. not pulled or checked out)."""
    missing = NbprodError("data file not found", path,
                          fix="correct the path, or run 'dvc pull' / 'dvc checkout' for a DVC output")
    if root is None:
        return _raise(missing)
    from ..core.dvccache import cache_dir, object_path, parse_lock

    lock = root / "dvc.lock"
    try:
        rel = path.resolve().relative_to(root).as_posix()
    except ValueError:
        return _raise(missing)
    if not lock.is_file():
        return _raise(missing)
    for stage in parse_lock(lock.read_text(encoding="utf-8")).values():
        md5 = stage.outs.get(rel)
        if md5 and not md5.endswith(".dir"):
            cached = object_path(cache_dir(root), md5)
            if cached.is_file():
                return cached
    return _raise(missing)


def _raise(error: NbprodError) -> Path:
    raise error
