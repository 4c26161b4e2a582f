"""theory/width_correction.py against independent truths: Hanin & Nica's 5 L / n and the exact
law of a ReLU layer, the SNN paper's slope at the fixed point, a 2-D quadrature, an exact-law
Monte Carlo at widths 32 to 256 and depths up to width / 2, and the real engine."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, special, stats

from snn_lab import gaussian
from snn_lab.activations import ACTIVATIONS, ALPHA01, LAMBDA01, make_activation
from snn_lab.config import InputSpec, Series
from snn_lab.simulate import engine
from snn_lab.theory import meanfield
from snn_lab.theory import width_correction as wc


def series(activation="selu", init="lecun_normal", *, width=64, depth=8, batch=16, mean=0.0, var=1.0,
           **kw) -> Series:
    """A float64 Series built directly from the dataclass."""
    return Series(label=f"{activation}-{init}-{sorted(kw.items())}-{width}-{batch}-{mean}-{var}",
                  activation=activation, activation_params=(), init=init, width=width, depth=depth,
                  batch=batch, dtype="float64", input=InputSpec(mean, var), **kw)


# ---- closed forms -----------------------------------------------------------------------

@pytest.mark.parametrize("n", [32, 128, 512])
def test_relu_he_log_variance_grows_by_hanins_five_over_n_per_layer(n):
    """Var(log q) grows by 5/n a layer (Hanin & Nica 2019), within 24/n^2 of the exact law.

    Exact: with Gaussian weights a ReLU-He layer multiplies the squared norm by R = (2/n) chi^2_K,
    K ~ Binomial(n, 1/2) active units, independently of the input (rotational invariance):
    Var(log R) = E psi'(K/2) + Var psi(K/2) (digamma, trigamma), given K > 0.
    """
    sp = wc.spread(series("relu", "he_normal", width=n, depth=12, batch=1))
    steps = np.diff(sp.log_q[1:])
    assert sp.log_q[1] == pytest.approx(2.0 / n, rel=1e-9)  # the input's Var(x^2) / E[x^2]^2 / n
    assert steps == pytest.approx(5.0 / n, rel=1e-9)
    k = np.arange(1, n + 1)
    p = stats.binom.pmf(k, n, 0.5) / (1 - 0.5 ** n)
    exact = p @ special.polygamma(1, k / 2) + p @ special.digamma(k / 2) ** 2 - (p @ special.digamma(k / 2)) ** 2
    assert abs(steps[0] - exact) < 24.0 / n ** 2  # exact - 5/n: 21.8/n^2 at n = 32, 18.7/n^2 at 512


def test_selu_spread_stays_bounded_at_the_papers_slope():
    """At the fixed point Var(log q) -> Var(selu(z)^2) / n / (1 - s^2), s = 0.7826478832 (the paper's).

    The asymptote is the geometric sum of each layer's fresh noise under the q-map's slope in
    log q (at q* = 1, the Jacobian's 0.78265 of Klambauer et al.): self-normalization at finite width.
    """
    n = 100
    sp = wc.spread(series("selu", width=n, depth=120, batch=1))

    def selu(x):
        return LAMBDA01 * (x if x > 0 else ALPHA01 * math.expm1(x))

    def moment(k):
        def f(x):
            return selu(x) ** k * math.exp(-x * x / 2) / math.sqrt(2 * math.pi)
        return sum(integrate.quad(f, a, b, epsabs=0, epsrel=1e-12, limit=200)[0]
                   for a, b in ((-np.inf, 0.0), (0.0, np.inf)))

    fresh = moment(4) - moment(2) ** 2
    assert sp.log_q[-1] * n == pytest.approx(fresh / (1 - 0.7826478832 ** 2), rel=1e-6)
    assert sp.log_q[-1] == pytest.approx(sp.log_q[60], rel=1e-6)  # bounded: no growth with depth


@pytest.mark.parametrize("name, rate", [("selu", 0.0), ("tanh", 0.0), ("relu", 0.0), ("selu", 0.1)])
def test_mehler_covariance_matches_a_two_dimensional_quadrature(name, rate):
    """Cov(E[Y^2|h_a], E[Y^2|h_b]) and its c-derivative from Mehler's series = gaussian.pair_expect."""
    act, q = make_activation(name), 1.7
    u = wc._unit(act, q, rate)
    A, c0 = meanfield._dropout_affine(act, rate)

    def g2(x):
        phi = act.fn(x)
        return A[1, 0] * phi + A[1, 1] * phi * phi + c0[1]

    mean = gaussian.expect(g2, 0.0, math.sqrt(q), act.kinks)
    for c in (0.3, 0.9, 0.99):
        want = gaussian.pair_expect(g2, act.kinks, q, c) - mean ** 2
        assert u.cov((0.0, 1.0), c) == pytest.approx(want, rel=2e-3, abs=1e-9)
    h = 1e-4
    slope = (gaussian.pair_expect(g2, act.kinks, q, 0.5 + h) - gaussian.pair_expect(g2, act.kinks, q, 0.5 - h)) / (2 * h)
    assert u.cov((0.0, 1.0), 0.5, order=1) == pytest.approx(slope, rel=1e-4)


def test_norm_and_residual_series_get_nan_with_the_reason():
    """The theory does not reach norm layers or skips: NaN columns and a sentence saying so."""
    for kw in ({"norm": "layer"}, {"norm": "batch"}, {"residual": 1.0}):
        values, why = wc.predict(series(**kw))
        assert np.isnan(values).all() and why and ("norm" in why or "residual" in why)
    values, why = wc.predict(series())
    assert why is None and np.isfinite(values).all()


# ---- Monte Carlo of the exact law (Gaussian weights, one sample) ----------------------------

def _exact_law_log_preact(s: Series, trials: int, layers, rng) -> np.ndarray:
    """log of each layer's (1/n) sum h^2 for one input: given the previous layer the n
    pre-activations are i.i.d. N(0, K), K = sigma_w^2 |x|^2 / n (Gaussian weights are rotation
    invariant), so a layer costs O(n) instead of the engine's O(n^2)."""
    act, n, tau = s.make_activation(), s.width, s.weight_var
    x = s.input.mean + math.sqrt(s.input.var) * rng.standard_normal((trials, n))
    K = tau * np.mean(x * x, axis=1)
    out = {}
    for layer in range(1, max(layers) + 1):
        h = np.sqrt(K)[:, None] * rng.standard_normal((trials, n))
        if layer in layers:
            out[layer] = np.log(np.mean(h * h, axis=1))
        K = tau * np.mean(act.fn(h) ** 2, axis=1)
    return np.array([out[layer] for layer in layers])


# (activation, init, homogeneous): a homogeneous activation's layers multiply q by i.i.d.
# factors, so the log-normal form is exact and only O(1/n) per layer is left over.
SPREAD_CASES = [("selu", "lecun_normal", False), ("relu", "he_normal", True),
                ("tanh", "lecun_normal", False), ("elu", "lecun_normal", False)]
WIDTH_TRIALS = [(32, 800), (128, 400), (256, 200)]
FAMILY = len(SPREAD_CASES) * len(WIDTH_TRIALS) * 3


@pytest.mark.parametrize("name, init, homogeneous", SPREAD_CASES, ids=[c[0] for c in SPREAD_CASES])
def test_predicted_log_q_variance_matches_the_exact_law_up_to_depth_width_over_2(name, init, homogeneous):
    """Var(log preact second moment) over >= 200 trials at n = 32, 128, 256, depths n/8, n/4, n/2.

    Tolerance: K standard errors of the sample variance (from the sample's own fourth moment;
    K from the normal law, Bonferroni over the family at 1e-4), plus what leading order leaves
    out: 5/n of the prediction (the exact ReLU law: 19/n^2 a layer on 5/n), and for an activation
    that is not homogeneous the square of the expansion parameter Var(log q) relative to it.
    """
    rng = np.random.default_rng(2019)
    k = stats.norm.isf(1e-4 / FAMILY / 2)
    for n, trials in WIDTH_TRIALS:
        layers = (n // 8, n // 4, n // 2)
        s = series(name, init, width=n, depth=n // 2, batch=1)
        pred = wc.spread(s).log_preact[list(layers)]
        logs = _exact_law_log_preact(s, trials, layers, rng)
        v = logs.var(axis=1, ddof=1)
        m4 = ((logs - logs.mean(axis=1, keepdims=True)) ** 4).mean(axis=1)
        se = np.sqrt((m4 - v * v * (trials - 3) / (trials - 1)) / trials)
        allowance = pred * (5.0 / n + (0.0 if homogeneous else pred))
        bad = np.abs(v - pred) > k * se + allowance
        assert not bad.any(), (n, layers, v * n, pred * n, (v - pred) / se)


REGISTRY = [(a, i) for a in ACTIVATIONS for i in ("lecun_normal", "he_normal")]


def test_every_registry_activation_spreads_as_the_exact_law_where_the_expansion_holds():
    """Every activation, LeCun and He weights, width 64, 8 layers, 600 networks: Var(log q) as
    predicted where the prediction is <= 0.25 (the expansion's range, as check uses it), within
    K standard errors (Bonferroni over the family at 1e-4) plus 5/n + Var(log q) of itself."""
    rng = np.random.default_rng(64)
    n, trials, layers = 64, 600, tuple(range(1, 9))
    k = stats.norm.isf(1e-4 / (len(REGISTRY) * len(layers)) / 2)
    for name, init in REGISTRY:
        s = series(name, init, width=n, depth=8, batch=1)
        pred = wc.spread(s).log_preact[list(layers)]
        v = _exact_law_log_preact(s, trials, layers, rng).var(axis=1, ddof=1)
        valid = pred <= 0.25
        bad = valid & (np.abs(v - pred) > k * v * math.sqrt(2 / (trials - 1)) + pred * (5.0 / n + pred))
        assert not bad.any(), (name, init, v * n, pred * n)


# ---- the real engine ------------------------------------------------------------------------

ENGINE_CASES = [series("selu"), series("relu", "he_normal"), series("tanh"), series("elu"),
                series("selu", normalize_weights=True), series("selu", dropout=0.1),
                series("relu", "lecun_uniform"), series("tanh", gain=1.2, bias_var=0.1),
                series("elu", "lecun_truncated"),
                series("selu", mean=1.0, var=0.5)]
ENGINE_TRIALS = 200


@pytest.mark.parametrize("s", ENGINE_CASES, ids=[s.label for s in ENGINE_CASES])
def test_engine_trial_spread_matches_the_prediction(s):
    """The engine's sd across 200 trials of mean, var, preact_var (width 64, batch 16) = spread().

    The sample variance of T trials has relative standard error sqrt(2 / (T - 1)) (near-normal
    statistics); 5 of them over 9 x 24 comparisons false-alarm with probability ~1e-4.
    """
    run = engine.run_series(s, 19, ENGINE_TRIALS).stats[:, :, [0, 1, 3]]
    _, sd = wc.correct(s)
    ratio = run.var(axis=0, ddof=1)[1:] / sd[1:] ** 2
    z = (ratio - 1) / math.sqrt(2 / (ENGINE_TRIALS - 1))
    assert np.abs(z).max() < 5, (z.round(1), ratio.round(3))


@pytest.mark.parametrize("s, layer, col", [
    (series("relu", normalize_weights=True, depth=4, batch=128), 4, 0),  # the mean
    (series("silu", "he_normal", depth=6, batch=64), 6, 1),  # the variance
], ids=["normalized-relu-mean", "silu-he-var"])
def test_corrected_prediction_removes_most_of_the_width_64_bias(s, layer, col):
    """At width 64 the engine's trial mean sits >= 8 standard errors off the infinite-width value;
    the corrected prediction removes at least 80% of that bias."""
    trials = 400
    run = engine.run_series(s, 64, trials).stats[:, layer, [0, 1, 3]]
    mean, se = run.mean(axis=0)[col], run.std(axis=0, ddof=1)[col] / math.sqrt(trials)
    fw, _ = wc.correct(s)
    infinite = meanfield.predict(s)[layer, col]
    assert abs(mean - infinite) > 8 * se
    assert abs(mean - fw[layer, col]) <= 0.2 * abs(mean - infinite)


# ---- the depth scale (snn-lab theory --width) ---------------------------------------------

@pytest.mark.parametrize("n, size", [(64, 0.5), (256, 0.3)])
def test_relu_he_reaches_the_spread_where_two_plus_five_per_layer_does(n, size):
    """Var(log q) = (2 + 5 (L - 1)) / n for ReLU-He: the first L with that >= size^2."""
    rep = wc.depth_scale(series("relu", "he_normal"), n, size)
    want = math.ceil((size * size * n - 2) / 5) + 1
    assert rep["depth"] == want and rep["depth_over_width"] == pytest.approx(want / n)
    assert rep["limit_sd"] is None and "marginal" in rep["reasons"]["limit_sd"]


def test_selu_spread_is_bounded_below_a_half_and_reports_its_limit():
    """SELU never reaches sd 0.5 at width 128: the limit is the walked recursion's end value."""
    rep = wc.depth_scale(series("selu"), 128, 0.5)
    assert rep["depth"] is None and "stays below" in rep["reasons"]["depth"]
    assert rep["limit_log_q_var"] == pytest.approx(wc.spread(series("selu", width=128, depth=400, batch=1)).log_q[-1],
                                                   rel=1e-9)
    assert rep["limit_sd"] == pytest.approx(math.sqrt(rep["limit_log_q_var"]))
    assert wc.depth_scale(series("selu", norm="layer"), 128)["reasons"]["depth"].startswith("layer norm")


def test_theory_command_reports_the_depth_scale_and_refuses_it_with_phase():
    """--width adds one line per series (and a finite_width object in --json); not with --phase."""
    from click.testing import CliRunner

    from snn_lab.cli import main

    runner = CliRunner()
    done = runner.invoke(main, ["theory", "--activation", "relu", "--init", "he_normal", "--width", "64"])
    assert done.exit_code == 0, done.output
    assert "relu-he_normal, width 64: the sd of log q reaches 0.5 at layer 4" in done.output  # (2 + 5 x 3) / 64 >= 1/4
    done = runner.invoke(main, ["theory", "--phase", "--activation", "tanh", "--width", "64"])
    assert done.exit_code == 2 and "--width applies to the per-series analysis" in done.output


def test_past_the_expansion_the_columns_are_nan_with_the_layer_and_the_reason():
    """ReLU-He at width 16: Var(log q) = (2 + 5 (L - 1)) / 16 passes 4 at layer 14 (67/16); NaN from there."""
    values, why = wc.predict(series("relu", "he_normal", width=16, depth=400, batch=2))
    finite = np.isfinite(values).all(axis=1)
    assert finite[:14].all() and not finite[14:].any()
    assert "from layer 14 on" in why and "expansion has broken down" in why
