"""Benchmark snn-lab's backends side by side against their floor (bare matmuls) and PyTorch.

    python benchmarks/bench_engine.py                  # everything (about 23 minutes on 2 cores)
    python benchmarks/bench_engine.py --quick          # tiny sizes, 1 repetition: a smoke run
    python benchmarks/bench_engine.py --cases engine,small --repeats 7

Where OPENBLAS_CORETYPE or OPENBLAS_L2_SIZE is set (some machines here set them for old
OpenBLAS builds), run it with both unset in that command alone, or the floor uses an older
kernel: `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_engine.py`.

Cases (the issue's): `whole` is `snn-lab run` (default config, its default measures, theory
and the results folder included) at width 1024, depth 128, batch 2048 in float32 and float64;
`engine` is run_series alone (measure=()) at width 1024, depth 64, batch 2048, SELU and ReLU;
`small` is width 128, depth 64, batch 256, 32 trials; `torch` adds a plain PyTorch forward
loop to the engine and small cases. The floor is the same matrix products done by bare
np.matmul in this process with numpy's default BLAS threading. Every contestant of a case runs
interleaved (floor, numpy, compiled, torch, floor, ...) so that a noisy machine moves them
together; times are medians, ratios are of medians measured in this one process. Peak memory
(tracemalloc and the resident set) of each engine case runs in a fresh process per backend.

Prints one table and writes everything, with the machine's description, to bench_engine.json.
Without the compiled backend built, its columns are skipped and the reason printed; torch is
a benchmark-only dependency (pip install torch==2.13.0), skipped and said so when missing.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

import snn_lab
from snn_lab import config
from snn_lab.simulate import backends, engine, memory, threads

HERE = Path(__file__).resolve().parent
OLD_LINES = 1600  # the issue: old engine.py + streams.py + _kernels.c, "about 1,600 lines"
ALL_CASES = ("whole", "engine", "small", "torch", "memory", "scaling")
DEFAULT_CASES = ALL_CASES
# snn-lab / floor at most this, per (case kind, dtype, backend); torch: snn-lab / torch below it.
TARGETS = {
    ("whole", "float32"): {"numpy": 1.5, "compiled": 1.3},
    ("whole", "float64"): {"numpy": 1.5, "compiled": 1.25},
    ("engine", "float32"): {"numpy": 1.4, "compiled": 1.2},
    ("engine", "float64"): {"numpy": 1.4, "compiled": 1.15},
    ("small", "float32"): {"numpy": 2.0, "compiled": 2.0},
    ("small", "float64"): {"numpy": 2.0, "compiled": 2.0},
}
TORCH_TARGET = 0.8  # snn-lab / torch strictly below this


@dataclass(frozen=True)
class Case:
    kind: str  # whole, engine, small
    name: str
    width: int
    depth: int
    batch: int
    trials: int
    dtype: str
    activation: str  # engine cases; the whole run has the default config's three series
    series_count: int = 1

    @property
    def products(self) -> int:
        return self.trials * self.series_count * self.depth

    @property
    def flop(self) -> float:
        return 2.0 * self.batch * self.width ** 2 * self.products

    def series(self):
        text = (f"seed: 0\ntrials: {self.trials}\nwidth: {self.width}\ndepth: {self.depth}\n"
                f"batch: {self.batch}\ndtype: {self.dtype}\nseries: [{{label: bench, activation: "
                f"{self.activation}, init: lecun_normal}}]")
        return config.load("<bench>", text=text).series[0]

    def overrides(self) -> list[str]:
        return [f"width={self.width}", f"depth={self.depth}", f"batch={self.batch}", f"dtype={self.dtype}"]


def default_config():
    return config.load()


def make_cases(quick: bool, selected: set[str]) -> list[Case]:
    out = []
    if "whole" in selected:
        exp = default_config()
        w, d, b = (128, 8, 256) if quick else (1024, 128, 2048)
        for dt in ("float32", "float64"):
            out.append(Case("whole", f"whole run {dt} {w}x{d}, batch {b}", w, d, b, exp.trials, dt,
                            "default", len(exp.series)))
    if selected & {"engine", "torch"}:
        w, d, b = (256, 8, 512) if quick else (1024, 64, 2048)
        for dt in ("float32", "float64"):
            for act in ("selu", "relu"):
                out.append(Case("engine", f"engine {act} {dt} {w}x{d}, batch {b}", w, d, b, 1, dt, act))
    if selected & {"small", "torch"}:
        w, d, b, t = (128, 8, 256, 8) if quick else (128, 64, 256, 32)
        for dt in ("float32", "float64"):
            out.append(Case("small", f"small selu {dt} {w}x{d}, batch {b}, {t} trials", w, d, b, t, dt, "selu"))
    return out


# ---- the contestants -----------------------------------------------------------------------------

def _operands(case: Case):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((case.batch, case.width)).astype(case.dtype)
    w = (rng.standard_normal((case.width, case.width)) / math.sqrt(case.width)).astype(case.dtype)
    return x, w


def floor_fn(case: Case):
    """The case's products by bare np.matmul, one after the other, on preallocated arrays, with
    numpy's default BLAS threading (the old script's floor)."""
    x, w = _operands(case)
    h = np.empty_like(x)
    count = case.products

    def run():
        for _ in range(count):
            np.matmul(x, w, out=h)
    return run


def floor_split_fn(case: Case):
    """The same products shared out over the CPUs' Python threads, BLAS on one thread each: the
    other plain way, faster for small products that one BLAS call cannot keep 2 cores busy with."""
    from threadpoolctl import threadpool_limits

    workers = threads.default_threads()
    ops = [_operands(case) for _ in range(workers)]
    outs = [np.empty_like(x) for x, _ in ops]
    count = case.products

    def part(p):
        x, w = ops[p]
        for _ in range(count * p // workers, count * (p + 1) // workers):
            np.matmul(x, w, out=outs[p])

    def run():
        with threadpool_limits(1, user_api="blas"):
            ts = [threading.Thread(target=part, args=(p,)) for p in range(1, workers)]
            for t in ts:
                t.start()
            part(0)
            for t in ts:
                t.join()
    return run


def engine_fn(case: Case, backend: str):
    series = case.series()
    return lambda: engine.run_series(series, 0, case.trials, measure=(), backend=backend)


_RUNS = iter(range(1 << 62))  # a new results folder per whole run


def whole_fn(case: Case, backend: str, tmp: Path):
    """`snn-lab run -q --backend B --set ... --out DIR` in this process, into a fresh folder."""
    from snn_lab import cli, interrupts

    def run():
        out = tmp / f"{backend}-{case.dtype}-{next(_RUNS)}"
        args = ["run", "-q", "--backend", backend, "--out", str(out)]
        for o in case.overrides():
            args += ["--set", o]
        with contextlib.redirect_stdout(io.StringIO()):
            cli.main(args, standalone_mode=False)
        if interrupts.received():  # the run caught Ctrl-C or SIGTERM (exit 130): so does the benchmark
            raise KeyboardInterrupt
    return run


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


def interleaved(fns: dict, repeats: int, warmup: bool = True) -> dict[str, list[float]]:
    """Seconds of each function per round, run A B C A B C ..., after one warm-up round."""
    times = {k: [] for k in fns}
    for r in range(repeats + (1 if warmup else 0)):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            if r or not warmup:
                times[k].append(time.perf_counter() - t)
    return times


# ---- memory: a fresh process per case and backend --------------------------------------------------

def _status(field: str) -> int:
    """A /proc/self/status memory field (VmRSS, VmHWM) in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def memory_child(case: Case, backend: str) -> dict:
    """Peak memory of the case's run_series, in this process: tracemalloc's peak (numpy reports
    its buffers to it) and the resident set's peak above the warmed-up baseline (VmHWM, reset
    after the warm-up through clear_refs, Linux >= 4.0)."""
    series = case.series()
    a = np.ones((case.batch, case.width), case.dtype)  # OpenBLAS's buffers, once per process
    a @ np.ones((case.width, case.width), case.dtype)
    del a
    warm = config.load("<warm>", text=f"width: 64\ndepth: 1\nbatch: 64\ndtype: {case.dtype}\n"
                       "series: [{activation: selu}]").series[0]
    engine.run_series(warm, 0, 2, backend=backend)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    baseline = _status("VmRSS")
    engine.run_series(series, 0, case.trials, measure=(), backend=backend)
    rss_peak = _status("VmHWM") - baseline
    tracemalloc.start()
    engine.run_series(series, 0, case.trials, measure=(), backend=backend)
    traced = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"tracemalloc_peak": traced, "rss_peak_above_baseline": rss_peak,
            "memory_needed": memory.memory_needed(series)}


