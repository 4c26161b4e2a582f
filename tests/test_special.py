"""snn_lab.special against 50-digit mpmath and against the C library's erf/erfc."""

import math

import mpmath
import numpy as np
import pytest

from snn_lab import special

MP = mpmath.MPContext()
MP.dps = 50
SQRT2 = math.sqrt(2.0)
EPS64 = np.finfo(np.float64).eps


def _ndtr_mp(x):
    return MP.erfc(-x / MP.sqrt(2)) / 2


def _log_ndtr_mp(x):
    # log1p(-Phi(-x)) on the right: log(Phi(x)) would need hundreds of digits at x = 38
    return MP.log1p(-_ndtr_mp(-x)) if x > 0 else MP.log(_ndtr_mp(x))


def _erfcx_mp(x):
    if x < 1e6:
        return MP.exp(x * x) * MP.erfc(x)
    # mpmath's erfc overflows a float for x > ~1e154; three asymptotic terms are exact to 1e-36 here
    t = 1 / (2 * x * x)
    return (1 - t + 3 * t * t) / (x * MP.sqrt(MP.pi))


REFERENCE = {
    "erf": MP.erf,
    "erfc": MP.erfc,
    "erfcx": _erfcx_mp,
    "ndtr": _ndtr_mp,
    "log_ndtr": _log_ndtr_mp,
}


def _around(points, dtype=np.float64, ulps=3):
    """Each point and its neighbours a few ulps below and above (approximation breakpoints)."""
    out = []
    for p in np.asarray(points, dtype):
        lo = hi = p
        out.append(p)
        for _ in range(ulps):
            lo, hi = np.nextafter(lo, dtype(-np.inf)), np.nextafter(hi, dtype(np.inf))
            out += [lo, hi]
    return np.array(out, dtype)


