"""The propagation engine: one series' trials -> per-layer statistics. One loop, `_propagate`.

A layer is: its product h = x W (with a bias if asked), the activation with the float64 sums
of h and x, dropout, the probes, and the next layer's weights drawn from their streams. A
group of trials runs stacked, (trials, batch, width). The work of a layer is cut by the shape
alone (row chunks of the product, statistics blocks, random blocks), never by the thread
count, so threads change the speed and never a number. BLAS runs on one thread inside the
engine (blas.py) and the engine's threads share the work out: trials side by side, one per
thread (small layers: a stacked group per thread), with no barrier per layer; a trial too large
for that, or a last round with fewer trials than threads, shares its chunks out instead.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from snn_lab.activations import alpha_dropout_affine
from snn_lab.config import Experiment, Series
from snn_lab.simulate import backends, blas, norms, streams
from snn_lab.simulate import probes as probing
from snn_lab.simulate.jacobian import JacobianProbe, Spectrum
from snn_lab.simulate.threads import SERIAL_BELOW, default_threads, parallel, run_tasks
from snn_lab.statistics import PROBES, STATS

Progress = Callable[[int], None]  # called with the number of trial-layers just finished
SAMPLE_SIZE = 1000  # post-activation values kept per sampled layer (trial 0), for histograms

STATS_BLOCK = 1 << 16  # entries per statistics block (fits in L2 beside its input)
PRODUCT_BLOCK = 1 << 18  # entries of x per product task: few enough to repack W rarely
GROUP_PER_THREAD = 8  # small layers: trials stacked per thread, a few pool round trips per layer
SIDE_BY_SIDE_BYTES = 1 << 28  # a larger trial's buffers (x, h, two W) run one trial at a time
_NORM_COLUMNS = 256  # units per batch-norm task (each unit's statistics are its own)
_ILL_CONDITIONED = 64.0  # mean^2 / var above which the one-pass variance is recomputed


def sample_layers(depth: int) -> tuple[int, ...]:
    """Layers whose values are sampled: the input, 1, depth/4, depth/2 and depth."""
    return tuple(sorted({0, 1, depth // 4, depth // 2, depth}))


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
    spectra: list[Spectrum] = field(default_factory=list)  # measure: [jacobian], by (trial, layer, input)


def finish(sums: np.ndarray, count: int, data) -> np.ndarray:
    """(trials, 2k) means and variances of k arrays from per-block (sum, sum of squares) pairs
    (trials, blocks, 2k); data: the k arrays (trials, ...).

    One pass loses eps * mean^2 / var of the variance: past _ILL_CONDITIONED, that array of that
    trial is read again around its mean (exact two-pass).
    """
    with np.errstate(all="ignore"):  # the fewest numpy calls: this runs once a layer, on a few numbers
        out = np.add.reduce(sums, axis=1) / count
        mean, var = out[:, 0::2], out[:, 1::2]  # views of out
        square = mean * mean
        var -= square
        finite = np.isfinite(mean)
        ill = finite & ~(var * _ILL_CONDITIONED > square)
        for t, k in zip(*np.nonzero(ill)) if ill.any() else ():
            v = data[k][t].reshape(-1).astype(np.float64) - mean[t, k]
            shift = np.add.reduce(v)  # numpy float64: squares to inf, not OverflowError (float ** 2)
            var[t, k] = (np.dot(v, v) - shift * shift / count) / count
        np.maximum(var, 0.0, out=var)  # NaN stays NaN
        var[~finite] = math.nan
    return out


@dataclass
class _Plan:
    """What every layer of a series needs, fixed by the series and the measurements."""

    series: Series
    seed: int
    backend: backends.Backend
    measure: tuple[str, ...]
    jacobian: object = None  # a measures.JacobianSpec when the Jacobian's spectrum is measured

    def __post_init__(self):
        s = self.series
        self.act = s.make_activation()
        self.dtype = np.dtype(s.dtype)
        self.stats_rows = max(1, STATS_BLOCK // s.width)
        self.chunk_rows = self.stats_rows * max(1, PRODUCT_BLOCK // (self.stats_rows * s.width))
        self.blocks = -(-s.batch // self.stats_rows)
        self.dead, self.corr = "dead" in self.measure, "correlation" in self.measure
        self.grads = "gradients" in self.measure
        self.spectra: list[Spectrum] = []  # every group's, appended as they come
        self.alpha = s.residual.alpha if s.residual else 0.0
        self.betas = s.betas()
        self.norm_rows = max(1, norms.CHUNK // s.width)  # fixed by the width: same sums whatever the split
        if s.dropout:
            a, b = alpha_dropout_affine(s.dropout, self.act.saturation)
            with np.errstate(over="ignore"):  # a saturation beyond float32 becomes -inf: data
                self.drop = self.dtype.type(a), self.dtype.type(b), self.dtype.type(self.act.saturation)


def _propagate(plan: _Plan, trials: list[int], rows: np.ndarray, samples: dict | None,
               threads: int, report: Progress, stop: threading.Event) -> None:
    """The one loop: trials (stacked) through every layer; rows (trials, depth + 1, STATS +
    PROBES) receives their columns, samples (if given) trial trials[0]'s values.

    A layer: h = x W / beta (+ bias); p = norm(h) (or h); y = phi(p), alpha dropout; x = y, or
    x + alpha y in a residual block. The pre-activation columns describe p, the others x."""
    s, g_count, dt = plan.series, len(trials), plan.dtype
    n, batch, depth = s.width, s.batch, s.depth
    X = np.empty((g_count, batch, n), dt)
    H = np.empty_like(X)
    Y = np.empty_like(X) if plan.alpha else X  # the branch's output, added to x in a residual block
    W, W_next = np.empty((g_count, n, n), dt), np.empty((g_count, n, n), dt)
    sums = np.empty((g_count, plan.blocks, 4))
    keep = set(sample_layers(depth)) if samples is not None else set()
    grads = _Backward(plan, depth, batch, n) if plan.grads else None
    jac = JacobianProbe(plan.jacobian, trials, n, depth, plan.act, plan.alpha) if plan.jacobian else None
    rows[:, :, len(STATS):] = math.nan
    count = batch * n

    def draw(layer: int, out: np.ndarray) -> list[Callable[[], None]]:
        return streams.weight_tasks(s, plan.backend, plan.seed, trials, layer, out) if layer <= depth else []

    run_tasks(streams.input_tasks(s, plan.backend, plan.seed, trials, X) + draw(1, W), threads)
    _normalize(plan, W)
    for g in range(g_count):
        x_sums = np.array([plan.backend.sums(xb) for xb in _blocks(plan, X[g])])
        rows[g, 0, :4] = np.tile(finish(x_sums[None], count, (X[g:g + 1],))[0], 2)
        if plan.corr:
            probe = probing.LayerProbe(n, plan.blocks, False, True, plan.act)
            for i, xb in enumerate(_blocks(plan, X[g])):
                probe.samples(i, xb)
            rows[g, 0, len(STATS) + 3] = probe.result()[1]
    if 0 in keep:
        samples[0] = _sample(X[0])
    chunks = [(g, g + 1, r) for g in range(g_count) for r in range(0, batch, plan.chunk_rows)]
    if plan.chunk_rows >= batch:  # a chunk is a whole trial: one task for the whole group
        chunks = [(0, g_count, 0)]
    # Batch norm needs the whole batch's product first; its units are split in fixed columns.
    columns = [(g, c, min(n, c + _NORM_COLUMNS)) for g in range(g_count) for c in range(0, n, _NORM_COLUMNS)]

    for layer in range(1, depth + 1):
        if stop.is_set():
            return
        rngs = [streams.rng_for(plan.seed, s.label, t, layer) for t in trials] if s.bias_var or s.dropout else None
        bias = [(r.standard_normal(n) * math.sqrt(s.bias_var)).astype(dt) for r in rngs] if s.bias_var else None
        inv_beta = dt.type(1.0 / plan.betas[layer])
        probes = [probing.LayerProbe(n, plan.blocks, plan.dead, plan.corr, plan.act)
                  if plan.dead or plan.corr else None for _ in trials]

        def product(a: int, b: int, r0: int) -> None:
            """Rows r0.. of trials a..b: the product, beta, bias, a layer norm, and unless the
            batch must be seen first, the activation."""
            r1 = min(batch, r0 + plan.chunk_rows)
            np.matmul(X[a:b, r0:r1], W[a:b], out=H[a:b, r0:r1])  # one BLAS call per trial
            if inv_beta != 1:
                H[a:b, r0:r1] *= inv_beta
            if bias is not None:
                H[a:b, r0:r1] += np.stack(bias[a:b])[:, None]
            if s.norm == "layer":
                for g in range(a, b):
                    scale = norms.normalize("layer", H[g, r0:r1], plan.norm_rows)
                    if grads and g == 0:
                        grads.scales[layer - 1][r0:r1] = scale
            if s.norm != "batch":
                activate(a, b, r0)

        def batch_norm(g: int, c0: int, c1: int) -> None:
            scale = norms.normalize("batch", H[g, :, c0:c1], plan.norm_rows)
            if grads and g == 0:
                grads.scales[layer - 1][c0:c1] = scale

        def activate(a: int, b: int, r0: int) -> None:
            """The activation of rows r0.. of trials a..b, with the sums, phi' and the probes."""
            r1 = min(batch, r0 + plan.chunk_rows)
            b0, b1 = r0 // plan.stats_rows, -(-r1 // plan.stats_rows)
            plan.backend.activate(plan.act, H[a:b, r0:r1].reshape(b - a, -1),
                                  Y[a:b, r0:r1].reshape(b - a, -1), plan.stats_rows * n, sums[a:b, b0:b1])
            if grads:
                grads.keep(layer, r0, r1, H[0, r0:r1])
            for g in range(a, b):
                if probes[g] is not None:
                    for i, (hb, xb) in enumerate(zip(_blocks(plan, H[g, r0:r1]), _blocks(plan, Y[g, r0:r1]))):
                        probes[g].units(b0 + i, hb)
                        if not s.dropout and not plan.alpha:
                            probes[g].samples(b0 + i, xb)

        run_tasks(draw(layer + 1, W_next) + [lambda c=c: product(*c) for c in chunks], threads)
        if s.norm == "batch":
            run_tasks([lambda c=c: batch_norm(*c) for c in columns], threads)
            run_tasks([lambda c=c: activate(*c) for c in chunks], threads)
        if s.dropout:
            _dropout(plan, Y, sums, rngs, [None] * g_count if plan.alpha else probes,
                     grads.derivs[layer - 1] if grads else None)
        if plan.alpha:
            run_tasks([lambda g=g: _add_branch(plan, X[g], Y[g], sums[g], probes[g]) for g in range(g_count)],
                      threads)
        if jac is not None:  # H holds this layer's pre-activations, W its weights
            run_tasks(jac.tasks(layer, W, H, inv_beta), threads)
        layer_stats = finish(sums, count, (H, X))  # pre's, then post's
        rows[:, layer, :2], rows[:, layer, 2:4] = layer_stats[:, 2:], layer_stats[:, :2]
        for g in range(g_count) if probes[0] is not None else ():
            rows[g, layer, len(STATS) + 2:] = probes[g].result()
        if layer in keep:
            samples[layer] = _sample(X[0])
        if layer < depth:
            _normalize(plan, W_next)
            W, W_next = W_next, W
        report(g_count)
    if jac is not None:
        plan.spectra.extend(jac.spectra)
    if grads:
        rows[0, :, len(STATS):len(STATS) + 2] = _gradients(plan, trials[0], grads, threads)


