"""Random streams: every draw keyed by (seed, series label, trial, layer, block).

A layer's weights and a trial's input come in fixed row blocks, each from its own SFC64
stream (numpy's generator, seeded from numpy's SeedSequence; the engine passes their states
as rows of 4 words), so any thread may draw any block and the backward pass can draw a
layer's weights again; the normals themselves come from the backend."""

from __future__ import annotations

import functools
import math
import zlib

import numpy as np

from snn_lab.config import Series
from snn_lab.initializers import TRUNCATION, haar_orthogonal
from snn_lab.simulate import backends
from snn_lab.simulate.threads import run_tasks, threads_for

RANDOM_BLOCK = 1 << 18  # entries per random block: each has its own stream, any thread draws it
SCHEME = 2  # meta.json's `streams`: 1 was one SeedSequence per weight stream (weight_states), before 2026-12


def _key(label: str) -> int:
    return zlib.crc32(label.encode("utf-8"))


def seed_sequence(seed: int, label: str, trial: int, layer: int) -> np.random.SeedSequence:
    """The stream of one (series, trial, layer): keyed by label, not position, so adding, removing or
    reordering series, or changing the trial count, leaves every other series' numbers unchanged."""
    return np.random.SeedSequence(seed, spawn_key=(_key(label), trial, layer))


def rng_for(seed: int, label: str, trial: int, layer: int) -> np.random.Generator:
    """A generator for one (series, trial, layer) stream (biases and dropout masks)."""
    return np.random.Generator(np.random.PCG64(seed_sequence(seed, label, trial, layer)))


