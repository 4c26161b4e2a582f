"""The propagation engine: one series, one trial -> per-layer statistics.

One matrix product per layer is the floor; everything else is arranged to stay close to it:
random numbers are drawn in fixed blocks, each from its own stream, by a small thread pool;
the normals, the activation and the statistics run in compiled loops (snn_lab._kernels) that
release the GIL, on cache-sized blocks; buffers are reused. Small layers (too small to split)
run a group of trials in lockstep, one trial per task. Which thread does which block or trial
never changes a number.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from snn_lab.simulate.backends import _kernels
from snn_lab.simulate import blas, streams
from snn_lab.simulate import probes as probing
from snn_lab.activations import alpha_dropout_affine
from snn_lab.config import Experiment, Series
from snn_lab.statistics import STATS
from snn_lab.simulate.streams import (WeightStreams, block_rows, block_stream, fill_weights, input_values,
                             layer_weights, normalize_weights, rng_for, standard_normal_fill, weight_task)
from snn_lab.simulate.threads import SERIAL_BELOW, default_threads, parallel, threads_for


Progress = Callable[[int], None]  # called with the number of layers just finished
SAMPLE_SIZE = 1000  # post-activation values kept per sampled layer (trial 0), for histograms

STATS_BLOCK = 1 << 16  # entries per activation/statistics block (fits in L2 beside its input)
_ILL_CONDITIONED = 64.0  # mean^2 / var above which the one-pass variance is recomputed


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
    """One series' simulation: (trials, depth + 1, STATS + PROBES) columns and trial 0's samples."""

    stats: np.ndarray
    samples: dict[int, np.ndarray] = field(default_factory=dict)


# ---- statistics ----------------------------------------------------------------------------

def mean_var(x: np.ndarray) -> tuple[float, float]:
    """Population mean and variance of all entries, accumulated in float64 (plain two-pass)."""
    with np.errstate(all="ignore"):  # overflow is recorded as inf/NaN, not raised
        mean = float(np.mean(x, dtype=np.float64))
        var = float(np.var(x, dtype=np.float64)) if math.isfinite(mean) else math.nan
    return mean, var


def block_sums(block: np.ndarray) -> tuple[float, float]:
    """(sum, sum of squares) of a block's entries, accumulated in float64 (compiled, 16 lanes)."""
    return _kernels.sums(block)


_KERNEL_KINDS = {"linear": _kernels.LINEAR, "relu": _kernels.RELU, "leaky": _kernels.LEAKY,
                 "elu": _kernels.ELU, "tanh": _kernels.TANH}


def activate_block(act, h: np.ndarray, x: np.ndarray) -> tuple[tuple[float, float], tuple[float, float]]:
    """x = act(h) for a contiguous block, with the float64 (sum, sum of squares) of h and of x.

    One compiled pass where the activation has a kernel (Activation.kernel); else act.fn and
    two passes of block_sums.
    """
    if act.kernel is None:
        pre = block_sums(h)
        act.fn(h, out=x)
        return pre, block_sums(x)
    name, p1, p2 = act.kernel
    s = _kernels.activate(_KERNEL_KINDS[name], p1, p2, h, x)
    return s[:2], s[2:]


def _finish(sums: np.ndarray, count: int, blocks: list[np.ndarray]) -> tuple[float, float]:
    """Mean and variance from per-block (sum, sum of squares), in block order.

    One pass loses eps * mean^2 / var of the variance: past _ILL_CONDITIONED the blocks are
    read again around the mean (exact two-pass).
    """
    total = sums.sum(axis=0)
    mean = total[0] / count
    if not math.isfinite(mean):
        return float(mean), math.nan
    var = total[1] / count - mean * mean
    if not var * _ILL_CONDITIONED > mean * mean:
        dev = sq = 0.0
        for block in blocks:
            v = block.reshape(-1).astype(np.float64) - mean
            dev += float(np.add.reduce(v))
            sq += float(np.einsum("i,i->", v, v))
        var = (sq - dev * dev / count) / count
    return float(mean), float(max(var, 0.0) if math.isfinite(var) else var)


