"""What a run allocates at its peak, estimated before anything is allocated (the memory guard)."""

from __future__ import annotations

import os

import numpy as np

from snn_lab.config import Experiment, Series
from snn_lab.simulate import backends, engine
from snn_lab.simulate import jacobian as jac
from snn_lab.simulate.probes import gradient_memory
from snn_lab.simulate.threads import default_threads

# The jacobian measurement's work above which a run is refused: about three hours at 10 GFLOP/s
# (one core of a laptop), a typo's size (width 4096, depth 128: 1.8e13 per input and trial).
JACOBIAN_MAX_FLOPS = 1e14
JACOBIAN_RATE = 1e10  # FLOP/s assumed in the refusal's time estimate


def memory_needed(series: Series, threads: int | None = None, gradients: bool = False,
                  jacobian=None) -> int:
    """Bytes a run of this series allocates at its peak: an upper bound.

    Per trial run at once: x and its pre-activation h, this layer's and the next layer's
    weights (engine.trials_stacked: a group per thread side by side, or one trial). Per thread:
    Box-Muller's raw words and temporaries (a step of PAIRS pairs at most, a step for each of a
    group's streams at once), an activation's temporaries, a float64 block and a dropout mask.
    With gradients, what the backward pass keeps (probes.gradient_memory). With a jacobian
    spec (measures.JacobianSpec), every trial's J per input, and per thread the float64 weights,
    one product and the SVD's workspace.
    """
    item = np.dtype(series.dtype).itemsize
    n, batch = series.width, series.batch
    threads = max(1, int(threads)) if threads is not None else default_threads()
    stacked = engine.trials_stacked(series, ("gradients",) if gradients else ())
    groups, group = (threads, stacked) if stacked else (1, 1)  # groups side by side, trials stacked
    buffers = 3 if series.residual else 2  # x, h (and a residual branch's output y)
    arrays = groups * group * (buffers * batch * n * item + 2 * n * n * item)
    step = min(2 * backends.PAIRS, max(n * n, batch * n))  # entries of a Box-Muller step
    at_once = group if n * n <= 2 * backends.PAIRS else 1  # one step a stream: the group's at once
    block = min(batch, max(1, engine.STATS_BLOCK // n)) * n
    per_thread = at_once * step * 24 + 4 * block * 8 + block * (4 + 1) + 2 * max(block, 1 << 16) * 8
    probes = groups * group * 2 * (batch // max(1, engine.STATS_BLOCK // n) + 1) * n * 9
    backward = gradient_memory(series) + n * n * item if gradients else 0
    # The QR in float64: a copy of G, Q, R, gain * Q, and LAPACK's workspace (one layer per group at a time).
    qr = groups * 5 * n * n * 8 if series.initializer.kind == "orthogonal" else 0
    spectra = 0
    if jacobian is not None:
        spectra = groups * group * jac.memory(jacobian, n) + threads * 6 * n * n * 8
    return arrays + threads * per_thread + probes + backward + qr + spectra


def memory_available() -> int:
    """Bytes the OS says it can give us now (MemAvailable), or physical memory as a fallback."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 62


def check_memory(exp: Experiment, available: int | None = None) -> None:
    """Refuse, before anything is allocated, a series whose trial needs more than is available."""
    from snn_lab.yamlio import ConfigError, Problem  # noqa: PLC0415 - config errors only when refused

    available = memory_available() if available is None else available
    problems = []
    for i, s in enumerate(exp.series):
        need = memory_needed(s, gradients="gradients" in exp.measure, jacobian=exp.jacobian)
        if exp.jacobian is not None:
            flops = exp.trials * jac.work_flops(exp.jacobian, s.width, s.depth)
            if flops > JACOBIAN_MAX_FLOPS:
                problems.append(Problem(
                    exp.where(("jacobian",) if ("jacobian",) in exp.lines else ("measure",)), "jacobian",
                    f"{s.label!r}: the Jacobian's products and SVDs take about {flops:.2g} floating-point "
                    f"operations (trials x inputs x depth x 2 width^3), about {flops / JACOBIAN_RATE / 3600:.3g} "
                    f"hours at {JACOBIAN_RATE:.0e} FLOP/s, more than the {JACOBIAN_MAX_FLOPS:.0e} allowed; "
                    "lower 'jacobian.inputs', 'trials', 'width' or 'depth'"))
        if need > available:
            # Point at the line that set the width: the series' own key, else the top level's.
            key = next((k for k in (("series", i, "width"), ("width",)) if k in exp.lines), ("series", i))
            problems.append(Problem(
                exp.where(key), f"series.{i}",
                f"{s.label!r} needs about {_gib(need)} for one trial (width {s.width}, batch "
                f"{s.batch}, {s.dtype}{', depth ' + str(s.depth) + ' for gradients' if 'gradients' in exp.measure else ''}) "
                f"but {_gib(available)} is available; lower 'width' or 'batch'"
                + (", or drop 'gradients' from 'measure'" if "gradients" in exp.measure else "")))
    if problems:
        raise ConfigError(problems)


def _gib(n: int) -> str:
    return f"{n / 2**30:.3g} GiB" if n >= 2**27 else f"{n / 2**20:.3g} MiB"
