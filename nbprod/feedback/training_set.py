"""``nbprod feedback export``: the labelled cases of the prediction log (inputs where they were logged,
the prediction, the outcome), for a retraining stage to declare as a DVC-tracked input. The window
exported (first and last prediction time, rows) goes into the Parquet file's metadata under
``nbprod.feedback``, so the data a version was retrained on says which feedback it holds."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from nbprod.core.errors import NbprodError
from nbprod.feedback.settings import FeedbackSettings


@dataclass
class Exported:
    rows: int
    first: str | None
    last: str | None
    inputs: bool


def export_labelled(root: Path, path: Path, settings: FeedbackSettings) -> Exported:
    import pyarrow as pa
    import pyarrow.compute as pc

    from nbprod.feedback.join import join
    from nbprod.feedback.live import prediction_folder
    from nbprod.serve.predlog import log_files, read_log

    if path.suffix.lower() not in (".parquet", ".csv"):
        raise NbprodError("must end in .parquet or .csv", path, fix="e.g. nbprod feedback export data/feedback.parquet")
    folder = prediction_folder(root)
    if not folder.is_dir() or not log_files(folder):
        raise NbprodError("there is no prediction log to export from", folder,
                          fix="serve the model with nbprod serve (log = true) first")
    joined = join(folder)
    rows = joined.rows.filter(pc.and_(pc.is_valid(joined.rows["outcome"]), pc.invert(joined.rows["shadow"])))
    inputs: dict[tuple[str, int], dict] = {}
    for entry in read_log(folder):  # the logged inputs, row by row, of the answered (not shadow) requests
        if "inputs" in entry and not entry.get("shadow"):
            columns = entry["inputs"]
            for row in range(len(next(iter(columns.values()), []))):
                inputs[(entry["request_id"], row)] = {k: v[row] for k, v in columns.items()}
    keys = list(zip(rows["request_id"].to_pylist(), rows["row"].to_pylist()))
    names = list(dict.fromkeys(name for k in keys for name in inputs.get(k, {})))
    table = rows.select(["time", "request_id", "row", "variant", "version", "prediction", "outcome",
                         "outcome_time"])
    for name in names:
        table = table.append_column(name, pa.array([inputs.get(k, {}).get(name) for k in keys]))
    first = pc.min(table["time"]).as_py() if table.num_rows else None
    last = pc.max(table["time"]).as_py() if table.num_rows else None
    window = {"rows": table.num_rows, "first_prediction": first and first.isoformat(),
              "last_prediction": last and last.isoformat(), "log": folder.relative_to(root).as_posix()
              if folder.is_relative_to(root) else str(folder)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        pq.write_table(table.replace_schema_metadata({"nbprod.feedback": json.dumps(window)}), tmp)
    else:
        from pyarrow import csv

        csv.write_csv(table, tmp)
    tmp.replace(path)
    return Exported(table.num_rows, window["first_prediction"], window["last_prediction"], bool(names))
