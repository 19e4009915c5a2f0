"""Feedback scenarios (issue 25). ``feedback-join``: 1,000,000 logged predictions (two workers' files,
an A/B split) joined with 1,000,000 outcomes and the live figures per variant computed, as
``nbprod monitor`` does (``nbprod.feedback.live.measure``); beside it the same join done with the
standard library's json and a dict, the engine pyarrow was chosen over. ``alongside`` (run by
``python -m benchmarks.serving``): /predict throughput while /feedback receives outcomes at about
the prediction rate, rounds alternating with and without."""

from __future__ import annotations

import json
import random
import shutil
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # scenarios.py imports this module to register its scenarios
    from .scenarios import Row, Size

HASH = "0" * 64


def write_logs(folder: Path, count: int, seed: int = 25, start: int = 0) -> None:
    """``count`` one-row predictions in the log's format and an outcome for each, outcomes shuffled
    (``start``: the first request number, to append more later)."""
    rng = random.Random(seed + start)
    folder.mkdir(parents=True, exist_ok=True)
    handles = [open(folder / f"predictions-{pid}.jsonl", "a", encoding="ascii") for pid in (101, 102)]
    outcomes = []
    for i in range(start, start + count):
        challenger = i % 10 < 3
        p = rng.random()
        predicted = int(p > 0.5)
        when = f"2026-12-0{1 + min(i, 2_999_999) // 1_000_000}T{(i // 3600) % 24:02d}:{(i // 60) % 60:02d}:" \
               f"{i % 60:02d}.000+00:00"
        handles[i % 2].write(
            f'{{"time":"{when}","request_id":"r{i}","variant":"{"challenger" if challenger else "prod"}",'
            f'"shadow":false,"model":"model","version":"{"v1.0.0" if challenger else "v1.1.0"}","worker":1,'
            f'"rows":1,"latency_ms":1.5,"inputs_sha256":"{HASH}","predictions":[{predicted}],'
            f'"probabilities":[[{1 - p:.6f},{p:.6f}]],"classes":[0,1]}}\n')
        outcomes.append(f'{{"time":"{when}","request_id":"r{i}","row":0,"outcome":{int(rng.random() < p)},'
                        f'"outcome_time":"{when}","source":"post"}}\n')
    for handle in handles:
        handle.close()
    rng.shuffle(outcomes)
    with open(folder / "outcomes-103.jsonl", "a", encoding="ascii") as handle:
        handle.write("".join(outcomes))


def stdlib_join(folder: Path) -> dict[str, float]:
    """The same join with json.loads and a dict, accuracy per variant only (a lower bound on its cost)."""
    outcomes = {}
    for path in sorted(folder.glob("outcomes-*.jsonl")):
        with open(path, encoding="ascii") as handle:
            for line in handle:
                e = json.loads(line)
                outcomes[(e["request_id"], e.get("row", 0))] = e["outcome"]
    right, seen = {}, {}
    for path in sorted(folder.glob("predictions-*.jsonl")):
        with open(path, encoding="ascii") as handle:
            for line in handle:
                e = json.loads(line)
                for row, predicted in enumerate(e["predictions"]):
                    outcome = outcomes.get((e["request_id"], row))
                    if outcome is not None:
                        key = e["variant"]
                        seen[key] = seen.get(key, 0) + 1
                        right[key] = right.get(key, 0) + (predicted == outcome)
    return {k: right[k] / seen[k] for k in seen}


