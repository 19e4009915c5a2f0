"""Schema files: pandera ``DataFrameSchema`` objects stored as YAML under ``schemas/``.

Owns where a schema file is looked up, inferring one from a frame, loading it strictly (pandera's
own reader silently ignores unknown keys, so a misspelt check would never run), saving, hashing and
printing it. pandera is imported inside the functions: this module is imported by compile and
lineage code that must not pay for it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.errors import NbprodError

if TYPE_CHECKING:
    import pandas
    import pandera.pandas as pa

SCHEMA_DIR = "schemas"
SCHEMA_SUFFIXES = (".yaml", ".yml")
# A string column with at most this many distinct values gets an ``isin`` check when inferred.
MAX_INFERRED_CATEGORIES = 20
_TOP_LEVEL_KEYS = {
    "schema_type", "api", "version", "columns", "checks", "index", "dtype", "coerce", "strict", "name",
    "ordered", "unique", "report_duplicates", "unique_column_names", "add_missing_columns", "title",
    "description", "metadata", "drop_invalid_rows", "dataframe_library",
}
_HEADER = ("# Data contract read by nbprod.validate (pandera YAML). Inferred by nbprod data infer{source}:\n"
           "# review it, tighten ranges and categories, then commit it.\n")


def project_root_of(start: Path) -> Path | None:
    """The nearest folder at or above ``start`` holding ``.dvc`` (the project root), if any."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / ".dvc").is_dir():
            return folder
    return None


def is_schema_name(ref: str) -> bool:
    """A bare NAME (``breast_cancer``) rather than a path (``schemas/breast_cancer.yaml``)."""
    return "/" not in ref and "\\" not in ref and not ref.endswith(SCHEMA_SUFFIXES)


def resolve_schema(ref: str | Path, base: Path | None = None, root: Path | None = None) -> Path:
    """The schema file ``ref`` names, seen from folder ``base`` (a stage's working folder).

    A bare NAME is ``<project root>/schemas/NAME.yaml``. A relative path is looked up from ``base``
    first, then from the project root, so ``schemas/x.yaml`` works from a notebook in a subfolder.
    Compile (for the DVC dependency) and ``nbprod.validate`` (at run time) both use this rule.
    """
    base = (base or Path.cwd()).resolve()
    root = root.resolve() if root else project_root_of(base)
    text = str(ref)
    if is_schema_name(text):
        candidates = [(root or base) / SCHEMA_DIR / f"{text}.yaml"]
    else:
        path = Path(text)
        candidates = [path] if path.is_absolute() else [base / path] + ([root / path] if root else [])
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    raise NbprodError(f"schema file {text!r} not found (looked in {', '.join(str(c) for c in candidates)})",
                      ref, fix="create it with 'nbprod data infer DATA --name NAME', or correct the path")


def is_schema_path(rel: str) -> bool:
    """A project-relative path of a schema file (a ``.yaml`` under a ``schemas/`` folder): what compile
    adds as a dep for ``nbprod.validate``, and what lineage and approvals single out among deps."""
    parts = Path(rel).parts
    return rel.endswith(SCHEMA_SUFFIXES) and SCHEMA_DIR in parts[:-1]


def schema_name(path: Path) -> str:
    """The schema's name for metrics: the file name without ``.yaml``."""
    return Path(path).name.rsplit(".", 1)[0]


