"""Prometheus metrics of the service (prometheus-client). With several uvicorn workers each process
writes its values to the shared folder in ``PROMETHEUS_MULTIPROC_DIR`` (set by ``nbprod serve``
before the workers start) and ``/metrics`` sums them, so any worker answers for all of them; the
per-worker version gauge keeps a ``pid`` label, which shows that every worker swapped."""

from __future__ import annotations

import os
from pathlib import Path

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
SCORE_BUCKETS = tuple(round(0.1 * i, 1) for i in range(1, 11))


class ServeMetrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        # In multiprocess mode values live in files and a fresh registry collects them per scrape.
        self.registry = None if self.multiprocess else CollectorRegistry()
        kw = {"registry": self.registry}
        self.requests = Counter("nbprod_serve_requests", "Answered /predict requests", ["variant", "code"], **kw)
        self.errors = Counter("nbprod_serve_errors", "Rejected or failed requests by kind", ["kind"], **kw)
        self.latency = Histogram("nbprod_serve_request_seconds", "Time to answer /predict", ["variant"],
                                 buckets=LATENCY_BUCKETS, **kw)
        self.predictions = Counter("nbprod_serve_predictions", "Predicted rows by variant and class",
                                   ["variant", "prediction"], **kw)
        self.scores = Histogram("nbprod_serve_score", "Probability of the last class, per variant",
                                ["variant"], buckets=SCORE_BUCKETS, **kw)
        self.version = Gauge("nbprod_serve_model_version", "1 for the version each variant serves",
                             ["variant", "version"], multiprocess_mode="liveall", **kw)
        self.swaps = Counter("nbprod_serve_swaps", "Hot swaps of the production version by result",
                             ["result"], **kw)
        self.dropped = Counter("nbprod_serve_predlog_dropped",
                               "Prediction log entries dropped (queue full or disk full)", **kw)
        self.feedback_dropped = Counter("nbprod_serve_feedback_dropped",
                                        "Posted outcomes not stored (queue full or disk full)", **kw)
        self.shadow_disagree = Counter("nbprod_serve_shadow_disagreements",
                                       "Rows where the shadow's prediction differs from production", **kw)

    def serving(self, variant: str, version: str, previous: str | None = None) -> None:
        if previous and previous != version:
            self.version.labels(variant, previous).set(0)
        self.version.labels(variant, version).set(1)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if self.multiprocess:
            from prometheus_client import multiprocess

            _forget_dead_workers(multiprocess)
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def _forget_dead_workers(multiprocess) -> None:
    """Drop the live-only gauges of workers that are gone (a SIGKILLed worker never says so itself, and
    uvicorn's master starts a new one with a new pid), so the version gauge shows only live workers.
    Counters stay: their totals must not go back when a worker dies."""
    folder = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    for path in folder.glob("gauge_live*_*.db"):
        pid = path.stem.rpartition("_")[2]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(int(pid), str(folder))
        except PermissionError:  # alive, another user's process (a reused pid): keep it
            continue
