"""The scenarios of the issue's targets table; each returns one Row, nbprod beside its baseline."""

from __future__ import annotations

import os
import shutil
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from . import projects as P


@dataclass
class Row:
    scenario: str
    nbprod: float              # seconds (per stage / per import where the scenario says so)
    baseline: float
    baseline_name: str
    ratio: float               # what the target bounds
    target: str
    met: bool
    note: str = ""


@dataclass
class Size:
    """How big each scenario is: ``full`` is the issue's table, ``tiny`` keeps the smoke test short."""

    tiny: bool
    repeat: int

    @property
    def cheap(self) -> int:
        """Repetitions of the scenarios that take seconds, not minutes."""
        return 1 if self.tiny else max(3, self.repeat)

    @property
    def example(self) -> str:
        return "tiny" if self.tiny else "example"

    @property
    def empty_stages(self) -> int:
        return 2 if self.tiny else 10

    @property
    def noop_stages(self) -> int:
        return 5 if self.tiny else 100

    @property
    def parallel(self) -> tuple[int, float]:
        return (2, 0.5) if self.tiny else (8, 2.0)

    @property
    def cells(self) -> int:
        return 50 if self.tiny else 1000


def timed(*command, cwd: Path) -> float:
    started = time.perf_counter()
    P.sh(*command, cwd=cwd, env=_clean_env())
    return time.perf_counter() - started


def _clean_env() -> dict:
    env = dict(os.environ)
    env.pop("NBPROD_EVENTS", None)
    env["PATH"] = str(P.BIN) + os.pathsep + env.get("PATH", "")
    return env


def median(values: list[float]) -> float:
    return statistics.median(values)


# -- example pipeline, cold: nbprod vs one plain script vs hand-written DVC + papermill --------------

TINY_CELLS = [(["stage:load"], "numbers = list(range(1000))"),
              (["stage:total"], "import nbprod\ntotal = sum(numbers)\nnbprod.record('total', total)")]


def example_cold(work: Path, size: Size) -> list[Row]:
    if size.tiny:
        template = work / "tiny-template"
        if not template.exists():
            P.new_project(template, {"tiny": P.notebook(TINY_CELLS)})
            P.git_commit_all(template)
    else:
        template = P.nbprod_template(work)
    script_times, nbprod_times, peer_times = [], [], []
    for rep in range(size.repeat):
        root = P.copy_project(template, work / f"example-script-{rep}")
        script, folder = P.plain_script(root)
        script_times.append(timed(P.BIN / "python", script, cwd=folder))
        root = P.copy_project(template, work / f"example-nbprod-{rep}")
        nbprod_times.append(timed(P.tool("nbprod"), "run", "--no-report", cwd=root))
        root = P.copy_project(template, work / f"example-peer-{rep}")
        P.papermill_peer(root)
        peer_times.append(timed(P.tool("dvc"), "repro", cwd=root))
    script_s, nbprod_s, peer_s = median(script_times), median(nbprod_times), median(peer_times)
    label = "tiny 2-stage pipeline" if size.tiny else "example pipeline (3 stages)"
    return [
        Row(f"{label}, cold: nbprod run", nbprod_s, script_s, "plain script", nbprod_s / script_s,
            "<= 1.5x", nbprod_s / script_s <= 1.5),
        Row(f"{label}, cold: dvc.yaml + papermill (peer)", peer_s, script_s, "plain script", peer_s / script_s,
            "(reference)", True, f"nbprod is {peer_s / nbprod_s:.2f}x faster than the peer"),
    ]


# -- per-stage overhead above a bare kernel start -----------------------------------------------------

def bare_kernel_start() -> float:
    """Seconds for jupyter_client to launch a python3 kernel, see it ready, run one cell, and stop it."""
    from jupyter_client.manager import start_new_kernel

    started = time.perf_counter()
    manager, client = start_new_kernel(kernel_name="python3")
    try:
        client.execute_interactive("x = 1", timeout=60)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=False)
    return time.perf_counter() - started


def stage_overhead(work: Path, size: Size) -> list[Row]:
    count = size.empty_stages
    template = work / "empty-template"
    if not template.exists():
        P.new_project(template, {"empty": P.stages_notebook(count)})
        P.git_commit_all(template)
    kernel = median([bare_kernel_start() for _ in range(size.cheap)])
    per_stage = []
    for rep in range(size.repeat):
        root = P.copy_project(template, work / f"empty-{rep}")
        cold = timed(P.tool("nbprod"), "run", "--no-report", cwd=root)
        noop = median([timed(P.tool("nbprod"), "run", "--no-report", cwd=root) for _ in range(size.cheap)])
        per_stage.append((cold - noop) / count)
    stage_s = median(per_stage)
    overhead = stage_s - kernel
    return [Row(f"stage overhead above a bare kernel start ({count} near-empty stages)", stage_s, kernel,
                "bare kernel start", overhead, "<= 0.5 s/stage", overhead <= 0.5,
                f"(cold run - no-op run) / {count} = {stage_s:.2f} s per stage; ratio column is seconds"
                + ("; below zero: a stage costs less than a bare kernel start" if overhead < 0 else ""))]


