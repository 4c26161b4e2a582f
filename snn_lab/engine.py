"""The propagation engine: one series, one trial -> per-layer statistics."""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from snn_lab.activations import alpha_dropout_affine
from snn_lab.config import Experiment, Series

# Columns of the per-layer statistics array, in order. Layer 0 is the input (no activation:
# its pre-activation columns repeat the input's).
STATS = ("mean", "var", "preact_mean", "preact_var")

Progress = Callable[[int], None]  # called with the number of layers just finished
SAMPLE_SIZE = 1000  # post-activation values kept per sampled layer (trial 0), for histograms


def sample_layers(depth: int) -> tuple[int, ...]:
    """Layers whose values are sampled: the input, 1, depth/4, depth/2 and depth."""
    return tuple(sorted({0, 1, depth // 4, depth // 2, depth} - {-1}))


def _sample(x: np.ndarray) -> np.ndarray:
    """A strided subset of the entries (across samples and units), as float64."""
    flat = x.reshape(-1)
    step = max(1, flat.size // SAMPLE_SIZE)
    return flat[::step][:SAMPLE_SIZE].astype(np.float64)


@dataclass
class SeriesRun:
    """One series' simulation: (trials, depth + 1, STATS) statistics and trial 0's samples."""

    stats: np.ndarray
    samples: dict[int, np.ndarray] = field(default_factory=dict)


def seed_sequence(seed: int, label: str, trial: int, layer: int) -> np.random.SeedSequence:
    """The stream of one (series, trial, layer): keyed by label, so series are independent.

    Keying on the label rather than the position means that adding, removing or reordering
    series, or changing the trial count, leaves every other series' numbers unchanged; a
    per-layer stream lets a backward pass regenerate a layer's weights instead of storing them.
    """
    return np.random.SeedSequence(seed, spawn_key=(zlib.crc32(label.encode("utf-8")), trial, layer))


def rng_for(seed: int, label: str, trial: int, layer: int) -> np.random.Generator:
    """A generator for one (series, trial, layer) stream."""
    return np.random.Generator(np.random.PCG64(seed_sequence(seed, label, trial, layer)))


def mean_var(x: np.ndarray) -> tuple[float, float]:
    """Population mean and variance of all entries, accumulated in float64."""
    with np.errstate(all="ignore"):  # overflow is recorded as inf/NaN, not raised
        mean = float(np.mean(x, dtype=np.float64))
        var = float(np.var(x, dtype=np.float64)) if math.isfinite(mean) else math.nan
    return mean, var


def draw_weights(series: Series, rng: np.random.Generator) -> np.ndarray:
    """One layer's (fan_in, fan_out) weights, normalized per unit if the series asks."""
    dtype = np.dtype(series.dtype)
    w = series.initializer.sample(rng, series.width, series.width, dtype, series.gain)
    if series.normalize_weights:
        # Each unit's incoming weights: sum 0, sum of squares gain^2 (omega = 0, tau = gain^2).
        w -= w.mean(axis=0, dtype=np.float64).astype(dtype)
        w *= (series.gain / np.sqrt(np.einsum("ij,ij->j", w, w, dtype=np.float64))).astype(dtype)
    return w


def run_trial(series: Series, seed: int, trial: int, progress: Progress | None = None,
              samples: dict[int, np.ndarray] | None = None) -> np.ndarray:
    """Propagate one trial of a series; returns (depth + 1, len(STATS)) float64 statistics.

    When a `samples` dict is given, it receives a sample of the post-activation values of
    every layer in sample_layers(depth).
    """
    keep = set(sample_layers(series.depth)) if samples is not None else set()
    dtype = np.dtype(series.dtype)
    act = series.make_activation()
    out = np.empty((series.depth + 1, len(STATS)))
    rng = rng_for(seed, series.label, trial, 0)
    x = rng.standard_normal((series.batch, series.width), dtype=dtype)
    x *= dtype.type(math.sqrt(series.input.var))
    x += dtype.type(series.input.mean)
    out[0] = (*mean_var(x), *mean_var(x))
    if 0 in keep:
        samples[0] = _sample(x)
    h = np.empty_like(x)
    if series.dropout:
        a, b = alpha_dropout_affine(series.dropout, act.saturation)
    with np.errstate(all="ignore"):  # overflow is data here: recorded, then reported
        for layer in range(1, series.depth + 1):
            rng = rng_for(seed, series.label, trial, layer)
            w = draw_weights(series, rng)
            np.matmul(x, w, out=h)
            del w  # one layer's weights at a time
            if series.bias_var:
                h += (rng.standard_normal(series.width) * math.sqrt(series.bias_var)).astype(dtype)
            pre = mean_var(h)
            act.fn(h, out=x)
            if series.dropout:
                keep = rng.random(x.shape, dtype=np.float32) >= series.dropout
                np.copyto(x, dtype.type(act.saturation), where=~keep)
                x *= dtype.type(a)
                x += dtype.type(b)
            out[layer] = (*mean_var(x), *pre)
            if layer in keep:
                samples[layer] = _sample(x)
            if progress:
                progress(1)
    return out


def run_series(series: Series, seed: int, trials: int, progress: Progress | None = None) -> SeriesRun:
    """Every trial of one series, with trial 0's samples."""
    samples: dict[int, np.ndarray] = {}
    stats = [run_trial(series, seed, t, progress, samples if t == 0 else None) for t in range(trials)]
    return SeriesRun(np.stack(stats), samples)


def run_experiment(exp: Experiment, progress: Progress | None = None) -> dict[str, SeriesRun]:
    """Every series of an experiment, by label."""
    return {s.label: run_series(s, exp.seed, exp.trials, progress) for s in exp.series}


def memory_needed(series: Series) -> int:
    """Bytes a trial of this series needs at its peak, before anything is allocated."""
    item = np.dtype(series.dtype).itemsize
    n, batch = series.width, series.batch
    # weights + x + h + the activation's temporary + float64 deviations in np.var
    return n * n * item + 3 * batch * n * item + batch * n * 8 + batch * n * (4 if series.dropout else 0)


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
        import os
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 62


def check_memory(exp: Experiment, available: int | None = None) -> None:
    """Refuse, before anything is allocated, a series whose trial needs more than is available."""
    from snn_lab.yamlio import ConfigError, Problem

    available = memory_available() if available is None else available
    problems = []
    for i, s in enumerate(exp.series):
        need = memory_needed(s)
        if need > available:
            # Point at the line that set the width: the series' own key, else the top level's.
            key = next((k for k in (("series", i, "width"), ("width",)) if k in exp.lines), ("series", i))
            problems.append(Problem(
                exp.where(key), f"series.{i}",
                f"{s.label!r} needs about {_gib(need)} for one trial (width {s.width}, batch "
                f"{s.batch}, {s.dtype}) but {_gib(available)} is available; lower 'width' or 'batch'"))
    if problems:
        raise ConfigError(problems)


def _gib(n: int) -> str:
    return f"{n / 2**30:.3g} GiB" if n >= 2**27 else f"{n / 2**20:.3g} MiB"