def feedback_join(work: Path, size: Size) -> list[Row]:
    """Cold: the logs parsed from JSON (nothing cached). Warm: as ``nbprod monitor`` runs again later,
    the parsed columns kept (``join.CACHE_DIR``) and 1 % new lines appended to every file."""
    from nbprod.feedback.join import CACHE_DIR
    from nbprod.feedback.live import measure
    from nbprod.feedback.settings import FeedbackSettings

    from .scenarios import Row, median

    count = 20_000 if size.tiny else 1_000_000
    cold, warm, plain, cpu = [], [], [], []
    for n in range(size.repeat):  # alternating, medians
        folder = work / f"feedback-log-{n}"
        write_logs(folder, count)
        started, used = time.perf_counter(), time.process_time()
        live = measure(folder, "log", FeedbackSettings())
        cold.append(time.perf_counter() - started)
        cpu.append(time.process_time() - used)
        started = time.perf_counter()
        accuracy = stdlib_join(folder)
        plain.append(time.perf_counter() - started)
        assert abs(accuracy["prod"] - live.metrics["live.prod.accuracy"]) < 1e-12  # the same rows joined
        write_logs(folder, count // 100, start=count)
        started, used = time.perf_counter(), time.process_time()
        again = measure(folder, "log", FeedbackSettings())
        warm.append(time.perf_counter() - started)
        cpu.append(time.process_time() - used)
        assert again.metrics["live.n_predictions"] + again.metrics["live.challenger.n_predictions"] == \
            count + count // 100 and (folder / CACHE_DIR).is_dir()
        shutil.rmtree(folder)
    a, w, b = median(cold), median(warm), median(plain)
    what = f"{count:,} predictions x {count:,} outcomes, live figures for 2 variants"
    return [Row(f"feedback: join {count:,} + live figures, cold", a, 5.0, "target", a / 5.0, "<= 5 s", a <= 5.0,
                f"{what}; every log file parsed from JSON; CPU {median(cpu[0::2]):.1f} s (all threads)"),
            Row(f"feedback: join {count:,} + live figures, warm", w, 5.0, "target", w / 5.0, "<= 5 s", w <= 5.0,
                f"{what}; parsed columns kept, 1% new lines parsed; CPU {median(cpu[1::2]):.1f} s"),
            Row("feedback: cold join, pyarrow vs stdlib json + dict", a, b, "stdlib json + dict", a / b, "< 1x",
                a < b, "the stdlib side computes accuracy only")]


def alongside(url: str, body: bytes, requests: int, rounds: int, connections: int) -> list[Row]:
    """/predict throughput with and without /feedback posting 100-outcome batches every 0.5 s."""
    from .loadgen import generate
    from .scenarios import Row, median

    results: dict[str, list[float]] = {"without": [], "with": []}
    for _ in range(rounds):
        for mode in ("without", "with"):
            stop, posted = threading.Event(), [0]
            poster = threading.Thread(target=_post_feedback, args=(url, stop, posted)) if mode == "with" else None
            if poster:
                poster.start()
            try:
                result = generate(f"{url}/predict", body, connections, requests, 120)
            finally:
                stop.set()
                if poster:
                    poster.join()
            if result.errors or len(result.ok) != len(result.samples):
                raise RuntimeError(f"{mode}: {result.summary()}")
            if poster and not posted[0]:
                raise RuntimeError("no feedback was posted alongside")
            results[mode].append(result.throughput)
    with_, without = median(results["with"]), median(results["without"])
    return [Row(f"serve: /predict throughput with /feedback alongside, {connections} connections",
                1000 / with_, 1000 / without, "without feedback", with_ / without, ">= 0.9x", with_ / without >= 0.9,
                f"{with_:.0f} vs {without:.0f} requests/s; 100 outcomes posted every 0.5 s; {rounds} alternating "
                f"round(s) of {requests} requests; seconds per 1000 requests shown")]


def _post_feedback(url: str, stop: threading.Event, posted: list[int]) -> None:
    import httpx

    n = 0
    with httpx.Client(timeout=10) as client:
        while not stop.is_set():
            batch = [{"request_id": f"fb{n + k}", "outcome": (n + k) % 2} for k in range(100)]
            answer = client.post(f"{url}/feedback", json=batch)
            if answer.status_code != 200:
                raise RuntimeError(f"/feedback answered {answer.status_code}: {answer.text[:200]}")
            n += 100
            posted[0] = n
            stop.wait(0.5)
