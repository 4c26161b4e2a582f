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
import itertools
import math
import os
import threading
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from snn_lab import _kernels, blas
from snn_lab import probes as probing
from snn_lab.activations import alpha_dropout_affine
from snn_lab.config import Experiment, Series

# Columns of the per-layer statistics array, in order. Layer 0 is the input (no activation:
# its pre-activation columns repeat the input's).
STATS = ("mean", "var", "preact_mean", "preact_var")

Progress = Callable[[int], None]  # called with the number of layers just finished
SAMPLE_SIZE = 1000  # post-activation values kept per sampled layer (trial 0), for histograms

RANDOM_BLOCK = 1 << 18  # entries per random block: each has its own stream, any thread draws it
STATS_BLOCK = 1 << 16  # entries per activation/statistics block (fits in L2 with its float64 copy)
_PAIRS = 1 << 15  # Box-Muller pairs per step (its raw words, 256 or 384 KiB, stay in L2)
_SERIAL_BELOW = 1 << 17  # entries per layer under which threads cost more than they save
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


_scratch = threading.local()  # per-thread reusable objects


# ---- random streams ------------------------------------------------------------------------

def seed_sequence(seed: int, label: str, trial: int, layer: int) -> np.random.SeedSequence:
    """The stream of one (series, trial, layer): keyed by label, so series are independent.

    Keying on the label rather than the position means that adding, removing or reordering
    series, or changing the trial count, leaves every other series' numbers unchanged; a
    per-layer stream lets a backward pass regenerate a layer's weights instead of storing them.
    """
    return np.random.SeedSequence(seed, spawn_key=(zlib.crc32(label.encode("utf-8")), trial, layer))


def rng_for(seed: int, label: str, trial: int, layer: int) -> np.random.Generator:
    """A generator for one (series, trial, layer) stream (biases and dropout masks)."""
    return np.random.Generator(np.random.PCG64(seed_sequence(seed, label, trial, layer)))


