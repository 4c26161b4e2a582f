"""A lower bound on the numpy backend's small case, from what numpy's own loops cost here.

The small case (width 128, batch 256: 32768 outputs and 16384 weights a trial-layer) asks 2x the
floor. Whatever the numpy backend does, a trial-layer holds its product; an output needs one `exp`
(SELU's negative side; no other numpy ufunc gives it), one more pass to join the two sides, and
the float64 sum and sum of squares of its pre- and post-activation (the project's rule:
statistics accumulate in float64; the cheapest numpy way found, the backend's own: a float64 copy
and two BLAS dots); the weights need Box-Muller's `log`, `sqrt`, `cos` and `sin` on a pair of
uniforms per two normals. Timing those passes alone, in cache, on one thread (thread CPU time,
min of --repeats), bounds the backend's ratio from below: every other pass (the integer to float
conversions, the activation's other multiplies and the rest) only adds. Also shown: the bound
with numpy's own ziggurat normals (`Generator.standard_normal`: a different stream layout from
the compiled backend's). Not a test; writes --json (default: beside this script).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_numpy_bound.py
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_engine as be  # noqa: E402  (the machine's description)

from snn_lab.simulate import backends, blas  # noqa: E402

HERE = Path(__file__).resolve().parent
WIDTH, BATCH = 128, 256
OUTPUTS, WEIGHTS = BATCH * WIDTH, WIDTH * WIDTH


def per_call(fns: dict, repeats: int, number: int = 50) -> dict[str, float]:
    """Thread CPU seconds of one call of each fn: the min over repeats of number calls, the fns
    taken in turn each round, so that a noisy spell moves them all."""
    best = dict.fromkeys(fns, float("inf"))
    for fn in fns.values():
        fn()
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.thread_time()
            for _ in range(number):
                fn()
            best[name] = min(best[name], (time.thread_time() - t) / number)
    return best


def measure(dtype: str, repeats: int) -> dict:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, WIDTH)).astype(dtype)
    w = (rng.standard_normal((WIDTH, WIDTH)) / WIDTH ** 0.5).astype(dtype)
    h = np.empty_like(x)
    pairs = WEIGHTS // 2
    u = rng.random(pairs).astype(dtype)  # in (0, 1): log's argument; sqrt's, after scaling
    t = (rng.random(pairs) * 6.28 - 3.14).astype(dtype)
    pre = rng.standard_normal(OUTPUTS).astype(dtype)
    out_o, out_p = np.empty(OUTPUTS, dtype), np.empty(pairs, dtype)
    gen, normals = np.random.Generator(np.random.SFC64(0)), np.empty(WEIGHTS, dtype)
    backend = backends.get("numpy")
    per_entry = {"floor (the product)": OUTPUTS, "exp": OUTPUTS, "log": pairs, "sqrt": pairs, "cos": pairs,
                 "sin": pairs, "ziggurat normal": WEIGHTS, "one pass (multiply)": OUTPUTS, "float64 sums": OUTPUTS}
    ns = per_call({
        "floor (the product)": lambda: np.matmul(x, w, out=h),
        "exp": lambda: np.exp(pre, out=out_o),
        "log": lambda: np.log(u, out=out_p),
        "sqrt": lambda: np.sqrt(u, out=out_p),
        "cos": lambda: np.cos(t, out=out_p),
        "sin": lambda: np.sin(t, out=out_p),
        "ziggurat normal": lambda: gen.standard_normal(out=normals, dtype=dtype),
        "one pass (multiply)": lambda: np.multiply(pre, pre.dtype.type(1.0), out=out_o),
        "float64 sums": lambda: backend.sums(pre),
    }, repeats)
    ns = {k: v / per_entry[k] for k, v in ns.items()}
    ns = {k: v * 1e9 for k, v in ns.items()}
    floor = ns["floor (the product)"]
    box_muller = (ns["log"] + ns["sqrt"] + ns["cos"] + ns["sin"]) / 2  # a pair's passes, per normal
    per_output = WEIGHTS / OUTPUTS  # normals an output
    activation = ns["exp"] + ns["one pass (multiply)"] + 2 * ns["float64 sums"]  # sums of h and of x
    return {"dtype": dtype, "ns": ns, "box_muller_ns_a_normal": box_muller, "activation_ns_an_output": activation,
            "bound": 1 + (activation + per_output * box_muller) / floor,
            "bound_ziggurat": 1 + (activation + per_output * ns["ziggurat normal"]) / floor}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=7, help="timed rounds of each pass")
    p.add_argument("--json", type=Path, default=HERE / "bench_numpy_bound.json")
    args = p.parse_args(argv)
    env = be.environment(["numpy"])
    with blas.single_threaded():
        cases = [measure(dt, args.repeats) for dt in ("float32", "float64")]
    for c in cases:
        shown = ", ".join(f"{k} {v:.2f}" for k, v in c["ns"].items())
        print(f"{c['dtype']}: ns an entry: {shown}")
        print(f"  the numpy backend's small case is at least {c['bound']:.2f}x the floor "
              f"({c['bound_ziggurat']:.2f}x with numpy's ziggurat normals); the target is 2x")
    be.write_record(args.json, "bench_numpy_bound.py", repeats=args.repeats, environment=env, cases=cases)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
