"""Variants compared from the prediction log (``nbprod compare --variants``): per variant and version,
requests, rows, the rate of each predicted class, the mean score, latency, and, where outcomes are
joined later (a CSV or JSON-lines file of ``request_id``, ``row``, ``outcome``), accuracy."""

from __future__ import annotations

import csv
import json
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import NbprodError
from .predlog import log_files, read_log


@dataclass
class VariantStats:
    variant: str
    version: str
    shadow: bool
    requests: int = 0
    rows: int = 0
    classes: Counter = field(default_factory=Counter)
    scores: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    joined: int = 0
    correct: int = 0

    @property
    def label(self) -> str:
        return f"{self.variant}{' (shadow)' if self.shadow else ''} {self.version}"

    def to_dict(self) -> dict:
        rates = {str(k): round(v / self.rows, 4) for k, v in sorted(self.classes.items(), key=str)} if self.rows else {}
        lat = sorted(self.latencies)
        return {"variant": self.variant, "version": self.version, "shadow": self.shadow, "requests": self.requests,
                "rows": self.rows, "prediction_rates": rates,
                "mean_score": round(statistics.fmean(self.scores), 4) if self.scores else None,
                "latency_ms_p50": round(statistics.median(lat), 3) if lat else None,
                "latency_ms_p99": round(lat[min(len(lat) - 1, int(0.99 * len(lat)))], 3) if lat else None,
                "outcomes_joined": self.joined,
                "accuracy": round(self.correct / self.joined, 4) if self.joined else None}


def read_outcomes(path: Path) -> dict[tuple[str, int], object]:
    """{(request_id, row): outcome} from a CSV (header request_id,row,outcome) or JSON-lines file."""
    if not path.is_file():
        raise NbprodError("no such outcomes file", path,
                          fix="give a CSV or JSON-lines file of request_id, row, outcome")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix in (".jsonl", ".json"):
            records = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            records = list(csv.DictReader(text.splitlines()))
        return {(str(r["request_id"]), int(r.get("row") or 0)): _plain(r["outcome"]) for r in records}
    except (ValueError, KeyError, TypeError) as exc:
        raise NbprodError(f"cannot read outcomes ({type(exc).__name__}: {exc})", path,
                          fix="each line needs request_id, outcome and optionally row (0 by default)") from None


def _plain(value):
    """CSV gives strings: compare '1' with the prediction 1 as a number where it is one."""
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        return int(number) if number.is_integer() else number
    return value


def compare_variants(folder: Path, outcomes: Path | None = None) -> list[VariantStats]:
    if not log_files(folder):
        raise NbprodError("holds no prediction log (predictions-*.jsonl)", folder,
                          fix="serve with log = true under [tool.nbprod.serve], or name the log folder")
    joined = read_outcomes(outcomes) if outcomes else {}
    stats: dict[tuple, VariantStats] = {}
    for entry in read_log(folder):
        key = (entry.get("variant"), entry.get("version"), bool(entry.get("shadow")))
        s = stats.setdefault(key, VariantStats(*key))
        s.requests += 1
        predictions = entry.get("predictions") or []
        s.rows += len(predictions)
        s.classes.update(predictions)
        s.scores += [row[-1] for row in entry.get("probabilities") or [] if row]
        if entry.get("latency_ms") is not None:
            s.latencies.append(entry["latency_ms"])
        for row, predicted in enumerate(predictions):
            outcome = joined.get((str(entry.get("request_id")), row), _MISSING)
            if outcome is not _MISSING:
                s.joined += 1
                s.correct += predicted == outcome
    return sorted(stats.values(), key=lambda s: (s.shadow, s.variant != "prod", s.version))


_MISSING = object()


def print_variants(stats: list[VariantStats]) -> None:
    rows = [s.to_dict() for s in stats]
    header = ("variant", "requests", "rows", "prediction rates", "mean score", "p50 ms", "p99 ms", "outcomes",
              "accuracy")
    table = [header] + [(s.label, str(r["requests"]), str(r["rows"]),
                         " ".join(f"{k}:{v:.1%}" for k, v in r["prediction_rates"].items()),
                         _num(r["mean_score"]), _num(r["latency_ms_p50"]), _num(r["latency_ms_p99"]),
                         str(r["outcomes_joined"]), _num(r["accuracy"])) for s, r in zip(stats, rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for n, row in enumerate(table):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def _num(value) -> str:
    return "-" if value is None else f"{value:.4g}"