class _Backward:
    """What the backward pass keeps of trial 0's forward pass: every layer's phi'(p) (times
    alpha dropout's factor), and with a norm its output p and scales."""

    def __init__(self, plan: _Plan, depth: int, batch: int, n: int):
        self.plan = plan
        self.derivs = np.empty((depth, batch, n), plan.dtype)
        norm = plan.series.norm
        self.normed = np.empty((depth, batch, n), plan.dtype) if norm != "none" else None
        self.scales = np.empty((depth, n if norm == "batch" else batch)) if norm != "none" else None

    def keep(self, layer: int, r0: int, r1: int, p: np.ndarray) -> None:
        np.copyto(self.derivs[layer - 1, r0:r1], self.plan.act.deriv(p), casting="unsafe")
        if self.normed is not None:
            self.normed[layer - 1, r0:r1] = p


def _add_branch(plan: _Plan, x: np.ndarray, y: np.ndarray, sums: np.ndarray, probe) -> None:
    """x += alpha y block by block, with the new x's sums and its probe samples."""
    alpha = plan.dtype.type(plan.alpha)
    for i, (xb, yb) in enumerate(zip(_blocks(plan, x), _blocks(plan, y))):
        yb *= alpha
        xb += yb
        sums[i, 2:] = plan.backend.sums(xb)
        if probe is not None:
            probe.samples(i, xb)


