"""Benchmark the propagation engine against its floor (bare matmuls) and PyTorch on the CPU.

    python benchmarks/bench_engine.py            # the full set (a few minutes on 2 cores)
    python benchmarks/bench_engine.py --quick    # smaller and fewer repeats: a smoke run

Prints a table and writes the same numbers as JSON (--json PATH). Times are medians of
repeats run interleaved in this one process (floor, snn-lab, torch, floor, snn-lab, ...), so
a noisy machine moves all three together; the ratios are what the targets are about.
torch is a benchmark-only dependency: without it the comparison is skipped, and said so.
"""

from __future__ import annotations

import argparse
import ctypes
import glob
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import tracemalloc
from dataclasses import asdict, dataclass
from pathlib import Path

import snn_lab.cli  # noqa: F401  (before numpy: the CLI's OPENBLAS_THREAD_TIMEOUT default applies here too)
import numpy as np

from snn_lab import config
from snn_lab.simulate import engine, threads

TARGETS = {"float64": 1.2, "float32": 1.3, "small": 2.0, "torch": 0.8, "startup_s": 0.3}


@dataclass(frozen=True)
class Case:
    name: str
    width: int
    depth: int
    batch: int
    trials: int
    dtype: str
    activation: str
    target: float  # snn-lab / floor at most this

    @property
    def flop(self) -> float:
        return 2.0 * self.batch * self.width ** 2 * self.depth * self.trials

    def series(self):
        text = (f"seed: 0\ntrials: {self.trials}\nwidth: {self.width}\ndepth: {self.depth}\n"
                f"batch: {self.batch}\ndtype: {self.dtype}\nseries: [{{label: bench, activation: "
                f"{self.activation}, init: lecun_normal}}]")
        return config.load("<bench>", text=text).series[0]


def cases(quick: bool) -> list[Case]:
    depth = 16 if quick else 64
    big = [Case(f"{act} {dt} 1024x{depth}, batch 2048", 1024, depth, 2048, 1, dt, act, TARGETS[dt])
           for dt in ("float32", "float64") for act in ("selu", "relu")]
    small = [Case(f"selu {dt} 128x64, batch 256, 32 trials", 128, 64, 256, 8 if quick else 32, dt,
                  "selu", TARGETS["small"]) for dt in ("float32", "float64")]
    return big + small


# ---- the three contestants -------------------------------------------------------------------

def floor_fn(case: Case):
    """The same number of bare numpy matmuls of the same shapes, on preallocated arrays."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((case.batch, case.width)).astype(case.dtype)
    w = (rng.standard_normal((case.width, case.width)) / math.sqrt(case.width)).astype(case.dtype)
    h = np.empty_like(x)

    def run():
        for _ in range(case.trials * case.depth):
            np.matmul(x, w, out=h)
    return run


def engine_fn(case: Case):
    series = case.series()
    return lambda: engine.run_series(series, 0, case.trials)


def torch_fn(torch, case: Case):
    """The same experiment written carefully in PyTorch: buffers reused, in-place activation.

    Its statistics accumulate in the tensor's dtype (torch.var_mean): less work than
    snn-lab's float64 accumulation, so the comparison favours torch.
    """
    dtype = getattr(torch, case.dtype)
    act = torch.selu_ if case.activation == "selu" else torch.relu_
    n, scale = case.width, 1.0 / math.sqrt(case.width)

    def trial(t: int):
        g = torch.Generator().manual_seed(t)
        x = torch.randn(case.batch, n, generator=g, dtype=dtype)
        h, w = torch.empty_like(x), torch.empty(n, n, dtype=dtype)
        rows = [torch.stack(torch.var_mean(x, correction=0))]
        for _ in range(case.depth):
            torch.randn(n, n, generator=g, dtype=dtype, out=w)
            w.mul_(scale)
            torch.mm(x, w, out=h)
            pre = torch.var_mean(h, correction=0)
            act(h)
            x, h = h, x
            rows.append(torch.stack([*torch.var_mean(x, correction=0), *pre]))
        return torch.stack(rows[1:]).double().numpy()

    def run():
        with torch.inference_mode():
            for t in range(case.trials):
                trial(t)
    return run


def interleaved(fns: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each function, run A B C A B C ... after one warm-up round."""
    times = {k: [] for k in fns}
    for r in range(repeats + 1):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            if r:
                times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