def measure_memory(case: Case, backend: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--memory-child",
                          json.dumps({"case": asdict(case), "backend": backend})],
                         check=False, capture_output=True, text=True)
    if out.returncode:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
    return json.loads(out.stdout)


# ---- scaling, line count, the machine ------------------------------------------------------------

def scaling(quick: bool, repeats: int, backend: str) -> dict:
    """Fitted exponents of engine time against width, depth and batch (one varied at a time)."""
    base = {"width": 512, "depth": 8 if quick else 16, "batch": 1024}
    grid = {"width": [256, 512, 1024], "depth": [base["depth"] // 2, base["depth"], base["depth"] * 2],
            "batch": [512, 1024, 2048]}
    result = {"backend": backend}
    for key, values in grid.items():
        times = []
        for v in values:
            p = {**base, key: v}
            case = Case("scaling", "scaling", p["width"], p["depth"], p["batch"], 1, "float32", "selu")
            times.append(statistics.median(interleaved({"e": engine_fn(case, backend)}, repeats)["e"]))
        slope = float(np.polyfit(np.log(values), np.log(times), 1)[0])
        result[key] = {"values": values, "seconds": times, "exponent": slope}
    return result


def line_counts() -> dict:
    """Lines of the engine as the issue counts it: engine.py, streams.py and the backends' sources."""
    sim = Path(snn_lab.__file__).resolve().parent / "simulate"
    files = [sim / "engine.py", sim / "streams.py"] + sorted(
        p for p in (sim / "backends").iterdir() if p.suffix in (".py", ".c", ".h"))
    counts = {str(p.relative_to(sim.parent.parent)): sum(1 for _ in p.open("rb")) for p in files}
    return {"files": counts, "total": sum(counts.values()), "old_about": OLD_LINES}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas_info() -> dict:
    """threadpoolctl's view of the loaded BLAS / OpenMP libraries (OpenBLAS's kernel included)."""
    try:
        from threadpoolctl import threadpool_info
        return {"threadpoolctl": threadpool_info()}
    except ImportError:
        return {"threadpoolctl": None}


def numpy_build() -> dict:
    try:
        deps = np.show_config(mode="dicts")["Build Dependencies"]
        return {k: deps.get(k) for k in ("blas", "lapack")}
    except Exception:  # noqa: BLE001 - older numpy: no dicts mode
        return {}


def openblas_pool() -> dict:
    pools = blas_info()["threadpoolctl"] or []
    return next((p for p in pools if p.get("internal_api") == "openblas"), {})


def write_record(path: Path, script: str, **fields) -> None:
    """A one-thread benchmark's JSON record (its command first), and say where it went."""
    record = {"command": f"env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/{script}", **fields}
    path.write_text(json.dumps(record, indent=1, default=str) + "\n")
    print(f"wrote {path}")


def git_state() -> dict:
    """The checkout's commit and whether snn_lab/ had uncommitted changes (what was measured)."""
    root = Path(snn_lab.__file__).resolve().parent.parent

    def git(*a):
        r = subprocess.run(["git", "-C", str(root), *a], check=False, capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else None
    return {"commit": git("rev-parse", "HEAD"), "snn_lab_changed": git("status", "--porcelain", "--", "snn_lab")}


def environment(backend_names: list[str]) -> dict:
    env = {"git": git_state(), "python": platform.python_version(), "numpy": np.__version__, "numpy_build": numpy_build(),
           "snn_lab": snn_lab.__version__, "cpu_model": cpu_model(), "machine": platform.machine(),
           "cpus": threads.default_threads(), "loadavg_before": os.getloadavg(),
           "openblas_env": {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS_")},
           "snn_lab_env": {k: v for k, v in os.environ.items() if k.startswith("SNN_LAB_")},
           "backends": backends.describe(), "measured_backends": backend_names, **blas_info()}
    return env


def _cpu_seconds() -> tuple[float, float]:
    """(CPU seconds busy on the whole machine, CPU seconds of this process and its children)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    busy = (v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)) / os.sysconf("SC_CLK_TCK")
    t = os.times()
    return busy, t.user + t.system + t.children_user + t.children_system


class LoadSampler:
    """While the benchmark runs: the 1-minute load average every PERIOD seconds (this process's
    own threads count in it, about 2 on 2 cores while a case runs), and the cores that other
    processes kept busy (the machine's busy CPU time less this process's, per second)."""

    PERIOD = 15.0

    def __init__(self):
        self.samples = [os.getloadavg()[0]]
        self.others = []
        self._stop = threading.Event()
        self._t0, self._c0 = time.perf_counter(), _cpu_seconds()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _others(self, t0, c0):
        busy, mine = _cpu_seconds()
        return max(0.0, (busy - c0[0]) - (mine - c0[1])) / max(1e-9, time.perf_counter() - t0)

    def _run(self):
        t, c = self._t0, self._c0
        while not self._stop.wait(self.PERIOD):
            self.samples.append(os.getloadavg()[0])
            self.others.append(self._others(t, c))
            t, c = time.perf_counter(), _cpu_seconds()

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        self.samples.append(os.getloadavg()[0])
        xs = self.samples
        return {"period_s": self.PERIOD, "loadavg1_samples": xs, "min": min(xs),
                "median": statistics.median(xs), "max": max(xs),
                "other_processes_cores": self._others(self._t0, self._c0),
                "other_processes_cores_samples": self.others,
                "other_processes_cores_max": max(self.others, default=None)}


# ---- the report --------------------------------------------------------------------------------

def mib(n: float) -> str:
    return f"{n / 2**20:.0f}"


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def run_case(case: Case, names: list[str], repeats: int, torch, tmp: Path) -> dict:
    fns = {"floor": floor_fn(case)}
    split = case.kind == "small"
    if split:
        fns["floor_split"] = floor_split_fn(case)
    for b in names:
        fns[b] = whole_fn(case, b, tmp) if case.kind == "whole" else engine_fn(case, b)
    if torch is not None and case.kind != "whole":
        fns["torch"] = torch_fn(torch, case)
    if case.kind == "whole":
        # A whole run is long: no warm-up round (imports, theory and OpenBLAS were warmed by a
        # tiny run of each backend); each run writes a new folder, removed after the case.
        times = interleaved(fns, repeats, warmup=False)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    else:
        times = interleaved(fns, repeats)
    med = {k: median(v) for k, v in times.items()}
    floor_key = "floor"
    if split and med["floor_split"] < med["floor"]:
        floor_key = "floor_split"
    floor = med[floor_key]
    row = {"case": case.name, **asdict(case), "repeats": repeats, "times": times, "median": med,
           "floor_used": floor_key, "gflops": {k: case.flop / v / 1e9 for k, v in med.items()},
           "target": TARGETS[(case.kind, case.dtype)], "ratio": {}, "ratio_paired_median": {},
           "pass": {}, "vs_torch": {}, "torch_pass": {}}
    for b in names:
        row["ratio"][b] = med[b] / floor
        row["ratio_paired_median"][b] = median([t / f for t, f in zip(times[b], times[floor_key])])
        row["pass"][b] = row["ratio"][b] <= row["target"][b]
        if "torch" in med:
            row["vs_torch"][b] = med[b] / med["torch"]
            row["torch_pass"][b] = row["vs_torch"][b] < TORCH_TARGET
    if split:
        row["ratio_vs_loop_floor"] = {b: med[b] / med["floor"] for b in names}
    return row


COL = 19


def print_header(names: list[str], all_names: list[str]) -> None:
    cells = [f"{'case':46}", f"{'floor s':>8}"]
    cells += [f"{b + ' s (ratio)':>{COL}}" for b in all_names]
    cells += [f"{'torch s':>8}", f"{'target':>18}", "  pass"]
    print(" ".join(cells))


def print_row(row: dict, names: list[str], all_names: list[str], torch: bool = False) -> None:
    """One case's line: its times and ratios to the floor, or (torch) to PyTorch."""
    med = row["median"]
    if torch:
        label = "torch: " + row["case"].removeprefix("engine ").removeprefix("small ")
        first, ratio, passed = f"{'':>8}", row["vs_torch"], row["torch_pass"]
        target = f"lab/torch < {TORCH_TARGET}"
    else:
        label, first, ratio, passed = row["case"], f"{med[row['floor_used']]:8.3f}", row["ratio"], row["pass"]
        target = "/".join(f"{b[0]}<={row['target'][b]:g}" for b in all_names)
    cells = [f"{label:46}", first]
    for b in all_names:
        cells.append(f"{med[b]:9.3f} ({ratio[b]:5.2f}x)".rjust(COL) if b in names else f"{'-':>{COL}}")
    cells.append(f"{med['torch']:8.3f}" if "torch" in med else f"{'-':>8}")
    cells.append(f"{target:>18}")
    cells.append("  " + " ".join(f"{b}:{'pass' if passed[b] else 'FAIL'}" for b in names))
    print(" ".join(cells))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes, 1 repetition: checks that the script works")
    p.add_argument("--cases", default=",".join(DEFAULT_CASES),
                   help=f"comma-separated, any of {','.join(ALL_CASES)} (default: all)")
    p.add_argument("--repeats", type=int,
                   help="timed repetitions per contestant (default 5; the whole runs 3; --quick 1)")
    p.add_argument("--json", type=Path, default=None,
                   help="where to write the JSON (default: benchmarks/bench_engine.json; with --quick, "
                        "nothing unless asked, so a smoke run never replaces the committed figures)")
    p.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.json is None and not args.quick:
        args.json = HERE / "bench_engine.json"
    if args.memory_child:
        spec = json.loads(args.memory_child)
        print(json.dumps(memory_child(Case(**spec["case"]), spec["backend"])))
        return 0
    selected = {c.strip() for c in args.cases.split(",") if c.strip()}
    unknown = selected - set(ALL_CASES)
    if unknown:
        p.error(f"unknown case(s) {', '.join(sorted(unknown))}: expected any of {', '.join(ALL_CASES)}")
    repeats = args.repeats or (1 if args.quick else 5)
    whole_repeats = args.repeats or (1 if args.quick else 3)

    all_names = ["numpy", "compiled"]
    missing = backends.available()
    names = [b for b in all_names if missing[b] is None]
    notes = []
    for b in all_names:
        if missing[b] is not None:
            notes.append(f"the {b} backend is skipped: {missing[b]}")

    env = environment(names)
    pool = openblas_pool()
    oenv = env["openblas_env"]
    print(f"{env['cpu_model']}, {env['cpus']} CPUs; numpy {env['numpy']}; OpenBLAS {pool.get('version', '?')} "
          f"kernel {pool.get('architecture', '?')} ({pool.get('num_threads', '?')} threads by default); "
          f"compiled backend: {env['backends']['compiled']}")
    if oenv.get("OPENBLAS_CORETYPE") or oenv.get("OPENBLAS_L2_SIZE"):
        notes.append(f"OPENBLAS_CORETYPE={oenv.get('OPENBLAS_CORETYPE')} OPENBLAS_L2_SIZE="
                     f"{oenv.get('OPENBLAS_L2_SIZE')} are set: OpenBLAS runs the {pool.get('architecture')} "
                     "kernel, slower than this CPU's own; rerun with `env -u OPENBLAS_CORETYPE -u "
                     "OPENBLAS_L2_SIZE python ...`")
    else:
        notes.append(f"OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are unset: OpenBLAS picked its "
                     f"{pool.get('architecture', '?')} kernel itself")
    print(f"load average before: {' '.join(f'{v:.2f}' for v in env['loadavg_before'])}")
    for n in notes:
        print("note: " + n)

    torch = None  # imported after the whole runs, so its OpenMP threads are not around during them
    cases = make_cases(args.quick, selected)
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="bench_engine_"))
    started = time.perf_counter()
    load = LoadSampler()
    try:
        if any(c.kind == "whole" for c in cases):
            warm = Case("whole", "warm", 64, 2, 64, 1, "float32", "default")
            for dt in ("float32", "float64"):
                for b in names:
                    whole_fn(Case(**{**asdict(warm), "dtype": dt}), b, tmp)()
            floor_fn(Case("whole", "warm", 1024, 2, 2048, 1, "float32", "x"))()
            if whole_repeats < 5 and not args.quick:
                notes.append(f"the whole runs are timed {whole_repeats} times each, not 5: one round of "
                             f"them takes minutes")
        header_done = False
        for case in cases:
            if case.kind != "whole" and "torch" in selected and torch is None:
                try:
                    import torch as torch_module
                    torch = torch_module
                    torch.set_num_threads(threads.default_threads())
                    env["torch"] = torch.__version__
                    env["torch_threads"] = torch.get_num_threads()
                except ImportError:
                    notes.append("torch is not installed: the PyTorch comparison is skipped "
                                 "(pip install torch==2.13.0 for it; never a runtime dependency)")
                    print("note: " + notes[-1])
                    selected.discard("torch")
            row = run_case(case, names, whole_repeats if case.kind == "whole" else repeats, torch, tmp)
            if "memory" in selected and case.kind != "whole":
                row["memory"] = {b: measure_memory(case, b) for b in names}
            rows.append(row)
            if not header_done:
                print_header(names, all_names)
                header_done = True
            print_row(row, names, all_names)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    env["loadavg_after"] = os.getloadavg()
    env["loadavg_during"] = load.stop()

    # The one table, again in full: the cases, then the torch comparison.
    print()
    print("snn-lab vs floor (bare np.matmul, default BLAS threads) and PyTorch: medians; ratio = backend / floor")
    print_header(names, all_names)
    for row in rows:
        print_row(row, names, all_names)
    for row in rows:
        if row["vs_torch"]:
            print_row(row, names, all_names, torch=True)
    for row in rows:
        if row["kind"] == "small":
            med = row["median"]
            print(f"  {row['case']}: floor = {row['floor_used']} (np.matmul loop {med['floor']:.3f} s; split over "
                  f"{env['cpus']} threads, BLAS on 1 each, {med['floor_split']:.3f} s); vs the loop floor: "
                  + ", ".join(f"{b} {v:.2f}x" for b, v in row["ratio_vs_loop_floor"].items()))
    if any("memory" in r for r in rows):
        print()
        print(f"{'peak memory, MiB: tracemalloc / resident (memory_needed)':60} " +
              " ".join(f"{b:>22}" for b in names))
        for row in rows:
            if "memory" not in row:
                continue
            cells = []
            for b in names:
                m = row["memory"][b]
                if "error" in m:
                    cells.append(f"{'error':>22}")
                else:
                    ok = "" if m["tracemalloc_peak"] <= m["memory_needed"] else " over!"
                    cells.append(f"{mib(m['tracemalloc_peak'])} / {mib(m['rss_peak_above_baseline'])} "
                                 f"({mib(m['memory_needed'])}){ok}".rjust(22))
            print(f"{row['case']:60} " + " ".join(cells))

    sc = None
    if "scaling" in selected and names:
        b = names[-1]
        sc = scaling(args.quick, 1 if args.quick else 3, b)
        print(f"\nscaling exponents ({b}, float32 selu, one of width/depth/batch varied): "
              + ", ".join(f"{k} {sc[k]['exponent']:.2f}" for k in ("width", "depth", "batch"))
              + "  (expected about 2, 1, 1)")

    lines = line_counts()
    print("\nlines (wc -l): " + ", ".join(f"{Path(k).name} {v}" for k, v in lines["files"].items())
          + f"; total {lines['total']} (the old engine.py + streams.py + _kernels.c: about {OLD_LINES})")

    verdict = {b: {r["case"]: r["pass"][b] for r in rows} for b in names}
    for b in names:
        verdict[b].update({"torch: " + r["case"]: r["torch_pass"][b] for r in rows if r["torch_pass"]})
    report = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "quick": args.quick,
              "cases_selected": sorted(selected), "environment": env, "notes": notes,
              "targets": {f"{k[0]} {k[1]}": v for k, v in TARGETS.items()}, "torch_target": TORCH_TARGET,
              "cases": rows, "pass": verdict, "scaling": sc, "lines": lines,
              "seconds_total": time.perf_counter() - started}
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    during = env["loadavg_during"]
    print("\nload average (1, 5, 15 min) before: " + ", ".join(f"{v:.2f}" for v in env["loadavg_before"])
          + "; after: " + ", ".join(f"{v:.2f}" for v in env["loadavg_after"])
          + f"; 1-min during the run (every {LoadSampler.PERIOD:.0f} s): min {during['min']:.2f}, "
          f"median {during['median']:.2f}, max {during['max']:.2f}; other processes kept "
          f"{during['other_processes_cores']:.2f} cores busy on average"
          + (f" (at most {during['other_processes_cores_max']:.2f} over {LoadSampler.PERIOD:.0f} s)"
             if during["other_processes_cores_max"] is not None else ""))
    for n in notes:
        print("note: " + n)
    print(f"wrote {args.json} ({time.perf_counter() - started:.0f} s)" if args.json is not None
          else f"done in {time.perf_counter() - started:.0f} s (--quick: no JSON written; --json PATH for one)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
