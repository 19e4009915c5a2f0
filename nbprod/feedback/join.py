"""Predictions joined with their outcomes, in Arrow: the prediction log read one row per predicted
row, the outcome store deduplicated (the outcome received last wins), keys resolved to the request
they belong to, then one hash join on (request_id, row).

pyarrow is the engine: its JSON reader parses the logs in C++ threads and its hash join and group-by
need no new dependency (figures against the standard library in benchmarks/README.md, "feedback").
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from nbprod.feedback.store import outcome_files
from nbprod.serve.predlog import log_files

_PY_TYPES = {bool: "bool", int: "int64", float: "float64", str: "string"}


@dataclass
class Joined:
    """Every predicted row in the window (``rows``: an Arrow table with ``outcome`` null when none is
    known yet), and what the outcome store held that matched nothing."""
    rows: object                                        # pyarrow.Table
    classes: dict[str, list] = field(default_factory=dict)   # version -> the model's classes, when logged
    outcomes: int = 0          # outcome lines read
    unknown: int = 0           # outcomes whose request id / key / row no prediction has
    duplicates: int = 0        # outcomes replaced by a later one for the same row
    label_type: str = "float64"

    @property
    def labelled(self) -> int:
        return self.rows.num_rows - self.rows["outcome"].null_count if self.rows.num_rows else 0


def _first_value(files: list[Path], key: str):
    for path in files:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    values = json.loads(line).get(key)
                    if values:
                        return values[0] if isinstance(values, list) else values
    return None


def _arrow_type(value, pa):
    return getattr(pa, _PY_TYPES.get(type(value), "string"))() if value is not None else pa.float64()


CACHE_DIR = ".parsed"  # in the log folder: each log file's parsed columns (Arrow IPC), by inode


def _read_lines(files: list[Path], schema):
    """One table from JSON-lines files, each read through its columnar cache."""
    import pyarrow as pa

    tables = [t for t in (_read_cached(path, schema) for path in files) if t.num_rows]
    return pa.concat_tables(tables) if tables else schema.empty_table()


def _parse(data: bytes, schema):
    """Whole JSON lines: pyarrow's threaded reader, else (mixed value types) Python's json."""
    import pyarrow as pa
    from pyarrow import json as pajson

    if not data:
        return schema.empty_table()
    try:
        return pajson.read_json(pa.BufferReader(data), parse_options=pajson.ParseOptions(
            explicit_schema=schema, unexpected_field_behavior="ignore", newlines_in_values=False))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        lines = [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]
        return pa.Table.from_pylist([{k: e.get(k) for k in schema.names} for e in lines], schema=schema)


def _read_cached(path: Path, schema):
    """A log file's table. Logs only grow, and rotation renames (same inode), so the parsed columns
    are kept per inode, in segments, with the byte length they cover; only lines added since are
    read and parsed. Any doubt (another file on that inode, other columns) parses it all again."""
    import hashlib

    import pyarrow as pa

    cache, stem = path.parent / CACHE_DIR, str(path.stat().st_ino)
    with open(path, "rb") as handle:
        head = hashlib.sha256(handle.read(512)).hexdigest()
        meta, parts = _cached(cache, stem, head, schema)
        handle.seek(meta["size"] if parts else 0)
        data = handle.read()
    data = data[:data.rfind(b"\n") + 1]  # a line still being written is read next time
    if not parts or data:
        if not parts:
            meta = {"head": head, "size": 0, "segments": 0}
        new = _parse(data, schema)
        if len(parts) >= 16:  # compact: one segment again
            new, parts, meta["segments"] = pa.concat_tables([*parts, new]), [], 0
        meta = _store(cache, stem, new, {**meta, "size": meta["size"] + len(data)})
        parts.append(new)
    return pa.concat_tables(parts) if len(parts) > 1 else parts[0]


def _cached(cache: Path, stem: str, head: str, schema) -> tuple[dict, list]:
    import pyarrow as pa

    try:
        meta = json.loads((cache / f"{stem}.json").read_text())
        if meta["head"] != head:
            return {}, []
        parts = []
        for n in range(meta["segments"]):
            with pa.memory_map(str(cache / f"{stem}.{n}.arrow")) as source:
                parts.append(pa.ipc.open_file(source).read_all())
        if parts and all(p.schema.equals(schema) for p in parts):
            return meta, parts
    except (OSError, ValueError, KeyError, TypeError, pa.ArrowException):
        pass
    return {}, []


def _store(cache: Path, stem: str, table, meta: dict) -> dict:
    """Write one more segment and the meta that names it (meta last: a crash leaves the old view)."""
    import pyarrow as pa

    meta = {**meta, "segments": meta["segments"] + 1}
    try:
        cache.mkdir(exist_ok=True)
        target = cache / f"{stem}.{meta['segments'] - 1}.arrow"
        tmp = cache / f".{target.name}.tmp"
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        tmp.replace(target)
        (cache / f".{stem}.json.tmp").write_text(json.dumps(meta))
        (cache / f".{stem}.json.tmp").replace(cache / f"{stem}.json")
    except OSError:
        pass  # a read-only log folder: parse every time
    return meta


def prune_cache(folder: Path) -> None:
    """Drop the cached columns of log files that are gone (rotated out, removed)."""
    cache = folder / CACHE_DIR
    if not cache.is_dir():
        return
    alive = {str(p.stat().st_ino) for p in [*log_files(folder), *outcome_files(folder)]}
    for path in cache.iterdir():
        if path.name.split(".")[0] not in alive:
            path.unlink(missing_ok=True)


def read_predictions(folder: Path):
    """The prediction log, one row per predicted row: time, request_id, variant, version, shadow, key,
    row, prediction, probabilities; and each version's classes."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    files = log_files(folder)
    value_type = _arrow_type(_first_value(files, "predictions"), pa)
    schema = pa.schema([("time", pa.string()), ("request_id", pa.string()), ("variant", pa.string()),
                        ("version", pa.string()), ("shadow", pa.bool_()), ("key", pa.string()),
                        ("predictions", pa.list_(value_type)), ("probabilities", pa.list_(pa.list_(pa.float64()))),
                        ("classes", pa.list_(value_type))])
    entries = _read_lines(files, schema).combine_chunks()
    classes = {}
    if entries.num_rows:
        for version in pc.unique(entries["version"]).to_pylist():
            with_classes = pc.and_(pc.equal(entries["version"], version), pc.is_valid(entries["classes"]))
            found = entries.filter(with_classes).slice(0, 1)["classes"].to_pylist()
            if found:
                classes[version] = found[0]
    predictions = entries["predictions"].combine_chunks() if entries.num_rows else pa.array([], pa.list_(value_type))
    parents = pc.list_parent_indices(predictions)
    offsets = predictions.offsets.to_numpy()
    row = np.arange(len(parents), dtype=np.int64) - offsets[parents.to_numpy()]
    per_row = entries.select(["time", "request_id", "variant", "version", "shadow", "key"])
    if len(parents) != entries.num_rows:  # multi-row requests: each entry's fields repeated per row
        per_row = per_row.take(parents)
    probabilities = entries["probabilities"].combine_chunks()
    probs = pc.list_flatten(probabilities) if probabilities.null_count == 0 else None
    if probs is None or len(probs) != len(parents):  # some entries logged no probabilities: none are used
        probs = pa.nulls(len(parents), pa.list_(pa.float64()))
    table = per_row.append_column("row", pa.array(row)).append_column(
        "prediction", pc.list_flatten(predictions)).append_column("probabilities", probs)
    table = table.set_column(0, "time", pc.cast(table["time"], pa.timestamp("ms", tz="UTC")))
    return table, classes, value_type