def _blocks(plan: _Plan, a: np.ndarray) -> list[np.ndarray]:
    """The statistics blocks (rows) of a (rows, width) array."""
    return [a[i:i + plan.stats_rows] for i in range(0, a.shape[0], plan.stats_rows)]


def _normalize(plan: _Plan, w: np.ndarray) -> None:
    """Each trial's whole layer drawn: orthogonalize and normalize (streams.finish_weights)."""
    if plan.series.normalize_weights or plan.series.initializer.kind == "orthogonal":
        for wg in w:
            streams.finish_weights(plan.series, wg)


def _dropout(plan, X, sums, rngs, probes, derivs) -> None:
    """Alpha dropout of each trial, serially in block order from the layer's own stream."""
    a, b, drop_value = plan.drop
    for g, rng in enumerate(rngs):
        for i, xb in enumerate(_blocks(plan, X[g])):
            dropped = rng.random(xb.shape, dtype=np.float32) < plan.series.dropout
            np.copyto(xb, drop_value, where=dropped)
            xb *= a
            xb += b
            sums[g, i, 2:] = plan.backend.sums(xb)
            if probes[g] is not None:
                probes[g].samples(i, xb)
            if derivs is not None:  # d output / d h: a on kept units, 0 on dropped ones
                d_block = derivs[i * plan.stats_rows:(i + 1) * plan.stats_rows]
                d_block *= a
                d_block[dropped] = 0


