"""Data-contract scenarios: nbprod.validate against pandera's own validate, and compute_drift against
a direct loop of the same scipy calls. Both run in process on generated frames (no files, no kernels)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # scenarios.py imports this module to register its scenarios
    from .scenarios import Row, Size


def _frame(rows: int, columns: int, seed: int, shift: float = 0.0):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    return pd.DataFrame({f"c{i}": rng.normal(shift, 1.0, rows) for i in range(columns)})


def validate_rows(work: Path, size: Size) -> list[Row]:
    """1,000,000 rows x 10 columns, 4 checks per column (plus dtype and not-null)."""
    import pandera.pandas as pa

    import nbprod

    from .scenarios import Row, median
    from nbprod.contracts.schemas import load_schema, save_schema

    rows = 10_000 if size.tiny else 1_000_000
    frame = _frame(rows, 10, seed=1)
    checks = [pa.Check.greater_than_or_equal_to(-100.0), pa.Check.less_than_or_equal_to(100.0),
              pa.Check.not_equal_to(-999.0), pa.Check.in_range(-1000.0, 1000.0)]
    schema = pa.DataFrameSchema({c: pa.Column("float64", checks, nullable=False) for c in frame.columns})
    path = save_schema(schema, Path(tempfile.mkdtemp(dir=work)) / "schemas" / "bench.yaml")
    parsed = load_schema(path)
    ours, theirs = [], []
    nbprod.validate(frame, str(path))  # parses and caches the schema file, as a stage's first call would
    for rep in range(max(5, size.cheap)):  # interleaved, alternating who goes first: load hits both alike
        for side in ((0, 1) if rep % 2 else (1, 0)):
            started = time.perf_counter()
            if side:
                nbprod.validate(frame, str(path))
            else:
                parsed.validate(frame, lazy=True)
            (ours if side else theirs).append(time.perf_counter() - started)
    ours_s, theirs_s = median(ours), median(theirs)
    return [Row(f"nbprod.validate {rows:,} x 10, 4 checks each", ours_s, theirs_s, "pandera validate",
                ours_s / theirs_s, "<= 1.1x", ours_s / theirs_s <= 1.1, "lazy=True on both sides")]


def drift_columns(work: Path, size: Size) -> list[Row]:
    """100,000 x 20 numeric columns against a reference of the same size (Wasserstein, as > 1,000 rows)."""
    import numpy as np
    from scipy.stats import wasserstein_distance

    from nbprod.contracts.drift import compute_drift

    from .scenarios import Row, median

    rows = 5_000 if size.tiny else 100_000
    reference, current = _frame(rows, 20, seed=2), _frame(rows, 20, seed=3, shift=0.05)

    def direct() -> list[float]:
        return [wasserstein_distance(reference[c].to_numpy(), current[c].to_numpy())
                / max(float(np.std(reference[c].to_numpy())), 0.001) for c in reference.columns]

    ours, theirs = [], []
    for _ in range(size.cheap):
        started = time.perf_counter()
        report = compute_drift(reference, current)
        ours.append(time.perf_counter() - started)
        started = time.perf_counter()
        scores = direct()
        theirs.append(time.perf_counter() - started)
    assert np.allclose([c.score for c in report.columns], scores)  # the same statistic, or the ratio means nothing
    ours_s, theirs_s = median(ours), median(theirs)
    return [Row(f"drift {rows:,} x 20 vs same-size reference", ours_s, theirs_s, "direct scipy loop",
                ours_s / theirs_s, "<= 1.5x and <= 2 s", ours_s / theirs_s <= 1.5 and ours_s <= 2.0,
                f"{ours_s:.2f} s absolute")]
