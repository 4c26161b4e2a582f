"""The compiled loops (snn_lab.simulate.backends._kernels) against independent references:
numpy's libm-based activations, exact sums (math.fsum), numpy's SFC64, and each other across
instruction sets. Skipped when the package was installed without the compiled kernels."""

from __future__ import annotations

import math

import numpy as np
import pytest

_kernels = pytest.importorskip("snn_lab.simulate.backends._kernels")

from snn_lab.activations import ACTIVATIONS, make_activation  # noqa: E402

KINDS = {"linear": _kernels.LINEAR, "relu": _kernels.RELU, "leaky": _kernels.LEAKY, "elu": _kernels.ELU,
         "tanh": _kernels.TANH}  # Activation.kernel's names -> the C module's constants

SPECIAL = [0.0, -0.0, 1e-300, -1e-300, 5e-324, -5e-324, 1e-30, -1e-30, 1e-8, -1e-8, 0.3, -0.3,
           0.5, -0.5, 0.69, -0.69, 1.0, -1.0, 10.0, -10.0, 19.9, -20.1, 39.0, -39.0, 41.0, -41.0,
           88.0, -88.0, 700.0, -700.0, 1e30, -1e30, 3e38, -3e38, 1e300, -1e300,
           math.inf, -math.inf, math.nan]


def grid(dtype) -> np.ndarray:
    """Special values, a dense sweep of [-45, 45] and random magnitudes over many decades."""
    rng = np.random.default_rng(5)
    values = np.concatenate([SPECIAL, np.linspace(-45, 45, 200_001),
                             rng.standard_normal(50_000) * 10.0 ** rng.uniform(-30, 3, 50_000)])
    with np.errstate(over="ignore"):
        return values.astype(dtype)


def ulps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance in units in the last place of a's dtype (inf where only one is finite)."""
    tiny = np.finfo(a.dtype).tiny
    spacing = np.spacing(np.maximum(np.abs(b), tiny).astype(a.dtype)).astype(np.float64)
    return np.abs(a.astype(np.float64) - b.astype(np.float64)) / spacing


def activate(kind, p1, p2, h, x, sums=True):
    """One activate_many block over all of h: its (sum h, sum h^2, sum x, sum x^2), or None."""
    out = np.empty((1, 1, 4)) if sums else None
    _kernels.activate_many(kind, p1, p2, h, x, 1, max(h.size, 1), out)
    return tuple(out.reshape(4)) if sums else None


KERNEL_ACTIVATIONS = sorted(name for name in ACTIVATIONS if make_activation(name).kernel is not None)