def _gradients(plan: _Plan, trial: int, kept: _Backward, threads: int) -> np.ndarray:
    """(grad_sq, grad_ratio) per layer: a Gaussian error signal (the stream after the top
    layer) sent down through the layers' weights, drawn again from their streams."""
    s = plan.series
    top = top_signal(s, plan.seed, trial, plan.backend, threads)
    w = np.empty((s.width, s.width), plan.dtype)
    grad_sq = probing.backward(s, kept.derivs, lambda layer: streams.layer_weights(
        s, plan.seed, trial, layer, out=w, threads=threads, backend=plan.backend), top, kept.normed, kept.scales)
    with np.errstate(all="ignore"):
        return np.stack([grad_sq, grad_sq / grad_sq[s.depth]], axis=1)


def top_signal(series: Series, seed: int, trial: int, backend=None, threads: int = 1) -> np.ndarray:
    """dL/dx_depth of the backward pass: N(0, 1) from the stream after the top layer's."""
    backend = backends.get(backend)
    top = np.empty((series.batch, series.width), np.dtype(series.dtype))
    run_tasks([lambda j=j: backend.normals(j[1], j[2], 1.0)
               for j in streams.jobs(series, seed, [trial], series.depth + 1, top[None])], threads)
    return top


def trials_stacked(series: Series, measure: tuple[str, ...] = ()) -> int:
    """Trials a thread runs stacked, side by side with the other threads' (0: one trial at a
    time, its chunks shared out). Side by side needs no barrier per layer and no repacking of
    W per chunk, so it wins wherever there are trials enough and their buffers are modest."""
    entries = series.batch * series.width + series.width ** 2
    if "gradients" in measure:  # the backward pass keeps one trial's forward pass
        return 0
    if entries < SERIAL_BELOW:  # layers too small to split: a group of trials per thread
        return GROUP_PER_THREAD
    return 1 if 2 * entries * np.dtype(series.dtype).itemsize <= SIDE_BY_SIDE_BYTES else 0


