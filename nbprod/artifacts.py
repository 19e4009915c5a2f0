"""Variables passed between stages, stored by type: DataFrames as Parquet, arrays as .npy, the rest by joblib.

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
    if path.suffix == ".parquet":
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
    if module == "pandas" and _try_parquet(target, value):
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


def _try_parquet(target: Path, value: object) -> bool:
    """Parquet when it round-trips exactly (dtypes, index, names); otherwise the caller pickles."""
    import pandas as pd

    if isinstance(value, pd.Series):
        frame, path = value.to_frame(name=value.name if value.name is not None else "__series__"), \
            target / "value.series.parquet"
    elif isinstance(value, pd.DataFrame):
        frame, path = value, target / "value.parquet"
    else:
        return False
    try:
        frame.to_parquet(path)
        back = pd.read_parquet(path)
        if isinstance(value, pd.Series):
            back = _as_series(back)
            same = back.name == value.name and back.dtype == value.dtype
        else:
            same = list(back.dtypes) == list(value.dtypes) and list(back.columns) == list(value.columns)
        same = same and back.index.equals(value.index) and back.index.dtype == value.index.dtype \
            and back.equals(value)
    except Exception:  # noqa: BLE001 - pyarrow refuses many shapes (mixed objects, non-string columns): fall back
        same = False
    if not same:
        path.unlink(missing_ok=True)
    return same