def load_schema(path: str | Path) -> pa.DataFrameSchema:
    """The pandera schema in YAML file ``path``; NbprodError for a missing, unreadable or invalid file."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NbprodError("schema file not found", path,
                          fix="create it with 'nbprod data infer DATA --name NAME', or correct the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise NbprodError(f"cannot read the schema file ({exc})", path,
                          fix="make it a readable UTF-8 YAML file") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise NbprodError(f"is not valid YAML{where} ({getattr(exc, 'problem', None) or exc})", path,
                          fix="correct the YAML syntax") from None
    _check_structure(data, path)
    return _from_mapping(data, path)


def _check_structure(data: Any, path: Path) -> None:
    from pandera.api.checks import Check
    from pandera.io._flat_checks import COMPONENT_RESERVED_KEYS

    if not isinstance(data, dict) or not isinstance(data.get("columns"), dict) or not data["columns"]:
        raise NbprodError("is not a schema: it needs a 'columns:' mapping of column name to checks", path,
                          fix="write it with 'nbprod data infer DATA --name NAME' and edit the result")
    unknown = sorted(set(data) - _TOP_LEVEL_KEYS)
    if unknown:
        raise NbprodError(f"unknown schema key {unknown[0]!r}", path,
                          fix=f"use only pandera schema keys ({', '.join(sorted(_TOP_LEVEL_KEYS))})")
    for column, spec in data["columns"].items():
        if spec is None:
            continue
        if not isinstance(spec, dict):
            raise NbprodError(f"column {column!r} must map to its dtype and checks", path,
                              fix=f"write '{column}: {{dtype: float64}}'")
        for key in spec:
            if key in COMPONENT_RESERVED_KEYS:
                continue
            if not callable(getattr(Check, str(key), None)) or str(key).startswith("_"):
                raise NbprodError(f"column {column!r}: unknown check {key!r}", path,
                                  fix="use a pandera built-in check such as greater_than_or_equal_to, "
                                      "less_than_or_equal_to, isin, str_matches, or remove it")
        if isinstance(spec.get("checks"), list):
            for check in spec["checks"]:
                name = (check.get("options") or {}).get("check_name") if isinstance(check, dict) else None
                if not name or not callable(getattr(Check, str(name), None)):
                    raise NbprodError(f"column {column!r}: unknown check {name!r}", path,
                                      fix="use a pandera built-in check name in options.check_name")


def _from_mapping(data: dict, path: Path) -> pa.DataFrameSchema:
    from pandera.io import pandas_io

    try:
        schema = pandas_io.deserialize_schema(data)
    except Exception as exc:  # noqa: BLE001 - pandera raises TypeError, ValueError, KeyError... for bad values
        message = " ".join(str(exc).split())[:200]
        where = _failing_column(data)
        raise NbprodError(f"is not a valid pandera schema ({where}{type(exc).__name__}: {message})", path,
                          fix="correct the dtype or check arguments it names") from None
    if schema.name is None:
        schema.name = schema_name(path)
    return schema


def _failing_column(data: dict) -> str:
    """``column 'x': `` for the first column that fails on its own, to point the user at it."""
    from pandera.io import pandas_io

    for column, spec in data["columns"].items():
        try:
            pandas_io.deserialize_schema({"columns": {column: spec}})
        except Exception:  # noqa: BLE001 - the same errors as the whole schema's, column by column
            return f"column {column!r}: "
    return ""


def infer_schema(df: pandas.DataFrame, name: str | None = None,
                 max_categories: int = MAX_INFERRED_CATEGORIES) -> pa.DataFrameSchema:
    """A schema that ``df`` passes: dtypes, nullability, numeric ranges, categories seen.

    A starting point for a human to tighten; no index checks, extra columns allowed.
    """
    import pandas as pd
    import pandera.pandas as pa

    if not isinstance(df, pd.DataFrame):
        raise NbprodError(f"cannot infer a schema from a {type(df).__name__}", fix="pass a pandas DataFrame")
    columns = {}
    for column in df.columns:
        series = df[column]
        checks = []
        values = series.dropna()
        if pd.api.types.is_bool_dtype(series) or values.empty:
            pass
        elif pd.api.types.is_numeric_dtype(series) or pd.api.types.is_datetime64_any_dtype(series):
            low, high = values.min(), values.max()
            if hasattr(low, "item"):
                low, high = low.item(), high.item()
            checks = [pa.Check.greater_than_or_equal_to(low), pa.Check.less_than_or_equal_to(high)]
        elif isinstance(series.dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(series) \
                or series.dtype == object:
            seen = values.unique()
            if len(seen) <= max_categories and all(isinstance(v, str) for v in seen):
                checks = [pa.Check.isin(sorted(seen))]
        columns[str(column)] = pa.Column(str(series.dtype), checks, nullable=bool(series.isna().any()))
    return pa.DataFrameSchema(columns, name=name, strict=False, coerce=False)


def schema_to_yaml(schema: pa.DataFrameSchema, source: str | None = None) -> str:
    """The YAML text of ``schema``, with a header saying where it came from."""
    header = _HEADER.format(source=f" from {source}" if source else "")
    return header + schema.to_yaml()


def save_schema(schema: pa.DataFrameSchema, path: str | Path, source: str | None = None) -> Path:
    """Write ``schema`` to ``path`` atomically; returns the path."""
    from ..notebooks.notebook import atomic_write

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, schema_to_yaml(schema, source))
    return path


def schema_hash(path: str | Path) -> str:
    """The SHA-256 of the schema file's bytes (what lineage and model versions record)."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as exc:
        raise NbprodError(f"cannot read the schema file ({exc.strerror})", path,
                          fix="correct the path, or restore the file from git") from None


def show_schema(path: str | Path) -> str:
    """The schema in ``path`` as a readable table: column, dtype, nullable, checks."""
    schema = load_schema(path)
    rows = [("column", "dtype", "nullable", "checks")]
    for name, column in schema.columns.items():
        checks = ", ".join(_describe_check(check) for check in column.checks) or "-"
        rows.append((str(name), str(column.dtype), "yes" if column.nullable else "no", checks))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [f"schema {schema.name} ({path}): {len(schema.columns)} columns"
             + (", no other columns allowed" if schema.strict else "")]
    for row in rows:
        lines.append("  ".join(cell.ljust(widths[i]) if i < 3 else cell for i, cell in enumerate(row)).rstrip())
    return "\n".join(lines)


def _describe_check(check: Any) -> str:
    stats = dict(getattr(check, "statistics", None) or {})
    name = getattr(check, "name", None) or str(check)
    symbols = {"greater_than_or_equal_to": ">=", "less_than_or_equal_to": "<=", "greater_than": ">",
               "less_than": "<", "equal_to": "==", "not_equal_to": "!="}
    if name in symbols and len(stats) == 1:
        return f"{symbols[name]} {next(iter(stats.values()))}"
    if name == "isin" and "allowed_values" in stats:
        values = list(stats["allowed_values"])
        shown = ", ".join(map(str, values[:8])) + (", ..." if len(values) > 8 else "")
        return f"in {{{shown}}}"
    if stats:
        return f"{name}({', '.join(f'{k}={v}' for k, v in stats.items())})"
    return str(name)
