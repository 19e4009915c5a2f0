"""The serving benchmark in its tiny mode: bare app and nbprod serve both answer every request of the
bounded load, and the swap is measured (figures are printed, never asserted as timings)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers.paths import REPO

pytestmark = pytest.mark.slow


def test_serving_benchmark_tiny_mode(tmp_path):
    out = tmp_path / "serve-bench.json"
    # Under pytest's own 600 s (pyproject.toml), so that a hang ends here and shows the benchmark's output.
    done = subprocess.run([sys.executable, "-m", "benchmarks.serving", "--tiny", "--json", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=540)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert [r["scenario"].split(",")[0] for r in rows] == ["serve: throughput", "serve: p99 latency",
                                                          "serve: /predict throughput with /feedback alongside",
                                                          "serve: swap a version on 2 workers"]
    assert all(r["nbprod"] >= 0 and r["baseline"] > 0 for r in rows)
    assert "requests/s" in rows[0]["note"] and "serve: swap" in done.stdout
