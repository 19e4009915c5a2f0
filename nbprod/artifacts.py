"""Variables passed between stages, stored by type: DataFrames as Arrow IPC files, arrays as .npy, the rest by joblib.

Runs inside the stage's kernel, so it imports nothing heavy until a value needs it.
"""

from __future__ import annotations

import os
from pathlib import Path


class ArtifactError(Exception):
    """A variable could not be passed to a later stage."""


def project_root() -> Path:
    env = os.environ.get("NBPROD_ROOT")
    if env:
        return Path(env)
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / ".dvc").is_dir():
            return folder
    raise ArtifactError("nbprod cannot find the project root (no .dvc folder above the working directory)")


def save(stage: str, folder: str, **values: object) -> None:
    """Store each value under ``<root>/<folder>/<name>/`` for the stages that read it."""
    root = project_root()
    for name, value in values.items():
        target = root / folder / name
        target.mkdir(parents=True, exist_ok=True)
        for old in target.iterdir():
            old.unlink()
        try:
            _write(target, value)
        except Exception as exc:  # noqa: BLE001 - a user's value can fail to store in any way: say which variable
            for partial in target.iterdir():
                partial.unlink()
            raise ArtifactError(
                f"stage {stage!r} cannot pass variable {name!r} ({type(value).__name__}) to later stages: "
                f"{type(exc).__name__}: {exc}. Fix: write it to a file in this stage and declare it with an "
                f"outs:PATH tag, or create it in a 'shared' cell"
            ) from None


def load(folder: str, name: str) -> object:
    target = project_root() / folder / name
    files = sorted(target.glob("value.*")) if target.is_dir() else []
    if not files:
        raise ArtifactError(f"input {name!r} is missing at {target}; run the stage that produces it first "
                            f"('nbprod run' or 'dvc repro')")
    path = files[0]
    if path.suffix == ".arrow":
        frame = _read_arrow(path)
        return _as_series(frame) if path.name == "value.series.arrow" else frame
    if path.suffix == ".parquet":  # passed before Arrow files (a run cache or an older version's outputs)
        import pandas as pd

        frame = pd.read_parquet(path)
        if path.name == "value.series.parquet":
            return _as_series(frame)
        return frame
    if path.suffix == ".npy":
        import numpy as np

        return np.load(path, allow_pickle=False)
    import joblib

    return joblib.load(path)


def _write(target: Path, value: object) -> None:
    module = type(value).__module__.split(".")[0]
    if module == "pandas" and _try_arrow(target, value):
        return
    if module == "numpy" and type(value).__name__ == "ndarray" and value.dtype.kind not in "OV":
        import numpy as np

        with open(target / "value.npy", "wb") as handle:
            np.save(handle, value, allow_pickle=False)
        return
    import joblib

    joblib.dump(value, target / "value.joblib")


def _as_series(frame):
    series = frame.iloc[:, 0]
    if series.name == "__series__":
        series.name = None
    return series


# Frames this small are always read back whole and compared; a larger one is when any of its columns
# or its index has a type not listed in _EXACT_KINDS.
VERIFY_ROWS = 10_000
# numpy dtype kinds whose values Arrow stores bit for bit (bool, signed, unsigned, float)
_EXACT_KINDS = "biuf"


def _try_arrow(target: Path, value: object) -> bool:
    """An Arrow IPC file (uncompressed, read back memory-mapped) when it round-trips exactly
    (dtypes, index, names, values); otherwise the caller pickles.

    Whether it does is checked without a second copy of a large frame: the frame's structure is
    round-tripped on its first row, and its values are exact by type (numeric and bool columns and
    index). Any other frame is read back whole and compared."""
    import pandas as pd

    if isinstance(value, pd.Series):
        frame, path = value.to_frame(name=value.name if value.name is not None else "__series__"), \
            target / "value.series.arrow"
    elif isinstance(value, pd.DataFrame):
        frame, path = value, target / "value.arrow"
    else:
        return False
    try:
        import pyarrow as pa
        import pyarrow.ipc as ipc

        table = pa.Table.from_pandas(frame)  # numeric blocks are shared, not copied
        with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        rows = table.num_rows
        del table
        if len(frame) > VERIFY_ROWS and _exact_by_type(frame):
            probe = frame.iloc[:1]
            same = rows == len(frame) and _same(value, probe, pa.Table.from_pandas(probe).to_pandas())
        else:
            same = _same(value, frame, _read_arrow(path))
    except Exception:  # noqa: BLE001 - pyarrow refuses many shapes (mixed objects, non-string columns): fall back
        same = False
    if not same:
        path.unlink(missing_ok=True)
    return same


def _exact_by_type(frame) -> bool:
    import numpy as np
    import pandas as pd

    def exact(dtype) -> bool:
        return isinstance(dtype, np.dtype) and dtype.kind in _EXACT_KINDS

    index = frame.index
    plain_index = isinstance(index, pd.RangeIndex) or (not isinstance(index, pd.MultiIndex) and exact(index.dtype))
    return plain_index and not isinstance(frame.columns, pd.MultiIndex) and frame.columns.is_unique \
        and all(isinstance(c, str) for c in frame.columns) and all(exact(d) for d in frame.dtypes)


def _same(value, frame, back) -> bool:
    """``back`` (read from the file) equals ``frame`` (``value`` as a frame, or its first row)."""
    import pandas as pd

    if isinstance(value, pd.Series):
        back = _as_series(back)
        frame = _as_series(frame)
        same = back.name == value.name and back.dtype == value.dtype
    else:
        same = list(back.dtypes) == list(frame.dtypes) and list(back.columns) == list(frame.columns)
    return bool(same and back.index.equals(frame.index) and back.index.dtype == frame.index.dtype
                and type(back.index) is type(frame.index) and back.index.names == frame.index.names
                and back.equals(frame))


def _read_arrow(path: Path):
    """The frame of an Arrow IPC file, read through a memory map: the file's pages are copied once,
    into the frame's own memory, and the map is closed before returning."""
    import pyarrow as pa
    import pyarrow.ipc as ipc

    with pa.memory_map(str(path)) as source:
        table = ipc.open_file(source).read_all()
        frame = table.to_pandas()
        del table
    return frame