# ---- memory: a fresh process per case ----------------------------------------------------------

def _status(field: str) -> int:
    """A /proc/self/status memory field (VmRSS, VmHWM) in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def memory_child(case: Case) -> dict:
    """Peak resident memory of one trial above the interpreter's baseline (in this process).

    VmHWM, the peak resident set, is reset after the warm-up (clear_refs, Linux >= 4.0);
    getrusage's ru_maxrss would also count the parent's peak, inherited across fork and exec.
    """
    series = case.series()
    # Warm up what every process pays once: OpenBLAS's buffers (a full-size product), the
    # thread pool and per-thread scratch (a small trial). Freed arrays go back to the OS.
    a = np.ones((case.batch, case.width), case.dtype)
    b = np.ones((case.width, case.width), case.dtype)
    a @ b
    del a, b
    small = config.load("<warm>", text=f"width: 64\ndepth: 1\nbatch: 64\ndtype: {case.dtype}\n"
                        "series: [{activation: selu}]").series[0]
    engine.run_trial(small, 0, 0, threads=threads.default_threads())
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    baseline = _status("VmRSS")
    engine.run_trial(series, 0, 0)
    peak = _status("VmHWM")
    tracemalloc.start()
    engine.run_trial(series, 0, 0)
    traced = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    item = np.dtype(case.dtype).itemsize
    return {"baseline_bytes": baseline, "peak_above_baseline": peak - baseline,
            "tracemalloc_peak": traced, "memory_needed": engine.memory_needed(series),
            "target_bytes": case.width ** 2 * item + 3 * case.batch * case.width * item}


def measure_memory(case: Case) -> dict:
    out = subprocess.run([sys.executable, __file__, "--memory-child", json.dumps(asdict(case))],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


# ---- start-up, scaling, the scalar SELU ------------------------------------------------------

def startup(repeats: int) -> dict:
    exe = shutil.which("snn-lab")
    cmd = [exe] if exe else [sys.executable, "-m", "snn_lab"]
    result = {"command": " ".join(cmd)}
    for flag in ("--help", "--version"):
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            subprocess.run(cmd + [flag], capture_output=True, check=True)
            times.append(time.perf_counter() - t)
        result[flag] = statistics.median(times)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(time.perf_counter() - t)
    result["python -c pass"] = statistics.median(times)
    # The slowest imports behind --help (cumulative microseconds), for whoever needs to cut them.
    err = subprocess.run([sys.executable, "-X", "importtime", "-m", "snn_lab", "--help"],
                         capture_output=True, text=True).stderr
    rows = []
    for line in err.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]), parts[2].strip()))
    result["slowest_imports_us"] = [[name, us] for us, name in sorted(rows, reverse=True)[:6]]
    return result


def scaling(quick: bool, repeats: int) -> dict:
    """Fitted exponents of engine time against width, depth and batch (one varied at a time)."""
    base = {"width": 512, "depth": 8 if quick else 16, "batch": 1024}
    grid = {"width": [256, 512, 1024], "depth": [base["depth"] // 2, base["depth"], base["depth"] * 2],
            "batch": [512, 1024, 2048]}
    result = {}
    for key, values in grid.items():
        times = []
        for v in values:
            p = {**base, key: v}
            case = Case("scaling", p["width"], p["depth"], p["batch"], 1, "float32", "selu", 0)
            times.append(interleaved({"e": engine_fn(case)}, repeats)["e"])
        slope = float(np.polyfit(np.log(values), np.log(times), 1)[0])
        result[key] = {"values": values, "seconds": times, "exponent": slope}
    return result


def scalar_selu(repeats: int) -> dict:
    """The SELU article's scalar Python SELU (if/else, list comprehension) vs the engine."""
    lam, alpha = 1.0507009873554804934, 1.6732632423543772848

    def selu(x):
        return lam * x if x > 0 else lam * alpha * (math.exp(x) - 1)
    xs = np.random.default_rng(0).standard_normal(1 << 16)
    values = xs.tolist()
    scalar = interleaved({"s": lambda: [selu(v) for v in values]}, repeats)["s"] / xs.size
    act = config.load("<s>", text="series: [{activation: selu}]").series[0].make_activation()
    h = xs.reshape(64, 1024)
    out = np.empty_like(h)
    # The engine's compiled SELU, with the float64 sums it computes in the same pass.
    vector = interleaved({"v": lambda: engine.activate_block(act, h, out)}, max(repeats, 20))["v"] / xs.size
    case = Case("per-element", 1024, 8, 2048, 1, "float64", "selu", 0)
    whole = interleaved({"e": engine_fn(case)}, repeats)["e"] / (1024 * 2048 * 8)
    return {"scalar_ns_per_element": scalar * 1e9, "engine_selu_ns_per_element": vector * 1e9,
            "engine_layer_ns_per_element": whole * 1e9,
            "scalar_over_engine_selu": scalar / vector, "scalar_over_engine_layer": scalar / whole}