@pytest.mark.parametrize("name", KERNEL_ACTIVATIONS + ["leaky_relu(slope=0)", "leaky_relu(slope=0.2)", "elu(alpha=0.5)"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_activation_matches_numpy_to_a_few_ulps(name, dtype):
    """Each compiled activation against the Activation's numpy fn computed in float64 (libm's
    expm1 and tanh) and rounded once: within 2 ulps of the dtype for the elu family (half an
    ulp from rounding the reference, the rest the polynomial's and the final rounding), 3 for
    tanh (-e / (e + 2) with e = expm1(-2|v|) rounds three times near |tanh| = 1); the same
    infinities and NaNs."""
    base, _, rest = name.partition("(")
    params = dict(p.split("=") for p in rest.rstrip(")").split(", ")) if rest else {}
    act = make_activation(base, **{k: float(v) for k, v in params.items()})
    h = grid(dtype)
    x = np.empty_like(h)
    kind, p1, p2 = act.kernel
    activate(KINDS[kind], p1, p2, h, x)
    with np.errstate(all="ignore"):
        ref = act.fn(h.astype(np.float64)).astype(dtype)
    assert np.array_equal(np.isnan(x), np.isnan(ref))
    finite = np.isfinite(ref)
    assert np.array_equal(x[~finite & ~np.isnan(ref)], ref[~finite & ~np.isnan(ref)])
    err = ulps(x[finite], ref[finite])
    assert err.max() <= (3.0 if base == "tanh" else 2.0), (name, float(err.max()), float(h[finite][np.argmax(err)]))
    # Signed zeros as numpy: tanh(-0.0) is -0.0.
    if base == "tanh":
        assert np.signbit(x[h == 0]).tolist() == np.signbit(h[h == 0]).tolist()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [0, 1, 15, 16, 17, 1023, 1024, 1025, 100_003])
def test_sums_are_float64_sums_of_the_entries(dtype, n):
    """Within the bound of any float64 summation order (n eps sum |x|) of the exact fsum."""
    x = (np.random.default_rng(n).standard_normal(n) * 3 + 0.5).astype(dtype)
    s1, s2 = _kernels.sums(x)
    exact = x.astype(np.float64)
    eps = np.finfo(np.float64).eps
    assert abs(s1 - math.fsum(exact)) <= n * eps * np.abs(exact).sum()
    assert abs(s2 - math.fsum(exact * exact)) <= n * eps * (exact * exact).sum()
    h, out = x.copy(), np.empty_like(x)
    a1, a2, b1, b2 = activate(_kernels.LINEAR, 0.0, 0.0, h, out)
    assert (a1, a2) == (b1, b2) == (s1, s2)  # the same lanes in the same order
    assert np.array_equal(out, x)


def test_sums_of_an_exactly_summable_array_are_exact():
    """Integers (exact in float64 at any order): the sums are exactly fsum's."""
    x = np.arange(-5000, 7001, dtype=np.float32)
    assert _kernels.sums(x) == (math.fsum(x), math.fsum(x.astype(np.float64) ** 2))


def test_overflow_is_reported_as_inf_and_nan_not_hidden():
    x = np.array([3e38, 3e38, -1.0], np.float32)
    s1, s2 = _kernels.sums(x)
    assert s1 == pytest.approx(6e38 - 1) and s2 == pytest.approx(1.8e77)  # float64 does not overflow
    y = np.array([1e300, 1e300, math.nan], np.float64)
    s1, s2 = _kernels.sums(y[:2])
    assert s1 == 2e300 and s2 == math.inf
    assert all(math.isnan(v) for v in _kernels.sums(y))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_instruction_set_gives_the_same_bits(dtype):
    """The baseline, AVX2 and AVX-512 copies of the loops: identical normals, activations and
    sums (no fused multiply-add, fixed lane order)."""
    sets = _kernels.available()
    h = grid(dtype)
    results = []
    previous = _kernels.current()
    try:
        for name in sets:
            _kernels.use(name)
            out = []
            for act in KERNEL_ACTIVATIONS:
                kind, p1, p2 = make_activation(act).kernel
                x = np.empty_like(h)
                out.append((x, activate(KINDS[kind], p1, p2, h, x)))
            state = np.array([1, 2, 3, 1], np.uint64)
            z = np.empty(70_001, dtype)
            _kernels.normals(state, z, 0.9, 4096)
            out.append((z, _kernels.sums(h[np.isfinite(h)])))
            results.append(out)
    finally:
        _kernels.use(previous)
    for other in results[1:]:
        for (a, sa), (b, sb) in zip(results[0], other):
            assert np.array_equal(a, b, equal_nan=True)
            assert np.array_equal(np.array(sa), np.array(sb), equal_nan=True)


def test_kernel_errors_are_clear():
    with pytest.raises(TypeError, match="float32 or float64"):
        _kernels.sums(np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="differ"):
        activate(_kernels.RELU, 0.0, 0.0, np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="state"):
        _kernels.normals(np.zeros(3, np.uint64), np.zeros(10), 1.0, 8)
    with pytest.raises(ValueError, match="positive"):
        _kernels.normals(np.zeros(4, np.uint64), np.zeros(10), 1.0, 0)
    with pytest.raises(ValueError, match="unknown kernel set"):
        _kernels.use("sse9")
    assert not hasattr(_kernels, "normals_words") and not hasattr(_kernels, "words_needed")


def test_kernel_sets_are_named_by_instruction_set():
    """baseline always, then avx2 and avx512 where this build and CPU have them, narrowest first."""
    sets = _kernels.available()
    assert sets == ["baseline", "avx2", "avx512"][:len(sets)]
    assert _kernels.current() == sets[-1]


def sfc64_state(seed: int) -> np.ndarray:
    return np.array(np.random.SFC64(seed).state["state"]["state"], np.uint64)


@pytest.mark.parametrize("dtype, words", [(np.float64, (8 + 4) + (2 + 1)), (np.float32, 8 + 2)])
def test_normals_take_the_documented_words_of_sfc64(dtype, words):
    """20 entries in steps of 16 and 4 (8 and 2 pairs): float64 takes k + ceil(k / 2) words a
    step, float32 k; the state ends where numpy's SFC64 is after that many raw words."""
    state, reference = sfc64_state(7), np.random.SFC64(7)
    _kernels.normals(state, np.empty(20, dtype), 1.0, 8)
    reference.random_raw(words)
    assert state.tolist() == list(reference.state["state"]["state"])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_normals_are_box_muller_of_numpys_sfc64_words(dtype):
    """Each step of k pairs from numpy's own SFC64 words (u1 and the angle rounded to the dtype
    as the kernel does), then numpy's log, cos and sin in float64: r cos t in the step's first k
    entries, r sin t in the next, within a few ulps of max(r, 1) in the dtype."""
    n, pairs, scale = 1001, 64, 0.8
    z = np.empty(n, dtype)
    _kernels.normals(sfc64_state(11), z, scale, pairs)
    words, ref, radius = np.random.SFC64(11), np.empty(n), np.empty(n)
    for start in range(0, n, 2 * pairs):
        size = min(n - start, 2 * pairs)
        k = (size + 1) // 2
        if dtype == np.float64:
            w = words.random_raw(k + (k + 1) // 2)
            u1 = (w[:k] >> np.uint64(11)).astype(np.float64) * 2.0**-53 + 2.0**-54
            t = w[k:].view(np.int32)[:k].astype(np.float64) * (2 * np.pi * 2.0**-32)
        else:
            w = words.random_raw(k).view(np.uint32)
            u1 = (w[:k].astype(np.float32) + np.float32(0.5)) * np.float32(2.0**-32)
            t = w[k:].view(np.int32).astype(np.float32) * np.float32(2 * np.pi * 2.0**-32)
        r = np.sqrt(-2 * scale**2 * np.log(u1.astype(np.float64)))
        t = t.astype(np.float64)
        ref[start:start + k], ref[start + k:start + size] = r * np.cos(t), (r * np.sin(t))[:size - k]
        radius[start:start + k], radius[start + k:start + size] = r, r[:size - k]
    tolerance = 8 * np.spacing(np.maximum(radius, 1.0).astype(dtype)).astype(np.float64)
    assert np.all(np.abs(z - ref) <= tolerance)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_normals_of_many_streams_are_each_streams_own(dtype):
    """One call for a group's streams (rows of state) gives each slice what its stream gives
    alone, and leaves each state where that stream would be."""
    states = np.array([np.random.SFC64(s).state["state"]["state"] for s in range(5)], np.uint64)
    together = np.empty((5, 1001), dtype)
    advanced = states.copy()
    _kernels.normals(advanced, together, 0.8, 64)
    for i in range(5):
        alone, state = np.empty(1001, dtype), states[i].copy()
        _kernels.normals(state, alone, 0.8, 64)
        assert np.array_equal(together[i], alone) and np.array_equal(advanced[i], state)
    with pytest.raises(ValueError, match="divide"):
        _kernels.normals(states[:3].copy(), np.empty(1000, dtype), 1.0, 64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activate_without_its_sums_writes_the_same_bits(dtype):
    """activate_many without sums (the training's forward) writes the same activations,
    every kind and instruction set, and returns None."""
    h = grid(dtype)
    previous = _kernels.current()
    try:
        for name in _kernels.available():
            _kernels.use(name)
            for act in KERNEL_ACTIVATIONS:
                kind, p1, p2 = make_activation(act).kernel
                x, y = np.empty_like(h), np.empty_like(h)
                activate(KINDS[kind], p1, p2, h, x)
                assert activate(KINDS[kind], p1, p2, h, y, False) is None
                assert np.array_equal(x, y, equal_nan=True), (name, act)
    finally:
        _kernels.use(previous)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, scale", [("selu", 1.0), ("elu", 1.0), ("selu", 0.7)])
def test_elu_grad_is_the_derivative_times_the_signal(name, scale, dtype):
    """elu_grad(p, y = phi(p), g) = phi'(p) g against act.deriv in float64 (numpy's exp): within
    4 ulp of lambda alpha |g| plus 2 ulp, from y's rounding; NaN stays NaN; every instruction set
    gives the same bits."""
    act = make_activation(name, scale)
    _, p1, p2 = act.kernel
    p = grid(dtype)
    y = act.fn(p)
    g = np.random.default_rng(6).standard_normal(p.size).astype(dtype)
    previous, outs = _kernels.current(), []
    try:
        for kernel_set in _kernels.available():
            _kernels.use(kernel_set)
            outs.append(np.empty_like(p))
            _kernels.elu_grad(p1, p2, p, y, g, outs[-1])
    finally:
        _kernels.use(previous)
    for other in outs[1:]:
        assert np.array_equal(outs[0], other, equal_nan=True)
    with np.errstate(over="ignore", invalid="ignore"):
        exact = act.deriv(p.astype(np.float64)) * g.astype(np.float64)
    eps = np.finfo(dtype).eps
    got = outs[0].astype(np.float64)
    assert np.array_equal(np.isnan(got), np.isnan(exact))
    ok = ~np.isnan(exact)
    assert np.all(np.abs(got - exact)[ok] <= (4 * eps * p2 * np.abs(g) + 2 * eps * np.abs(exact))[ok])
    with pytest.raises(ValueError, match="differ"):
        _kernels.elu_grad(p1, p2, p, y, g, np.empty(3, dtype))
