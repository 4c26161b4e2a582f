"""One training step against the forward matmul floor of the same shapes (issue 21's target: at
most 3.5x, since forward plus backward is three products per layer).

    python benchmarks/bench_training.py [--repeats 7] [--json PATH]

Where OPENBLAS_CORETYPE or OPENBLAS_L2_SIZE is set, unset both in this command alone
(`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python ...`); the script prints the BLAS kernel.
A step is model.forward (training mode) + model.loss + model.backward + Optimizer.step on a
batch drawn beforehand; the floor is depth bare (batch, n) @ (n, n) products with np.matmul
(the first layer's is (batch, dim) @ (dim, n)). Both run with BLAS on one thread, as the
training loop does, interleaved (floor, step, floor, ...) after a warm-up; times are medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from snn_lab import config
from snn_lab.simulate import blas
from snn_lab.train import model
from snn_lab.train.optim import Optimizer

CASES = [  # (label, width, batch, depth, dtype, series keys, optimizer)
    ("SELU f32 sgd", 512, 256, 8, "float32", "activation: selu", "sgd"),
    ("SELU f64 sgd", 512, 256, 8, "float64", "activation: selu", "sgd"),
    ("ReLU+BN f32 adam", 512, 256, 8, "float32", "{activation: relu, init: he_normal, norm: batch}", "adam"),
    ("SELU f32 sgd, learning.yaml's shape", 128, 64, 16, "float32", "activation: selu", "sgd"),
]
DIM, OUTPUTS = 64, 10


def _series(width, depth, dtype, keys) -> config.Series:
    keys = keys if keys.startswith("{") else "{" + keys + "}"
    return config.load(text=f"width: {width}\ndepth: {depth}\ndtype: {dtype}\nseries: [{keys}]").series[0]


def case(width, batch, depth, dtype, keys, optimizer, repeats) -> dict:
    s = _series(width, depth, dtype, keys)
    rng = np.random.default_rng(0)
    net = model.Network.create(s, DIM, OUTPUTS, seed=0, trial=0)
    opt = Optimizer(optimizer, net.params, 1e-4)
    x = rng.standard_normal((batch, DIM)).astype(dtype)
    y = rng.integers(0, OUTPUTS, batch)
    ws = [w.copy() for w in net.params[0::2][:-1]]
    hs = [np.empty((batch, width), dtype) for _ in ws]

    def floor():
        a = x
        for w, h in zip(ws, hs):
            np.matmul(a, w, out=h)
            a = h

    def step():
        run = model.forward(net, x)
        _, d = model.loss(run.out, y, True)
        opt.step(net.params, model.backward(net, run, d))

    times = {"floor": [], "step": []}
    for fn in (floor, step):  # warm-up
        fn()
    for _ in range(repeats):
        for name, fn in (("floor", floor), ("step", step)):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    f, st = statistics.median(times["floor"]), statistics.median(times["step"])
    return {"floor_s": f, "step_s": st, "ratio": st / f, "times": times}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    out = {}
    with blas.single_threaded() as limited:
        try:
            from threadpoolctl import threadpool_info
            kernels = [(i.get("internal_api"), i.get("architecture"), i.get("num_threads")) for i in threadpool_info()]
        except ImportError:
            kernels = []
        print(f"BLAS limited to one thread: {limited}; BLAS: {kernels}")
        print("| case | width | batch | depth | floor (ms) | step (ms) | step / floor |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for label, width, batch, depth, dtype, keys, optimizer in CASES:
            r = case(width, batch, depth, dtype, keys, optimizer, args.repeats)
            out[label] = {"width": width, "batch": batch, "depth": depth, "dtype": dtype, **r}
            print(f"| {label} | {width} | {batch} | {depth} | {1e3 * r['floor_s']:.2f} | {1e3 * r['step_s']:.2f} "
                  f"| {r['ratio']:.2f} |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
