"""Data as it grows (issue 28): a value made by one stage and read by the next, ``nbprod run`` (cold,
default flags) beside the same code as one plain script, alternating; wall time, peak memory of the
whole process tree, disk, and where the run's time went (from its executed notebooks and events).
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from . import projects as P
from .scenarios import Row, Size, clean_env, median

KINDS = {
    "frame": "value = pd.DataFrame(np.random.default_rng(0).standard_normal(({rows}, 10)), "
             "columns=[f'c{{i}}' for i in range(10)])",
    "array": "value = np.random.default_rng(0).standard_normal({rows} * 10)",
}


def _notebook(kind: str, rows: int) -> dict:
    return P.notebook([
        (["shared"], "import numpy as np\nimport pandas as pd"),
        (["stage:make"], KINDS[kind].format(rows=rows)),
        (["stage:use"], "total = float(np.asarray(value).sum())\nprint(total)"),
    ])


class TreeMemory:
    """Peak of the summed proportional set size (PSS: a page shared by n processes counts 1/n, so
    forked kernels and their zygote are not counted twice) of a process and all its descendants,
    sampled every 50 ms; the summed RSS is kept too."""

    def __init__(self, pid: int):
        self.pid, self.peak_pss, self.peak_rss = pid, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _tree(self) -> list[int]:
        children: dict[int, list[int]] = {}
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    ppid = int(Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                children.setdefault(ppid, []).append(int(entry.name))
        tree, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            tree.append(pid)
            todo.extend(children.get(pid, []))
        return tree

    def _loop(self) -> None:
        while not self._stop.wait(0.05):
            pss = rss = 0
            for pid in self._tree():
                try:
                    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                        if line.startswith("Pss:"):
                            pss += int(line.split()[1]) * 1024
                        elif line.startswith("Rss:"):
                            rss += int(line.split()[1]) * 1024
                except OSError:
                    continue
            self.peak_pss, self.peak_rss = max(self.peak_pss, pss), max(self.peak_rss, rss)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def measured(*command, cwd: Path) -> tuple[float, TreeMemory]:
    import subprocess

    started = time.perf_counter()
    process = subprocess.Popen([str(c) for c in command], cwd=cwd, env=clean_env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    memory = TreeMemory(process.pid)
    _, err = process.communicate()
    seconds = time.perf_counter() - started
    memory.stop()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, command))} exited {process.returncode}: {err.decode()[-2000:]}")
    return seconds, memory


def disk_bytes(*folders: Path) -> int:
    """Bytes allocated under the folders, a hard-linked file counted once."""
    seen, total = set(), 0
    for folder in folders:
        for path in folder.rglob("*"):
            info = path.lstat()
            if path.is_file() and (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                total += info.st_blocks * 512
    return total


def breakdown(root: Path) -> dict[str, float]:
    """Where the run's time went: the stages' own cells (from Papermill's per-cell durations in the
    executed notebooks), nbprod's save and load cells, and the hand-over between the two stages
    (DVC hashes and caches the value, writes dvc.lock, the next stage's process takes the job)."""
    parts = {"make (user code)": 0.0, "save (serialise)": 0.0, "load (deserialise)": 0.0, "use (user code)": 0.0}
    for stage in ("make", "use"):
        nb = json.loads((root / "reports" / f"{stage}.ipynb").read_text(encoding="utf-8"))
        for cell in nb["cells"]:
            tags = cell["metadata"].get("tags", [])
            seconds = cell["metadata"].get("papermill", {}).get("duration") or 0.0
            if "nbprod-outputs" in tags:
                parts["save (serialise)"] += seconds
            elif "nbprod-inputs" in tags:
                parts["load (deserialise)"] += seconds
            elif cell["cell_type"] == "code" and not {"shared", "parameters", "injected-parameters"} & set(tags):
                parts[f"{stage} (user code)"] += seconds
    events = [json.loads(line) for line in next((root / ".nbprod" / "runs").glob("*/events.jsonl")).read_text(
        encoding="utf-8").splitlines()]
    times = {(e["event"], e.get("stage")): e["time"] for e in events}
    parts["between stages (DVC record, hand-over)"] = times[("stage_start", "use")] - times[("stage_end", "make")]
    parts["run start to first stage"] = times[("stage_start", "make")] - times[("run_start", None)]
    return parts


def parts_in_process(work: Path, kind: str, rows: int) -> Row:
    """Each part of passing the value, timed alone in this process on the same value: the format
    nbprod used before (Parquet) against the one it uses now, DVC's md5 of the file, a cache copy
    against a hard link. Page cache warm (the file was just written), as in a run."""
    import hashlib
    import shutil

    import numpy as np
    import pandas as pd

    from nbprod import artifacts

    folder = work / f"parts-{kind}-{rows}"
    folder.mkdir(parents=True, exist_ok=True)
    value = np.random.default_rng(0).standard_normal(rows * 10)
    if kind == "frame":
        value = pd.DataFrame(value.reshape(rows, 10), columns=[f"c{i}" for i in range(10)])
    seconds: dict[str, float] = {}

    def timed_part(name, call):
        started = time.perf_counter()
        call()
        seconds[name] = time.perf_counter() - started

    os.environ["NBPROD_ROOT"] = str(work)
    try:
        if kind == "frame":
            timed_part("parquet write", lambda: value.to_parquet(folder / "value.parquet"))
            timed_part("parquet read", lambda: pd.read_parquet(folder / "value.parquet"))
        timed_part("nbprod save", lambda: artifacts.save("parts", folder.name, v=value))
        timed_part("nbprod load", lambda: artifacts.load(folder.name, "v"))
    finally:
        os.environ.pop("NBPROD_ROOT", None)
    stored = next((folder / "v").glob("value.*"))

    def md5() -> None:
        digest = hashlib.md5()
        with open(stored, "rb") as handle:
            while chunk := handle.read(1 << 22):
                digest.update(chunk)

    timed_part("md5 (DVC's hash)", md5)
    timed_part("cache copy", lambda: shutil.copyfile(stored, folder / "copy"))
    timed_part("hard link", lambda: os.link(stored, folder / "link"))
    shutil.rmtree(folder)
    after = seconds["nbprod save"] + seconds["nbprod load"] + seconds["hard link"]
    if kind == "frame":
        before, name = seconds["parquet write"] + seconds["parquet read"] + seconds["cache copy"], "Parquet + copy"
    else:  # the .npy format is unchanged: the cache copy is what was cut
        before, name = after - seconds["hard link"] + seconds["cache copy"], ".npy + copy"
    return Row(f"scale: {kind} {rows:,} x 10, passing parts in process (save + load + cache)", after,
               before, name, after / before, "(reference)",
               True, f"load {os.getloadavg()[0]:.1f}; {stored.name}; " +
               ", ".join(f"{k} {v:.2f} s" for k, v in seconds.items()))


def scale_rows(work: Path, size: Size) -> list[Row]:
    cases = [("frame", 1_000)] if size.tiny else \
        [("frame", 1_000_000), ("frame", 5_000_000), ("array", 5_000_000)]
    if size.scale_rows:  # --scale-rows: these frame sizes instead (the 1.6 GB case is measured alone)
        cases = [("frame", rows) for rows in size.scale_rows]
    rows_out = []
    for kind, rows in cases:
        megabytes = rows * 10 * 8 / 1e6
        template = work / f"scale-{kind}-{rows}"
        P.new_project(template, {"scale": _notebook(kind, rows)})
        P.git_commit_all(template)
        script_s, nbprod_s, script_mem, nbprod_mem, loads = [], [], [], [], []
        last = None
        for rep in range(size.repeat):  # alternating; each nbprod run on a fresh copy (cold)
            loads.append(os.getloadavg()[0])
            root = P.copy_project(template, work / f"scale-script-{rep}")
            script, folder = P.plain_script(root)
            seconds, memory = measured(P.BIN / "python", script, cwd=folder)
            script_s.append(seconds)
            script_mem.append(memory.peak_pss)
            if last is not None:
                import shutil

                shutil.rmtree(last, ignore_errors=True)  # one nbprod copy on disk at a time
            last = root = P.copy_project(template, work / f"scale-nbprod-{rep}")
            seconds, memory = measured(P.tool("nbprod"), "run", cwd=root)
            nbprod_s.append(seconds)
            nbprod_mem.append(memory.peak_pss)
        value = next((last / ".nbprod" / "data").glob("*/make/value/value.*"))
        disk = disk_bytes(last / ".nbprod" / "data", last / ".dvc" / "cache")
        parts = breakdown(last)
        label = f"{kind} {rows:,} x 10 ({megabytes:,.0f} MB)"
        t_nbprod, t_script = median(nbprod_s), median(script_s)
        m_nbprod, m_script = median(nbprod_mem), median(script_mem)
        detail = ", ".join(f"{k} {v:.2f} s" for k, v in parts.items())
        rows_out += [
            parts_in_process(work, kind, rows),
            Row(f"scale: {label} passed between 2 stages, cold nbprod run", t_nbprod, t_script, "plain script",
                t_nbprod / t_script, "<= 1.5x", t_nbprod / t_script <= 1.5,
                f"load {min(loads):.1f}-{max(loads):.1f}; {value.name}; last run: {detail}"),
            Row(f"scale: {label}, peak memory of the process tree (PSS, GB)", m_nbprod / 1e9, m_script / 1e9,
                "plain script", m_nbprod / m_script, "<= 1.5x", m_nbprod / m_script <= 1.5,
                "", "GB"),
            Row(f"scale: {label}, disk for the passed value (workspace + cache, GB)", disk / 1e9,
                value.stat().st_size / 1e9, "the value's file", disk / value.stat().st_size, "<= 1.1x",
                disk / value.stat().st_size <= 1.1, "hard links counted once", "GB"),
        ]
    return rows_out
