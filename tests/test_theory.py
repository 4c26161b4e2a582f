"""theory.py against independent truths: the SNN paper's numbers, the authors' notebook, closed
forms, mpmath, and the real engine (Monte Carlo with tolerances derived from the trials)."""

from __future__ import annotations

import json
import math

import mpmath
import numpy as np
import pytest
from conftest import erf_q_map, t_quantile

from snn_lab import theory
from snn_lab.activations import (
    ACTIVATIONS,
    ALPHA01,
    LAMBDA01,
    alpha_dropout_affine,
    make_activation,
)
from snn_lab.config import InputSpec, Series
from snn_lab.initializers import INITIALIZERS
from snn_lab.simulate import engine
from snn_lab.theory import width_correction

mp = mpmath.MPContext()  # a private context: other test modules keep their precision
mp.dps = 30


def series(activation="selu", init="lecun_normal", *, width=128, depth=8, batch=256, mean=0.0,
           var=1.0, label=None, **kw) -> Series:
    """A float64 Series built directly from the dataclass."""
    return Series(label=label or f"{activation}-{init}-{sorted(kw.items())}-{mean}-{var}",
                  activation=activation, activation_params=(), init=init, width=width, depth=depth,
                  batch=batch, dtype="float64", input=InputSpec(mean, var), **kw)


# ---- mpmath references ---------------------------------------------------------------------

def mp_selu(lam=LAMBDA01, alpha=ALPHA01):
    lam, alpha = mp.mpf(lam), mp.mpf(alpha)
    return (lambda x: lam * x if x > 0 else lam * alpha * mp.expm1(x),
            lambda x: lam if x > 0 else lam * alpha * mp.exp(x))


def mp_expect(f, mean, var, kinks=(0,)):
    """E f(z), z ~ N(mean, var), by mpmath.quad split at the kinks and the mean."""
    m, s = mp.mpf(mean), mp.sqrt(mp.mpf(var))
    lo, hi = m - 14 * s, m + 14 * s
    pts = sorted({lo, hi, m, *(mp.mpf(k) for k in kinks if lo < k < hi)})
    return mp.quad(lambda x: f(x) * mp.exp(-((x - m) / s) ** 2 / 2), pts,
                   method="gauss-legendre") / (s * mp.sqrt(2 * mp.pi))


# ---- SELU parameters: the paper and the authors' notebook -------------------------------------

def test_selu_params_recover_the_published_constants():
    """(0, 1) gives eq. (14)'s lambda01, alpha01 and the notebook's closed form for them."""
    got = theory.selu_params(0.0, 1.0)
    assert got["lambda"] == pytest.approx(LAMBDA01, rel=1e-12)
    assert got["alpha"] == pytest.approx(ALPHA01, rel=1e-12)
    # getSELUparameters.ipynb, "the correct expressions for mean zero and unit variance":
    e, ec = mp.e, mp.erfc(1 / mp.sqrt(2))
    alpha = -mp.sqrt(2 / mp.pi) / (mp.exp(0.5) * ec - 1)
    denominator = (2 + mp.pi - 2 * mp.sqrt(e) * (2 + mp.pi) * ec + e * mp.pi * ec ** 2
                   + 2 * e ** 2 * mp.erfc(mp.sqrt(2)))
    lam = (1 - mp.sqrt(e) * ec) * mp.sqrt(2 * mp.pi / denominator)
    assert got["alpha"] == pytest.approx(float(alpha), rel=1e-12)
    assert got["lambda"] == pytest.approx(float(lam), rel=1e-12)


def test_selu_params_match_the_authors_notebook_for_a_nonzero_mean():
    """getSELUparameters(-0.1, 2.0) printed (alpha, lambda) = (1.9769021954242014, 1.073851239616046)."""
    got = theory.selu_params(-0.1, 2.0)
    assert got["alpha"] == pytest.approx(1.9769021954242014, rel=1e-12)
    assert got["lambda"] == pytest.approx(1.073851239616046, rel=1e-12)