# ---- environment ---------------------------------------------------------------------------

def blas_info() -> dict:
    """Which OpenBLAS kernel and how many threads numpy's BLAS runs (threadpoolctl if present)."""
    info = {name: os.environ.get(name) for name in
            ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_THREAD_TIMEOUT", "OPENBLAS_NUM_THREADS")}
    try:
        from threadpoolctl import threadpool_info
        for pool in threadpool_info():
            if pool.get("internal_api") == "openblas":
                info.update(core=pool.get("architecture"), threads=pool.get("num_threads"),
                            version=pool.get("version"))
                return info
    except ImportError:
        pass
    libs = glob.glob(os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs", "*openblas*"))
    for path in libs:
        lib = ctypes.CDLL(path)
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", ""):
                try:
                    core = getattr(lib, f"{prefix}_get_corename{suffix}")
                    core.restype = ctypes.c_char_p
                    info.update(core=core().decode(), threads=getattr(lib, f"{prefix}_get_num_threads{suffix}")())
                    return info
                except AttributeError:
                    continue
    return info


def environment() -> dict:
    try:
        import torch
        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    return {"python": platform.python_version(), "numpy": np.__version__, "torch": torch_version,
            "machine": platform.machine(), "cpus": threads.default_threads(), "blas": blas_info(),
            "loadavg_before": os.getloadavg()}


# ---- the report --------------------------------------------------------------------------------

def mib(n: float) -> str:
    return f"{n / 2**20:.0f}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="depth 16, 3 repeats: a smoke run")
    p.add_argument("--repeats", type=int, help="timed repeats per contestant (default 5, quick 3)")
    p.add_argument("--json", type=Path, default=Path(__file__).with_name("bench_engine.json"),
                   help="where to write the JSON (default: benchmarks/bench_engine.json)")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    p.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.memory_child:
        print(json.dumps(memory_child(Case(**json.loads(args.memory_child)))))
        return 0
    repeats = args.repeats or (3 if args.quick else 5)
    torch = None
    if not args.no_torch:
        try:
            import torch
            torch.set_num_threads(threads.default_threads())
        except ImportError:
            print("torch is not installed: the PyTorch comparison is skipped "
                  "(pip install torch==2.13.0 for it; never a runtime dependency)")
    env = environment()
    blas = env["blas"]
    print(f"numpy {env['numpy']}, OpenBLAS {blas.get('core', '?')} kernel, {blas.get('threads', '?')} "
          f"threads; torch {env['torch'] or '-'}; {env['cpus']} CPUs; load {env['loadavg_before'][0]:.2f}")
    if blas["OPENBLAS_CORETYPE"] or blas["OPENBLAS_L2_SIZE"]:
        print(f"note: OPENBLAS_CORETYPE={blas['OPENBLAS_CORETYPE']} OPENBLAS_L2_SIZE="
              f"{blas['OPENBLAS_L2_SIZE']} are set: they pick an older kernel and slow the floor")
    if not blas["OPENBLAS_THREAD_TIMEOUT"]:
        print("note: OPENBLAS_THREAD_TIMEOUT is unset: OpenBLAS's idle threads spin for about 0.1 s "
              "after every product, taking the core snn-lab's threads would use between products")

    rows = []
    for case in cases(args.quick):
        fns = {"floor": floor_fn(case), "snn-lab": engine_fn(case)}
        if torch is not None:
            fns["torch"] = torch_fn(torch, case)
        t = interleaved(fns, repeats)
        mem = measure_memory(case) if case.trials == 1 else None
        row = {"case": case.name, **asdict(case), "seconds": t,
               "snn_lab_over_floor": t["snn-lab"] / t["floor"],
               "snn_lab_over_torch": t["snn-lab"] / t["torch"] if "torch" in t else None,
               "torch_over_floor": t["torch"] / t["floor"] if "torch" in t else None,
               "gflops": {k: case.flop / v / 1e9 for k, v in t.items()}, "memory": mem}
        row["meets_target"] = row["snn_lab_over_floor"] <= case.target and (
            row["snn_lab_over_torch"] is None or row["snn_lab_over_torch"] < TARGETS["torch"])
        rows.append(row)
        print_row(row, header=len(rows) == 1)

    print()
    up = startup(7 if not args.quick else 3)
    print(f"start-up ({up['command']}): --help {up['--help']:.3f} s, --version {up['--version']:.3f} s "
          f"(python -c pass {up['python -c pass']:.3f} s; target < {TARGETS['startup_s']} s)")
    print("  slowest imports behind --help (cumulative ms): "
          + ", ".join(f"{name} {us / 1000:.0f}" for name, us in up["slowest_imports_us"]))
    sc = scaling(args.quick, 2 if args.quick else 3)
    print("scaling exponents (float32 selu, one of width/depth/batch varied): "
          + ", ".join(f"{k} {v['exponent']:.2f}" for k, v in sc.items()) + "  (expected about 2, 1, 1)")
    sel = scalar_selu(3)
    print(f"scalar Python SELU {sel['scalar_ns_per_element']:.1f} ns/element; the engine's SELU "
          f"{sel['engine_selu_ns_per_element']:.2f} ns ({sel['scalar_over_engine_selu']:.0f}x faster); "
          f"a whole engine layer (float64, width 1024) {sel['engine_layer_ns_per_element']:.2f} ns per "
          f"activation ({sel['scalar_over_engine_layer']:.0f}x)")
    env["loadavg_after"] = os.getloadavg()
    report = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "environment": env,
              "targets": TARGETS, "cases": rows, "startup": up, "scaling": sc, "scalar_selu": sel}
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print("load average (1, 5, 15 min) before: " + ", ".join(f"{v:.2f}" for v in env["loadavg_before"])
          + "; after: " + ", ".join(f"{v:.2f}" for v in env["loadavg_after"]))
    print(f"wrote {args.json}")
    return 0


def print_row(row: dict, header: bool) -> None:
    if header:
        print(f"{'case':42} {'floor s':>8} {'snn-lab s':>9} {'torch s':>8} {'lab/floor':>9} "
              f"{'lab/torch':>9} {'torch/floor':>11} {'GFLOP/s floor/lab/torch':>24} {'peak MiB (need/target)':>23}")
    t, g, m = row["seconds"], row["gflops"], row["memory"]
    torch_s = f"{t['torch']:8.3f}" if "torch" in t else f"{'-':>8}"
    vs_torch = f"{row['snn_lab_over_torch']:9.2f}" if row["snn_lab_over_torch"] else f"{'-':>9}"
    torch_floor = f"{row['torch_over_floor']:11.2f}" if row["torch_over_floor"] else f"{'-':>11}"
    flops = "/".join(f"{g[k]:.0f}" for k in ("floor", "snn-lab", "torch") if k in g)
    mem = (f"{mib(m['peak_above_baseline'])} ({mib(m['memory_needed'])}/{mib(m['target_bytes'])})"
           if m else "-")
    mark = "" if row["meets_target"] else "  <- misses target"
    print(f"{row['case']:42} {t['floor']:8.3f} {t['snn-lab']:9.3f} {torch_s} "
          f"{row['snn_lab_over_floor']:9.2f} {vs_torch} {torch_floor} {flops:>24} {mem:>23}{mark}")


if __name__ == "__main__":
    sys.exit(main())
