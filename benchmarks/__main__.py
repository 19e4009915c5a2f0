"""``python -m benchmarks [--tiny] [--repeat N] [--only NAME ...] [--json FILE]``: run, print the table."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from .scenarios import SCENARIOS, Row, Size


def machine() -> dict:
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return {"cpus": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "system": f"{platform.system()} {platform.release()}", "load_1min": round(load, 2)}


def render(rows: list[Row], info: dict, size: Size, elapsed: float) -> str:
    lines = [f"nbprod benchmarks ({'tiny' if size.tiny else 'full'} mode), {time.strftime('%Y-%m-%d %H:%M')}",
             f"machine: {info['cpus']} CPUs, {info['cpu']}, Python {info['python']}, {info['system']}, "
             f"1-min load at start {info['load_1min']}",
             f"repetitions: {size.repeat} per costly scenario, {size.cheap} per cheap one (kernel starts, no-op "
             f"runs, imports, compiles); medians shown"]
    header = ("scenario", "nbprod", "baseline", "ratio", "target", "result")
    table = [header] + [(r.scenario, f"{r.nbprod:.3f} {r.unit}", f"{r.baseline:.3f} {r.unit} ({r.baseline_name})",
                         f"{r.ratio:.2f}", r.target, ("met" if r.met else "MISSED") + (f"; {r.note}" if r.note else ""))
                        for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    for i, row in enumerate(table):
        lines.append(" | ".join(cell.ljust(w) for cell, w in zip(row, widths)) + " | " + row[-1])
        if i == 0:
            lines.append("-+-".join("-" * w for w in widths) + "-+-" + "-" * 6)
    lines.append(f"total time {elapsed:.0f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--tiny", action="store_true", help="every scenario at a tiny size (the smoke test)")
    parser.add_argument("--repeat", type=int, default=1, help="repetitions of the costly scenarios")
    parser.add_argument("--only", nargs="+", choices=sorted(SCENARIOS), help="run only these scenarios")
    parser.add_argument("--json", type=Path, help="also write the rows and the machine as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the generated projects")
    parser.add_argument("--scale-rows", type=int, nargs="+", default=[],
                        help="the scale scenario passes frames of these row counts (x 10 float columns) instead, "
                             "e.g. 20000000 for 1.6 GB")
    args = parser.parse_args(argv)
    size = Size(tiny=args.tiny, repeat=max(1, args.repeat), scale_rows=tuple(args.scale_rows))
    os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
    for key, value in (("GIT_AUTHOR_NAME", "bench"), ("GIT_AUTHOR_EMAIL", "bench@nbprod.invalid"),
                       ("GIT_COMMITTER_NAME", "bench"), ("GIT_COMMITTER_EMAIL", "bench@nbprod.invalid")):
        os.environ.setdefault(key, value)
    info = machine()
    work = Path(tempfile.mkdtemp(prefix="nbprod-bench-"))
    started = time.perf_counter()
    rows: list[Row] = []
    try:
        for name in args.only or list(SCENARIOS):
            print(f"running {name} ...", file=sys.stderr, flush=True)
            rows.extend(SCENARIOS[name](work, size))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"projects kept in {work}", file=sys.stderr)
    elapsed = time.perf_counter() - started
    print(render(rows, info, size, elapsed))
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "tiny": size.tiny, "repeat": size.repeat,
                                         "seconds": round(elapsed, 1), "rows": [asdict(r) for r in rows]},
                                        indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