@pytest.mark.parametrize("mean, var", [(-0.1, 2.0), (0.3, 1.5), (0.0, 0.5)])
def test_selu_params_make_a_fixed_point_under_mpmath(mean, var):
    """With z ~ N(mean, var) (the authors' convention), SELU's output has that mean and var."""
    got = theory.selu_params(mean, var)
    f, _ = mp_selu(got["lambda"], got["alpha"])
    m1 = mp_expect(f, mean, var)
    m2 = mp_expect(lambda x: f(x) ** 2, mean, var)
    assert float(m1) == pytest.approx(mean, abs=1e-13)
    assert float(m2 - m1 ** 2) == pytest.approx(var, rel=1e-13)


@pytest.mark.parametrize("rate", [0.05, 0.1])
def test_alpha_dropout_parameters_follow_the_paper(rate):
    """a = (q + alpha'^2 q (1 - q))^(-1/2), b = -a (1 - q) alpha', alpha' = -lambda alpha (sec. 4)."""
    got = theory.selu_params(0.0, 1.0, dropout_rate=rate)
    q, sat = 1.0 - rate, -LAMBDA01 * ALPHA01
    a = (q + sat ** 2 * q * (1 - q)) ** -0.5
    assert got["alpha_prime"] == pytest.approx(sat, rel=1e-12)
    assert got["a"] == pytest.approx(a, rel=1e-12)
    assert got["b"] == pytest.approx(-a * (1 - q) * sat, rel=1e-12)
    assert alpha_dropout_affine(rate, sat) == pytest.approx((a, -a * (1 - q) * sat), rel=1e-14)


def test_alpha_dropout_for_a_nonzero_fixed_point_follows_the_authors_code():
    """dropout_selu in the notebook: a = sqrt(var / (q ((1-q)(alpha'-mean)^2 + var))), b = ..."""
    mean, var, rate = -0.1, 2.0, 0.2
    got = theory.selu_params(mean, var, dropout_rate=rate)
    q, sat = 1.0 - rate, got["alpha_prime"]
    a = math.sqrt(var / (q * ((1 - q) * (sat - mean) ** 2 + var)))
    assert got["a"] == pytest.approx(a, rel=1e-14)
    assert got["b"] == pytest.approx(mean - a * (q * mean + (1 - q) * sat), rel=1e-14)


@pytest.mark.parametrize("mean, var, rate", [(0.0, 0.0, None), (0.0, -1.0, None), (0.0, 1.0, 1.0),
                                             (math.nan, 1.0, None), (0.0, math.inf, None)])
def test_selu_params_refuses_what_has_no_answer(mean, var, rate):
    """No (finite) variance, a non-finite mean or a dropout rate of 1: ValueError."""
    with pytest.raises(ValueError):
        theory.selu_params(mean, var, dropout_rate=rate)


# ---- the map g and its Jacobian -----------------------------------------------------------

def test_selu_jacobian_at_the_fixed_point_is_the_papers():
    """Klambauer et al.: J(0, 1) = [[0, 0.0888347551], [0, 0.7826478832]], spectral norm 0.7877 < 1."""
    selu = make_activation("selu")
    assert theory.g_map(selu, 0.0, 1.0) == pytest.approx((0.0, 1.0), abs=1e-15)
    jac = theory.g_jacobian(selu, 0.0, 1.0, omega=0.0, tau=1.0)
    assert jac == pytest.approx(np.array([[0.0, 0.0888347551], [0.0, 0.7826478832]]), abs=1e-8)
    assert np.linalg.norm(jac, 2) == pytest.approx(0.78767, abs=5e-6)


JACOBIAN_CASES = [  # activation, mu, nu, omega, tau, bias_var, dropout
    ("selu", 0.3, 1.2, 0.4, 0.9, 0.0, 0.0),
    ("selu", -0.2, 0.7, 1.0, 1.0, 0.1, 0.1),
    ("relu", 0.5, 2.0, -0.7, 1.3, 0.0, 0.0),
    ("tanh", 0.8, 0.4, 0.9, 2.0, 0.05, 0.0),
]