def run_series(series: Series, seed: int, trials: int, progress: Progress | None = None,
               measure: tuple[str, ...] = (), backend: str | None = None,
               threads: int | None = None, jacobian=None) -> SeriesRun:
    """Every trial of one series, with trial 0's samples; stats hold STATS then PROBES columns.
    jacobian: a measures.JacobianSpec (measure: [jacobian]) fills the run's spectra."""
    return _run(series, seed, list(range(trials)), progress, measure, backend, threads, True, jacobian)


def run_trial(series: Series, seed: int, trial: int, progress: Progress | None = None,
              samples: dict[int, np.ndarray] | None = None, *, threads: int | None = None,
              measure: tuple[str, ...] = (), probes: np.ndarray | None = None,
              backend: str | None = None) -> np.ndarray:
    """One trial: (depth + 1, len(STATS)) statistics; `samples` receives its sampled layers'
    values, `probes` (depth + 1, len(PROBES)) its measurements (NaN where not asked for)."""
    run = _run(series, seed, [trial], progress, measure, backend, threads, samples is not None)
    if samples is not None:
        samples.update(run.samples)
    if probes is not None:
        probes[:] = run.stats[0, :, len(STATS):]
    return run.stats[0, :, :len(STATS)].copy()


def _run(series, seed, trials, progress, measure, backend, threads, keep_samples, jacobian=None) -> SeriesRun:
    """The trials, as groups side by side (small layers) or one by one with every thread."""
    plan = _Plan(series, seed, backends.get(backend), tuple(measure), jacobian)
    stats = np.empty((len(trials), series.depth + 1, len(STATS) + len(PROBES)))
    samples: dict[int, np.ndarray] = {}
    stop, lock = threading.Event(), threading.Lock()

    def report(done: int) -> None:
        """progress, one call at a time, and none once stopped (an interrupt it raised too)."""
        with lock:
            if progress and not stop.is_set():
                try:
                    progress(done)
                except BaseException:
                    stop.set()
                    raise

    stacked = trials_stacked(series, measure)
    workers = max(1, int(threads)) if threads is not None else default_threads()
    with blas.single_threaded():
        if not stacked:
            with np.errstate(all="ignore"):  # as in parallel()'s tasks: overflow is data
                for i, t in enumerate(trials):
                    _propagate(plan, [t], stats[i:i + 1], samples if i == 0 and keep_samples else None,
                               workers, report, stop)
            return SeriesRun(stats, samples, _ordered(plan.spectra))
        group = max(1, min(len(trials), stacked * workers))
        for first in range(0, len(trials), group):
            ts = list(range(first, min(first + group, len(trials))))
            parts = [ts[len(ts) * p // workers:len(ts) * (p + 1) // workers] for p in range(workers)]
            parts = [p for p in parts if p]
            inner = max(1, workers // len(parts))  # a last round of fewer trials shares their chunks out
            parallel(len(parts), lambda p: _propagate(
                plan, [trials[i] for i in parts[p]], stats[parts[p][0]:parts[p][-1] + 1],
                samples if p == 0 and first == 0 and keep_samples else None, inner, report, stop), workers, stop)
    return SeriesRun(stats, samples, _ordered(plan.spectra))


def _ordered(spectra: list[Spectrum]) -> list[Spectrum]:
    """Spectra by (trial, layer, input): the order threads finished them in never shows."""
    return sorted(spectra, key=lambda sp: (sp.trial, sp.layer, sp.input))


def run_experiment(exp: Experiment, progress: Progress | None = None, backend: str | None = None) -> dict[str, SeriesRun]:
    """Every series of an experiment, by label."""
    return {s.label: run_series(s, exp.seed, exp.trials, progress, exp.measure, backend, jacobian=exp.jacobian)
            for s in exp.series}
