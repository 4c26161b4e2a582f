"""One training step against the forward matmul floor of the same shapes (issue 21's target: at
most 3.5x, since forward plus backward is three products per layer).

    python benchmarks/bench_training.py [--repeats 7] [--json PATH] [--breakdown]

Where OPENBLAS_CORETYPE or OPENBLAS_L2_SIZE is set, unset both in this command alone
(`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python ...`); the script prints the BLAS kernel.
A step is model.forward (training mode) + model.loss + model.backward + Optimizer.step on a
batch drawn beforehand; the floor is depth bare (batch, n) @ (n, n) products with np.matmul
(the first layer's is (batch, dim) @ (dim, n)). Both run with BLAS on one thread, as the
training loop does, interleaved (floor, step, floor, ...) after a warm-up; times are medians,
both wall time and this thread's CPU time: on a machine shared with other jobs (load above the
core count) the scheduler preempts a long step more often than a short floor, which inflates
the wall-time ratio; the CPU-time ratio counts only the work done.
"""

from __future__ import annotations

import argparse
import json
import os
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


def _setup(width, batch, depth, dtype, keys, optimizer):
    """A network, its optimizer, one batch, the floor (the same forward products, bare) and the
    floor's weights and outputs."""
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
    return net, opt, x, y, floor, ws, hs


def case(width, batch, depth, dtype, keys, optimizer, repeats) -> dict:
    net, opt, x, y, floor, _, _ = _setup(width, batch, depth, dtype, keys, optimizer)

    def step():
        run = model.forward(net, x)
        _, d = model.loss(run.out, y, True)
        opt.step(net.params, model.backward(net, run, d))

    times = {"floor": [], "step": [], "floor_cpu": [], "step_cpu": []}
    for fn in (floor, step):  # warm-up
        fn()
    for _ in range(repeats):
        for name, fn in (("floor", floor), ("step", step)):
            c0, t0 = time.thread_time(), time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
            times[name + "_cpu"].append(time.thread_time() - c0)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"floor_s": med["floor"], "step_s": med["step"], "ratio": med["step"] / med["floor"],
            "floor_cpu_s": med["floor_cpu"], "step_cpu_s": med["step_cpu"],
            "cpu_ratio": med["step_cpu"] / med["floor_cpu"], "times": times}


def breakdown(repeats: int) -> dict:
    """The first case's step in pieces (thread CPU time, medians): forward, loss, backward, update."""
    _, width, batch, depth, dtype, keys, optimizer = CASES[0]
    net, opt, x, y, floor, ws, hs = _setup(width, batch, depth, dtype, keys, optimizer)
    run = model.forward(net, x)
    _, d = model.loss(run.out, y, True)
    grads = model.backward(net, run, d)
    gs = [np.ones((batch, width), dtype) for _ in ws]
    dws = [np.empty_like(w) for w in ws]

    def backward_products():  # the backward pass's products alone: x_{l-1}^T g_l and g_l W_l^T
        for i in range(len(ws) - 1, -1, -1):
            np.matmul((x if i == 0 else hs[i - 1]).T, gs[i], out=dws[i])
            if i:
                np.matmul(gs[i], ws[i].T, out=gs[i - 1])
    pieces = {"floor": floor, "backward products": backward_products, "forward": lambda: model.forward(net, x), "loss": lambda: model.loss(run.out, y, True),
              "backward": lambda: model.backward(net, run, d), "update": lambda: opt.step(net.params, grads)}
    out = {}
    for name, fn in pieces.items():
        fn()
        times = []
        for _ in range(repeats):
            c0 = time.thread_time()
            fn()
            times.append(time.thread_time() - c0)
        out[name] = statistics.median(times)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", default=None)
    parser.add_argument("--breakdown", action="store_true", help="also time the first case's step in pieces")
    args = parser.parse_args()
    out = {}
    with blas.single_threaded() as limited:
        try:
            from threadpoolctl import threadpool_info
            kernels = [(i.get("internal_api"), i.get("architecture"), i.get("num_threads")) for i in threadpool_info()]
        except ImportError:
            kernels = []
        print(f"BLAS limited to one thread: {limited}; BLAS: {kernels}")
        print("| case | width | batch | depth | floor (ms) | step (ms) | step / floor | CPU: floor (ms) | step (ms) "
              "| step / floor |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for label, width, batch, depth, dtype, keys, optimizer in CASES:
            r = case(width, batch, depth, dtype, keys, optimizer, args.repeats)
            out[label] = {"width": width, "batch": batch, "depth": depth, "dtype": dtype, **r}
            print(f"| {label} | {width} | {batch} | {depth} | {1e3 * r['floor_s']:.2f} | {1e3 * r['step_s']:.2f} "
                  f"| {r['ratio']:.2f} | {1e3 * r['floor_cpu_s']:.2f} | {1e3 * r['step_cpu_s']:.2f} "
                  f"| {r['cpu_ratio']:.2f} |", flush=True)
        if args.breakdown:
            parts = breakdown(2 * args.repeats)
            out["breakdown_cpu_s"] = parts
            step = sum(v for k, v in parts.items() if k not in ("floor", "backward products"))
            print(f"{CASES[0][0]}, CPU ms: " + ", ".join(f"{k} {1e3 * v:.2f}" for k, v in parts.items())
                  + f"; pieces / floor {step / parts['floor']:.2f}")
        print(f"load average after: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