@pytest.mark.parametrize("case", JACOBIAN_CASES, ids=[c[0] for c in JACOBIAN_CASES])
def test_jacobian_matches_mpmath_finite_differences(case):
    """The analytic Jacobian (Gaussian identities) equals 30-digit central differences to 1e-9."""
    name, mu, nu, omega, tau, bias_var, rate = case
    act = make_activation(name)
    fn = {"selu": mp_selu()[0], "relu": lambda x: x if x > 0 else mp.mpf(0), "tanh": mp.tanh}[name]

    def g(m, v):  # alpha dropout written out from its definition, not from snn_lab
        pre_m, pre_v = m * omega, v * tau + bias_var
        e1, e2 = mp_expect(fn, pre_m, pre_v), mp_expect(lambda x: fn(x) ** 2, pre_m, pre_v)
        if rate:
            keep, sat = 1 - mp.mpf(rate), mp.mpf(act.saturation)
            a, b = alpha_dropout_affine(rate, act.saturation)
            e1, e2 = keep * e1 + (1 - keep) * sat, keep * e2 + (1 - keep) * sat ** 2
            e1, e2 = a * e1 + b, a * a * e2 + 2 * a * b * e1 + b * b
        return mp.matrix([e1, e2 - e1 ** 2])

    h = mp.mpf("1e-9")
    want = np.array([[float(x) for x in (g(mu + h, nu) - g(mu - h, nu)) / (2 * h)],
                     [float(x) for x in (g(mu, nu + h) - g(mu, nu - h)) / (2 * h)]]).T
    got = theory.g_jacobian(act, mu, nu, omega, tau, bias_var, rate)
    assert got == pytest.approx(want, abs=1e-9)


# ---- the q-map, its fixed point and the order-to-chaos quantities ---------------------------

def test_relu_halves_q_with_lecun_and_keeps_it_with_he():
    """E[relu(z)^2] = q/2: sigma_w^2 = 1 halves q each layer, sigma_w^2 = 2 keeps it."""
    for init, ratio, status in [("lecun_normal", 0.5, "collapses"), ("he_normal", 1.0, "marginal")]:
        s = series("relu", init, var=1.7)
        q = theory.predict(s)[:, 2]
        assert q[1] == pytest.approx(1.7 * ratio * 2, rel=1e-14)
        assert q[2:] / q[1:-1] == pytest.approx(ratio, rel=1e-14)
        assert theory.fixed_point(s).status == status


def test_truncated_uncorrected_init_has_sigma_w_squared_0_7737():
    """N(0, 1/n) truncated at 2 sd without correction: variance 1 - 4 phi(2) / (2 Phi(2) - 1)."""
    want = float(1 - 4 * mp.npdf(2) / (2 * mp.ncdf(2) - 1))
    s = series("linear", "lecun_truncated_uncorrected")
    assert want == pytest.approx(0.7737, abs=5e-5)
    assert s.weight_var == pytest.approx(want, rel=1e-14)
    assert theory.predict(s)[1, 2] == pytest.approx(want, rel=1e-14)
    assert series("linear", "lecun_truncated").weight_var == pytest.approx(1.0, rel=1e-14)


def test_relu_with_he_init_is_critical_everywhere():
    """chi_1 = 2 E[step(z)^2] = 1 at every q: marginal q-map, critical phase, no depth scale."""
    s = series("relu", "he_normal")
    for q in (1e-3, 1.0, 1e3):
        assert theory.chi1(s, q) == pytest.approx(1.0, abs=1e-15)
    rep = theory.report(s)
    assert rep["status"] == "marginal" and rep["fixed_point"] is None and "every q" in rep["note"]
    assert rep["phase"] == "critical"
    assert rep["xi_q"] is None and rep["xi_c"] is None
    assert {"xi_q", "xi_c"} <= set(rep["reasons"])


