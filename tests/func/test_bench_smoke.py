"""The benchmark suite in its tiny mode: every scenario still runs end to end (no timing asserted)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from helpers.paths import REPO


SCENARIOS = (
    "cold: nbprod run (default flags)",
    "cold: nbprod run --no-report",
    "dvc.yaml + papermill (peer)",
    "3-stage chain of trivial stages, cold",
    "import nbprod.record",
    "no-op nbprod run, 5-stage chain",
    "no-op nbprod run, tiny 2-stage pipeline",
    "-j 2",
    "compile a 50-cell notebook",
    "nbprod.validate 10,000 x 10",
    "drift 5,000 x 20 vs same-size reference",
    "scale: frame 1,000 x 10 (0 MB) passed between 2 stages",
)


@pytest.mark.slow  # every benchmark scenario in tiny mode: minutes
def test_benchmarks_tiny_mode_prints_one_row_per_scenario(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, "-m", "benchmarks", "--tiny", "--json", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    table = done.stdout
    assert "machine: " in table and "CPUs" in table and "Python " in table and "repetitions: " in table
    for scenario in SCENARIOS:
        assert sum(scenario in line for line in table.splitlines()) == 1, scenario
    result = json.loads(out.read_text())
    assert len(result["rows"]) >= len(SCENARIOS)  # other modules (dask, monitor, ...) add their rows
    for row in result["rows"]:
        assert math.isfinite(row["nbprod"]) and row["baseline"] > 0
        assert math.isfinite(row["ratio"])
        if "extra" not in row["scenario"]:  # "extra per stage" is a difference: below 0 when that side was faster
            assert row["nbprod"] > 0 and row["ratio"] > 0, row
        assert ("met" if row["met"] else "MISSED") in next(l for l in table.splitlines() if row["scenario"] in l)
