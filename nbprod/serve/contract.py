"""The strict request contract of ``POST /predict``: every field the model was trained on, with its
type and whether it may be missing (null/NaN), checked value by value before a DataFrame is built.
Anything else is a ``ContractError`` (a 4xx answer naming the field), so the model only ever sees
validated input.

Fields come from the declared schema of the model's training data (a ``schemas/*.yaml`` dep in
dvc.lock, read with ``nbprod.contracts``) when there is one, otherwise from the model's
``feature_names_in_`` and the dtypes of its training data. Checks are plain Python per value; the
schema's range and allowed-value checks become such checks too. Pandera itself runs per request only
for checks that cannot be translated (it costs milliseconds per request).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

KINDS = ("number", "integer", "boolean", "string")


class ContractError(Exception):
    """A request that breaks the contract: ``status`` (4xx), the field and the problem."""

    def __init__(self, status: int, problem: str, field_name: str | None = None, row: int | None = None):
        super().__init__(problem)
        self.status, self.problem, self.field, self.row = status, problem, field_name, row

    def to_dict(self) -> dict:
        where = f"field {self.field!r}" if self.field else "request"
        if self.row is not None:
            where += f" (row {self.row})"
        return {"error": f"{where}: {self.problem}", "field": self.field, "row": self.row, "problem": self.problem}


@dataclass(frozen=True)
class Field:
    name: str
    kind: str                    # one of KINDS
    nullable: bool = False       # null / NaN accepted (the training data had missing values)
    dtype: str = "float64"       # the training dtype the column is built with
    categories: tuple | None = None
    limits: tuple = ()           # (operator, bound) pairs from the declared schema's range checks

    def problem(self, value) -> str | None:
        """Why ``value`` is not acceptable for this field, or None. Hot path: keep it cheap."""
        kind = type(value)
        if value is None or (kind is float and value != value):
            return None if self.nullable else ("is null" if value is None else "is NaN") + ", not allowed here"
        if self.kind == "number":
            if kind is float:
                if not math.isfinite(value):
                    return "is not finite"
            elif kind is not int:
                return f"expected a number, got {_json_type(value)}"
            return self._outside(value) if self.limits or self.categories is not None else None
        if self.kind == "integer":
            if kind is int or (kind is float and value.is_integer()):
                return self._outside(value) if self.limits or self.categories is not None else None
            return f"expected an integer, got {_json_type(value) if kind is not float else value!r}"
        if self.kind == "boolean":
            return None if kind is bool else f"expected true or false, got {_json_type(value)}"
        if kind is not str:
            return f"expected a string, got {_json_type(value)}"
        if self.categories is not None and value not in self.categories:
            return f"{value[:40]!r} is not one of the {len(self.categories)} allowed values"
        return None

    def _outside(self, value) -> str | None:
        if self.categories is not None and value not in self.categories:
            return f"is {value!r}, not one of the {len(self.categories)} allowed values"
        for op, bound in self.limits:
            if not _COMPARE[op](value, bound):
                return f"is {value!r}, the declared schema requires {op} {bound!r}"
        return None

    def describe(self) -> dict:
        out = {"name": self.name, "type": self.kind, "nullable": self.nullable}
        if self.categories is not None:
            out["categories"] = list(self.categories)
        if self.limits:
            out["limits"] = [f"{op} {bound!r}" for op, bound in self.limits]
        return out


_COMPARE = {">=": lambda v, b: v >= b, "<=": lambda v, b: v <= b, ">": lambda v, b: v > b,
            "<": lambda v, b: v < b}


def _json_type(value) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array",
            dict: "object"}.get(type(value), type(value).__name__)


@dataclass
class Contract:
    fields: tuple[Field, ...]
    max_batch: int = 1000
    source: str = "feature_names_in_ + training dtypes"
    schema: object | None = None           # pandera DataFrameSchema limited to the fields, when declared
    schema_sha256: str | None = None
    extra_keys: frozenset = field(default_factory=frozenset)  # allowed top-level keys besides the rows
    _names: tuple = ()
    _by_name: dict = field(default_factory=dict)
    _all_float: bool = False

    def __post_init__(self) -> None:
        self._names = tuple(f.name for f in self.fields)
        self._by_name = {f.name: f for f in self.fields}
        self._all_float = all(f.dtype == "float64" for f in self.fields)

    @property
    def names(self) -> tuple[str, ...]:
        return self._names

    def describe(self) -> dict:
        return {"source": self.source, "schema_sha256": self.schema_sha256, "max_batch": self.max_batch,
                "fields": [f.describe() for f in self.fields]}

    def frame(self, body):
        """The validated rows of a request body as a DataFrame in training column order and dtypes."""
        if not isinstance(body, dict):
            raise ContractError(422, f"the body must be a JSON object with 'records' or 'columns', "
                                     f"got {_json_type(body)}")
        unknown = [k for k in body if k not in ("records", "columns") and k not in self.extra_keys]
        if unknown:
            raise ContractError(422, "unknown top-level key; send 'records' or 'columns'", str(unknown[0]))
        if ("records" in body) == ("columns" in body):
            raise ContractError(422, "send exactly one of 'records' (a list of objects) or 'columns' "
                                     "(an object of lists)")
        columns = self._from_records(body["records"]) if "records" in body else self._from_columns(body["columns"])
        frame = self._build(columns)
        if self.schema is not None:
            self._check_schema(frame)
        return frame

    def _check_size(self, rows: int) -> None:
        if rows == 0:
            raise ContractError(422, "the batch is empty")
        if rows > self.max_batch:
            raise ContractError(413, f"the batch has {rows} rows, more than the limit of {self.max_batch}")

    def _from_records(self, records) -> dict[str, list]:
        if not isinstance(records, list):
            raise ContractError(422, f"expected a list of objects, got {_json_type(records)}", "records")
        self._check_size(len(records))
        names, by_name = self._names, self._by_name
        for row, record in enumerate(records):
            if not isinstance(record, dict):
                raise ContractError(422, f"expected an object, got {_json_type(record)}", "records", row)
            if len(record) != len(names) or any(n not in record for n in names):
                self._name_problem(record.keys(), row)
            for name, value in record.items():
                problem = by_name[name].problem(value)
                if problem:
                    raise ContractError(422, problem, name, row)
        return {n: [r[n] for r in records] for n in names}

    def _from_columns(self, columns) -> dict[str, list]:
        if not isinstance(columns, dict):
            raise ContractError(422, f"expected an object of lists, got {_json_type(columns)}", "columns")
        if len(columns) != len(self._names) or any(n not in columns for n in self._names):
            self._name_problem(columns.keys(), None)
        lengths = set()
        for name in self._names:
            values = columns[name]
            if not isinstance(values, list):
                raise ContractError(422, f"expected a list of values, got {_json_type(values)}", name)
            lengths.add(len(values))
        if len(lengths) != 1:
            raise ContractError(422, f"columns have different lengths ({', '.join(map(str, sorted(lengths)))})")
        self._check_size(lengths.pop())
        for name in self._names:
            check = self._by_name[name].problem
            for row, value in enumerate(columns[name]):
                problem = check(value)
                if problem:
                    raise ContractError(422, problem, name, row)
        return {n: columns[n] for n in self._names}

    def _name_problem(self, keys, row: int | None) -> None:
        missing = [n for n in self._names if n not in keys]
        if missing:
            raise ContractError(422, "is missing", missing[0], row)
        extra = next(k for k in keys if k not in self._by_name)
        raise ContractError(422, "is not a field the model was trained on", str(extra), row)

    def _build(self, columns: dict[str, list]):
        import numpy as np
        import pandas as pd

        if self._all_float:
            # One 2-D float array: the cheapest DataFrame to build (a single block).
            array = np.array(list(columns.values()), dtype=float).T
            return pd.DataFrame(array, columns=self._names, copy=False)
        data = {}
        for name, values in columns.items():
            dtype = self._by_name[name].dtype
            data[name] = pd.Series(values, dtype=dtype if dtype != "object" else object)
        return pd.DataFrame(data)

    def _check_schema(self, frame) -> None:
        import pandera.errors

        try:
            self.schema.validate(frame, lazy=True)
        except pandera.errors.SchemaErrors as exc:
            cases = exc.failure_cases
            first = cases.iloc[0] if len(cases) else None
            column = None if first is None else first.get("column")
            check = "fails the declared schema" if first is None else f"fails {first.get('check')}"
            index = None if first is None else first.get("index")
            raise ContractError(422, check, str(column) if column is not None else None,
                                int(index) if isinstance(index, (int, float)) and index == index else None) from None
        except pandera.errors.SchemaError as exc:
            raise ContractError(422, f"fails the declared schema ({str(exc).splitlines()[0][:200]})") from None


def kind_of(dtype) -> str:
    """The JSON kind a pandas / numpy / pandera dtype accepts."""
    text = str(dtype).lower()
    if text.startswith("bool"):
        return "boolean"
    if text.startswith(("int", "uint")):
        return "integer"
    if text.startswith("float"):
        return "number"
    return "string"


def from_training(features: list[str], frame, max_batch: int, extra_keys=frozenset()) -> Contract:
    """Fields from ``feature_names_in_`` and the training frame's dtypes; null allowed only where the
    training data had missing values."""
    fields = []
    for name in features:
        column = frame[name]
        dtype = column.dtype
        categories = tuple(str(c) for c in dtype.categories) if str(dtype) == "category" else None
        fields.append(Field(name, kind_of(dtype), bool(column.isna().any()), _build_dtype(dtype), categories))
    return Contract(tuple(fields), max_batch, extra_keys=frozenset(extra_keys))


def from_features(features: list[str], max_batch: int, extra_keys=frozenset()) -> Contract:
    """Numbers, no nulls: when the training data cannot be read as a table (e.g. a .npy array)."""
    return Contract(tuple(Field(n, "number") for n in features), max_batch,
                    source="feature_names_in_ (training data not tabular: numbers, no nulls)",
                    extra_keys=frozenset(extra_keys))


def from_schema(features: list[str], schema, training, max_batch: int, source: str, sha256: str,
                extra_keys=frozenset()) -> Contract:
    """Fields from a pandera DataFrameSchema: dtype, nullable, and range / allowed-value checks
    turned into per-value checks; columns it does not declare fall back to training dtypes. Pandera
    itself runs per request only for checks that cannot be turned into per-value ones."""
    fields, untranslated = [], False
    declared = getattr(schema, "columns", {}) or {}
    for name in features:
        column = declared.get(name)
        train_dtype = training[name].dtype if training is not None and name in training else None
        if column is not None and column.dtype is not None:
            limits, allowed, rest = _translate(column.checks)
            untranslated = untranslated or rest
            dtype = _build_dtype(train_dtype if train_dtype is not None else column.dtype)
            fields.append(Field(name, kind_of(column.dtype), bool(column.nullable), dtype, allowed, limits))
        elif train_dtype is not None:
            fields.append(Field(name, kind_of(train_dtype), bool(training[name].isna().any()),
                                _build_dtype(train_dtype)))
        else:
            fields.append(Field(name, "number"))
    kept = [n for n in declared if n in features]
    rest_schema = None
    if untranslated or getattr(schema, "checks", None):
        rest_schema = schema.select_columns(kept) if hasattr(schema, "select_columns") else schema
    return Contract(tuple(fields), max_batch, source, rest_schema, sha256, extra_keys=frozenset(extra_keys))


_RANGE = {"greater_than_or_equal_to": (">=", "min_value"), "less_than_or_equal_to": ("<=", "max_value"),
          "greater_than": (">", "min_value"), "less_than": ("<", "max_value")}


def _translate(checks) -> tuple[tuple, tuple | None, bool]:
    """(limits, allowed values, whether some check is left for pandera) of a column's checks."""
    limits, allowed, rest = [], None, False
    for check in checks or ():
        name, stats = getattr(check, "name", None), getattr(check, "statistics", None) or {}
        if name in _RANGE and _RANGE[name][1] in stats:
            op, key = _RANGE[name]
            limits.append((op, stats[key]))
        elif name == "in_range" and {"min_value", "max_value"} <= set(stats):
            limits.append((">=" if stats.get("include_min", True) else ">", stats["min_value"]))
            limits.append(("<=" if stats.get("include_max", True) else "<", stats["max_value"]))
        elif name == "isin" and "allowed_values" in stats:
            allowed = tuple(stats["allowed_values"])
        else:
            rest = True
    return tuple(limits), allowed, rest


def _build_dtype(dtype) -> str:
    """The numpy dtype a column is built with: the training one when numpy knows it, else the kind's."""
    kind = kind_of(dtype)
    if kind == "string":
        return "object"
    text = str(dtype)
    if text in ("float64", "float32", "int64", "int32", "int16", "int8", "uint8", "bool"):
        return text
    return {"number": "float64", "integer": "int64", "boolean": "bool"}[kind]
