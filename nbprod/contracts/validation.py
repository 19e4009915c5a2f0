"""Validating a DataFrame against a schema file: ``check_frame`` (pure) and ``nbprod.validate``.

pandera runs lazily (every failure collected, not only the first); its failure cases become one
summary line (schema, column, check, failing rows, first failing values), metrics
``validation.<schema>.*`` and a failures table in the stage report.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.errors import NbprodError
from .schemas import load_schema, resolve_schema, schema_name

if TYPE_CHECKING:
    import pandas
    import pandera.pandas as pa

FIRST_VALUES = 3        # failing values quoted in the summary line, per column and check
_SCHEMAS: dict[tuple, pa.DataFrameSchema] = {}   # (path, mtime, size) -> parsed schema


class ValidationFailed(ValueError):
    """The data broke its contract: the message is the one-line summary; ``result`` holds the rest."""

    def __init__(self, result: ValidationResult):
        super().__init__(result.summary())
        self.result = result


class ValidationWarning(UserWarning):
    """``on_fail="warn"``: the data broke its contract and the stage went on."""


@dataclass
class Failure:
    """Every failure case of one check on one column."""

    column: str
    check: str
    rows: int | None           # failing rows; None when the check is about the whole column
    values: list[str]          # the first few failing values


@dataclass
class ValidationResult:
    schema: str                # the schema's name (file name without .yaml)
    path: Path
    rows: int
    failed_rows: int
    failures: list[Failure]
    failure_cases: Any = None  # pandera's failure-case DataFrame, or None when valid

    @property
    def passed(self) -> bool:
        return not self.failures

    def metrics(self, name: str | None = None) -> dict[str, int]:
        """``validation.<name>.*`` (name: the schema's, unless given)."""
        prefix = f"validation.{name or self.schema}"
        return {f"{prefix}.passed": int(self.passed), f"{prefix}.failed": int(not self.passed),
                f"{prefix}.rows": self.rows, f"{prefix}.failed_rows": self.failed_rows,
                f"{prefix}.failures": len(self.failures)}

    def summary(self) -> str:
        if self.passed:
            return f"schema {self.schema} ({self.path}): {self.rows} rows valid"
        parts = []
        for failure in self.failures:
            parts.append(describe_failure(failure))
        return (f"schema {self.schema} ({self.path}): {self.failed_rows} of {self.rows} rows fail, "
                f"{len(self.failures)} failed check{'s' if len(self.failures) > 1 else ''}: " + "; ".join(parts))


def describe_failure(failure: Failure) -> str:
    if failure.check == "column_in_dataframe":
        return f"column {failure.column!r} is missing"
    if failure.check == "column_in_schema":
        return f"column {failure.column!r} is not in the schema (strict)"
    if failure.check.startswith("dtype("):
        got = f" (found {failure.values[0]})" if failure.values else ""
        return f"column {failure.column!r} fails {failure.check}{got}"
    rows = f" in {failure.rows} row{'s' if failure.rows != 1 else ''}" if failure.rows is not None else ""
    values = f" (first values: {', '.join(failure.values)})" if failure.values else ""
    return f"column {failure.column!r} fails {failure.check}{rows}{values}"


def _schema(path: Path) -> pa.DataFrameSchema:
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    schema = _SCHEMAS.get(key)
    if schema is None:
        schema = _SCHEMAS[key] = load_schema(path)
    return schema


def check_frame(df: pandas.DataFrame, schema: str | Path, base: Path | None = None) -> ValidationResult:
    """Validate ``df`` against the schema file ``schema`` (a path, or a NAME under schemas/);
    collects every failure. Raises NbprodError only for bad input (no DataFrame, bad schema file)."""
    import pandas as pd
    from pandera.errors import SchemaErrors

    path = resolve_schema(schema, base)
    parsed = _schema(path)
    if not isinstance(df, pd.DataFrame):
        raise NbprodError(f"validate: expected a pandas DataFrame, got a {type(df).__name__}", path,
                          fix="pass the DataFrame to check (pd.DataFrame(...) for other data)")
    name = schema_name(path)
    display_path = _display_path(path, base)
    try:
        parsed.validate(df, lazy=True)
    except SchemaErrors as errors:
        cases = errors.failure_cases
        failures, failed_rows = _failures(cases, len(df), parsed.name or name)
        return ValidationResult(name, display_path, len(df), failed_rows, failures, cases)
    return ValidationResult(name, display_path, len(df), 0, [])


def _display_path(path: Path, base: Path | None) -> Path:
    from .schemas import project_root_of

    root = project_root_of(base or Path.cwd())
    if root is not None:
        try:
            return path.relative_to(root)
        except ValueError:
            pass
    return path


def _failures(cases: pandas.DataFrame, rows: int, schema_label: str) -> tuple[list[Failure], int]:
    """Group pandera's failure cases by column and check; count distinct failing rows."""
    failures = []
    whole_frame = False
    wrong_dtype = set(cases.loc[cases["check"].astype(str).str.startswith("dtype("), "column"].astype(str))
    for (column, check), group in cases.groupby(["column", "check"], sort=False, dropna=False):
        column, check = str(column), str(check)
        if column in wrong_dtype and group["failure_case"].astype(str).str.startswith("TypeError(").all():
            continue  # a check that could not compare values of the wrong dtype: the dtype failure says it
        indexed = group["index"].dropna()
        if check in ("column_in_dataframe", "column_in_schema"):
            column = str(group["failure_case"].iloc[0]) if column in (schema_label, "None", "nan") else column
            for missing in group["failure_case"].astype(str).unique():
                failures.append(Failure(missing, check, None, []))
            whole_frame = whole_frame or check == "column_in_dataframe"
            continue
        if indexed.empty:
            whole_frame = True
        values = [_short(v) for v in group["failure_case"].head(FIRST_VALUES)]
        failures.append(Failure(column, check, None if indexed.empty else int(indexed.nunique()), values))
    if whole_frame:
        failed_rows = rows
    else:
        failed_rows = int(cases["index"].dropna().nunique())
    return failures, failed_rows


def _short(value: object) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def validate(df: pandas.DataFrame, schema: str | Path, on_fail: str = "raise", *, name: str | None = None,
             record: bool = True, show: bool = True) -> pandas.DataFrame:
    """Check ``df`` against the schema file (e.g. ``"schemas/NAME.yaml"``) and return it.

    Records ``validation.NAME.{passed,failed,rows,failed_rows,failures}``; on a violation shows a
    failures table, then raises ``ValidationFailed`` (one line: schema, column, check, failing rows,
    first values) or, with ``on_fail="warn"``, warns and returns the frame. A literal path here is
    a DVC dependency of the stage (compile finds it). ``name`` replaces the schema's name in the
    metrics, to validate two frames against one schema in a stage (``name="test"``).
    """
    if on_fail not in ("raise", "warn"):
        raise NbprodError(f"validate: on_fail must be 'raise' or 'warn', not {on_fail!r}",
                          fix='write on_fail="warn" to record violations and go on')
    result = check_frame(df, schema)
    if record:
        from ..record import record as record_value

        for metric, value in result.metrics(name).items():
            record_value(metric, value)
    if result.passed:
        return df
    if show:
        from .section import show_html, validation_html

        show_html(validation_html(result))
    if on_fail == "warn":
        warnings.warn(result.summary(), ValidationWarning, stacklevel=2)
        return df
    raise ValidationFailed(result)