def test_tanh_order_to_chaos_transition_is_at_unit_weight_variance():
    """sigma_b = 0: q* = 0 and chi_1 = sigma_w^2 below 1; above, q* > 0 with chi_1 > 1 (Poole et al.)."""
    below = theory.report(series("tanh", gain=0.99))
    assert below["status"] == "collapses" and below["phase"] == "ordered"
    assert below["chi1"] == pytest.approx(0.99 ** 2, rel=1e-12)
    assert theory.chi1(series("tanh"), 0.0) == pytest.approx(1.0, rel=1e-15)
    assert theory.report(series("tanh"))["phase"] == "critical"

    s = series("tanh", gain=1.01)
    fp, rep = theory.fixed_point(s), theory.report(s)
    assert fp.status == "fixed" and rep["phase"] == "chaotic"
    # Independent: solve sigma_w^2 E tanh^2(sqrt(q) z) = q and evaluate chi_1 in mpmath.
    sw2 = mp.mpf(s.weight_var)
    q_star = mp.findroot(lambda q: sw2 * mp_expect(lambda x: mp.tanh(x) ** 2, 0, q, ()) - q, fp.q)
    chi = sw2 * mp_expect(lambda x: 1 / mp.cosh(x) ** 4, 0, q_star, ())
    assert fp.q == pytest.approx(float(q_star), rel=1e-10)
    assert rep["chi1"] == pytest.approx(float(chi), rel=1e-12)
    # And the small-q series (E tanh^2 = q - 2q^2 + 17/3 q^3 - 62/3 q^4, E sech^4 = 1 - 2q + 7q^2
    # - 94/3 q^3) give chi_1 - 1 = 4/3 q*^2 - 8 q*^3 + O(q*^4): just above 1.
    assert rep["chi1"] - 1 == pytest.approx(4 / 3 * fp.q ** 2 - 8 * fp.q ** 3, rel=0.02)


def test_selu_lecun_analysis():
    """q* = 1 (mean 0, var 1); xi_q from the paper's 0.78265; c* = 0 with chi_c = (E selu')^2."""
    rep = theory.report(series("selu"))
    assert rep["fixed_point"] == pytest.approx({"q": 1.0, "mean": 0.0, "var": 1.0}, abs=1e-12)
    assert rep["q_slope"] == pytest.approx(0.7826478832, abs=1e-9)
    assert rep["xi_q"] == pytest.approx(-1 / math.log(0.7826478832), rel=1e-8)
    d = LAMBDA01 * (0.5 + ALPHA01 * math.exp(0.5) * float(mp.ncdf(-1)))  # E selu'(z), z ~ N(0, 1)
    assert rep["chi1"] == pytest.approx(float(mp_expect(lambda x: mp_selu()[1](x) ** 2, 0, 1)), rel=1e-12)
    assert rep["phase"] == "chaotic"
    assert rep["c_star"] == pytest.approx(0.0, abs=1e-12)
    assert rep["chi_c"] == pytest.approx(d * d, rel=1e-12)
    assert rep["xi_c"] == pytest.approx(-1 / math.log(d * d), rel=1e-10)
    assert json.loads(json.dumps(rep, allow_nan=False))["layers"][0] == {
        "layer": 0, "theory_mean": 0.0, "theory_var": 1.0, "theory_preact_var": 1.0}


def test_report_has_the_documented_keys():
    """Every key is always present; nulls come with a reason."""
    for s in (series("selu"), series("relu"), series("selu", "he_normal"), series("relu", "he_normal")):
        rep = theory.report(s, depth=3)
        assert {"fixed_point", "note", "jacobian", "spectral_norm", "chi1", "xi_q", "xi_c", "layers",
                "q_slope", "c_star", "chi_c", "phase", "status", "reasons"} <= set(rep)
        assert len(rep["layers"]) == 4
        for key in ("fixed_point", "jacobian", "chi1", "xi_q", "xi_c", "c_star"):
            assert rep[key] is not None or key in rep["reasons"], (s.label, key)
        json.dumps(rep, allow_nan=False)