def _grid(lo, hi, breakpoints, n=4001, dtype=np.float64):
    """Dense grid on [lo, hi], plus every breakpoint +- a few ulps, plus zero and -0."""
    rng = np.random.default_rng(1234)
    pts = np.concatenate([np.linspace(lo, hi, n), rng.uniform(lo, hi, n // 2),
                          _around([b for b in breakpoints if lo <= b <= hi], dtype),
                          [0.0, -0.0]]).astype(dtype)
    return pts[(pts >= lo) & (pts <= hi)]


def max_rel_err(name, xs, dtype=np.float64):
    """Max |f(x) - ref(x)| / max(|ref(x)|, tiny) over xs; tiny floors results in the subnormal range."""
    xs = np.asarray(xs, dtype)
    got = getattr(special, name)(xs)
    assert got.dtype == dtype
    tiny = MP.mpf(float(np.finfo(dtype).tiny))
    worst, at = 0.0, None
    for x, g in zip(xs.tolist(), got.tolist()):
        ref = REFERENCE[name](MP.mpf(x))
        err = float(abs(MP.mpf(g) - ref) / max(abs(ref), tiny))
        if not err <= worst:  # also catches NaN
            worst, at = err, x
            if math.isnan(err):
                break
    return worst, at


# Approximation breakpoints in the argument of each function (|x| = 1, 8, 50 for the
# erf family; sqrt(2) times those for ndtr), plus the exp(x^2) split grid edges.
ERF_BREAKS = [s * b for b in (1.0, 8.0, 50.0, 0.5 + 1 / 256, 3 + 1 / 256) for s in (1, -1)]
NDTR_BREAKS = [s * SQRT2 * b for b in (1.0, 8.0, 50.0) for s in (1, -1)] + [5.0 + 1 / 256]
CASES = [
    # name, lo, hi, breakpoints; hi for erfc/ndtr is where the result leaves the normal range
    ("erf", -7.0, 7.0, ERF_BREAKS),
    ("erfc", -7.0, 26.5, ERF_BREAKS),
    ("erfcx", -26.0, 60.0, ERF_BREAKS),
    ("ndtr", -38.0, 38.0, NDTR_BREAKS),
    ("log_ndtr", -40.0, 38.0, NDTR_BREAKS + [0.0]),
]


@pytest.mark.parametrize("name,lo,hi,breaks", CASES, ids=[c[0] for c in CASES])
def test_float64_matches_mpmath_to_1e14(name, lo, hi, breaks):
    """Dense grid incl. both sides of every breakpoint: relative error <= 1e-14."""
    worst, at = max_rel_err(name, _grid(lo, hi, breaks))
    assert worst <= 1e-14, f"{name}: max rel err {worst:.3g} at x={at!r}"


@pytest.mark.parametrize("name,xs", [
    ("erfcx", np.geomspace(60.0, 1e8, 2001)),
    ("erfcx", np.array([1e10, 1e20, 1e100, 1e154, 1e155, 1e300, 1.7e308])),
    ("log_ndtr", -np.geomspace(40.0, 1e150, 501)),
    ("erf", np.geomspace(1e-300, 1.0, 601)),
    ("erfc", -np.geomspace(1e-300, 1.0, 601)),
    ("ndtr", -np.geomspace(1e-300, SQRT2, 601)),
], ids=["erfcx-large", "erfcx-huge", "log_ndtr-far-left", "erf-tiny", "erfc-tiny", "ndtr-tiny"])
def test_float64_tails_match_mpmath(name, xs):
    """Far tails and tiny arguments, where naive formulas overflow or lose digits."""
    worst, at = max_rel_err(name, xs)
    assert worst <= 1e-14, f"{name}: max rel err {worst:.3g} at x={at!r}"


FLOAT32_RANGES = {"erf": (-5, 5), "erfc": (-5, 9), "erfcx": (-9, 1e4), "ndtr": (-13, 9),
                  "log_ndtr": (-1e3, 13)}


@pytest.mark.parametrize("name", list(FLOAT32_RANGES))
def test_float32_keeps_dtype_and_is_accurate_to_1e6(name):
    """float32 in -> float32 out, within 1e-6 relative of the exact value at the float32 input."""
    lo, hi = FLOAT32_RANGES[name]
    xs = np.concatenate([_grid(max(lo, -20), min(hi, 20), ERF_BREAKS + NDTR_BREAKS,
                                n=3001, dtype=np.float32),
                         np.linspace(lo, hi, 501, dtype=np.float32)])
    worst, at = max_rel_err(name, xs, np.float32)
    assert worst <= 1e-6, f"{name}: float32 max rel err {worst:.3g} at x={at!r}"


def test_against_c_library_erf_erfc():
    """Second, independent truth: math.erf / math.erfc on a random sample."""
    rng = np.random.default_rng(7)
    xs = np.concatenate([rng.normal(0, 2, 20000), rng.uniform(-6, 26, 20000)])
    for ours, theirs in ((special.erf, math.erf), (special.erfc, math.erfc)):
        want = np.array([theirs(x) for x in xs.tolist()])
        ok = want != 0
        rel = np.abs(ours(xs)[ok] - want[ok]) / np.abs(want[ok])
        assert rel.max() <= 1e-14, f"{ours.__name__} vs math: {rel.max():.3g}"
    # ndtr from libm erfc is accurate where x/sqrt(2) rounding is harmless (|x| < 5)
    x = rng.uniform(-5, 5, 20000)
    want = np.array([0.5 * math.erfc(-v / SQRT2) for v in x.tolist()])
    np.testing.assert_allclose(special.ndtr(x), want, rtol=1e-14, atol=0)


@pytest.mark.parametrize("name,x,want", [
    ("erf", np.inf, 1.0), ("erf", -np.inf, -1.0), ("erf", 0.0, 0.0), ("erf", 1e30, 1.0),
    ("erfc", np.inf, 0.0), ("erfc", -np.inf, 2.0), ("erfc", 0.0, 1.0), ("erfc", 30.0, 0.0),
    ("erfcx", np.inf, 0.0), ("erfcx", -np.inf, np.inf), ("erfcx", 0.0, 1.0),
    ("erfcx", -27.0, np.inf),
    ("ndtr", np.inf, 1.0), ("ndtr", -np.inf, 0.0), ("ndtr", 0.0, 0.5), ("ndtr", -0.0, 0.5),
    ("ndtr", -40.0, 0.0), ("log_ndtr", -np.inf, -np.inf), ("log_ndtr", np.inf, 0.0),
    ("log_ndtr", 0.0, math.log(0.5)),
])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_special_values(name, x, want, dtype):
    """Infinities, zeros and underflow/overflow give the exact limiting values, in both dtypes."""
    got = getattr(special, name)(np.array([x], dtype))
    assert got.dtype == dtype
    np.testing.assert_allclose(got[0], want, rtol=2 * np.finfo(dtype).eps, atol=0)


@pytest.mark.parametrize("name", list(REFERENCE))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_nan_propagates(name, dtype):
    """NaN in gives NaN out and does not disturb its neighbours."""
    f = getattr(special, name)
    x = np.array([np.nan, -3.0, np.nan, 0.5, 3.0, np.nan], dtype)
    got = f(x)
    assert np.isnan(got).tolist() == np.isnan(x).tolist()
    np.testing.assert_array_equal(got[~np.isnan(x)], f(x[~np.isnan(x)]))
    assert math.isnan(f(float("nan")))


def test_signed_zero():
    """erf is odd down to the sign of zero; the other functions ignore the sign of zero."""
    assert np.signbit(special.erf(-0.0)) and not np.signbit(special.erf(0.0))
    for name in ("erfc", "erfcx", "ndtr", "log_ndtr"):
        f = getattr(special, name)
        assert f(-0.0) == f(0.0)


def test_symmetries_hold_across_branches():
    """erf(-x) == -erf(x) exactly; erfc(x) + erfc(-x) == 2; ndtr(x) + ndtr(-x) == 1."""
    x = np.linspace(0, 10, 100001)
    np.testing.assert_array_equal(special.erf(-x), -special.erf(x))
    np.testing.assert_allclose(special.erfc(x) + special.erfc(-x), 2.0, rtol=0, atol=4 * EPS64)
    np.testing.assert_allclose(special.ndtr(x) + special.ndtr(-x), 1.0, rtol=0, atol=2 * EPS64)


@pytest.mark.parametrize("name", list(REFERENCE))
def test_scalars_0d_and_2d_shapes(name):
    """Scalars and 0-d arrays give 0-d results; n-d shape and non-contiguous inputs are kept."""
    f = getattr(special, name)
    for scalar in (0.3, 1, np.float64(0.3), np.array(0.3)):
        y = f(scalar)
        assert np.ndim(y) == 0 and np.asarray(y).dtype == np.float64
    assert f(np.float32(0.3)).dtype == np.float32
    assert f(np.float16(0.3)).dtype == np.float16
    x = np.linspace(-6, 6, 60).reshape(5, 12)
    y = f(x)
    assert y.shape == (5, 12)
    np.testing.assert_array_equal(y, f(x.ravel()).reshape(5, 12))
    np.testing.assert_array_equal(f(x.T), y.T)
    np.testing.assert_array_equal(f(x[:, ::3]), y[:, ::3])
    np.testing.assert_array_equal(f(x.tolist()), y)
    assert f(np.empty((0, 3))).shape == (0, 3)
    assert f(np.arange(-3, 4)).dtype == np.float64


def test_complex_input_is_rejected():
    with pytest.raises(TypeError, match="real input"):
        special.erf(np.array([1j]))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_large_arrays_span_blocks(dtype):
    """Arrays larger than one evaluation block: a random sample of the entries matches mpmath."""
    rng = np.random.default_rng(3)
    n = 3 * special._BLOCK + 17
    x = (rng.standard_normal(n) * 3).astype(dtype)
    x[rng.integers(0, n, 50)] = np.nan
    tol = 1e-14 if dtype == np.float64 else 1e-6
    for name in ("erf", "ndtr"):
        got = getattr(special, name)(x)
        assert got.shape == x.shape and got.dtype == dtype
        assert np.array_equal(np.isnan(got), np.isnan(x))
        for i in rng.integers(0, n, 300).tolist():
            if not np.isnan(x[i]):
                ref = REFERENCE[name](MP.mpf(float(x[i])))
                assert abs(float((MP.mpf(float(got[i])) - ref) / ref)) <= tol, (name, x[i])
