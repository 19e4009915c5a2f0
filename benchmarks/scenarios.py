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
    unit: str = "s"            # of nbprod and baseline (the scale scenario's memory and disk rows: GB)


@dataclass
class Size:
    """How big each scenario is: ``full`` is the issue's table, ``tiny`` keeps the smoke test short."""

    tiny: bool
    repeat: int
    scale_rows: tuple[int, ...] = ()   # extra frame sizes for the scale scenario (--scale-rows)

    @property
    def cheap(self) -> int:
        """Repetitions of the scenarios that take seconds, not minutes."""
        return 1 if self.tiny else max(3, self.repeat)

    @property
    def example(self) -> str:
        return "tiny" if self.tiny else "example"

    @property
    def chain_stages(self) -> int:
        return 3 if self.tiny else 100

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
    P.sh(*command, cwd=cwd, env=clean_env())
    return time.perf_counter() - started


def clean_env() -> dict:
    env = dict(os.environ)
    env.pop("NBPROD_EVENTS", None)
    env["PATH"] = str(P.BIN) + os.pathsep + env.get("PATH", "")
    return env


def median(values: list[float]) -> float:
    return statistics.median(values)


# -- example pipeline, cold: nbprod vs one plain script vs hand-written DVC + papermill --------------

TINY_CELLS = [(["stage:load"], "numbers = list(range(1000))"),
              (["stage:total"], "import nbprod\ntotal = sum(numbers)\nnbprod.record('total', total)")]


def _tiny_template(work: Path) -> Path:
    template = work / "tiny-template"
    if not template.exists():
        P.new_project(template, {"tiny": P.notebook(TINY_CELLS)})
        P.git_commit_all(template)
    return template


def example_cold(work: Path, size: Size) -> list[Row]:
    template = _tiny_template(work) if size.tiny else P.nbprod_template(work)
    script_times, nbprod_times, bare_times, peer_times = [], [], [], []
    for rep in range(size.repeat):  # the commands alternate, so load changes hit all of them alike
        root = P.copy_project(template, work / f"example-script-{rep}")
        script, folder = P.plain_script(root)
        script_times.append(timed(P.BIN / "python", script, cwd=folder))
        root = P.copy_project(template, work / f"example-nbprod-{rep}")
        nbprod_times.append(timed(P.tool("nbprod"), "run", cwd=root))  # default flags: reports included
        root = P.copy_project(template, work / f"example-noreport-{rep}")
        bare_times.append(timed(P.tool("nbprod"), "run", "--no-report", cwd=root))
        root = P.copy_project(template, work / f"example-peer-{rep}")
        P.papermill_peer(root)
        peer_times.append(timed(P.tool("dvc"), "repro", cwd=root))
    script_s, nbprod_s, peer_s = median(script_times), median(nbprod_times), median(peer_times)
    bare_s = median(bare_times)
    label = "tiny 2-stage pipeline" if size.tiny else "example pipeline (3 stages)"
    return [
        Row(f"{label}, cold: nbprod run (default flags)", nbprod_s, script_s, "plain script",
            nbprod_s / script_s, "<= 1.5x", nbprod_s / script_s <= 1.5, "HTML reports included"),
        Row(f"{label}, cold: nbprod run --no-report", bare_s, script_s, "plain script", bare_s / script_s,
            "(reference)", True, f"reports cost {nbprod_s - bare_s:+.2f} s of wall time"),
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
    """A chain of trivial stages run cold with default flags (reports included): the run's wall time
    per stage against a bare kernel start plus one execute, the two measured alternately."""
    count = size.chain_stages
    template = work / "chain-template"
    if not template.exists():
        P.new_project(template, {"chain": P.chain_notebook(count)})
        P.git_commit_all(template)
    kernels, per_stage, above_noop = [], [], []
    for rep in range(size.repeat):
        kernels.append(bare_kernel_start())
        root = P.copy_project(template, work / f"chain-{rep}")
        cold = timed(P.tool("nbprod"), "run", cwd=root)
        noop = timed(P.tool("nbprod"), "run", cwd=root)
        per_stage.append(cold / count)
        above_noop.append((cold - noop) / count)
    kernel, stage_s = median(kernels), median(per_stage)
    return [Row(f"{count}-stage chain of trivial stages, cold: nbprod run, per stage", stage_s, kernel,
                "bare kernel start + execute", stage_s / kernel, "<= 0.5x", stage_s / kernel <= 0.5,
                f"default flags: HTML reports included; (cold - no-op) / {count} = {median(above_noop):.3f} s")]


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
    """No-op runs with default flags (reports included), alternating with no-op ``dvc repro``: on a
    chain made up to date without running its kernels, and on the example pipeline after a real run."""
    count = size.noop_stages
    chain = work / f"noop-{count}"
    P.new_project(chain, {"chain": P.chain_notebook(count)})
    P.mark_up_to_date(chain)
    example = P.copy_project(P.nbprod_template(work) if not size.tiny else _tiny_template(work), work / "noop-example")
    rows = []
    for label, root in ((f"{count}-stage chain", chain), ("tiny 2-stage pipeline" if size.tiny else
                                                          "example pipeline (3 stages)", example)):
        P.sh(P.tool("nbprod"), "run", cwd=root)  # the run a no-op run follows: reports rendered once
        P.sh(P.tool("dvc"), "repro", cwd=root)  # warm both tools' file-system caches alike
        nbprod_times, dvc_times = [], []
        for _ in range(max(size.cheap, 1 if size.tiny else 5)):  # alternating
            nbprod_times.append(timed(P.tool("nbprod"), "run", cwd=root))
            dvc_times.append(timed(P.tool("dvc"), "repro", cwd=root))
        nbprod_s, dvc_s = median(nbprod_times), median(dvc_times)
        rows.append(Row(f"no-op nbprod run, {label}", nbprod_s, dvc_s, "no-op dvc repro", nbprod_s / dvc_s,
                        "<= 1.1x", nbprod_s / dvc_s <= 1.1, "default flags: HTML reports included"))
    return rows


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
                parallel_s / serial_s, "<= 0.55x", parallel_s / serial_s <= 0.55)]


# -- compile a 1,000-cell notebook ---------------------------------------------------------------------

def compile_cells(work: Path, size: Size) -> list[Row]:
    from nbprod.notebooks.compile import compile_project
    from nbprod.core.project import load_project

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

# Feedback (issue 25): 1,000,000 predictions joined with 1,000,000 outcomes, live figures per variant.
from .feedback import feedback_join  # noqa: E402

SCENARIOS.update({"feedback-join": feedback_join})

# Data as it grows (issue 28): a value passed between two stages, against the plain script.
from .scale import scale_rows  # noqa: E402

SCENARIOS.update({"scale": scale_rows})
