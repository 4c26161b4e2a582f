"""The whole command on the normalization example: its wall time (median of --runs) and the
table of issue 17: per series, the last layer's mean and variance and the gradient's growth
per layer, each simulated beside theory.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_normalization.py [--runs 3]
        [--json benchmarks/bench_normalization.json]

--json writes the run times, their median, the CPU count and the load average (rendered into
benchmarks/README.md by docs/quoted_numbers.py bench-normalization).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def table(folder: Path) -> list[str]:
    """Markdown rows from a results folder's summary.csv."""
    rows: dict[str, list[dict]] = {}
    with open(folder / "summary.csv", newline="") as f:
        for r in csv.DictReader(f):
            rows.setdefault(r["series"], []).append(r)
    out = ["| series | mean, last layer | theory | var, last layer | theory | gradient growth per layer | theory |",
           "| --- | --- | --- | --- | --- | --- | --- |"]
    for label, rs in rows.items():
        last = len(rs) - 1
        trials = int(rs[last]["trials"])

        def v(key: str, i: int = last) -> float:
            return float(rs[i][key])

        def growth(key: str) -> float:  # layers 2 .. depth-1: away from the input and the top
            return (v(key, 2) / v(key, last - 1)) ** (1.0 / (last - 3))

        se = lambda key: v(f"{key}_sd") / math.sqrt(trials)  # noqa: E731
        out.append(f"| {label} | {v('mean'):.4g} +- {se('mean'):.2g} | {v('theory_mean'):.4g} | "
                   f"{v('var'):.4g} +- {se('var'):.2g} | {v('theory_var'):.4g} | "
                   f"{growth('grad_ratio'):.4f} | {growth('theory_grad_ratio'):.4f} |")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the times here")
    args = parser.parse_args()
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "normalization"
        for _ in range(args.runs):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "snn_lab", "run", "normalization",
                            "--out", str(out), "--force", "--quiet"], check=True)
            times.append(time.perf_counter() - t0)
        print(f"snn-lab run normalization: median {statistics.median(times):.1f} s "
              f"over {args.runs} runs ({', '.join(f'{t:.1f}' for t in times)})")
        print("\n".join(table(out)))
    if args.json:
        record = {"runs": args.runs, "seconds": times, "median": statistics.median(times),
                  "cpus": os.cpu_count(), "load": os.getloadavg()[0]}
        args.json.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
