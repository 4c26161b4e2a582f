"""Gaussian moments of every activation (closed forms and kink-split quadrature) against mpmath.

The truth here is mpmath.quad at 30 digits on each activation written out again in mpmath,
integrated piecewise between the kinks, with mpmath's own error estimate checked: nothing is
taken from snn_lab except the parameters.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

from snn_lab.activations import ACTIVATIONS, Activation, ActivationKind, make_activation

mp = mpmath.MPContext()  # a private context: other test modules keep their precision
mp.dps = 30

MEANS = (-3.0, -1.0, -0.3, 0.0, 0.5, 2.0)
STDS = (0.05, 0.3, 1.0, 2.5, 6.0)
TOL = 1e-10  # relative where a value exceeds 1, absolute below


def _mp_selu(p):
    lam, alpha = mp.mpf(p["lambda"]), mp.mpf(p["alpha"])
    return (lambda x: lam * x if x > 0 else lam * alpha * mp.expm1(x),
            lambda x: lam if x > 0 else lam * alpha * mp.exp(x))


def _mp_elu(p):
    alpha = mp.mpf(p["alpha"])
    return (lambda x: x if x > 0 else alpha * mp.expm1(x),
            lambda x: mp.mpf(1) if x > 0 else alpha * mp.exp(x))


def _mp_leaky(p):
    slope = mp.mpf(p["slope"])
    return (lambda x: x if x > 0 else slope * x, lambda x: mp.mpf(1) if x > 0 else slope)


def _mp_sigmoid(x):
    return 1 / (1 + mp.exp(-x))


# Each activation again, in mpmath: (phi, phi'). A new registry entry needs one here.
MP_ACTIVATIONS = {
    "selu": _mp_selu,
    "elu": _mp_elu,
    "leaky_relu": _mp_leaky,
    "relu": lambda p: (lambda x: x if x > 0 else mp.mpf(0), lambda x: mp.mpf(1) if x > 0 else mp.mpf(0)),
    "tanh": lambda p: (mp.tanh, lambda x: 1 / mp.cosh(x) ** 2),
    "gelu": lambda p: (lambda x: x * mp.ncdf(x), lambda x: mp.ncdf(x) + x * mp.npdf(x)),
    "silu": lambda p: (lambda x: x * _mp_sigmoid(x),
                       lambda x: _mp_sigmoid(x) * (1 + x * (1 - _mp_sigmoid(x)))),
    "linear": lambda p: (lambda x: x, lambda x: mp.mpf(1)),
}


def mp_moments(fn, deriv, mean: float, std: float) -> tuple[float, float, float]:
    """(E phi, E phi^2, E phi'^2) for z ~ N(mean, std^2) by mpmath.quad, split where phi bends.

    Every activation here bends at 0 (a kink, or tanh's poles at +-i pi/2), on a unit scale:
    the pieces are cut at 0, +-1, +-4, +-16, ... and at the mean, so that each piece is smooth
    on its own length scale, over mean +- 14 sd (the tail beyond holds < 1e-44 of the mass).
    The check on mpmath's error estimate makes a reference that did not converge fail loudly.
    """
    m, s = mp.mpf(mean), mp.mpf(std)
    lo, hi = m - 14 * s, m + 14 * s
    bends = [mp.mpf(0)]
    k = mp.mpf(1)
    while k < 1e-12 * s:  # pieces this close to 0 hold < 1e-12 of the mass and phi ~ 1e-12 s there
        k *= 4
    while k < 14 * s + abs(m):
        bends += [k, -k]
        k *= 4
    pts = sorted({lo, hi, m, *(b for b in bends if lo < b < hi)})

    def density(x):
        return mp.exp(-((x - m) / s) ** 2 / 2)

    def first_two(x):  # E phi and E phi^2 in one pass: real and imaginary part
        y = fn(x)
        return mp.mpc(y, y * y) * density(x)

    both, err1 = mp.quad(first_two, pts, method="gauss-legendre", error=True)
    d2, err2 = mp.quad(lambda x: deriv(x) ** 2 * density(x), pts, method="gauss-legendre", error=True)
    norm = 1 / (s * mp.sqrt(2 * mp.pi))
    scale = max(1, abs(both.imag), abs(d2))
    assert max(err1, err2) < 1e-20 * scale, "the mpmath reference itself did not converge"
    return float(both.real * norm), float(both.imag * norm), float(d2 * norm)


def mp_reference(act: Activation, mean: float, std: float) -> tuple[float, float, float]:
    """mpmath moments of a registry activation, by name and parameters only."""
    if act.name not in MP_ACTIVATIONS:
        pytest.fail(f"activation {act.name!r} has no mpmath reference in MP_ACTIVATIONS")
    return mp_moments(*MP_ACTIVATIONS[act.name](act.params), mean, std)


def assert_close(got, want, what: str, tol: float = TOL) -> None:
    """Each of three moments within tol (relative above 1, absolute below)."""
    for name, g, w in zip(("E phi", "E phi^2", "E phi'^2"), got, want):
        assert math.isfinite(g), f"{what}: {name} is {g}"
        assert abs(g - w) <= tol * max(1.0, abs(w)), f"{what}: {name} {g!r} vs mpmath {w!r}"


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_moments_match_mpmath_on_a_grid(name):
    """Closed form (where one exists) and quadrature both agree with mpmath to 1e-10."""
    act = make_activation(name)
    for m in MEANS:
        for s in STDS:
            want = mp_reference(act, m, s)
            assert_close(act.moments(m, s), want, f"{name} moments({m}, {s})")
            if act.closed_form is not None:  # the quadrature is the closed forms' own reference
                assert_close(act.quadrature_moments(m, s), want, f"{name} quadrature({m}, {s})")


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_large_variance_stays_finite_and_accurate(name):
    """sd 30 and 40: a one-sd panel would straddle the bend at 0; the graded panels do not."""
    act = make_activation(name)
    for m in (-3.0, 0.0, 2.0):
        for s in (30.0, 40.0):
            assert_close(act.moments(m, s), mp_reference(act, m, s), f"{name} moments({m}, {s})")


@pytest.mark.parametrize("name", ["selu", "elu"])
@pytest.mark.parametrize("std", [1e4, 1e12, 1e100])
def test_exponential_closed_forms_survive_huge_variance(name, std):
    """exp(a) Phi(b) with a ~ s^2/2: no cancellation, no OverflowError (it raised at s = 1e12)."""
    act = make_activation(name)
    for m in (0.0, 0.3 * std, -0.5 * std):
        got = act.moments(m, std)
        want = mp_reference(act, m, std)
        for g, w in zip(got, want):
            assert abs(g - w) <= 1e-12 * abs(w)


@pytest.mark.parametrize("name", ["selu", "elu"])
@pytest.mark.parametrize("std", [1e-3, 1e-5])
def test_exponential_closed_forms_keep_relative_accuracy_at_small_variance(name, std):
    """E[(e^z - 1)^2; z < 0] is O(s^2): computed as a difference of O(1) terms it lost 1e-16/s^2."""
    act = make_activation(name)
    for m in (0.0, 0.5 * std, -0.5 * std, 0.2, -0.2):
        got = act.moments(m, std)
        want = mp_reference(act, m, std)
        assert abs(got.m1 - want[0]) <= 1e-10 * std  # a mean is known to the spread's precision
        assert abs(got.m2 - want[1]) <= 1e-10 * want[1]
        assert abs(got.d2 - want[2]) <= 1e-10 * want[2]


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_zero_variance_is_a_point_mass(name):
    """std = 0: the moments of phi at the mean (what q = 0 means for the theory)."""
    act = make_activation(name)
    fn, deriv = MP_ACTIVATIONS[name](act.params)
    for m in (-1.5, 0.7):
        want = (float(fn(mp.mpf(m))), float(fn(mp.mpf(m)) ** 2), float(deriv(mp.mpf(m)) ** 2))
        assert_close(act.moments(m, 0.0), want, f"{name} moments({m}, 0)")


# ---- an activation registered without a closed form ------------------------------------

def _relu_stub(name, params):
    return Activation(name, params, lambda x, out=None: np.maximum(x, 0.0, out=out),
                      lambda x: (x > 0).astype(np.float64), kinks=(0.0,), closed_form=None,
                      saturation=0.0)


def _mp_relu_closed_form(m: float, s: float) -> tuple[float, float, float]:
    """E[z+], E[z+^2], P(z > 0) for z ~ N(m, s^2): the textbook formulas, in mpmath."""
    m, s = mp.mpf(m), mp.mpf(s)
    t = m / s
    p, d = mp.ncdf(t), mp.npdf(t)
    return float(m * p + s * d), float((m * m + s * s) * p + m * s * d), float(p)


@pytest.fixture
def relu_stub(monkeypatch):
    """A ReLU registered the way a new activation would be: no closed form, one kink."""
    monkeypatch.setitem(ACTIVATIONS, "relu_stub", ActivationKind({}, _relu_stub, "max(x, 0), no closed form"))
    return make_activation("relu_stub")


def test_registered_activation_without_closed_form_gets_exact_moments(relu_stub):
    """Adding an activation is one registry entry: its moments come from the kink-split quadrature."""
    assert relu_stub.closed_form is None
    for m in MEANS:
        for s in STDS:
            assert_close(relu_stub.moments(m, s), _mp_relu_closed_form(m, s), f"stub({m}, {s})")


def test_gauss_hermite_would_miss_the_kink(relu_stub):
    """Why the quadrature splits: 25-node Gauss-Hermite is off by far more than 1e-10 at a kink."""
    x, w = np.polynomial.hermite_e.hermegauss(25)
    w = w / math.sqrt(2.0 * math.pi)
    worst_hermite = worst_split = 0.0
    for m in (-0.3, 0.1, 0.5):
        want = _mp_relu_closed_form(m, 1.0)
        z = m + x
        hermite = (w @ relu_stub.fn(z), w @ relu_stub.fn(z) ** 2, w @ relu_stub.deriv(z) ** 2)
        worst_hermite = max(worst_hermite, *(abs(h - t) for h, t in zip(hermite, want)))
        worst_split = max(worst_split, *(abs(g - t) for g, t in zip(relu_stub.moments(m, 1.0), want)))
    assert worst_hermite > 1e-4
    assert worst_split < 1e-13


# NFNets' published gammas (deepmind-research nfnets, the `nonlinearities` table; also timm's
# _nonlin_gamma): Monte Carlo estimates of 1/sd(phi(z)), z ~ N(0, 1), all from one sample.
NFNETS_GAMMA = {"relu": 1.7139588594436646, "selu": 1.0008515119552612, "tanh": 1.5939117670059204,
                "gelu": 1.7015043497085571, "silu": 1.7881293296813965, "elu": 1.2716004848480225,
                "leaky_relu": 1.70590341091156, "linear": 1.0}


@pytest.mark.parametrize("name", NFNETS_GAMMA)
def test_nf_gain_agrees_with_nfnets_published_estimates(name):
    """Ours is exact (Gaussian moments); theirs carry a sampling error of about 0.1%, the same
    sign for all (one shared sample): 0.15% covers it. relu's exact value is sqrt(2 pi/(pi - 1))."""
    from snn_lab.activations import nf_gain
    gamma = nf_gain(make_activation(name))
    assert gamma == pytest.approx(NFNETS_GAMMA[name], rel=1.5e-3)
    if name == "relu":
        assert gamma == pytest.approx(math.sqrt(2 * math.pi / (math.pi - 1)), rel=1e-14)
    scaled = make_activation(name, scale="nf")
    mo = scaled.moments(0.0, 1.0)
    assert mo.m2 - mo.m1 ** 2 == pytest.approx(1.0, rel=1e-12)
    x = np.linspace(-3, 3, 13)
    np.testing.assert_allclose(scaled.fn(x.copy()), gamma * make_activation(name).fn(x.copy()), rtol=1e-15)
    np.testing.assert_allclose(scaled.deriv(x), gamma * make_activation(name).deriv(x), rtol=1e-15)