def read_outcomes(folder: Path, label_type):
    import pyarrow as pa

    schema = pa.schema([("time", pa.string()), ("request_id", pa.string()), ("key", pa.string()),
                        ("row", pa.int64()), ("outcome", label_type), ("outcome_time", pa.string())])
    table = _read_lines(outcome_files(folder), schema)
    for name in ("time", "outcome_time"):
        table = table.set_column(table.schema.get_field_index(name), name,
                                 table[name].cast(pa.timestamp("ms", tz="UTC")))
    return table


def join(folder: Path, since: datetime | None = None) -> Joined:
    """Every predicted row (made at or after ``since``) with its outcome, when one is known."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    predicted, classes, value_type = read_predictions(folder)
    label_type = pa.float64() if pa.types.is_floating(value_type) else value_type
    outcomes = read_outcomes(folder, label_type)
    read = outcomes.num_rows
    outcomes = outcomes.append_column("seq", pa.array(np.arange(read, dtype=np.int64)))  # the order written
    outcomes = _resolve_keys(predicted, outcomes)
    outcomes = outcomes.filter(pc.is_valid(outcomes["request_id"]))  # a key no request had: unknown
    # One integer key per (request id, row): the ids of both sides dictionary-encoded together, so
    # the dedupe and the join are numpy sorts and binary searches, not a hash join on strings.
    ids = pa.chunked_array([*predicted["request_id"].chunks, *outcomes["request_id"].chunks], pa.string())
    codes = pc.dictionary_encode(ids.combine_chunks()).indices.to_numpy().astype(np.int64)
    p_row = predicted["row"].to_numpy()
    o_row = pc.fill_null(outcomes["row"], 0).to_numpy(zero_copy_only=False)
    width = int(max(p_row.max(initial=0), o_row.max(initial=0))) + 1
    p_key = codes[:predicted.num_rows] * width + p_row
    o_key = codes[predicted.num_rows:] * width + o_row
    received = outcomes["time"].cast(pa.int64()).to_numpy(zero_copy_only=False)
    order = np.argsort(o_key, kind="stable")  # by key, then the order written
    ordered = o_key[order]
    last = np.r_[ordered[1:] != ordered[:-1], True] if len(ordered) else np.zeros(0, bool)
    if not last.all():  # duplicates: by key, then the time received, then the order written
        order = np.lexsort((outcomes["seq"].to_numpy(), received, o_key))
        ordered = o_key[order]
        last = np.r_[ordered[1:] != ordered[:-1], True]
    latest_key, latest_at = ordered[last], order[last]   # the outcome received last wins, per row
    duplicates = len(ordered) - len(latest_key)
    pos = np.searchsorted(latest_key, p_key)
    found = pos < len(latest_key)
    found[found] = latest_key[pos[found]] == p_key[found]
    shadow = predicted["shadow"].to_numpy(zero_copy_only=False)
    matched = int(np.count_nonzero(found & ~shadow))
    unknown = (read - outcomes.num_rows) + (len(latest_key) - matched)
    if len(latest_key):
        take = pa.array(np.where(found, latest_at[np.minimum(pos, len(latest_at) - 1)], 0), mask=~found)
        outcome, outcome_time = outcomes["outcome"].take(take), outcomes["outcome_time"].take(take)
    else:  # no outcome yet
        outcome = pa.nulls(predicted.num_rows, outcomes.schema.field("outcome").type)
        outcome_time = pa.nulls(predicted.num_rows, outcomes.schema.field("outcome_time").type)
    rows = predicted.append_column("outcome", outcome).append_column("outcome_time", outcome_time)
    if since is not None:
        rows = rows.filter(pc.greater_equal(rows["time"], pa.scalar(since, pa.timestamp("ms", "UTC"))))
    prune_cache(folder)
    return Joined(rows, classes, read, unknown, duplicates, str(label_type))


def _resolve_keys(predicted, outcomes):
    """Outcomes sent by key get the request id of the latest answered request with that key."""
    import pyarrow as pa
    import pyarrow.compute as pc

    by_key = pc.is_valid(outcomes["key"])
    if not pc.any(by_key).as_py():
        return outcomes
    requests = predicted.filter(pc.and_(pc.is_valid(predicted["key"]),
                                        pc.and_(pc.equal(predicted["row"], 0), pc.invert(predicted["shadow"]))))
    requests = requests.sort_by([("time", "ascending")]).select(["key", "request_id"])
    latest = requests.group_by("key", use_threads=False).aggregate([("request_id", "last")])
    keyed = outcomes.filter(by_key).drop_columns(["request_id"]).join(latest, "key", join_type="left outer")
    keyed = keyed.rename_columns([("request_id" if n == "request_id_last" else n) for n in keyed.column_names])
    plain = outcomes.filter(pc.invert(by_key))
    return pa.concat_tables([plain, keyed.select(plain.column_names)])