def test_selu_with_he_init_grows_until_it_overflows_honestly():
    """q grows by lambda01^2 per layer (E selu^2 ~ lambda^2 q/2) until it leaves float range: inf/NaN."""
    s = series("selu", "he_normal", depth=400, var=1e300)  # from var 1 it takes ~7100 layers
    assert theory.fixed_point(s).status == "grows"
    assert theory.fixed_point(series("selu", "he_normal")).status == "grows"
    pred = theory.predict(s)
    finite = np.isfinite(pred).all(axis=1)
    first_bad = int(np.argmin(finite))
    growth = math.log(np.finfo(float).max / 2e300) / math.log(LAMBDA01 ** 2)
    assert abs(first_bad - growth) < 5 and not finite[first_bad:].any()
    q = pred[:first_bad, 2]
    assert q[-1] / q[-2] == pytest.approx(LAMBDA01 ** 2, rel=1e-9)
    assert np.isinf(pred[first_bad:, 2]).all() and np.isnan(pred[first_bad:, 0]).all()
    rep = theory.report(s)
    assert rep["overflow_layer"] == first_bad and rep["layers"][-1]["theory_preact_var"] is None
    json.dumps(rep, allow_nan=False)


# ---- the correlation map --------------------------------------------------------------------

def test_relu_correlation_map_is_the_arc_cosine_kernel():
    """Cho & Saul: with sigma_w^2 = 2, c' = (sqrt(1-c^2) + (pi - arccos c) c)/pi, chi_c = 1 - arccos(c)/pi."""
    s = series("relu", "he_normal")
    for q in (1.7, 1e4):
        for c in (-0.6, 0.5, 0.9999, 1 - 1e-8, 1.0):
            want = (math.sqrt(max(0.0, 1 - c * c)) + (math.pi - math.acos(c)) * c) / math.pi
            assert theory.c_map(s, c, q) == pytest.approx(want, abs=1e-13)
            assert theory.chi_c(s, c, q) == pytest.approx(1 - math.acos(c) / math.pi, abs=1e-13)


def test_erf_correlation_map_is_the_arcsine_kernel(erf_registered):
    """Williams (1997): E erf(u1) erf(u2) = (2/pi) arcsin(2 q c / (1 + 2q)); E of the derivatives too."""
    erf_series = series("erf_stub", gain=1.3, bias_var=0.2)
    sw2, sb2 = erf_series.weight_var, erf_series.bias_var
    for q in (0.5, 30.0):
        q_next = erf_q_map(erf_series, q)
        assert theory.q_map(erf_series, q) == pytest.approx(q_next, rel=1e-13)
        for c in (-0.5, 0.3, 0.9, 1 - 1e-6):
            pair = 2 / math.pi * math.asin(2 * q * c / (1 + 2 * q))
            dpair = 4 / math.pi / math.sqrt((1 + 2 * q) ** 2 - (2 * q * c) ** 2)
            assert theory.c_map(erf_series, c, q) == pytest.approx((sw2 * pair + sb2) / q_next, rel=1e-12)
            assert theory.chi_c(erf_series, c, q) == pytest.approx(sw2 * dpair * q / q_next, rel=1e-12)