def _finish_list(sums: list[tuple[float, float]], count: int, blocks: list[np.ndarray]) -> tuple[float, float]:
    """_finish for a list of per-block sums; one block skips the sum over blocks (_finish_one)."""
    if len(sums) > 1:
        return _finish(np.array(sums), count, blocks)
    mean, var, done = _finish_one(np.asarray(sums, np.float64).reshape(1, 2), count)
    if not done[0]:
        return _finish(np.array(sums), count, blocks)
    return float(mean[0]), float(var[0])


def _finish_one(sums: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """_finish of a single block for many rows of (sum, sum of squares) at once: (means,
    variances, done); rows not done are ill-conditioned and need the two-pass."""
    with np.errstate(all="ignore"):
        mean = (0.0 + sums[:, 0]) / count  # as numpy's sum of one element: 0.0 plus it (-0.0 -> 0.0)
        var = sums[:, 1] / count - mean * mean
        finite = np.isfinite(mean)
        done = ~finite | (var * _ILL_CONDITIONED > mean * mean)
        var = np.where(np.isfinite(var) & (0.0 > var), 0.0, var)  # max(var, 0.0), as _finish's
    return mean, np.where(finite, var, math.nan), done


# ---- the propagation -----------------------------------------------------------------------

def run_trial(series: Series, seed: int, trial: int, progress: Progress | None = None,
              samples: dict[int, np.ndarray] | None = None, *, threads: int | None = None,
              measure: tuple[str, ...] = (), probes: np.ndarray | None = None) -> np.ndarray:
    """Propagate one trial of a series; returns (depth + 1, len(STATS)) float64 statistics.

    When a `samples` dict is given, it receives a sample of the post-activation values of
    every layer in sample_layers(depth). `threads` changes the speed, never the numbers.
    With `measure` (gradients, dead, correlation), `probes` (depth + 1, len(PROBES)) receives
    those measurements (NaN where not measured).
    """
    with _blas_for(series):
        return _run_trial(series, seed, trial, progress, samples, threads, measure, probes)


def _blas_for(series: Series) -> contextlib.AbstractContextManager[bool]:
    """Small layers' products on one BLAS thread, whatever the path (blas.py): their numbers
    do not depend on BLAS's thread count. Large ones run as numpy's BLAS is set."""
    return blas.single_threaded() if _small_layers(series) else contextlib.nullcontext(False)


def _run_trial(series, seed, trial, progress, samples, threads, measure, probes) -> np.ndarray:
    """run_trial, with BLAS's threads set."""
    dead, corr, grads = ("dead" in measure), ("correlation" in measure), ("gradients" in measure)
    if probes is None:
        probes = np.empty((series.depth + 1, len(probing.PROBES)))
    probes[:] = math.nan
    keep = set(sample_layers(series.depth)) if samples is not None else set()
    n, batch, dtype = series.width, series.batch, np.dtype(series.dtype)
    threads = threads_for(threads, batch * n + n * n)
    if threads == 1 and not grads:  # one thread, no backward pass: a group of one trial
        row = np.empty((series.depth + 1, len(STATS) + len(probing.PROBES)))
        _run_small(series, seed, [trial], [row], samples, measure, progress, 1)
        probes[:] = row[:, len(STATS):]
        return row[:, :len(STATS)].copy()
    act = series.make_activation()
    out = np.empty((series.depth + 1, len(STATS)))

    x = input_values(series, seed, trial, threads=threads)
    h = np.empty_like(x)
    w = np.empty((n, n), dtype)
    rows = max(1, STATS_BLOCK // n)
    h_blocks = [h[i:i + rows] for i in range(0, batch, rows)]
    x_blocks = [x[i:i + rows] for i in range(0, batch, rows)]
    nb, count = len(x_blocks), batch * n
    pre, post = np.empty((nb, 2)), np.empty((nb, 2))

    def x_sums(i: int) -> None:
        post[i] = block_sums(x_blocks[i])
    parallel(nb, x_sums, threads)
    out[0] = 2 * _finish(post, count, x_blocks)
    derivs = np.empty((series.depth, batch, n), dtype) if grads else None
    if corr:
        probe = probing.LayerProbe(n, nb, False, True)
        for i, xb in enumerate(x_blocks):
            probe.samples(i, xb)
        probes[0, 3] = probe.result()[1]
    if 0 in keep:
        samples[0] = _sample(x)
    if series.dropout:
        a, b = alpha_dropout_affine(series.dropout, act.saturation)
        with np.errstate(over="ignore"):  # a saturation beyond float32 becomes -inf: data, as below
            a, b, drop_value = dtype.type(a), dtype.type(b), dtype.type(act.saturation)

    w_rows = block_rows(n)
    w_blocks = -(-n // w_rows)
    layer_weights(series, seed, trial, 1, out=w, threads=threads)
    with np.errstate(all="ignore"):  # overflow is data here: recorded, then reported
        for layer in range(1, series.depth + 1):
            np.matmul(x, w, out=h)
            rng = rng_for(seed, series.label, trial, layer) if series.bias_var or series.dropout else None
            bias = (rng.standard_normal(n) * math.sqrt(series.bias_var)).astype(dtype) if series.bias_var else None
            # The next layer's weights are drawn into w (free after the product) while the
            # activation and statistics of this layer run: one pool of tasks, any order.
            more = layer < series.depth
            draw = weight_task(series, seed, trial, layer + 1, w) if more else None
            first = w_blocks if more else 0
            probe = probing.LayerProbe(n, nb, dead, corr) if (dead or corr or grads) else None
            d_layer = derivs[layer - 1] if grads else None

            def task(i: int) -> None:
                if i < first:
                    draw(i)
                    return
                i -= first
                hb, xb = h_blocks[i], x_blocks[i]
                if bias is not None:
                    hb += bias
                pre[i], post[i] = activate_block(act, hb, xb)  # post is redone after dropout
                if probe is not None:
                    probe.units(i, hb, act, d_layer[i * rows:(i + 1) * rows] if grads else None)
                if probe is not None and not series.dropout:
                    probe.samples(i, xb)
            parallel(first + nb, task, threads)

            if series.dropout:
                # Serial, in block order, from the layer's own stream.
                for i, xb in enumerate(x_blocks):
                    dropped = rng.random(xb.shape, dtype=np.float32) < series.dropout
                    np.copyto(xb, drop_value, where=dropped)
                    xb *= a
                    xb += b
                    post[i] = block_sums(xb)
                    if probe is not None:
                        probe.samples(i, xb)
                    if grads:  # d output / d h: a on kept units, 0 on dropped ones
                        d_block = d_layer[i * rows:(i + 1) * rows]
                        d_block *= a
                        d_block[dropped] = 0
            out[layer] = (*_finish(post, count, x_blocks), *_finish(pre, count, h_blocks))
            if probe is not None:
                probes[layer, 2:] = probe.result()
            if layer in keep:
                samples[layer] = _sample(x)
            if more and series.normalize_weights:
                normalize_weights(series, w)
            if progress:
                progress(1)
    if grads:
        top = np.empty((batch, n), dtype)
        top_rows = block_rows(n)
        for b_ in range(-(-batch // top_rows)):  # the error signal: the stream after the top layer
            standard_normal_fill(block_stream(seed, series.label, trial, series.depth + 1, b_),
                                 top[b_ * top_rows:(b_ + 1) * top_rows])
        grad_sq = probing.backward(series, derivs, lambda l: layer_weights(
            series, seed, trial, l, out=w, threads=threads), top)
        probes[:, 0] = grad_sq
        with np.errstate(all="ignore"):
            probes[:, 1] = grad_sq / grad_sq[series.depth]
    return out


def run_series(series: Series, seed: int, trials: int, progress: Progress | None = None,
               measure: tuple[str, ...] = ()) -> SeriesRun:
    """Every trial of one series, with trial 0's samples; stats hold STATS then PROBES columns.

    Small layers run a group of trials in lockstep (_run_small): each trial's numbers are its
    own streams', whatever the group or the thread that handles it.
    """
    samples: dict[int, np.ndarray] = {}
    stats = np.empty((trials, series.depth + 1, len(STATS) + len(probing.PROBES)))
    if _small(series, measure):
        threads = default_threads()
        group = max(1, min(trials, _GROUP_PER_THREAD * threads))
        for first in range(0, trials, group):
            ts = range(first, min(first + group, trials))
            _run_small(series, seed, list(ts), [stats[t] for t in ts], samples if first == 0 else None,
                       measure, progress, threads)
        return SeriesRun(stats, samples)
    for t in range(trials):
        stats[t, :, :len(STATS)] = run_trial(series, seed, t, progress, samples if t == 0 else None,
                                             measure=measure, probes=stats[t, :, len(STATS):])
    return SeriesRun(stats, samples)


_GROUP_PER_THREAD = 8  # trials in lockstep per thread (small layers): few pool round trips per layer


def _small_layers(series: Series) -> bool:
    """Layers too small to split: a trial's layer runs on one thread."""
    n = series.width
    return series.batch * n + n * n < SERIAL_BELOW


def _small(series: Series, measure: tuple[str, ...] = ()) -> bool:
    """Small layers and no backward pass: trials run in lockstep groups (_run_small)."""
    return "gradients" not in measure and _small_layers(series)


def _trial_workers(series: Series, measure: tuple[str, ...] = (), threads: int | None = None) -> int:
    """Trials whose buffers exist at once: a lockstep group for small layers, else 1."""
    if not _small(series, measure):
        return 1
    return _GROUP_PER_THREAD * (max(1, int(threads)) if threads is not None else default_threads())


def _run_small(series: Series, seed: int, trials: list[int], rows: list[np.ndarray],
               samples: dict[int, np.ndarray] | None, measure: tuple[str, ...],
               progress: Progress | None, threads: int) -> None:
    """Trials of a small series in lockstep, layer by layer: each trial's product, activation,
    statistics and next weights as tasks of the pool, the products single-threaded so that
    the threads run trials side by side (blas.py). Where BLAS's threads cannot be limited the
    products run in this thread first, each spread over the cores by BLAS. rows[i] receives
    trial i's (depth + 1, STATS + PROBES) columns; samples, if given, trial trials[0]'s."""
    with _blas_for(series) as side_by_side:
        if _batchable(series, measure):
            _run_batched(series, seed, trials, rows, samples, progress, threads, side_by_side)
            return
        group = [_SmallTrial(series, seed, t, r, samples if i == 0 else None, measure)
                 for i, (t, r) in enumerate(zip(trials, rows))]
        weight_streams = WeightStreams(series, seed, trials)
        first = weight_streams.layer(1)
        parallel(len(group), lambda i: group[i].start(first[i]), threads)
        with np.errstate(all="ignore"):  # overflow is data here: recorded, then reported
            for layer in range(1, series.depth + 1):
                if not side_by_side:
                    for g in group:
                        np.matmul(g.x, g.w, out=g.h)
                nxt = weight_streams.layer(layer + 1) if layer < series.depth else None
                parallel(len(group), lambda i: group[i].layer(
                    layer, None if nxt is None else nxt[i], side_by_side), threads)
                if progress:
                    progress(len(group))


def _batchable(series: Series, measure: tuple[str, ...]) -> bool:
    """Whether a small group can run as a few compiled calls per layer: an activation with a
    compiled loop, normal weights in one random block, no probes, dropout or normalization."""
    return (not measure and not series.dropout and not series.normalize_weights
            and series.initializer.kind == "normal" and block_rows(series.width) >= series.width
            and series.make_activation().kernel is not None)


def _run_batched(series: Series, seed: int, trials: list[int], rows: list[np.ndarray],
                 samples: dict[int, np.ndarray] | None, progress: Progress | None, threads: int,
                 side_by_side: bool) -> None:
    """_run_small's common case with the group's arrays stacked, (trials, batch, width): each
    thread takes a part of the trials through every layer, per layer their products (one BLAS
    call each, as alone), then one compiled call for their activations and block sums and one
    for their next weights, with the GIL released. The same loops on the same blocks as
    _SmallTrial: the same numbers."""
    g, n, batch, dtype = len(trials), series.width, series.batch, np.dtype(series.dtype)
    depth, count = series.depth, batch * n
    X = np.empty((g, batch, n), dtype)
    H = np.empty_like(X)
    W = np.empty((g, n, n), dtype)
    name, p1, p2 = series.make_activation().kernel
    kind = _KERNEL_KINDS[name]
    per_block = max(1, STATS_BLOCK // n)  # rows of a statistics block, as run_trial's
    blocks = -(-batch // per_block)
    sums = np.empty((g, blocks, 4))
    keep = set(sample_layers(depth)) if samples is not None else set()
    outs = [r[:, :len(STATS)] for r in rows]
    for r in rows:
        r[:, len(STATS):] = math.nan
    parts = [(g * p // threads, g * (p + 1) // threads) for p in range(threads)]
    parts = [(a, b) for a, b in parts if b > a]
    scale = series.gain * series.initializer.scale(n, n)
    weight_streams = [WeightStreams(series, seed, trials[a:b]) for a, b in parts]  # one per part
    sd = math.sqrt(series.bias_var)

    def split(a: np.ndarray) -> list[np.ndarray]:
        return [a[i:i + per_block] for i in range(0, batch, per_block)]

    def start(p: int) -> None:
        a, b = parts[p]
        for i in range(a, b):
            input_values(series, seed, trials[i], out=X[i], threads=1)
            xb = split(X[i])
            outs[i][0] = 2 * _finish_list([block_sums(v) for v in xb], count, xb)
        if 0 in keep and a == 0:
            samples[0] = _sample(X[0])
        standard_normal_fill(weight_streams[p].layer(1)[:, 0], W[a:b], scale)

    def step(p: int, layer: int) -> None:
        a, b = parts[p]
        with np.errstate(all="ignore"):
            if side_by_side:
                for i in range(a, b):
                    np.matmul(X[i], W[i], out=H[i])
            if sd:
                for i in range(a, b):
                    H[i] += (rng_for(seed, series.label, trials[i], layer).standard_normal(n) * sd).astype(dtype)
            _kernels.activate_many(kind, p1, p2, H[a:b], X[a:b], b - a, per_block * n, sums[a:b])
            done = [False] * (b - a)
            if blocks == 1:
                post, pre = _finish_one(sums[a:b, 0, 2:], count), _finish_one(sums[a:b, 0, :2], count)
                table = np.stack([post[0], post[1], pre[0], pre[1]], axis=1)
                done = (post[2] & pre[2]).tolist()
            for i in range(a, b):
                if done[i - a]:
                    outs[i][layer] = table[i - a]
                else:
                    outs[i][layer] = (*_finish_list(sums[i, :, 2:], count, split(X[i])),
                                      *_finish_list(sums[i, :, :2], count, split(H[i])))
            if layer in keep and a == 0:
                samples[layer] = _sample(X[0])
            if layer < depth:
                standard_normal_fill(weight_streams[p].layer(layer + 1)[:, 0], W[a:b], scale)

    stop, lock = threading.Event(), threading.Lock()

    def report(count_: int) -> None:
        """progress, one call at a time, and none once stopped (an interrupt it raised too)."""
        with lock:
            if progress and not stop.is_set():
                try:
                    progress(count_)
                except BaseException:
                    stop.set()
                    raise

    def run_part(p: int) -> None:
        """A part's trials through every layer: the trials are independent, so the threads
        meet only at the end (a layer's barrier costs a thread wake-up, ~10% of a small layer)."""
        start(p)
        for layer in range(1, depth + 1):
            if stop.is_set():
                return
            step(p, layer)
            report(parts[p][1] - parts[p][0])

    if side_by_side:
        parallel(len(parts), run_part, threads, stop)
        return
    parallel(len(parts), start, threads)
    with np.errstate(all="ignore"):  # overflow is data here: recorded, then reported
        for layer in range(1, depth + 1):
            for i in range(g):  # BLAS spreads each product over the cores
                np.matmul(X[i], W[i], out=H[i])
            parallel(len(parts), lambda p: step(p, layer), threads)
            report(g)


class _SmallTrial:
    """One trial of a small series, a layer at a time, on whichever thread: the same operations
    on the same blocks in the same order as run_trial's threaded path, so the same numbers."""

    def __init__(self, series: Series, seed: int, trial: int, row: np.ndarray,
                 samples: dict[int, np.ndarray] | None, measure: tuple[str, ...]):
        self.series, self.seed, self.trial = series, seed, trial
        self.out, self.probes = row[:, :len(STATS)], row[:, len(STATS):]
        self.probes[:] = math.nan
        self.samples = samples
        self.keep = set(sample_layers(series.depth)) if samples is not None else set()
        self.dead, self.corr = "dead" in measure, "correlation" in measure
        n, batch, dtype = series.width, series.batch, np.dtype(series.dtype)
        self.act = series.make_activation()
        self.x = np.empty((batch, n), dtype)
        self.h = np.empty_like(self.x)
        self.w = np.empty((n, n), dtype)
        rows = max(1, STATS_BLOCK // n)
        self.h_blocks = [self.h[i:i + rows] for i in range(0, batch, rows)]
        self.x_blocks = [self.x[i:i + rows] for i in range(0, batch, rows)]
        w_rows = block_rows(n)
        self.w_blocks = [self.w[i:i + w_rows] for i in range(0, n, w_rows)]
        self.count = batch * n
        if series.dropout:
            a, b = alpha_dropout_affine(series.dropout, self.act.saturation)
            with np.errstate(over="ignore"):  # a saturation beyond float32 becomes -inf: data
                self.drop = dtype.type(a), dtype.type(b), dtype.type(self.act.saturation)

    def start(self, states: np.ndarray) -> None:
        """The input (layer 0) and its statistics, and layer 1's weights (from `states`)."""
        s, x = self.series, self.x
        input_values(s, self.seed, self.trial, out=x, threads=1)
        self.out[0] = 2 * _finish_list([block_sums(xb) for xb in self.x_blocks], self.count, self.x_blocks)
        if self.corr:
            probe = probing.LayerProbe(s.width, len(self.x_blocks), False, True)
            for i, xb in enumerate(self.x_blocks):
                probe.samples(i, xb)
            self.probes[0, 3] = probe.result()[1]
        if 0 in self.keep:
            self.samples[0] = _sample(x)
        self._draw(states)

    def _draw(self, states: np.ndarray) -> None:
        """A layer's weights, block b from states[b] (block_stream's state words)."""
        s = self.series
        for b, wb in enumerate(self.w_blocks):
            fill_weights(s, states[b], wb)
        if s.normalize_weights:
            normalize_weights(s, self.w)

    def layer(self, layer: int, states: np.ndarray | None, product: bool) -> None:
        """Everything of `layer` (its product h = x w too if `product`), then the next layer's
        weights."""
        with np.errstate(all="ignore"):
            if product:
                np.matmul(self.x, self.w, out=self.h)
            self._layer(layer, states)

    def _layer(self, layer: int, states: np.ndarray | None) -> None:
        s, n, act = self.series, self.series.width, self.act
        rng = rng_for(self.seed, s.label, self.trial, layer) if s.bias_var or s.dropout else None
        bias = (rng.standard_normal(n) * math.sqrt(s.bias_var)).astype(self.x.dtype) if s.bias_var else None
        probe = probing.LayerProbe(n, len(self.x_blocks), self.dead, self.corr) if self.dead or self.corr else None
        pre, post = [], []
        for i, (hb, xb) in enumerate(zip(self.h_blocks, self.x_blocks)):
            if bias is not None:
                hb += bias
            pre_i, post_i = activate_block(act, hb, xb)
            pre.append(pre_i)
            if probe is not None:
                probe.units(i, hb, act, None)
            if not s.dropout:
                post.append(post_i)
                if probe is not None:
                    probe.samples(i, xb)
        if s.dropout:
            a, b, drop_value = self.drop
            for i, xb in enumerate(self.x_blocks):  # in block order, from the layer's own stream
                dropped = rng.random(xb.shape, dtype=np.float32) < s.dropout
                np.copyto(xb, drop_value, where=dropped)
                xb *= a
                xb += b
                post.append(block_sums(xb))
                if probe is not None:
                    probe.samples(i, xb)
        self.out[layer] = (*_finish_list(post, self.count, self.x_blocks),
                           *_finish_list(pre, self.count, self.h_blocks))
        if probe is not None:
            self.probes[layer, 2:] = probe.result()
        if layer in self.keep:
            self.samples[layer] = _sample(self.x)
        if states is not None:
            self._draw(states)


def run_experiment(exp: Experiment, progress: Progress | None = None) -> dict[str, SeriesRun]:
    """Every series of an experiment, by label."""
    return {s.label: run_series(s, exp.seed, exp.trials, progress, exp.measure) for s in exp.series}


# ---- memory --------------------------------------------------------------------------------

def memory_needed(series: Series, threads: int | None = None, gradients: bool = False) -> int:
    """Bytes a run of this series allocates at its peak (what the memory guard checks).

    One layer's weights and two activation buffers (x and its pre-activation h), plus per
    thread the raw words of one Box-Muller step, a block-sized temporary (an activation
    without a compiled loop) and a block's float64 copy (the two-pass variance): a few MiB.
    Small layers run several trials at once (run_series), each with its own weights, buffers
    and scratch: that many times as much.
    """
    item = np.dtype(series.dtype).itemsize
    n, batch = series.width, series.batch
    workers = _trial_workers(series, (), threads)  # with gradients trials run one by one: an upper bound
    threads = 1 if workers > 1 else threads_for(threads, batch * n + n * n)
    k = min(streams.PAIRS, (min(n * n, streams.RANDOM_BLOCK) + 1) // 2)
    step = k * 8 + 16 if item == 4 else k * 12 + 16  # one step's raw words (the kernel's buffer)
    block = min(batch, max(1, STATS_BLOCK // n)) * n
    tails = min(n * n, streams.RANDOM_BLOCK) * (item + 1) if series.initializer.kind == "truncated" else 0
    mask = block * (4 + 2) if series.dropout else 0  # uniforms and a boolean mask, one block
    per_thread = step + tails + block * 8 + block * item  # float64 copy + the activation's temporary
    trial = n * n * item + 2 * batch * n * item + threads * per_thread + block * 8 + mask
    backward = probing.gradient_memory(series) if gradients else 0
    return workers * trial + backward


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
    from snn_lab.yamlio import ConfigError, Problem

    available = memory_available() if available is None else available
    problems = []
    for i, s in enumerate(exp.series):
        need = memory_needed(s, gradients="gradients" in exp.measure)
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
