"""Random streams: every draw keyed by (seed, series label, trial, layer, block).

A layer's weights and a trial's input come in fixed row blocks, each from its own SFC64
stream, so any thread may draw any block; the normals themselves come from the compiled
Box-Muller loop (snn_lab._kernels), which runs SFC64 from the stream's state words.
"""

from __future__ import annotations

import math
import threading
import zlib

import numpy as np

from snn_lab.simulate.backends import _kernels
from snn_lab.config import Series
from snn_lab.simulate.threads import parallel, threads_for

RANDOM_BLOCK = 1 << 18  # entries per random block: each has its own stream, any thread draws it
PAIRS = 1 << 15  # Box-Muller pairs per step (its raw words, 256 or 384 KiB, stay in L2)

_scratch = threading.local()  # per-thread reusable objects


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


def sfc64_states(seed: int, label: str, keys: np.ndarray) -> np.ndarray:
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
    """This thread's reusable SFC64, set to a state from sfc64_states (no SeedSequence)."""
    gen = _scratch.__dict__.get("sfc64")
    if gen is None:
        gen = _scratch.__dict__["sfc64"] = np.random.SFC64(0)
    gen.state = {"bit_generator": "SFC64", "state": {"state": state}, "has_uint32": 0, "uinteger": 0}
    return gen


def standard_normal_fill(stream, out: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Fill a contiguous float array with i.i.d. N(0, scale^2): Box-Muller on raw 64-bit words.

    Each step takes k = PAIRS pairs (u1, u2) as 32-bit or 53-bit integers from the raw
    words: radius sqrt(-2 ln u1), angle 2 pi u2; the step's first k entries get r cos, the
    next k r sin. float32: the step's k words read as 2k 32-bit integers, u1 the first k and u2
    the next k (radius up to 6.7 sd); float64: k words give u1 as ((w >> 11) + 0.5) 2^-53
    (radius up to 8.7 sd) and the next (k + 1) // 2 words, as 32-bit integers, give u2.
    `stream` is a bit generator (advanced), or SFC64 state words (advanced in place), which
    the compiled loop runs itself without numpy's per-call overhead; rows of state words fill
    as many equal slices of out, one stream each (a group of trials' weights in one call).
    """
    if not out.flags.c_contiguous:
        raise ValueError("standard_normal_fill fills a contiguous array")
    if out.dtype not in (np.float32, np.float64):
        raise TypeError(f"standard_normal_fill: float32 or float64, not {out.dtype}")
    if isinstance(stream, np.ndarray):
        _kernels.normals(stream, out, scale, PAIRS)
    elif isinstance(stream, np.random.SFC64):
        state = stream.state
        words = np.array(state["state"]["state"], np.uint64)
        _kernels.normals(words, out, scale, PAIRS)
        state["state"]["state"] = words
        stream.state = state
    else:
        count = _kernels.words_needed(out.dtype == np.float64, out.size, PAIRS)
        _kernels.normals_words(stream.random_raw(count), out, scale, PAIRS)
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


def normalize_weights(series: Series, w: np.ndarray) -> None:
    """Each unit's incoming weights: sum 0, sum of squares gain^2 (omega = 0, tau = gain^2)."""
    dtype = w.dtype
    w -= w.mean(axis=0, dtype=np.float64).astype(dtype)
    w *= (series.gain / np.sqrt(np.einsum("ij,ij->j", w, w, dtype=np.float64))).astype(dtype)


def draw_weights(series: Series, rng: np.random.Generator) -> np.ndarray:
    """One layer's (fan_in, fan_out) weights from a single stream, normalized if asked."""
    w = np.empty((series.width, series.width), np.dtype(series.dtype))
    fill_weights(series, rng.bit_generator, w)
    if series.normalize_weights:
        normalize_weights(series, w)
    return w


def layer_weights(series: Series, seed: int, trial: int, layer: int, out: np.ndarray | None = None,
                  threads: int | None = None) -> np.ndarray:
    """Layer `layer`'s weights: row blocks of block_rows(width), block b from block_stream(b).

    The public way to (re)generate a layer's weights; the numbers do not depend on `threads`.
    """
    n = series.width
    w = np.empty((n, n), np.dtype(series.dtype)) if out is None else out
    rows = block_rows(n)
    parallel(-(-n // rows), weight_task(series, seed, trial, layer, w), threads_for(threads, n * n))
    if series.normalize_weights:
        normalize_weights(series, w)
    return w


def weight_task(series, seed, trial, layer, w):
    """task(b) fills row block b of layer `layer`'s weights w from its stream (for a pool)."""
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
    parallel(-(-series.batch // rows), task, threads_for(threads, x.size))
    return x


class WeightStreams:
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
            states = sfc64_states(self.seed, self.series.label, keys)
            self.first = layer
            self.states = states.reshape(len(layers), len(self.trials), self.blocks, 4)
        return self.states[layer - self.first]
