"""Sweep throughput: the same sweep of small points with --jobs 1 and --jobs 2 (and Dask).

Each configuration runs as a whole command (process start, points, sweep.csv), interleaved
(1 2 1 2 ...) so that a change in machine load hits both; the medians and their ratio are
printed and written to benchmarks/bench_sweep.json.

    python benchmarks/bench_sweep.py [--repeats 5] [--points 16] [--dask]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIG = """\
name: bench-sweep
seed: 0
trials: 4
width: 128
depth: 32
batch: 128
dtype: float32
measure: []
series:
  - {label: SELU, activation: selu}
  - {label: ReLU (He), activation: relu, init: he_normal}
sweep:
  gain: {linspace: [0.8, 1.2, %d]}
"""


def timed(args: list[str], out: Path) -> float:
    """Wall seconds of one `snn-lab run` of the sweep into a fresh folder."""
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "snn_lab", "run", *args, "--out", str(out), "-q"], check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--points", type=int, default=16)
    parser.add_argument("--dask", action="store_true", help="also time --executor dask --jobs 2")
    args = parser.parse_args()
    cases = {"jobs 1": ["--jobs", "1"], "jobs 2": ["--jobs", "2"]}
    if args.dask:
        cases["dask, jobs 2"] = ["--executor", "dask", "--jobs", "2"]
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "sweep.yaml"
        config.write_text(CONFIG % args.points, "utf-8")
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.repeats):
            for name, extra in cases.items():
                times[name].append(timed([str(config), *extra], Path(tmp) / "out"))
    medians = {name: statistics.median(t) for name, t in times.items()}
    load = os.getloadavg()[0]
    print(f"sweep of {args.points} points (2 series, width 128, depth 32, batch 128, 4 trials), "
          f"medians of {args.repeats}, load {load:.2f}, {os.cpu_count()} CPUs")
    print(f"{'case':<14} {'median s':>9} {'vs jobs 1':>10}")
    for name, m in medians.items():
        print(f"{name:<14} {m:>9.2f} {medians['jobs 1'] / m:>9.2f}x")
    record = {"points": args.points, "repeats": args.repeats, "load": load, "cpus": os.cpu_count(),
              "seconds": times, "median": medians,
              "speedup_jobs2": medians["jobs 1"] / medians["jobs 2"]}
    out = Path(__file__).with_name("bench_sweep.json")
    out.write_text(json.dumps(record, indent=2) + "\n", "utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