def test_fixed_points_solve_the_arcsine_maps(erf_registered):
    """Chaotic erf: q* and c* < 1 solve the closed-form maps, chi_c(c*) < 1; ordered: c* = 1."""
    chaotic = series("erf_stub", gain=2.0, bias_var=0.05)
    q = theory.fixed_point(chaotic).q
    assert q == pytest.approx(erf_q_map(chaotic, q), rel=1e-13)
    rep = theory.report(chaotic, depth=2)
    assert rep["phase"] == "chaotic" and rep["chi1"] > 1
    c_star, chi = rep["c_star"], rep["chi_c"]
    assert 0 < c_star < 1 and chi < 1
    sw2, sb2 = chaotic.weight_var, chaotic.bias_var
    assert c_star * q == pytest.approx(sw2 * 2 / math.pi * math.asin(2 * q * c_star / (1 + 2 * q)) + sb2,
                                       rel=1e-12)
    assert chi == pytest.approx(sw2 * 4 / math.pi / math.sqrt((1 + 2 * q) ** 2 - (2 * q * c_star) ** 2),
                                rel=1e-12)
    assert rep["xi_c"] == pytest.approx(-1 / math.log(chi), rel=1e-12)
    ordered = series("erf_stub", gain=1.3, bias_var=0.2)
    rep = theory.report(ordered, depth=2)
    assert rep["phase"] == "ordered" and rep["c_star"] == 1.0
    assert rep["chi_c"] == pytest.approx(rep["chi1"], rel=1e-14)


# ---- Monte Carlo: the real engine against predict() ----------------------------------------

WIDTH, DEPTH, BATCH, TRIALS, SEED = 128, 8, 256, 20, 2017
FALSE_ALARM = 1e-4  # probability that the whole Monte Carlo family fails by chance


def _dropout_able(name: str) -> bool:
    return make_activation(name).saturation is not None


MC_CASES = (
    # i.i.d. weights: orthogonal columns lie on a sphere, a finite-width bias finite_width_bias
    # does not model (its mean field: tests/test_orthogonal.py)
    [series(a, i, width=WIDTH, depth=DEPTH, batch=BATCH) for a in ACTIVATIONS for i in INITIALIZERS
     if INITIALIZERS[i].kind != "orthogonal"]
    + [series(a, normalize_weights=True) for a in ACTIVATIONS]
    + [series(a, gain=1.2, bias_var=0.1) for a in ("selu", "relu", "tanh", "gelu")]
    + [series(a, mean=1.0, var=0.5) for a in ("selu", "relu", "elu", "tanh", "silu")]
    + [series(a, dropout=0.1) for a in ACTIVATIONS if _dropout_able(a)]
    + [series("selu", normalize_weights=True, dropout=0.1, mean=0.5, var=2.0, bias_var=0.05)]
)
MC_FAMILY = len(MC_CASES) * (DEPTH + 1) * 3


# Bonferroni over every comparison; the t quantile, not the normal one: with 20 trials the
# normal 5.4 would false-alarm ~1e-5 per comparison instead of ~5e-8.
K = t_quantile(FALSE_ALARM / MC_FAMILY, TRIALS - 1)


@pytest.mark.parametrize("s", MC_CASES, ids=[s.label for s in MC_CASES])
def test_engine_matches_theory(s):
    """Trial means of mean, var and preact var within K standard errors + the 1/width allowance."""
    runs = np.stack([engine.run_trial(s, SEED, t) for t in range(TRIALS)])  # (trials, layers, STATS)
    col = {name: i for i, name in enumerate(engine.STATS)}
    sim = runs[:, :, [col["mean"], col["var"], col["preact_var"]]]
    # np.var subtracts the pooled sample mean: E[np.var] = Var - Var(sample mean). Add it back.
    sim[:, :, 1] += runs[:, :, col["mean"]].var(axis=0, ddof=1)
    sim[:, :, 2] += runs[:, :, col["preact_mean"]].var(axis=0, ddof=1)
    mean = sim.mean(axis=0)
    se = sim.std(axis=0, ddof=1) / math.sqrt(TRIALS)
    pred = theory.predict(s)
    allowance = np.abs(width_correction.shift(s))
    excess = np.abs(mean - pred) - allowance
    worst = np.unravel_index(np.argmax(excess / se), se.shape)
    layer, stat = int(worst[0]), theory.THEORY[worst[1]]
    assert np.all(excess <= K * se), (
        f"layer {layer} {stat}: simulated {mean[worst]:.6g} vs theory {pred[worst]:.6g} "
        f"(allowance {allowance[worst]:.3g}): {(abs(mean[worst] - pred[worst])) / se[worst]:.2f} "
        f"standard errors > {K:.2f}")