# -- import nbprod.record in a kernel ------------------------------------------------------------------

RECORD_CODE = ("import time as _t\n_s = _t.perf_counter()\nimport nbprod.record\n"
               "print(repr(_t.perf_counter() - _s))")


def record_import(work: Path, size: Size) -> list[Row]:
    from jupyter_client.manager import start_new_kernel

    seconds = []
    for _ in range(size.cheap):
        manager, client = start_new_kernel(kernel_name="python3")
        out: list[str] = []
        try:
            client.execute_interactive(RECORD_CODE, timeout=60, output_hook=lambda msg, out=out: out.append(
                msg["content"].get("text", "")) if msg["msg_type"] == "stream" else None)
        finally:
            client.stop_channels()
            manager.shutdown_kernel(now=False)
        seconds.append(float("".join(out).strip()))
    value = median(seconds)
    return [Row("import nbprod.record in a fresh kernel", value, 0.050, "target", value / 0.050, "<= 50 ms",
                value <= 0.050, f"{value * 1000:.1f} ms")]


# -- no-op nbprod run vs no-op dvc repro on a generated pipeline ---------------------------------------

def noop_run(work: Path, size: Size) -> list[Row]:
    count = size.noop_stages
    root = work / f"noop-{count}"
    P.new_project(root, {"many": P.stages_notebook(count)})
    P.mark_up_to_date(root)
    P.sh(P.tool("dvc"), "repro", cwd=root)  # warm both tools' file-system caches alike
    nbprod_times, dvc_times = [], []
    for _ in range(size.cheap):  # interleaved, so load changes hit both alike
        nbprod_times.append(timed(P.tool("nbprod"), "run", "--no-report", cwd=root))
        dvc_times.append(timed(P.tool("dvc"), "repro", cwd=root))
    nbprod_s, dvc_s = median(nbprod_times), median(dvc_times)
    return [Row(f"no-op nbprod run, {count} stages", nbprod_s, dvc_s, "no-op dvc repro", nbprod_s / dvc_s,
                "<= 1.1x", nbprod_s / dvc_s <= 1.1, "nbprod run --no-report (HTML reports not rendered)")]


# -- independent stages, -j 2 vs serial ----------------------------------------------------------------

def parallel_stages(work: Path, size: Size) -> list[Row]:
    count, seconds = size.parallel
    template = work / "parallel-template"
    if not template.exists():
        P.new_project(template, {"sleepy": P.stages_notebook(count, f"import time\ntime.sleep({seconds})")})
        P.git_commit_all(template)
    serial, parallel = [], []
    for rep in range(size.repeat):
        root = P.copy_project(template, work / f"serial-{rep}")
        serial.append(timed(P.tool("nbprod"), "run", "--no-report", cwd=root))
        root = P.copy_project(template, work / f"parallel-{rep}")
        parallel.append(timed(P.tool("nbprod"), "run", "--no-report", "-j", "2", cwd=root))
    serial_s, parallel_s = median(serial), median(parallel)
    return [Row(f"{count} independent {seconds:g}-s stages: -j 2", parallel_s, serial_s, "serial nbprod run",
                parallel_s / serial_s, "<= 0.6x", parallel_s / serial_s <= 0.6)]


# -- compile a 1,000-cell notebook ---------------------------------------------------------------------

def compile_cells(work: Path, size: Size) -> list[Row]:
    from nbprod.compile import compile_project
    from nbprod.project import load_project

    cells = size.cells
    template = work / f"cells-{cells}"
    P.new_project(template, {"big": P.many_cells_notebook(cells)})
    cold, again = [], []
    for rep in range(size.cheap):
        root = P.copy_project(template, work / f"cells-{cells}-{rep}")
        project = load_project(root)
        started = time.perf_counter()
        compile_project(project)
        cold.append(time.perf_counter() - started)
        started = time.perf_counter()
        compile_project(project)
        again.append(time.perf_counter() - started)
        shutil.rmtree(root)
    value = median(cold)
    return [Row(f"compile a {cells}-cell notebook (in process)", value, 1.0, "target", value / 1.0, "< 1 s",
                value < 1.0, f"recompile with nothing to change: {median(again):.2f} s")]


SCENARIOS = {
    "example": example_cold,
    "overhead": stage_overhead,
    "record": record_import,
    "noop": noop_run,
    "parallel": parallel_stages,
    "compile": compile_cells,
}

# Data contracts (issue 14) live in their own module, which takes Row, Size and median from here.
from .contracts import drift_columns, validate_rows  # noqa: E402

SCENARIOS.update({"validate": validate_rows, "drift": drift_columns})

# Stages on a Dask cluster (issue 17): a real scheduler and two workers on loopback.
from .dask import dask_overhead, dask_parallel  # noqa: E402

SCENARIOS.update({"dask-parallel": dask_parallel, "dask-overhead": dask_overhead})

# Monitoring (issue 15): nbprod monitor over 500 run records.
from .monitor import dashboard_records  # noqa: E402

SCENARIOS.update({"dashboard": dashboard_records})
