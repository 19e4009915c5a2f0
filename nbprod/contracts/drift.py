"""Drift between a reference and a current data set: one test per column, then data-set drift.

``compute_drift`` is the pure computation (no recording, usable anywhere: CLI, monitoring, serving);
``drift`` is the notebook helper that also records metrics and shows the report section. The test
per column follows Evidently's defaults (README, "Data contracts"); ``[tool.nbprod.drift]`` in
pyproject.toml sets tests and thresholds, per column too.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.errors import NbprodError

if TYPE_CHECKING:
    import pandas

SMALL_REFERENCE_ROWS = 1000    # up to this many reference rows: p-value tests; above: distances
FEW_VALUES = 5                 # a numeric column with at most this many distinct values is compared as categories
DATASET_DRIFT_SHARE = 0.5      # data-set drift when at least this share of tested columns drifted


@dataclass
class ColumnRule:
    """A per-column (or all-column) choice from ``[tool.nbprod.drift]``."""

    test: str | None = None
    threshold: float | None = None
    type: str | None = None    # "numeric" or "categorical": overrides the dtype's


@dataclass
class DriftConfig:
    share: float = DATASET_DRIFT_SHARE
    small_reference_rows: int = SMALL_REFERENCE_ROWS
    numeric: ColumnRule = field(default_factory=ColumnRule)
    categorical: ColumnRule = field(default_factory=ColumnRule)
    columns: dict[str, ColumnRule] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, data: dict, source: str = "[tool.nbprod.drift]") -> DriftConfig:
        """Read the ``[tool.nbprod.drift]`` table; NbprodError naming the bad key otherwise."""
        if not isinstance(data, dict):
            raise NbprodError(f"{source} must be a table", "pyproject.toml", fix="write [tool.nbprod.drift]")
        unknown = sorted(set(data) - {"share", "small_reference_rows", "numeric", "categorical", "columns"})
        if unknown:
            raise NbprodError(f"{source}: unknown key {unknown[0]!r}", "pyproject.toml",
                              fix="use share, small_reference_rows, numeric, categorical or columns")
        config = cls()
        share = data.get("share", config.share)
        if not isinstance(share, (int, float)) or isinstance(share, bool) or not 0 < share <= 1:
            raise NbprodError(f"{source}: share must be a number in (0, 1]", "pyproject.toml", fix="write share = 0.5")
        config.share = float(share)
        rows = data.get("small_reference_rows", config.small_reference_rows)
        if not isinstance(rows, int) or isinstance(rows, bool) or rows < 0:
            raise NbprodError(f"{source}: small_reference_rows must be a whole number", "pyproject.toml",
                              fix="write small_reference_rows = 1000")
        config.small_reference_rows = rows
        config.numeric = _rule(data.get("numeric", {}), f"{source}.numeric")
        config.categorical = _rule(data.get("categorical", {}), f"{source}.categorical")
        columns = data.get("columns", {})
        if not isinstance(columns, dict):
            raise NbprodError(f"{source}.columns must be a table", "pyproject.toml",
                              fix='write [tool.nbprod.drift.columns."NAME"] with test and threshold')
        config.columns = {str(k): _rule(v, f"{source}.columns.{k}") for k, v in columns.items()}
        return config


def _rule(data: Any, source: str) -> ColumnRule:
    from .statistics import TESTS

    if not isinstance(data, dict) or set(data) - {"test", "threshold", "type"}:
        raise NbprodError(f"{source} must hold only test, threshold and type", "pyproject.toml",
                          fix='write test = "ks" and threshold = 0.05')
    test, threshold, kind = data.get("test"), data.get("threshold"), data.get("type")
    if test is not None and test not in TESTS:
        raise NbprodError(f"{source}: unknown test {test!r}", "pyproject.toml",
                          fix=f"use one of {', '.join(TESTS)}")
    if threshold is not None and (not isinstance(threshold, (int, float)) or isinstance(threshold, bool)
                                  or not math.isfinite(threshold) or threshold < 0):
        raise NbprodError(f"{source}: threshold must be a non-negative number", "pyproject.toml",
                          fix="write threshold = 0.05")
    if kind not in (None, "numeric", "categorical"):
        raise NbprodError(f"{source}: type must be numeric or categorical", "pyproject.toml",
                          fix='write type = "categorical"')
    return ColumnRule(test, float(threshold) if threshold is not None else None, kind)


def load_drift_config(root: Path | None) -> DriftConfig:
    """``[tool.nbprod.drift]`` from ``root/pyproject.toml``; the defaults when there is none."""
    if root is None:
        return DriftConfig()
    from ..core.project import read_config

    return DriftConfig.from_mapping(read_config(root).get("drift", {}))


@dataclass
class ColumnDrift:
    column: str
    type: str                  # "numeric", "categorical", or "missing" (on one side only)
    test: str | None           # None when the column could not be tested (see note)
    score: float | None
    threshold: float | None
    drifted: bool
    note: str = ""
    reference_rows: int = 0    # non-missing values compared
    current_rows: int = 0

    @property
    def tested(self) -> bool:
        return self.score is not None


@dataclass
class DriftReport:
    columns: list[ColumnDrift]
    share: float               # drifted columns / tested columns
    dataset_drifted: bool
    share_threshold: float = DATASET_DRIFT_SHARE
    reference_rows: int = 0
    current_rows: int = 0

    @property
    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]

    def column(self, name: str) -> ColumnDrift:
        for result in self.columns:
            if result.column == name:
                return result
        raise KeyError(name)

    def to_dict(self) -> dict:
        """Plain JSON-ready data (``nbprod data drift --json``, monitoring records)."""
        return {"share": self.share, "dataset_drifted": self.dataset_drifted, "share_threshold": self.share_threshold,
                "reference_rows": self.reference_rows, "current_rows": self.current_rows,
                "columns": [asdict(c) for c in self.columns]}

    def metrics(self) -> dict[str, float]:
        """``drift.share``, ``drift.dataset_drifted`` and per tested column ``drift.<col>.score`` /
        ``.drifted`` (1.0 or 0.0): plain metrics for gates, monitor rules and dashboards."""
        values = {"drift.share": self.share, "drift.dataset_drifted": float(self.dataset_drifted)}
        for result in self.columns:
            if result.tested:
                values[f"drift.{result.column}.score"] = result.score
                values[f"drift.{result.column}.drifted"] = float(result.drifted)
        return values


def _is_dataframe(value: object) -> bool:
    import pandas as pd

    return isinstance(value, pd.DataFrame)


def compute_drift(reference: pandas.DataFrame, current: pandas.DataFrame, columns: list[str] | None = None,
                  config: DriftConfig | None = None) -> DriftReport:
    """One drift test per column of ``reference`` vs ``current`` (all shared and one-sided columns
    when ``columns`` is None), and data-set drift. Records nothing; never raises for data content."""
    for label, frame in (("reference", reference), ("current", current)):
        if not _is_dataframe(frame):
            raise NbprodError(f"drift: the {label} data is a {type(frame).__name__}, not a DataFrame",
                              fix="pass two pandas DataFrames (pd.read_parquet / pd.read_csv)")
    config = config or DriftConfig()
    if columns is None:
        names = [str(c) for c in reference.columns]
        names += [str(c) for c in current.columns if str(c) not in set(names)]
    else:
        names = [str(c) for c in columns]
    ref_columns = {str(c): c for c in reference.columns}
    cur_columns = {str(c): c for c in current.columns}
    results = []
    for name in names:
        if name not in ref_columns or name not in cur_columns:
            side = "current" if name not in ref_columns else "reference"
            if name not in ref_columns and name not in cur_columns:
                note = "in neither data set"
            else:
                note = f"only in the {side} data: not tested"
            results.append(ColumnDrift(name, "missing", None, None, None, False, note))
            continue
        results.append(_column_drift(name, reference[ref_columns[name]], current[cur_columns[name]], config))
    tested = [r for r in results if r.tested]
    share = sum(r.drifted for r in tested) / len(tested) if tested else 0.0
    return DriftReport(results, share, bool(tested) and share >= config.share, config.share,
                       len(reference), len(current))


def _column_type(series: pandas.Series, rule: ColumnRule) -> str:
    import pandas as pd

    if rule.type:
        return rule.type
    numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    return "numeric" if numeric or pd.api.types.is_datetime64_any_dtype(series) else "categorical"


def numbers(series: pandas.Series):
    """Float values of a numeric or datetime column (datetimes as their integer time stamps)."""
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(series):
        return series.astype("int64").to_numpy(dtype=float)
    return series.to_numpy(dtype=float)


def _column_drift(name: str, reference: pandas.Series, current: pandas.Series, config: DriftConfig) -> ColumnDrift:
    import numpy as np

    from . import statistics

    override = config.columns.get(name, ColumnRule())
    kind = _column_type(reference, override)
    if kind == "numeric" and _column_type(current, override) != "numeric":
        kind = "categorical"   # a number column that turned into text: compare as categories
    elif kind == "numeric" and not override.type and _few_values(reference, current):
        kind = "categorical"   # codes and flags (0/1 targets): a distribution test on counts fits them
    kind_rule = config.numeric if kind == "numeric" else config.categorical
    notes = []
    ref, cur = reference.dropna(), current.dropna()
    for label, full, kept in (("reference", reference, ref), ("current", current, cur)):
        if len(kept) < len(full):
            notes.append(f"{len(full) - len(kept)} missing in {label} ({(len(full) - len(kept)) / len(full):.0%})")
    result = ColumnDrift(name, kind, None, None, None, False, "", len(ref), len(cur))
    if len(ref) == 0 or len(cur) == 0:
        empty = " and ".join(label for label, s in (("reference", ref), ("current", cur)) if len(s) == 0)
        result.note = "; ".join([f"no values in {empty}: not tested", *notes])
        return result
    if kind == "numeric":
        try:
            ref_values, cur_values = numbers(ref), numbers(cur)
        except (TypeError, ValueError):
            kind = "categorical"   # type = "numeric" set on a column holding text
            notes.append("not numbers: compared as categories")
            kind_rule, result.type = config.categorical, kind
    if kind == "numeric":
        distinct = None
        finite_ref, finite_cur = np.isfinite(ref_values), np.isfinite(cur_values)
        if not (finite_ref.all() and finite_cur.all()):
            notes.append(f"{(~finite_ref).sum() + (~finite_cur).sum()} infinite values left out")
            ref_values, cur_values = ref_values[finite_ref], cur_values[finite_cur]
            result.reference_rows, result.current_rows = len(ref_values), len(cur_values)
            if len(ref_values) == 0 or len(cur_values) == 0:
                result.note = "; ".join(["no finite values on one side: not tested", *notes])
                return result
    else:
        ref_counts, cur_counts = ref.astype(str).value_counts(), cur.astype(str).value_counts()
        categories = sorted(set(ref_counts.index) | set(cur_counts.index))
        ref_values = ref_counts.reindex(categories, fill_value=0).to_numpy(dtype=float)
        cur_values = cur_counts.reindex(categories, fill_value=0).to_numpy(dtype=float)
        distinct = len(categories)
        new = sorted(set(cur_counts.index) - set(ref_counts.index))
        if new:
            shown = ", ".join(new[:3]) + (", ..." if len(new) > 3 else "")
            notes.append(f"{len(new)} categories not in reference ({shown})")
    test = override.test or kind_rule.test or _default_test(kind, len(ref), distinct, config)
    spec = statistics.TESTS[test]
    if spec.kind not in ("both", kind):
        test = _default_test(kind, len(ref), distinct, config)
        notes.append(f"{spec.name} does not apply to {kind} columns: {test} used")
        spec = statistics.TESTS[test]
    threshold = override.threshold if override.threshold is not None else (
        kind_rule.threshold if kind_rule.threshold is not None and not override.test else spec.threshold)
    constant = (distinct == 1) if kind == "categorical" else bool(
        np.all(ref_values == ref_values[0]) and np.all(cur_values == ref_values[0]))
    if constant:
        score = 1.0 if not spec.higher_is_drift else 0.0
        notes.insert(0, "constant column, same value on both sides")
    else:
        if kind == "numeric" and np.all(ref_values == ref_values[0]):
            notes.insert(0, "constant in reference")
        score = statistics.score(test, ref_values, cur_values, kind == "numeric")
    if not math.isfinite(score):
        result.test, result.note = test, "; ".join([f"{test} gave no finite score: not tested", *notes])
        return result
    result.test, result.score, result.threshold = test, score, threshold
    result.drifted = spec.drifted(score, threshold)
    result.note = "; ".join(notes)
    return result


def _few_values(reference: pandas.Series, current: pandas.Series) -> bool:
    if reference.iloc[:256].nunique() > FEW_VALUES:   # the usual case, decided without a full pass
        return False
    seen = set(reference.dropna().unique()[: FEW_VALUES + 1])
    if len(seen) > FEW_VALUES:
        return False
    seen |= set(current.dropna().unique()[: FEW_VALUES + 1])
    return len(seen) <= FEW_VALUES


def _default_test(kind: str, reference_rows: int, distinct: int | None, config: DriftConfig) -> str:
    small = reference_rows <= config.small_reference_rows
    if kind == "numeric":
        return "ks" if small else "wasserstein"
    if small:
        return "z" if distinct == 2 else "chisquare"
    return "jensenshannon"


def drift(reference: pandas.DataFrame, current: pandas.DataFrame, columns: list[str] | None = None, *,
          config: DriftConfig | None = None, record: bool = True, show: bool = True) -> DriftReport:
    """The notebook helper: ``compute_drift`` with ``[tool.nbprod.drift]`` from the project, its
    metrics recorded with ``nbprod.record`` and a report section (table + charts of drifted columns)."""
    from ..record import record as record_value
    from .schemas import project_root_of

    if config is None:
        config = load_drift_config(project_root_of(Path.cwd()))
    report = compute_drift(reference, current, columns, config)
    if record:
        for name, value in report.metrics().items():
            record_value(name, value)
    if show:
        from .section import show_drift

        show_drift(report, reference, current)
    return report