def block_rows(width: int) -> int:
    """Rows of a (rows, width) array in one random block: fixed by the width alone."""
    return max(1, RANDOM_BLOCK // width)


def sfc64_states(words: np.ndarray) -> np.ndarray:
    """SFC64 states (a, b, c, counter), one row per row of 3 seed words, as numpy's SFC64 seeds
    itself from a SeedSequence's generate_state(3): counter 1, then 12 outputs discarded."""
    a, b, c = (np.array(words[:, i], np.uint64) for i in range(3))
    w = np.ones_like(a)
    for _ in range(12):
        tmp = a + b + w
        w += np.uint64(1)
        a = b ^ (b >> np.uint64(11))
        b = c + (c << np.uint64(3))
        c = ((c << np.uint64(24)) | (c >> np.uint64(40))) + tmp
    return np.stack([a, b, c, w], axis=1)


def key_states(seed: int, label: str, keys) -> np.ndarray:
    """The SFC64 state of each (trial, layer, block) key's stream (a trial's input, the top
    signal): numpy's SFC64 seeded by SeedSequence(seed, spawn_key=(crc32(label), *key)), i.e.
    seed_sequence(seed, label, trial, layer).spawn(n)[block] for any n > block."""
    words = [np.random.SeedSequence(seed, spawn_key=(_key(label), *key)).generate_state(3, np.uint64)
             for key in keys]
    return sfc64_states(np.array(words, np.uint64).reshape(-1, 3))


WEIGHTS, KEY_STATES = 0xFFFFFFFF, 64  # the weights' spawn-key slot (beyond any layer); streams per key


@functools.lru_cache(maxsize=1024)  # a thread's stacked trials come back every layer
def _weight_table(seed: int, label: str, trial: int, part: int) -> np.ndarray:
    """Weight streams 64 part .. of one trial (read-only), from one SeedSequence rather than one
    a stream: its set-up (~15 us) was the small networks' largest cost after the products."""
    seq = np.random.SeedSequence(seed, spawn_key=(_key(label), trial, WEIGHTS, part))
    table = sfc64_states(seq.generate_state(3 * KEY_STATES, np.uint64).reshape(KEY_STATES, 3))
    table.flags.writeable = False
    return table


def weight_states(seed: int, label: str, trial: int, first: int, count: int) -> np.ndarray:
    """A trial's weight streams first .. first + count - 1 (a fresh array): stream i is row i % 64 of
    _weight_table(i // 64); layer l's row block b is stream (l - 1) blocks + b."""
    part, start = divmod(first, KEY_STATES)
    tables = [_weight_table(seed, label, trial, p) for p in range(part, (first + count - 1) // KEY_STATES + 1)]
    return (tables[0] if len(tables) == 1 else np.concatenate(tables))[start:start + count].copy()


def jobs(series: Series, seed: int, trials: list[int], layer: int, out: np.ndarray, weights: bool = False):
    """(g, states, part of out) that fill out (trials, rows, width) from layer `layer`'s row
    blocks (its weights' streams if `weights`, else key_states'): one job for the whole group (g
    None) when a block holds a trial's rows (one backend call), else one per block of trial g."""
    rows = block_rows(series.width)
    blocks = -(-out.shape[1] // rows)
    if weights:
        states = np.concatenate([weight_states(seed, series.label, t, (layer - 1) * blocks, blocks)
                                 for t in trials])
    else:
        states = key_states(seed, series.label, [(t, layer, b) for t in trials for b in range(blocks)])
    if blocks == 1:
        return [(None, states, out)]
    return [(g, states[g * blocks + b:g * blocks + b + 1], out[g, b * rows:(b + 1) * rows])
            for g in range(len(trials)) for b in range(blocks)]


def fill_weights(series: Series, backend, states: np.ndarray, out: np.ndarray) -> None:
    """Fill out's equal slices, slice i from the SFC64 state states[i] (advanced), with weights
    of the series' init (the full layer's scale, whatever the number of rows)."""
    init = series.initializer
    s = series.gain * init.scale(series.width, series.width)
    if init.kind == "uniform":
        per = out.size // len(states)
        for i, state in enumerate(states):
            flat = out.reshape(-1)[i * per:(i + 1) * per]
            with backends.sfc64(state) as stream:
                np.random.Generator(stream).random(out=flat, dtype=flat.dtype)
            flat *= flat.dtype.type(2.0 * s)
            flat -= flat.dtype.type(s)
    elif init.kind == "truncated":
        backend.normals(states, out, 1.0)
        per = out.size // len(states)
        for i in range(len(states)):  # rejection: redraw from the same stream
            flat = out.reshape(-1)[i * per:(i + 1) * per]
            bad = np.flatnonzero(np.abs(flat) >= TRUNCATION)
            while bad.size:
                fresh = np.empty(bad.size, flat.dtype)
                backend.normals(states[i:i + 1], fresh, 1.0)
                flat[bad] = fresh
                bad = bad[np.abs(flat[bad]) >= TRUNCATION]
        out *= out.dtype.type(s)
    elif init.kind == "orthogonal":  # N(0, 1) now; finish_weights orthogonalizes the whole layer
        backend.normals(states, out, 1.0)
    else:
        backend.normals(states, out, s)


def finish_weights(series: Series, w: np.ndarray) -> None:
    """What follows the draw of a whole (width, width) layer: the orthogonal init's QR (float64,
    numpy's LAPACK on both backends), then normalize_weights if asked."""
    if series.initializer.kind == "orthogonal":
        np.copyto(w, series.gain * haar_orthogonal(w), casting="unsafe")
    if series.normalize_weights:
        normalize_weights(series, w)


def normalize_weights(series: Series, w: np.ndarray) -> None:
    """Each unit's incoming weights: sum 0, sum of squares gain^2 (omega = 0, tau = gain^2)."""
    dtype = w.dtype
    w -= w.mean(axis=0, dtype=np.float64).astype(dtype)
    w *= (series.gain / np.sqrt(np.einsum("ij,ij->j", w, w, dtype=np.float64))).astype(dtype)


def weight_tasks(series: Series, backend, seed: int, trials: list[int], layer: int, out: np.ndarray):
    """Tasks that each fill part of out (trials, width, width) with layer `layer`'s weights."""
    found = jobs(series, seed, trials, layer, out, weights=True)
    return [lambda s=s, o=o: fill_weights(series, backend, s, o) for _, s, o in found]


def layer_weights(series: Series, seed: int, trial: int, layer: int, out: np.ndarray | None = None,
                  threads: int | None = None, backend=None) -> np.ndarray:
    """Layer `layer`'s (width, width) weights, finished (finish_weights); `threads` changes the speed,
    never the numbers."""
    n = series.width
    w = np.empty((n, n), np.dtype(series.dtype)) if out is None else out
    run_tasks(weight_tasks(series, backends.get(backend), seed, [trial], layer, w[None]), threads_for(threads, n * n))
    finish_weights(series, w)
    return w


def input_tasks(series: Series, backend, seed: int, trials: list[int], out: np.ndarray):
    """Tasks that each fill part of out (trials, batch, width) with the trials' inputs: entries
    N(mean, var); with input.correlation c > 0 every sample also shares one N(0, var c) vector
    (from the layer-0 generator rng_for(..., 0)), so distinct samples have correlation c."""
    c, var, mean = series.input.correlation, series.input.var, series.input.mean
    shift = [out.dtype.type(mean)] * len(trials)
    if c > 0:
        shift = [(rng_for(seed, series.label, t, 0).standard_normal(series.width) * math.sqrt(var * c)
                  + mean).astype(out.dtype) for t in trials]
    sd = math.sqrt(var * (1.0 - c))
    # Box-Muller forms -2 sd^2 ln u (ln u >= -45 in float64, -23 in float32) in the dtype: where
    # that would overflow though sd z fits (float32, var 1e38), draw N(0, 1) and scale after.
    # Otherwise as before, so every other input keeps its bits.
    after = sd if 90.0 * sd * sd > float(np.finfo(out.dtype).max) else None

    def task(g, states, part) -> None:
        backend.normals(states, part, 1.0 if after else sd)
        if after:
            part *= out.dtype.type(after)
        for block, add in zip(part, shift) if g is None else [(part, shift[g])]:
            block += add
    return [lambda j=j: task(*j) for j in jobs(series, seed, trials, 0, out)]


def input_values(series: Series, seed: int, trial: int, out: np.ndarray | None = None,
                 threads: int | None = None, backend=None) -> np.ndarray:
    """The (batch, width) input of one trial (input_tasks)."""
    x = np.empty((series.batch, series.width), np.dtype(series.dtype)) if out is None else out
    run_tasks(input_tasks(series, backends.get(backend), seed, [trial], x[None]), threads_for(threads, x.size))
    return x