def block_rows(width: int) -> int:
    """Rows of a (rows, width) array in one random block: fixed by the width alone."""
    return max(1, RANDOM_BLOCK // width)


def block_stream(seed: int, label: str, trial: int, layer: int, block: int) -> np.random.SFC64:
    """The stream of one random block: the layer's spawn_key extended by the block index.

    Its SeedSequence is seed_sequence(seed, label, trial, layer).spawn(n)[block] for any
    n > block. SFC64 (numpy's small fast chaotic generator) makes raw words ~25% faster than
    PCG64, and raw words are what the Box-Muller sampler eats.
    """
    key = (zlib.crc32(label.encode("utf-8")), trial, layer, block)
    return np.random.SFC64(np.random.SeedSequence(seed, spawn_key=key))


# SeedSequence and SFC64's seeding, for many keys at once: the same states as block_stream
# (~1 us a key instead of ~20 us, most of it holding the GIL). Constants from numpy's
# SeedSequence (after Melissa O'Neill's seed_seq_fe) and SFC64.
_INIT_A, _MULT_A, _INIT_B, _MULT_B = 0x43B0D7E5, 0x931E8875, 0x8B51F9DD, 0x58F38DED
_MIX_L, _MIX_R, _M32 = 0xCA01F9DD, 0x4973F715, 0xFFFFFFFF


def _words32(value: int) -> list[int]:
    """An integer as SeedSequence takes it: 32-bit words, least significant first ([0] for 0)."""
    out = [value & _M32]
    value >>= 32
    while value:
        out.append(value & _M32)
        value >>= 32
    return out


def _sfc64_states(seed: int, label: str, keys: np.ndarray) -> np.ndarray:
    """SFC64(SeedSequence(seed, spawn_key=(crc32(label), *key))).state words for each row
    of keys (int, (m, 3): trial, layer, block), computed for all rows at once: (m, 4) uint64."""
    keys = np.asarray(keys, np.int64)
    if keys.size and (keys.min() < 0 or keys.max() > _M32):
        raise ValueError("keys must be 32-bit")
    m = keys.shape[0]
    run = _words32(seed)
    run += [0] * (4 - len(run))  # padded to the pool size when a spawn key follows
    u32 = np.uint32
    columns = [np.full(m, w, u32) for w in run + [zlib.crc32(label.encode("utf-8"))]]
    columns += [keys[:, j].astype(u32) for j in range(3)]
    hc = _INIT_A

    def hashmix(value):
        nonlocal hc
        value = value ^ u32(hc)
        hc = (hc * _MULT_A) & _M32
        value = value * u32(hc)
        return value ^ (value >> u32(16))

    def mix(x, y):
        r = u32(_MIX_L) * x - u32(_MIX_R) * y
        return r ^ (r >> u32(16))

    pool = [hashmix(columns[i]) for i in range(4)]
    for src in range(4):
        for dst in range(4):
            if src != dst:
                pool[dst] = mix(pool[dst], hashmix(pool[src]))
    for src in range(4, len(columns)):
        for dst in range(4):
            pool[dst] = mix(pool[dst], hashmix(columns[src]))
    hb = _INIT_B
    halves = []
    for i in range(6):  # generate_state(3, uint64): six 32-bit words, little-endian pairs
        v = pool[i % 4] ^ u32(hb)
        hb = (hb * _MULT_B) & _M32
        v = v * u32(hb)
        halves.append((v ^ (v >> u32(16))).astype(np.uint64))
    u64 = np.uint64
    a, b, c = (halves[2 * j] | (halves[2 * j + 1] << u64(32)) for j in range(3))
    w = np.ones(m, u64)
    for _ in range(12):  # sfc64_set_seed: 12 rounds of the generator
        tmp = a + b + w
        w = w + u64(1)
        a = b ^ (b >> u64(11))
        b = c + (c << u64(3))
        c = ((c << u64(24)) | (c >> u64(40))) + tmp
    return np.stack([a, b, c, w], axis=1)


def _stream(state: np.ndarray) -> np.random.SFC64:
    """This thread's reusable SFC64, set to a state from _sfc64_states (no SeedSequence)."""
    gen = _scratch.__dict__.get("sfc64")
    if gen is None:
        gen = _scratch.__dict__["sfc64"] = np.random.SFC64(0)
    gen.state = {"bit_generator": "SFC64", "state": {"state": state}, "has_uint32": 0, "uinteger": 0}
    return gen


def standard_normal_fill(stream, out: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Fill a contiguous float array with i.i.d. N(0, scale^2): Box-Muller on raw 64-bit words.

    Each step takes k = _PAIRS pairs (u1, u2) as 32-bit or 53-bit integers from the raw
    words: radius sqrt(-2 ln u1), angle 2 pi u2; the step's first k entries get r cos, the
    next k r sin. float32: the step's k words read as 2k 32-bit integers, u1 the first k and u2
    the next k (radius up to 6.7 sd); float64: k words give u1 as ((w >> 11) + 0.5) 2^-53
    (radius up to 8.7 sd) and the next (k + 1) // 2 words, as 32-bit integers, give u2.
    `stream` is a bit generator (advanced), or SFC64 state words (advanced in place), which
    the compiled loop runs itself without numpy's per-call overhead.
    """
    if not out.flags.c_contiguous:
        raise ValueError("standard_normal_fill fills a contiguous array")
    if out.dtype not in (np.float32, np.float64):
        raise TypeError(f"standard_normal_fill: float32 or float64, not {out.dtype}")
    if isinstance(stream, np.ndarray):
        _kernels.normals(stream, out, scale, _PAIRS)
    elif isinstance(stream, np.random.SFC64):
        state = stream.state
        words = np.array(state["state"]["state"], np.uint64)
        _kernels.normals(words, out, scale, _PAIRS)
        state["state"]["state"] = words
        stream.state = state
    else:
        count = _kernels.words_needed(out.dtype == np.float64, out.size, _PAIRS)
        _kernels.normals_words(stream.random_raw(count), out, scale, _PAIRS)
    return out


def fill_weights(series: Series, stream, out: np.ndarray) -> np.ndarray:
    """Fill rows of a layer's weights (any number, contiguous) from one stream, per the init.

    The scale is the full layer's (fan_in = fan_out = width), whatever the number of rows.
    `stream` is a bit generator or SFC64 state words (see standard_normal_fill).
    """
    init = series.initializer
    s = series.gain * init.scale(series.width, series.width)
    flat = out.reshape(-1)
    if init.kind == "uniform":
        bitgen = _stream(stream) if isinstance(stream, np.ndarray) else stream
        np.random.Generator(bitgen).random(out=flat, dtype=flat.dtype)
        flat *= flat.dtype.type(2.0 * s)
        flat -= flat.dtype.type(s)
    elif init.kind == "truncated":
        standard_normal_fill(stream, flat)
        _redraw_tails(stream, flat)
        flat *= flat.dtype.type(s)
    else:
        standard_normal_fill(stream, flat, s)
    return out


def _redraw_tails(stream, flat: np.ndarray) -> None:
    """Replace entries beyond the truncation by fresh draws until none is left (rejection)."""
    from snn_lab.initializers import TRUNCATION

    bad = np.flatnonzero(np.abs(flat) >= TRUNCATION)
    while bad.size:
        flat[bad] = standard_normal_fill(stream, np.empty(bad.size, flat.dtype))
        bad = bad[np.abs(flat[bad]) >= TRUNCATION]


def _normalize(series: Series, w: np.ndarray) -> None:
    """Each unit's incoming weights: sum 0, sum of squares gain^2 (omega = 0, tau = gain^2)."""
    dtype = w.dtype
    w -= w.mean(axis=0, dtype=np.float64).astype(dtype)
    w *= (series.gain / np.sqrt(np.einsum("ij,ij->j", w, w, dtype=np.float64))).astype(dtype)


def draw_weights(series: Series, rng: np.random.Generator) -> np.ndarray:
    """One layer's (fan_in, fan_out) weights from a single stream, normalized if asked."""
    w = np.empty((series.width, series.width), np.dtype(series.dtype))
    fill_weights(series, rng.bit_generator, w)
    if series.normalize_weights:
        _normalize(series, w)
    return w


def layer_weights(series: Series, seed: int, trial: int, layer: int, out: np.ndarray | None = None,
                  threads: int | None = None) -> np.ndarray:
    """Layer `layer`'s weights: row blocks of block_rows(width), block b from block_stream(b).

    The public way to (re)generate a layer's weights; the numbers do not depend on `threads`.
    """
    n = series.width
    w = np.empty((n, n), np.dtype(series.dtype)) if out is None else out
    rows = block_rows(n)
    _parallel(-(-n // rows), _weight_task(series, seed, trial, layer, w), _threads(threads, n * n))
    if series.normalize_weights:
        _normalize(series, w)
    return w


def _weight_task(series, seed, trial, layer, w):
    rows = block_rows(series.width)

    def task(b: int) -> None:
        fill_weights(series, block_stream(seed, series.label, trial, layer, b), w[b * rows:(b + 1) * rows])
    return task


def input_values(series: Series, seed: int, trial: int, out: np.ndarray | None = None,
                 threads: int | None = None) -> np.ndarray:
    """The (batch, width) input of a trial: entries N(mean, var), layer 0's row blocks.

    With input.correlation c > 0 every sample also shares one N(0, var c) vector (drawn from
    the layer-0 generator rng_for(..., 0)), so distinct samples have correlation c.
    """
    x = np.empty((series.batch, series.width), np.dtype(series.dtype)) if out is None else out
    rows = block_rows(series.width)
    c = series.input.correlation
    sd, mean = math.sqrt(series.input.var * (1.0 - c)), x.dtype.type(series.input.mean)
    shared = None
    if c > 0:
        shared = rng_for(seed, series.label, trial, 0).standard_normal(series.width)
        shared = (shared * math.sqrt(series.input.var * c) + series.input.mean).astype(x.dtype)

    def task(b: int) -> None:
        block = x[b * rows:(b + 1) * rows]
        standard_normal_fill(block_stream(seed, series.label, trial, 0, b), block, sd)
        block += mean if shared is None else shared
    _parallel(-(-series.batch // rows), task, _threads(threads, x.size))
    return x


# ---- threads -------------------------------------------------------------------------------

_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()


THREADS_ENV = "SNN_LAB_THREADS"  # a sweep's worker processes share the cores: each gets its part
# numpy's BLAS reads its thread count from these at start-up. For some shapes the count changes
# a product's last bits (OpenBLAS: 100x300 @ 300x300 in float64 with 1 vs 2 threads).
BLAS_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def default_threads() -> int:
    """Threads for random draws and blocks: $SNN_LAB_THREADS, else the CPUs this process may use."""
    value = os.environ.get(THREADS_ENV, "")
    if value.isdigit() and int(value) > 0:
        return int(value)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _threads(threads: int | None, entries: int) -> int:
    if threads is not None:
        return max(1, int(threads))
    return 1 if entries < _SERIAL_BELOW else default_threads()


def _get_pool(size: int) -> ThreadPoolExecutor:
    """The shared pool, with at least `size` threads."""
    global _pool, _pool_size
    with _pool_lock:
        if _pool_size < size:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool, _pool_size = ThreadPoolExecutor(size, thread_name_prefix="snn-lab"), size
        return _pool


def _parallel(count: int, task: Callable[[int], None], threads: int) -> None:
    """task(0) ... task(count - 1), on `threads` threads (the caller's included), any order."""
    threads = min(threads, count)
    if threads <= 1:
        for i in range(count):
            task(i)
        return
    pool = _get_pool(threads - 1)
    items, stop = itertools.count(), threading.Event()  # next() on a count is atomic under the GIL

    def work() -> None:
        for i in items:
            if i >= count or stop.is_set():
                return
            task(i)
    helpers = [pool.submit(work) for _ in range(threads - 1)]
    try:
        work()
    finally:
        stop.set()
        for h in helpers:
            h.result()


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
    """_finish for a list of per-block sums; one block skips the array (a sum of one is itself)."""
    if len(sums) > 1:
        return _finish(np.array(sums), count, blocks)
    s1, s2 = sums[0]
    mean = (0.0 + s1) / count  # as numpy's sum of one element: the identity 0.0 plus it (-0.0 -> 0.0)
    if not math.isfinite(mean):
        return mean, math.nan
    var = s2 / count - mean * mean
    if not var * _ILL_CONDITIONED > mean * mean:
        return _finish(np.array(sums), count, blocks)
    return mean, (max(var, 0.0) if math.isfinite(var) else var)


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
    n = series.width
    return blas.single_threaded() if series.batch * n + n * n < _SERIAL_BELOW else contextlib.nullcontext(False)


def _run_trial(series, seed, trial, progress, samples, threads, measure, probes) -> np.ndarray:
    """run_trial, with BLAS's threads set."""
    dead, corr, grads = ("dead" in measure), ("correlation" in measure), ("gradients" in measure)
    if probes is None:
        probes = np.empty((series.depth + 1, len(probing.PROBES)))
    probes[:] = math.nan
    keep = set(sample_layers(series.depth)) if samples is not None else set()
    n, batch, dtype = series.width, series.batch, np.dtype(series.dtype)
    threads = _threads(threads, batch * n + n * n)
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
    _parallel(nb, x_sums, threads)
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
            draw = _weight_task(series, seed, trial, layer + 1, w) if more else None
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
                if not series.dropout:
                    if probe is not None:
                        probe.samples(i, xb)
            _parallel(first + nb, task, threads)

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
                _normalize(series, w)
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


def _small(series: Series, measure: tuple[str, ...] = ()) -> bool:
    """Layers too small to split (a trial runs on one thread), and no backward pass."""
    n = series.width
    return "gradients" not in measure and series.batch * n + n * n < _SERIAL_BELOW


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
        streams = _WeightStreams(series, seed, trials)
        first = streams.layer(1)
        _parallel(len(group), lambda i: group[i].start(first[i]), threads)
        with np.errstate(all="ignore"):  # overflow is data here: recorded, then reported
            for layer in range(1, series.depth + 1):
                if not side_by_side:
                    for g in group:
                        np.matmul(g.x, g.w, out=g.h)
                nxt = streams.layer(layer + 1) if layer < series.depth else None
                _parallel(len(group), lambda i: group[i].layer(
                    layer, None if nxt is None else nxt[i], side_by_side), threads)
                if progress:
                    progress(len(group))


def _finish_one(sums: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """_finish_list of one block for many rows of (sum, sum of squares) at once: (means,
    variances, done), the same IEEE operations; rows not done need the two-pass."""
    with np.errstate(all="ignore"):
        mean = (0.0 + sums[:, 0]) / count
        var = sums[:, 1] / count - mean * mean
        finite = np.isfinite(mean)
        done = ~finite | (var * _ILL_CONDITIONED > mean * mean)
        var = np.where(np.isfinite(var) & (0.0 > var), 0.0, var)  # max(var, 0.0), as Python's max
    return mean, np.where(finite, var, math.nan), done


def _batchable(series: Series, measure: tuple[str, ...]) -> bool:
    """Whether a small group can run as a few compiled calls per layer: an activation with a
    compiled loop, normal weights in one random block, no probes, dropout or normalization."""
    return (not measure and not series.dropout and not series.normalize_weights
            and series.initializer.kind == "normal" and block_rows(series.width) >= series.width
            and series.make_activation().kernel is not None)


def _run_batched(series: Series, seed: int, trials: list[int], rows: list[np.ndarray],
                 samples: dict[int, np.ndarray] | None, progress: Progress | None, threads: int,
                 side_by_side: bool) -> None:
    """_run_small's common case with the group's arrays stacked, (trials, batch, width): per
    layer and thread, its trials' products (one BLAS call each, as alone), then one compiled
    call for their activations and block sums and one for their next weights, with the GIL
    released. The same loops on the same blocks as _SmallTrial: the same numbers."""
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
    streams = _WeightStreams(series, seed, trials)
    sd = math.sqrt(series.bias_var)

    def split(a: np.ndarray) -> list[np.ndarray]:
        return [a[i:i + per_block] for i in range(0, batch, per_block)]

    def start(p: int, states: np.ndarray) -> None:
        a, b = parts[p]
        for i in range(a, b):
            input_values(series, seed, trials[i], out=X[i], threads=1)
            xb = split(X[i])
            outs[i][0] = 2 * _finish_list([block_sums(v) for v in xb], count, xb)
        if 0 in keep and a == 0:
            samples[0] = _sample(X[0])
        _kernels.normals(states[a:b, 0], W[a:b], scale, _PAIRS)

    def step(p: int, layer: int, states: np.ndarray | None) -> None:
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
            if states is not None:
                _kernels.normals(states[a:b, 0], W[a:b], scale, _PAIRS)

    first = streams.layer(1)
    _parallel(len(parts), lambda p: start(p, first), threads)
    with np.errstate(all="ignore"):  # overflow is data here: recorded, then reported
        for layer in range(1, depth + 1):
            if not side_by_side:
                for i in range(g):
                    np.matmul(X[i], W[i], out=H[i])
            nxt = streams.layer(layer + 1) if layer < depth else None
            _parallel(len(parts), lambda p: step(p, layer, nxt), threads)
            if progress:
                progress(g)


class _WeightStreams:
    """The SFC64 states of a group's weight blocks (as block_stream's), hashed for 64 layers at
    a time: one vectorized SeedSequence per batch instead of ~20 us per block."""

    SPAN = 64

    def __init__(self, series: Series, seed: int, trials: list[int]):
        self.series, self.seed, self.trials = series, seed, trials
        self.blocks = -(-series.width // block_rows(series.width))
        self.first, self.states = 0, np.empty((0, len(trials), self.blocks, 4), np.uint64)

    def layer(self, layer: int) -> np.ndarray:
        """(trials, blocks, 4) state words of `layer`'s weights (each row used once)."""
        if not self.first <= layer < self.first + len(self.states):
            layers = np.arange(layer, min(self.series.depth, layer + self.SPAN - 1) + 1)
            keys = np.stack(np.meshgrid(self.trials, layers, np.arange(self.blocks), indexing="ij"), -1)
            keys = keys.transpose(1, 0, 2, 3).reshape(-1, 3)  # (layer, trial, block) order
            states = _sfc64_states(self.seed, self.series.label, keys)
            self.first = layer
            self.states = states.reshape(len(layers), len(self.trials), self.blocks, 4)
        return self.states[layer - self.first]


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
            _normalize(s, self.w)

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
    without a compiled loop) and a block's float64 copy (the two-pass variance): a few MiB. Small layers run several trials at once (run_series), each
    with its own weights, buffers and scratch: that many times as much.
    """
    item = np.dtype(series.dtype).itemsize
    n, batch = series.width, series.batch
    workers = _trial_workers(series, (), threads)  # with gradients trials run one by one: an upper bound
    threads = 1 if workers > 1 else _threads(threads, batch * n + n * n)
    k = min(_PAIRS, (min(n * n, RANDOM_BLOCK) + 1) // 2)
    step = k * 8 + 16 if item == 4 else k * 12 + 16  # one step's raw words (the kernel's buffer)
    block = min(batch, max(1, STATS_BLOCK // n)) * n
    tails = min(n * n, RANDOM_BLOCK) * (item + 1) if series.initializer.kind == "truncated" else 0
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
