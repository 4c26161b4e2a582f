"""Where the small case's time goes: each backend's parts, on one thread, against the products.

bench_engine.py's small case (width 128, depth 64, batch 256, 32 trials, SELU), run by
engine.run_series on one thread with BLAS on one thread, in thread CPU time (load moves it less
than wall time): the floor (the same products alone) and each backend's whole run, interleaved,
medians of --repeats; then one run per backend with its parts timed by wrapping them: the
products (np.matmul), the backend's normals, activation with its sums, and sums, the streams'
set-up and the statistics' finish. Not a test; writes --json (default: beside this script).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_small_breakdown.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_engine as be  # noqa: E402  (the cases, the floor and the machine's description)

from snn_lab.simulate import backends, blas, engine, streams  # noqa: E402

HERE = Path(__file__).resolve().parent
clock = time.thread_time
PARTS = {"products": "matmul", "normals": "normals", "activation + sums": "activate", "sums": "sums",
         "streams": "jobs", "finish": "finish"}


def timed_parts(run, backend) -> dict[str, float]:
    """Thread CPU seconds of each part during run(), by wrapping it where the engine calls it."""
    spent = dict.fromkeys(PARTS, 0.0)
    places = {"products": (np, "matmul"), "streams": (streams, "jobs"), "finish": (engine, "finish"),
              **{part: (backend, name) for part, name in PARTS.items() if hasattr(backend, name)
                 and part not in ("products", "streams", "finish")}}
    saved = {part: getattr(obj, name) for part, (obj, name) in places.items()}

    def wrap(part, fn):
        def timed(*a, **k):
            t = clock()
            try:
                return fn(*a, **k)
            finally:
                spent[part] += clock() - t
        return timed
    try:
        for part, (obj, name) in places.items():
            setattr(obj, name, wrap(part, saved[part]))
        t = clock()
        run()
        spent["total"] = clock() - t
    finally:
        for part, (obj, name) in places.items():
            if obj is backend:
                delattr(obj, name)  # the instance's wrapper; the class's method shows again
            else:
                setattr(obj, name, saved[part])
    return spent


def measure(case, names: list[str], repeats: int) -> dict:
    series = case.series()
    x, w = be._operands(case)
    h = np.empty_like(x)

    def floor():
        for _ in range(case.products):
            np.matmul(x, w, out=h)
    fns = {"floor": floor, **{b: (lambda b=b: engine.run_series(series, 0, case.trials, measure=(),
                                                                 backend=b, threads=1)) for b in names}}
    times = {k: [] for k in fns}
    with blas.single_threaded():
        for r in range(repeats + 1):  # round 0 warms up
            for k, fn in fns.items():
                t = clock()
                fn()
                if r:
                    times[k].append(clock() - t)
        parts = {b: timed_parts(fns[b], backends.get(b)) for b in names}
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"dtype": case.dtype, "width": case.width, "depth": case.depth, "batch": case.batch,
            "trials": case.trials, "trial_layers": case.products, "outputs": case.batch * case.width,
            "weights": case.width * case.width, "seconds": times, "median": med,
            "ratio": {b: med[b] / med["floor"] for b in names}, "parts": parts}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5, help="timed rounds (after one warm-up round)")
    p.add_argument("--json", type=Path, default=HERE / "bench_small_breakdown.json")
    args = p.parse_args(argv)
    names = [b for b, why in backends.available().items() if why is None]
    env = be.environment(names)
    cases = [measure(c, names, args.repeats) for c in be.make_cases(False, {"small"})]
    env["loadavg_after"] = os.getloadavg()
    for c in cases:
        n = c["trial_layers"]
        print(f"{c['dtype']}: floor {c['median']['floor']:.3f} s on one thread "
              f"({c['median']['floor'] / n / c['outputs'] * 1e9:.2f} ns an output)")
        for b in names:
            part = c["parts"][b]
            shown = ", ".join(f"{k} {v / n * 1e6:.1f} us" for k, v in part.items() if v and k != "total")
            print(f"  {b}: {c['median'][b]:.3f} s ({c['ratio'][b]:.2f}x the floor); a trial-layer: {shown}")
    print(f"load average before {env['loadavg_before'][0]:.2f}, after {env['loadavg_after'][0]:.2f}")
    be.write_record(args.json, "bench_small_breakdown.py", repeats=args.repeats, environment=env, cases=cases)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
