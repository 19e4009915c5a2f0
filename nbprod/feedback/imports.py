"""``nbprod feedback import``: outcomes that arrive in batches (CSV or Parquet), checked row by row
against the served model's classes (as the prediction log records them) and appended to the store.
A file without its key or outcome column stores nothing (one line, exit 2)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from nbprod.core.errors import NbprodError
from nbprod.feedback.settings import FeedbackSettings
from nbprod.feedback.store import OutcomeKind, Rejected, append_entries, now_text, outcome_entry


@dataclass
class ImportResult:
    stored: int
    rejected: list[str] = field(default_factory=list)
    path: Path | None = None
    quality: object = None      # feedback.live.LiveQuality after the import (its counts)


def read_table(path: Path):
    """A CSV or Parquet file as an Arrow table, or a one-line error naming it."""
    import pyarrow as pa

    if not path.is_file():
        raise NbprodError("no such outcomes file", path, fix="give a CSV or Parquet file of keys and outcomes")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return pq.read_table(path)
        from pyarrow import csv

        return csv.read_csv(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise NbprodError(f"cannot be read as {'Parquet' if path.suffix.lower() == '.parquet' else 'CSV'} "
                          f"({str(exc).splitlines()[0][:160]})", path,
                          fix="write a CSV with a header row, or a Parquet file") from None


def kind_from_log(folder: Path) -> OutcomeKind:
    """The model's classes from the prediction log (every version's together); a regressor when the
    predictions are numbers with a fraction and no classes were logged."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from nbprod.feedback.join import read_predictions

    rows, classes, value_type = read_predictions(folder)
    known: list = []
    for values in classes.values():
        known += [v for v in values if v not in known]
    if known:
        return OutcomeKind(tuple(known))
    if pa.types.is_floating(value_type):
        return OutcomeKind(None)
    return OutcomeKind(tuple(sorted(pc.unique(rows["prediction"]).to_pylist())))


def import_outcomes(root: Path, path: Path, settings: FeedbackSettings) -> ImportResult:
    from nbprod.feedback.live import live_quality, prediction_folder
    from nbprod.monitor.records import model_settings
    from nbprod.serve.predlog import log_files
    from nbprod.serve.settings import load_settings

    table = read_table(path)
    outcome, time = settings.outcome_column, settings.time_column
    wanted = settings.import_keys
    key = next((c for c in wanted if c in table.column_names), None)
    present = ", ".join(table.column_names[:12])
    if key is None:
        raise NbprodError(f"has no key column ({' or '.join(map(repr, wanted))}; columns: {present})", path,
                          fix="name the key column with --key-column, or key_column under [tool.nbprod.feedback]")
    if outcome not in table.column_names:
        raise NbprodError(f"has no outcome column {outcome!r} (columns: {present})", path,
                          fix="name it with --outcome-column, or outcome_column under [tool.nbprod.feedback]")
    if time is not None and time not in table.column_names:
        raise NbprodError(f"has no column {time!r}", path, fix="name the time column with --time-column")
    time = time or ("time" if "time" in table.column_names else None)
    folder = prediction_folder(root)
    if not folder.is_dir() or not log_files(folder):
        raise NbprodError("there is no prediction log to join the outcomes with", folder,
                          fix="serve the model with nbprod serve (log = true) before importing outcomes")
    kind = kind_from_log(folder)
    inputs_mode = load_settings(root, model_settings(root)[0]).log_inputs
    by_key = key != "request_id" and settings.key_field is not None
    columns = {name: table[name].to_pylist() for name in {key, outcome, time, settings.row_column}
               if name and name in table.column_names}
    received, entries, rejected = now_text(), [], []
    for index in range(table.num_rows):
        item = {("key" if by_key else "request_id"): _text(columns[key][index]),
                "outcome": kind.coerce(columns[outcome][index])}
        if settings.row_column in columns and columns[settings.row_column][index] is not None:
            item["row"] = columns[settings.row_column][index]
        if time and columns[time][index] is not None:
            when = columns[time][index]
            item["time"] = when.isoformat() if isinstance(when, datetime) else str(when)
        entry = outcome_entry(item, index, kind, inputs_mode, "import", received)
        if isinstance(entry, Rejected):
            field_name = entry.field.rpartition(".")[2] if "." in entry.field else key
            column = {"outcome": outcome, "request_id": key, "key": key, "time": time,
                      "row": settings.row_column}.get(field_name, field_name)
            rejected.append(f"{path}: row {index + 1} (column {column!r}): {entry.error}; not stored")
            continue
        entries.append(entry)
    written = append_entries(folder, entries) if entries else None
    return ImportResult(len(entries), rejected, written, live_quality(root, settings))


def _text(value):
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)
