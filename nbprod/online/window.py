"""The feedback window a learner sees: the labelled rows the parent version answered since it went
into production, with the inputs the prediction log kept, in the order they were predicted."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from nbprod.core.errors import NbprodError


@dataclass
class Window:
    frame: object            # pandas DataFrame: the features, in prediction order
    outcome: list            # the outcome of each row
    prediction: list         # what the parent answered for each row
    probabilities: list | None   # the parent's logged class probabilities per row, when every row has them
    first: str | None        # first and last prediction time (ISO, UTC)
    last: str | None
    sha256: str              # of the rows' (request id, row, time, outcome), as learned from

    @property
    def rows(self) -> int:
        return len(self.outcome)

    def describe(self) -> dict:
        return {"rows": self.rows, "first_prediction": self.first, "last_prediction": self.last,
                "sha256": self.sha256}


def labelled_window(root: Path, version: str, since: datetime | None, features: list[str]) -> Window:
    """Rows answered by ``version`` (not shadow) at or after ``since`` that have an outcome and logged inputs."""
    import pandas as pd
    import pyarrow.compute as pc

    from nbprod.feedback.join import join
    from nbprod.feedback.live import prediction_folder
    from nbprod.serve.predlog import log_files, read_log

    folder = prediction_folder(root)
    if not folder.is_dir() or not log_files(folder):
        raise NbprodError("there is no prediction log to learn from", folder,
                          fix="serve the model with nbprod serve (log = true) and send outcomes to /feedback")
    rows = join(folder, since).rows
    keep = pc.and_(pc.and_(pc.is_valid(rows["outcome"]), pc.invert(rows["shadow"])),
                   pc.equal(rows["version"], version))
    rows = rows.filter(keep).sort_by([("time", "ascending"), ("request_id", "ascending"), ("row", "ascending")])
    wanted = {(r, n) for r, n in zip(rows["request_id"].to_pylist(), rows["row"].to_pylist())}
    inputs: dict[tuple[str, int], dict] = {}
    for entry in read_log(folder):
        columns = entry.get("inputs")
        if not isinstance(columns, dict) or entry.get("shadow") or entry.get("version") != version:
            continue
        for n in range(len(next(iter(columns.values()), []))):
            if (entry["request_id"], n) in wanted:
                inputs[(entry["request_id"], n)] = {k: v[n] for k, v in columns.items()}
    records, outcome, prediction, probabilities, hashed = [], [], [], [], []
    table = rows.select(["request_id", "row", "time", "outcome", "prediction", "probabilities"]).to_pylist()
    for item in table:
        values = inputs.get((item["request_id"], item["row"]))
        if values is None or any(f not in values for f in features):
            continue  # inputs not logged (log_inputs = "hash" or "none"): nothing to learn from
        records.append({f: values[f] for f in features})
        outcome.append(item["outcome"])
        prediction.append(item["prediction"])
        probabilities.append(item["probabilities"])
        hashed.append([item["request_id"], item["row"], item["time"].isoformat(), item["outcome"]])
    if table and not records:
        raise NbprodError(f"the prediction log keeps no input values for the {len(table)} labelled row(s) of "
                          f"{version}", "pyproject.toml",
                          fix='set log_inputs = "values" under [tool.nbprod.serve] so served rows can be learned from')
    digest = hashlib.sha256(json.dumps(hashed, separators=(",", ":"), default=str).encode()).hexdigest()
    frame = pd.DataFrame.from_records(records, columns=features)
    return Window(frame, outcome, prediction,
                  probabilities if probabilities and all(p is not None for p in probabilities) else None,
                  hashed[0][2] if hashed else None, hashed[-1][2] if hashed else None, digest)
