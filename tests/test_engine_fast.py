"""The engine against straightforward computations, on every backend: blocked activation and
statistics, Box-Muller from raw words, threaded random blocks, stacked small trials. Block
sizes are shrunk so that small cases cross many block boundaries."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest

from conftest import experiment
from snn_lab.initializers import INITIALIZERS, TRUNCATION
from snn_lab.simulate import backends, blas, engine, memory, streams

BACKENDS = [name for name, missing in backends.available().items() if missing is None]


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Each backend built here (numpy always; compiled where the extension was built)."""
    return request.param


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of a few hundred entries: every path splits small arrays into many blocks."""
    monkeypatch.setattr(streams, "RANDOM_BLOCK", 96)
    monkeypatch.setattr(engine, "STATS_BLOCK", 160)
    monkeypatch.setattr(engine, "PRODUCT_BLOCK", 320)
    monkeypatch.setattr(backends, "PAIRS", 50)


def state_of(gen) -> np.ndarray:
    """A numpy bit generator's SFC64 state as a row of the backends' state arrays."""
    if isinstance(gen, np.random.SFC64):
        return np.array([gen.state["state"]["state"]], np.uint64)
    return gen


def normals(backend: str, stream, out: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """N(0, scale^2) into out from one stream (numpy's SFC64 or a state row), by the backend."""
    backends.get(backend).normals(state_of(stream), out, scale)
    return out


def numpy_sfc64(state: np.ndarray) -> np.random.SFC64:
    """numpy's own SFC64 at a state row (a, b, c, counter), set here rather than by the backends."""
    gen = np.random.SFC64(0)
    gen.state = {"bit_generator": "SFC64", "state": {"state": state}, "has_uint32": 0, "uinteger": 0}
    return gen


def raw(states: np.ndarray, count: int) -> np.ndarray:
    """The next `count` raw words of the stream at states[0] (numpy's own SFC64)."""
    return numpy_sfc64(states[0]).random_raw(count)


def series_of(yaml_text: str):
    exp = experiment(yaml_text)
    return exp.series[0], exp.seed


# ---- random numbers ------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 7, 2**32 - 1, 2**32, 2**100 + 3, 2**130 + 1])
def test_key_stream_is_the_layer_stream_spawned(seed):
    """Block b's stream is child b of the layer's SeedSequence: the spawn_key, extended; the
    batched construction (key_states) gives numpy's own SFC64 for every key and seed size."""
    child = streams.seed_sequence(seed, "SELU", 3, 5).spawn(4)[2]
    direct = streams.key_states(seed, "SELU", [(3, 5, 2)])
    assert np.array_equal(np.random.SFC64(child).random_raw(8), raw(direct, 8))
    keys = [(0, 0, 0), (31, 64, 1), (2**31, 7, 2**32 - 1)]
    got = streams.key_states(seed, "SELU", keys)
    for i, key in enumerate(keys):
        numpy_own = np.random.SFC64(np.random.SeedSequence(seed, spawn_key=(streams._key("SELU"), *key)))
        assert np.array_equal(got[i], numpy_own.state["state"]["state"])  # numpy's own seeding, to the bit
        assert np.array_equal(raw(got[i:i + 1], 8), numpy_own.random_raw(8))
    one, two = streams.key_states(7, "SELU", [(3, 5, 1), (3, 5, 2)])
    assert not np.array_equal(raw(one[None], 8), raw(two[None], 8))


class _Words(np.random.bit_generator.ISeedSequence):
    """A seed sequence that hands out given words: numpy's SFC64 seeds itself from them."""

    def __init__(self, words):
        self.words = np.asarray(words, np.uint64)

    def generate_state(self, n_words, dtype=np.uint32):
        assert n_words == 3 and dtype == np.uint64
        return self.words.copy()


def test_sfc64_states_seed_as_numpy_does():
    """sfc64_states from any 3 words is numpy's SFC64 seeded with those words (its 12 discarded
    outputs included), on words that wrap every addition."""
    words = np.array([[0, 0, 0], [1, 2, 3], [2**64 - 1, 2**64 - 1, 2**64 - 1], [2**63, 12345, 2**64 - 7]],
                     np.uint64)
    got = streams.sfc64_states(words)
    for row, w in zip(got, words, strict=True):
        assert np.array_equal(row, np.random.SFC64(_Words(w)).state["state"]["state"])


@pytest.mark.parametrize("seed", [0, 2**100 + 3])
def test_weight_streams_are_rows_of_one_seed_sequence_per_64(seed):
    """Weight stream i of a trial: row i % 64 of the SeedSequence (crc32(label), trial, WEIGHTS,
    i // 64)'s words as SFC64 seeds, whichever first and count ask for it; trials, labels and
    seeds give other streams."""
    def direct(label, trial, i):
        seq = np.random.SeedSequence(seed, spawn_key=(streams._key(label), trial, streams.WEIGHTS, i // 64))
        return np.random.SFC64(_Words(seq.generate_state(192, np.uint64)[3 * (i % 64):3 * (i % 64) + 3]))

    span = streams.weight_states(seed, "SELU", 2, 60, 10)  # across two SeedSequences
    for j, i in enumerate(range(60, 70)):
        assert np.array_equal(span[j], direct("SELU", 2, i).state["state"]["state"])
        assert np.array_equal(streams.weight_states(seed, "SELU", 2, i, 1)[0], span[j])
    span[0] = 0  # a fresh array: the cache is not written through
    fresh = streams.weight_states(seed, "SELU", 2, 60, 1)[0]
    assert np.array_equal(fresh, direct("SELU", 2, 60).state["state"]["state"])
    others = [streams.weight_states(seed, "SELU", 3, 60, 1), streams.weight_states(seed, "ReLU", 2, 60, 1),
              streams.weight_states(seed + 1, "SELU", 2, 60, 1), streams.key_states(seed, "SELU", [(2, 61, 0)])]
    for other in others:
        assert not np.array_equal(other[0, :3], streams.weight_states(seed, "SELU", 2, 60, 1)[0, :3])


def test_normals_advance_each_state_by_the_raw_words_they_took(backend):
    """After normals, each state row is where numpy's own SFC64 is after the step's raw words
    (words_for): a stream drawn again (the truncated init's redraws) goes on, never repeats."""
    from snn_lab.simulate.backends.numpy import words_for

    states = streams.key_states(3, "A", [(0, 0, 0), (0, 0, 1)])
    for dtype, per in ((np.float32, 100), (np.float64, 101), (np.float64, 1)):
        start = states.copy()
        backends.get(backend).normals(states, np.empty(2 * per, dtype), 1.0)
        for row, first in zip(states, start, strict=True):
            gen = numpy_sfc64(first)
            gen.random_raw(words_for(per, np.dtype(dtype)))
            assert np.array_equal(row, gen.state["state"]["state"])


def test_streams_take_numpy_integer_seeds_and_refuse_what_seed_sequence_refuses():
    for states in (streams.key_states, lambda seed, label, keys: streams.weight_states(seed, label, 0, 1, 2)):
        numpy_seed = states(np.int64(9), "A", [(0, 1, 0)])
        assert np.array_equal(numpy_seed, states(9, "A", [(0, 1, 0)]))
        with pytest.raises(ValueError, match="non-negative"):
            states(-1, "A", [(0, 1, 0)])
        with pytest.raises(TypeError):
            states(1.5, "A", [(0, 1, 0)])


LONG = np.longdouble  # 64-bit mantissa on x86: a reference more precise than float64
PI = LONG("3.14159265358979323846264338327950288")


def box_muller_reference(words_for, size: int, dtype, pairs: int, scale: float):
    """Textbook Box-Muller with np.log/np.cos/np.sin in long double, on the same raw words.

    u1 and the float32 angle are rounded as the engine rounds them (the uniforms' own
    resolution); everything after that is computed more precisely than float64.
    Returns the values and their radii.
    """
    out = np.empty(size, LONG)
    radius = np.empty(size, LONG)
    for start in range(0, size, 2 * pairs):
        m = min(2 * pairs, size - start)
        k = (m + 1) // 2
        if dtype == np.float32:
            u = words_for(k).view(np.uint32)
            u1 = ((u[:k].astype(np.float32) + np.float32(0.5)) * np.float32(2.0 ** -32)).astype(LONG)
            theta = (u[k:].view(np.int32).astype(np.float32) * np.float32(2 * math.pi * 2.0 ** -32)).astype(LONG)
        else:
            w = words_for(k + (k + 1) // 2)
            u1 = (((w[:k] >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0 ** -53).astype(LONG)
            theta = 2 * PI * w[k:].view(np.uint32)[:k].astype(LONG) / LONG(2.0 ** 32)
        r = LONG(scale) * np.sqrt(-2 * np.log(u1))
        out[start:start + k] = r * np.cos(theta)
        out[start + k:start + m] = (r * np.sin(theta))[:m - k]
        radius[start:start + k] = r
        radius[start + k:start + m] = r[:m - k]
    return out, radius.astype(np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [1, 2, 99, 100, 301, 20_000])
def test_normals_are_box_muller_on_the_raw_words(dtype, size, backend, small_blocks, monkeypatch):
    if size > 1000:
        monkeypatch.setattr(backends, "PAIRS", 4096)  # steps of realistic size
    fast = normals(backend, np.random.SFC64(11), np.empty(size, dtype), 0.7)
    ref, r = box_muller_reference(np.random.SFC64(11).random_raw, size, dtype, backends.PAIRS, 0.7)
    err = np.abs(fast - ref).astype(np.float64)
    if dtype == np.float64:
        # A few float64 ulp: 4096-entry table, Taylor remainder below 1e-16, rounding.
        ulps = 1.5e-15 if np.finfo(LONG).eps < 1e-18 else 5e-15
        assert np.all(err <= ulps * (1 + r)), err.max()
    else:  # float32 log, sqrt, cos, sin: a few float32 ulp
        assert np.all(err <= 2e-6 * (1 + r)), err.max()


def normal_cdf(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.vectorize(math.erf)(z / math.sqrt(2.0)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_normals_are_standard_normals(dtype, backend):
    """Moments, tails and the whole distribution (Kolmogorov-Smirnov) of 2^20 draws."""
    n = 1 << 20
    z = normals(backend, np.random.SFC64(2024), np.empty(n, dtype)).astype(np.float64)
    limit = 5.0  # standard errors; about 6e-7 two-sided per check
    assert abs(z.mean()) < limit * math.sqrt(1 / n)
    assert abs(z.var() - 1) < limit * math.sqrt(2 / n)
    assert abs(np.mean(z ** 4) - 3) < limit * math.sqrt(96 / n)
    p3 = math.erfc(3 / math.sqrt(2))  # P(|z| > 3)
    assert abs(np.mean(np.abs(z) > 3) - p3) < limit * math.sqrt(p3 * (1 - p3) / n)
    # Kolmogorov-Smirnov on 20000 of them: sqrt(n) D > 1.95 has probability 0.001.
    s = np.sort(z[::n // 20000][:20000])
    cdf = normal_cdf(s)
    m = s.size
    d = max(np.max(np.arange(1, m + 1) / m - cdf), np.max(cdf - np.arange(m) / m))
    assert math.sqrt(m) * d < 1.95
    # The two halves of a step (cos and sin) are uncorrelated.
    k = backends.PAIRS
    assert abs(np.mean(z[:k] * z[k:2 * k])) < limit / math.sqrt(k)


# ---- weights and inputs --------------------------------------------------------------------

INITS = sorted(INITIALIZERS)


@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_layer_weights_do_not_depend_on_the_thread_count(init, dtype, backend, small_blocks):
    s, seed = series_of(f"width: 37\ndtype: {dtype}\nseries: [{{activation: selu, init: {init}}}]")
    one = streams.layer_weights(s, seed, 2, 3, threads=1, backend=backend)
    for threads in (2, 3, 5):
        assert np.array_equal(streams.layer_weights(s, seed, 2, 3, threads=threads, backend=backend), one)
    assert not np.array_equal(streams.layer_weights(s, seed, 2, 4, threads=1, backend=backend), one)


def test_layer_weights_are_row_blocks_each_from_its_own_stream(backend, small_blocks):
    """lecun_normal: rows [b R, (b + 1) R) are N(0, 1/width) drawn from block b's stream."""
    s, seed = series_of("width: 37\ndtype: float64\nseries: [{label: A, activation: selu}]")
    w = streams.layer_weights(s, seed, 1, 2, threads=3, backend=backend)
    rows = streams.block_rows(37)
    assert rows == 96 // 37
    sd = math.sqrt(1 / 37)
    blocks = -(-37 // rows)
    for b, start in enumerate(range(0, 37, rows)):
        block = w[start:start + rows]
        z = normals(backend, streams.weight_states(seed, "A", 1, (2 - 1) * blocks + b, 1), np.empty(block.shape))
        np.testing.assert_allclose(block, z * sd, rtol=1e-15, atol=0)


@pytest.mark.parametrize("init", INITS)
def test_weights_follow_the_initializer(init, backend):
    """Per-weight variance (SE-based) and support of each initializer, on the engine's draw."""
    s, seed = series_of(f"width: 400\ndtype: float64\nseries: [{{activation: selu, init: {init}}}]")
    w = streams.layer_weights(s, seed, 0, 1, backend=backend)
    ini = INITIALIZERS[init]
    m2 = np.mean(w ** 2)
    se = math.sqrt((np.mean(w ** 4) - m2 ** 2) / w.size)
    assert abs(m2 - ini.variance(400, 400)) < 5 * se
    assert abs(w.mean()) < 5 * math.sqrt(m2 / w.size)
    bound = {"uniform": 1.0, "truncated": TRUNCATION}.get(ini.kind)
    if bound is not None:
        assert np.abs(w).max() < bound * ini.scale(400, 400)


def test_layer_weights_normalizes_each_unit(backend):
    s, seed = series_of("width: 50\ndtype: float64\nseries: [{activation: selu, normalize_weights: true, gain: 1.5}]")
    w = streams.layer_weights(s, seed, 0, 1, backend=backend)
    np.testing.assert_allclose(w.sum(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose((w ** 2).sum(axis=0), 1.5 ** 2, rtol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_input_values_are_row_blocks_of_normals(dtype, backend, small_blocks):
    s, seed = series_of(f"width: 21\nbatch: 30\ndtype: {dtype}\ninput: {{mean: 0.5, var: 4.0}}\n"
                        "series: [{label: A, activation: selu}]")
    x = streams.input_values(s, seed, 1, threads=1, backend=backend)
    assert np.array_equal(streams.input_values(s, seed, 1, threads=4, backend=backend), x)
    rows = streams.block_rows(21)
    for b, start in enumerate(range(0, 30, rows)):
        block = x[start:start + rows]
        z = normals(backend, streams.key_states(seed, "A", [(1, 0, b)]), np.empty(block.shape, dtype), 2.0)
        np.testing.assert_allclose(block, z + np.dtype(dtype).type(0.5), rtol=0, atol=0)


# ---- statistics ----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_block_sums_equal_exact_sums(dtype, backend):
    """Float64 accumulation: against math.fsum (exactly rounded) of the exact float64 values."""
    x = (np.random.default_rng(5).standard_normal(10_001) * 3 + 0.4).astype(dtype)
    s1, s2 = backends.get(backend).sums(x)
    exact = x.astype(np.float64)
    assert s1 == pytest.approx(math.fsum(exact), rel=1e-14, abs=1e-12)
    assert s2 == pytest.approx(math.fsum(exact * exact), rel=1e-14)


def plain_trial(series, seed: int, trial: int, backend: str):
    """Straightforward propagation in the series' dtype on whole arrays; float64 np.mean/np.var."""
    act = series.make_activation()
    x = streams.input_values(series, seed, trial, threads=1, backend=backend)
    rows = [(x.mean(dtype=np.float64), x.var(dtype=np.float64))] * 2
    stats = [(*rows[0], *rows[1])]
    for layer in range(1, series.depth + 1):
        h = x @ streams.layer_weights(series, seed, trial, layer, threads=1, backend=backend)
        x = act.fn(h)
        stats.append((x.mean(dtype=np.float64), x.var(dtype=np.float64),
                      h.mean(dtype=np.float64), h.var(dtype=np.float64)))
    return np.array(stats)


CASES = [
    "width: 33\ndepth: 5\nbatch: 27\ndtype: float64\nseries: [{activation: selu}]",
    "width: 33\ndepth: 5\nbatch: 27\ndtype: float32\nseries: [{activation: selu}]",
    "width: 40\ndepth: 4\nbatch: 31\ndtype: float32\ninput: {mean: 1.0, var: 0.5}\n"
    "series: [{activation: relu, init: he_normal}]",
    "width: 16\ndepth: 3\nbatch: 50\ndtype: float64\ninput: {mean: 300.0, var: 0.01}\n"
    "series: [{activation: linear}]",  # mean^2 / var = 9e6: the two-pass fallback
    "width: 24\ndepth: 4\nbatch: 20\ndtype: float64\nseries: [{activation: tanh, init: lecun_uniform}]",
]


# The README's precision. float64: the compiled activation is within a few ulps of numpy's,
# so the statistics agree to about 1e-15. float32: the activation's last-bit differences
# (float32 ulps, 6e-8) propagate through the layers.
PRECISION = {"float64": (1e-14, 1e-12), "float32": (1e-6, 1e-5)}


@pytest.mark.parametrize("text", CASES)
def test_blocked_statistics_equal_plain_float64_statistics(text, backend, small_blocks):
    """Against numpy's activation and np.mean/np.var on whole arrays: mean within `mean_tol`
    of the rms, variance within `var_tol` relative (PRECISION, by dtype)."""
    s, seed = series_of(text)
    fast = engine.run_trial(s, seed, 1, threads=2, backend=backend)
    plain = plain_trial(s, seed, 1, backend)
    mean_tol, var_tol = PRECISION[s.dtype]
    rms = np.sqrt(plain[:, [1, 3]] + plain[:, [0, 2]] ** 2)
    assert np.all(np.abs(fast[:, [0, 2]] - plain[:, [0, 2]]) <= mean_tol * rms)
    np.testing.assert_allclose(fast[:, [1, 3]], plain[:, [1, 3]], rtol=var_tol, atol=0)


THREAD_CASES = [
    "width: 30\ndepth: 6\nbatch: 41\ndtype: float32\nseries: [{activation: selu}]",
    "width: 30\ndepth: 6\nbatch: 41\ndtype: float64\nseries: [{activation: relu, init: lecun_truncated}]",
    "width: 30\ndepth: 6\nbatch: 41\ndtype: float32\n"
    "series: [{activation: selu, dropout: 0.1, bias_var: 0.2, normalize_weights: true}]",
]


@pytest.mark.parametrize("text", THREAD_CASES)
def test_results_do_not_depend_on_the_thread_count(text, backend, small_blocks):
    s, seed = series_of(text)
    runs = []
    for threads in (1, 2, 3, 8):
        samples: dict[int, np.ndarray] = {}
        runs.append((engine.run_trial(s, seed, 0, samples=samples, threads=threads, backend=backend), samples))
    stats, samples = runs[0]
    assert np.all(np.isfinite(stats))
    for other, other_samples in runs[1:]:
        assert np.array_equal(other, stats)
        assert samples.keys() == other_samples.keys()
        assert all(np.array_equal(samples[k], other_samples[k]) for k in samples)


def test_default_block_sizes_and_threads_agree_with_one_thread(backend):
    """The real block sizes, crossing block boundaries (batch 3000 x width 64 = 3 stats blocks)."""
    s, seed = series_of("width: 64\ndepth: 3\nbatch: 3000\ndtype: float32\nseries: [{activation: selu}]")
    assert np.array_equal(engine.run_trial(s, seed, 0, threads=1, backend=backend),
                          engine.run_trial(s, seed, 0, threads=2, backend=backend))


# ---- memory --------------------------------------------------------------------------------

def traced_peak(run) -> int:
    """tracemalloc's peak over run(), after a first run has made the pool's threads."""
    run()
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("extra", ["selu", "selu, init: lecun_truncated", "tanh, init: orthogonal", "selu, dropout: 0.1", "gelu",
                                   "relu, norm: batch", "tanh, norm: layer", "selu, residual: 0.2",
                                   "{name: relu, scale: nf}, residual: {alpha: 0.2, beta: expected}, dropout: 0"])
def test_memory_needed_bounds_what_a_trial_allocates(dtype, extra, backend):
    """tracemalloc sees every numpy buffer: the peak stays under the guard's estimate."""
    s, seed = series_of(f"width: 256\ndepth: 3\nbatch: 700\ndtype: {dtype}\n"
                        f"series: [{{activation: {extra}}}]")
    item = np.dtype(dtype).itemsize
    for threads in (1, 2):
        peak = traced_peak(lambda: engine.run_trial(s, seed, 0, threads=threads, backend=backend))
        assert 256 * 256 * item + 2 * 700 * 256 * item <= peak <= memory.memory_needed(s, threads)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_memory_needed_bounds_a_small_series(dtype, backend, monkeypatch):
    """Small layers hold a group of trials at once: the estimate counts the group."""
    monkeypatch.setenv("SNN_LAB_THREADS", "2")
    s, seed = series_of(f"width: 128\ndepth: 3\nbatch: 256\ndtype: {dtype}\nseries: [{{activation: selu}}]")
    assert traced_peak(lambda: engine.run_series(s, seed, 16, backend=backend)) <= memory.memory_needed(s)


@pytest.mark.parametrize("extra", ["", ", norm: batch", ", norm: layer, residual: 0.5"])
def test_memory_needed_bounds_the_backward_pass(backend, extra):
    s, seed = series_of(f"width: 256\ndepth: 8\nbatch: 128\ndtype: float64\nseries: [{{activation: selu{extra}}}]")
    peak = traced_peak(lambda: engine.run_series(s, seed, 1, measure=("gradients",), backend=backend))
    assert 8 * 128 * 256 * 8 <= peak <= memory.memory_needed(s, gradients=True)


# ---- small networks: trials stacked in groups ------------------------------------------------

def trial_by_trial(s, seed: int, trials: int, backend: str, measure=()):
    """Each trial alone (run_trial, threads=2), stacked as run_series stacks them."""
    samples: dict[int, np.ndarray] = {}
    stats = np.empty((trials, s.depth + 1, len(engine.STATS) + 4))
    for t in range(trials):
        stats[t, :, :4] = engine.run_trial(s, seed, t, samples=samples if t == 0 else None, threads=2,
                                           measure=measure, probes=stats[t, :, 4:], backend=backend)
    return stats, samples


SMALL_CASES = [  # default block sizes
    "width: 32\ndepth: 6\nbatch: 50\ndtype: float32\nseries: [{activation: selu}]",
    "width: 33\ndepth: 6\nbatch: 27\ndtype: float64\nseries: [{activation: selu}]",
    "width: 20\ndepth: 5\nbatch: 9\ndtype: float64\ninput: {mean: 300.0, var: 0.01}\n"
    "series: [{activation: linear}]",  # the two-pass fallback
    "width: 40\ndepth: 5\nbatch: 31\ndtype: float32\nseries: [{activation: relu, init: he_normal, bias_var: 0.3}]",
    "width: 128\ndepth: 4\nbatch: 256\ndtype: float32\nseries: [{activation: tanh, init: glorot_normal}]",
    "width: 256\ndepth: 3\nbatch: 200\ndtype: float64\nseries: [{activation: selu}]",
    "width: 300\ndepth: 3\nbatch: 100\ndtype: float64\nseries: [{activation: selu}]",  # 2 weight blocks
    "width: 30\ndepth: 5\nbatch: 41\ndtype: float32\n"
    "series: [{activation: selu, dropout: 0.1, bias_var: 0.2, normalize_weights: true}]",
    "width: 30\ndepth: 5\nbatch: 41\ndtype: float64\nseries: [{activation: relu, init: lecun_truncated}]",
    "width: 24\ndepth: 4\nbatch: 20\ndtype: float64\nseries: [{activation: elu, init: lecun_uniform}]",
    "width: 40\ndepth: 4\nbatch: 33\ndtype: float32\nseries: [{activation: relu, norm: batch, bias_var: 0.1}]",
    "width: 40\ndepth: 4\nbatch: 33\ndtype: float64\nseries: [{activation: tanh, norm: layer}]",
    "width: 30\ndepth: 5\nbatch: 41\ndtype: float32\n"
    "series: [{activation: selu, dropout: 0.1, residual: {alpha: 0.3, beta: expected}, norm: batch}]",
    "width: 24\ndepth: 4\nbatch: 20\ndtype: float32\nseries: [{activation: gelu}]",  # no compiled loop
    "width: 200\ndepth: 70\nbatch: 8\ndtype: float32\nseries: [{activation: selu}]",
]


@pytest.mark.parametrize("text", SMALL_CASES)
@pytest.mark.parametrize("threads", ["1", "2", "3"])
def test_small_network_groups_equal_each_trial_alone(text, threads, backend, monkeypatch):
    """run_series on small layers (trials stacked, groups side by side) gives every trial
    exactly the numbers it gets alone, whatever the thread count and however the trials fall
    into groups (7 trials: groups of 4, 8 or 12 split over the threads)."""
    monkeypatch.setenv("SNN_LAB_THREADS", threads)
    s, seed = series_of(text)
    assert engine.trials_stacked(s) == engine.GROUP_PER_THREAD
    run = engine.run_series(s, seed, 7, backend=backend)
    stats, samples = trial_by_trial(s, seed, 7, backend)
    assert np.array_equal(run.stats, stats, equal_nan=True)
    assert run.samples.keys() == samples.keys()
    assert all(np.array_equal(run.samples[k], samples[k]) for k in samples)


@pytest.mark.parametrize("text", [
    "width: 64\ndepth: 4\nbatch: 3000\ndtype: float64\nseries: [{activation: tanh, bias_var: 0.1}]",
    "width: 70\ndepth: 3\nbatch: 2500\ndtype: float32\n"
    "series: [{activation: selu, dropout: 0.1, normalize_weights: true, init: lecun_uniform}]"])
@pytest.mark.parametrize("threads", ["1", "2", "3"])
def test_larger_trials_side_by_side_equal_each_trial_alone(text, threads, backend, monkeypatch):
    """Layers too large to stack still run one trial per thread side by side (a last round of
    fewer trials shares its chunks out): every trial gets the numbers it gets alone, with its
    chunks on two threads (5 trials: rounds of 1, 2 or 3). Chunks and blocks of a few rows."""
    monkeypatch.setenv("SNN_LAB_THREADS", threads)
    monkeypatch.setattr(engine, "PRODUCT_BLOCK", 64 * 256)
    monkeypatch.setattr(engine, "STATS_BLOCK", 64 * 64)
    s, seed = series_of(text)
    assert engine.trials_stacked(s) == 1
    run = engine.run_series(s, seed, 5, measure=("dead", "correlation"), backend=backend)
    stats, samples = trial_by_trial(s, seed, 5, backend, ("dead", "correlation"))
    assert np.array_equal(run.stats, stats, equal_nan=True)
    assert all(np.array_equal(run.samples[k], samples[k]) for k in samples)


@pytest.mark.parametrize("measure", [("dead",), ("correlation",), ("dead", "correlation")])
def test_small_network_probes_equal_each_trial_alone(measure, backend, monkeypatch):
    monkeypatch.setenv("SNN_LAB_THREADS", "2")
    s, seed = series_of("width: 40\ndepth: 5\nbatch: 33\ndtype: float32\nseries: [{activation: relu, init: he_normal}]")
    run = engine.run_series(s, seed, 5, measure=measure, backend=backend)
    stats, _ = trial_by_trial(s, seed, 5, backend, measure)
    assert np.array_equal(run.stats, stats, equal_nan=True)


@pytest.mark.parametrize("text", [CASES[0], CASES[1], CASES[3]])
def test_small_network_statistics_equal_plain_float64_statistics(text, backend, monkeypatch):
    """The stacked path against the plain reference, to the README's precision."""
    monkeypatch.setenv("SNN_LAB_THREADS", "2")
    s, seed = series_of(text)
    fast = engine.run_series(s, seed, 3, backend=backend).stats
    mean_tol, var_tol = PRECISION[s.dtype]
    for t in range(3):
        plain = plain_trial(s, seed, t, backend)
        rms = np.sqrt(plain[:, [1, 3]] + plain[:, [0, 2]] ** 2)
        assert np.all(np.abs(fast[t][:, [0, 2]] - plain[:, [0, 2]]) <= mean_tol * rms)
        np.testing.assert_allclose(fast[t][:, [1, 3]], plain[:, [1, 3]], rtol=var_tol, atol=0)


@pytest.mark.parametrize("text", ["width: 16\ndepth: 9\nbatch: 10\ndtype: float32\nseries: [{activation: selu}]",
                                  "width: 256\ndepth: 9\nbatch: 600\ndtype: float32\nseries: [{activation: selu}]"])
def test_progress_counts_every_layer_and_an_interrupt_stops_it(text, monkeypatch):
    monkeypatch.setenv("SNN_LAB_THREADS", "2")
    s, seed = series_of(text)
    done = []
    engine.run_series(s, seed, 11, progress=done.append)
    assert sum(done) == 9 * 11

    def interrupt(n: int) -> None:
        done.append(n)
        if len(done) == 3:
            raise KeyboardInterrupt
    done.clear()
    with pytest.raises(KeyboardInterrupt):
        engine.run_series(s, seed, 11, progress=interrupt)
    assert len(done) == 3


# ---- the backends against each other -----------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backends_draw_the_same_normals_and_leave_the_stream_at_the_same_place(dtype):
    """Within a few ulps of the value (each backend's own log, sin and cos), same stream state."""
    for size in (1, 5, 20_001, 65_536, 100_003):
        outs, states = [], []
        for name in BACKENDS:
            gen = np.random.SFC64(size)
            outs.append(normals(name, gen, np.empty(size, dtype), 0.3))
            states.append(list(gen.state["state"]["state"]))
        ulp = float(np.finfo(dtype).eps)
        for other in outs[1:]:
            assert np.all(np.abs(other - outs[0]) <= 8 * ulp * (1.0 + np.abs(outs[0])))
        assert all(st == states[0] for st in states)


# The README's bound for the two backends, by dtype: (means, in units of the layer's rms;
# variances, relative). A layer's last-bit differences grow through the layers by at most the
# map's slope, so the bound holds for these depths in the ordered and critical phases.
BACKEND_BOUND = {"float64": (1e-12, 1e-12), "float32": (2e-5, 1e-4)}


@pytest.mark.skipif(len(BACKENDS) < 2, reason="the compiled backend was not built here")
@pytest.mark.parametrize("text", CASES + SMALL_CASES[3:])
def test_the_backends_agree_to_the_stated_bound(text):
    s, seed = series_of(text)
    measure = ("dead", "correlation")
    runs = [engine.run_series(s, seed, 2, measure=measure, backend=b).stats for b in BACKENDS]
    mean_tol, var_tol = BACKEND_BOUND[s.dtype]
    a, b = runs
    rms = np.sqrt(a[..., [1, 3]] + a[..., [0, 2]] ** 2)
    assert np.all(np.abs(a[..., [0, 2]] - b[..., [0, 2]]) <= mean_tol * rms)
    np.testing.assert_allclose(b[..., [1, 3]], a[..., [1, 3]], rtol=var_tol, atol=0)
    np.testing.assert_allclose(b[..., 6:], a[..., 6:], rtol=var_tol, atol=mean_tol)  # dead, correlation


@pytest.mark.parametrize("text", ["width: 300\ndepth: 3\nbatch: 100\ndtype: float64\nseries: [{activation: selu}]",
                                  "width: 512\ndepth: 3\nbatch: 400\ndtype: float64\nseries: [{activation: selu}]"])
def test_results_do_not_depend_on_the_blas_thread_count(text, backend, monkeypatch):
    """The engine runs BLAS on one thread and shares the products out itself: the same bits
    under 1 and 2 BLAS threads, on a shape whose product OpenBLAS rounds differently with 2
    threads (100 x 300 by 300 x 300, float64), small and large layers alike."""
    from threadpoolctl import threadpool_limits

    monkeypatch.setenv("SNN_LAB_THREADS", "2")
    s, seed = series_of(text)
    assert blas._blas_controller() is not None  # numpy's OpenBLAS: its threads can be limited
    runs = []
    for blas_threads in (1, 2):
        with threadpool_limits(blas_threads, user_api="blas"):
            runs.append(engine.run_series(s, seed, 3, backend=backend).stats)
    assert np.array_equal(runs[0], runs[1], equal_nan=True)
