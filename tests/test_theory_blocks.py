"""theory/blocks.py (batch norm, layer norm, residual blocks, NF scaling) against independent
truths: closed forms, published rates, the Beta law of a sphere's coordinate, scipy quadrature,
and small Monte Carlo networks written here in numpy (tolerances from the sample size)."""

from __future__ import annotations

import json
import math

import mpmath
import numpy as np
import pytest
from conftest import assert_matches, cli_runner, experiment
from scipy import integrate, special, stats

from snn_lab import gaussian, theory
from snn_lab.activations import ACTIVATIONS, alpha_dropout_affine, make_activation
from snn_lab.cli import main
from snn_lab.config import NORM_EPS
from snn_lab.theory import blocks


def series(text: str, *overrides: str):
    return experiment(text, *overrides).series[0]


def quad_gauss(f) -> float:
    """E f(z), z ~ N(0, 1), by scipy's adaptive quad split at 0 (not the package's own rule)."""
    g = lambda x: f(np.array([x]))[0] * math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
    return sum(integrate.quad(g, a, b, epsabs=0.0, epsrel=1e-12, limit=200)[0]
               for a, b in ((-40.0, 0.0), (0.0, 40.0)))


# ---- one coordinate of a normalized vector ----------------------------------------------------

@pytest.mark.parametrize("K", [3, 4, 5, 10, 64, 1000, 10**9])
def test_sphere_entry_has_unit_variance_and_the_beta_fourth_moment(K):
    """p = sqrt(K - 1) t, (t + 1)/2 ~ Beta((K-2)/2, (K-2)/2): E p^2 = 1, E p^4 = 3 (K - 1)/(K + 1)."""
    x, w = gaussian.sphere_nodes(K)
    assert w @ x == pytest.approx(0.0, abs=1e-15)
    assert w @ x**2 == pytest.approx(1.0, rel=1e-14)
    assert w @ x**4 == pytest.approx(3.0 * (K - 1) / (K + 1), rel=1e-13)
    if K < 10**6:  # the same moment from scipy's Beta law (its 4th raw moment, shifted and scaled)
        b = stats.beta((K - 2) / 2, (K - 2) / 2)
        t4 = sum(special.comb(4, j) * b.moment(j) * 2.0**j * (-1.0) ** (4 - j) for j in range(5))
        assert w @ x**4 == pytest.approx((K - 1) ** 2 * t4, rel=1e-8)  # scipy's sum cancels


def test_sphere_entry_of_one_and_two_entries():
    """K = 1: the entry minus the mean is 0; K = 2: the two entries are +-1."""
    assert gaussian.sphere_expect(lambda x: x * x + 1.0, 1) == 1.0
    x, w = gaussian.sphere_nodes(2, 0.5)
    assert sorted(x) == [-0.5, 0.5] and list(w) == [0.5, 0.5]


@pytest.mark.parametrize("name", ["tanh", "selu", "gelu"])
@pytest.mark.parametrize("K, scale", [(5, 1.0), (7, 0.3), (40, 2.5)])
def test_sphere_expectation_matches_scipy_on_the_beta_density(name, K, scale):
    act = make_activation(name)
    beta = stats.beta((K - 2) / 2, (K - 2) / 2)
    radius = scale * math.sqrt(K - 1)
    f = lambda t: act.fn(np.array([radius * t]))[0] ** 2 * beta.pdf((t + 1) / 2) / 2
    ref = sum(integrate.quad(f, a, b, epsabs=0.0, epsrel=1e-12, limit=400)[0] for a, b in ((-1, 0), (0, 1)))
    assert gaussian.sphere_expect(lambda x: act.fn(x) ** 2, K, scale, act.kinks) == pytest.approx(ref, rel=1e-11)


@pytest.mark.parametrize("name", ["relu", "tanh"])
def test_sphere_expectations_tend_to_the_gaussian_ones_as_1_over_K(name):
    act = make_activation(name)
    mo = act.moments(0.0, 1.0)
    gap = [abs(gaussian.sphere_expect(lambda x: act.fn(x) ** 2, K, 1.0, act.kinks) - mo.m2)
           + abs(gaussian.sphere_expect(act.fn, K, 1.0, act.kinks) - mo.m1) for K in (10**3, 10**4, 10**5)]
    assert gap[0] < 1e-3 and gap[1] / gap[2] == pytest.approx(10.0, rel=0.01)


@pytest.mark.parametrize("K", [3, 4, 5, 8, 64, 1024])
def test_two_entries_of_a_normalized_vector(K):
    """They sum with the rest to 0, squares to K: E p_a p_b = -1/(K-1),
    E p_a^2 p_b^2 = (K - E p^4)/(K - 1) = (K^2 - 2K + 3)/(K^2 - 1)."""
    assert gaussian.sphere_pair_expect(lambda x: x, K) == pytest.approx(-1.0 / (K - 1), rel=1e-13)
    assert gaussian.sphere_pair_expect(lambda x: x * x, K) == pytest.approx(
        (K * K - 2 * K + 3) / (K * K - 1), rel=1e-13)


@pytest.mark.parametrize("K", [3, 4, 12, 1024])
def test_relu_pair_on_the_sphere_is_the_arc_cosine_kernel(K):
    """relu(p_a) relu(p_b) is homogeneous of degree 2: it sees only the direction, which a
    Gaussian vector shares with the sphere, so it equals Cho and Saul's kernel at c = -1/(K-1)."""
    c = -1.0 / (K - 1)
    kernel = (math.sqrt(1 - c * c) + (math.pi - math.acos(c)) * c) / (2 * math.pi)
    assert gaussian.sphere_pair_expect(make_activation("relu").fn, K, 0.7) == pytest.approx(
        0.49 * kernel, rel=1e-13)


@pytest.mark.parametrize("K", [4, 9])
def test_tanh_pair_on_the_sphere_matches_monte_carlo(K):
    rng = np.random.default_rng(7)
    g = rng.standard_normal((400_000, K))
    g -= g.mean(axis=1, keepdims=True)
    p = g / np.sqrt((g * g).mean(axis=1, keepdims=True))  # uniform on the sphere in sum = 0
    prod = np.tanh(p[:, 0]) * np.tanh(p[:, 1])
    se = prod.std() / math.sqrt(len(prod))
    assert abs(gaussian.sphere_pair_expect(np.tanh, K) - prod.mean()) < 5 * se


# ---- the eps term --------------------------------------------------------------------------------

@pytest.mark.parametrize("a", [1e-300, 1e-100, 1e-12, 1e-5, 1e-3, 0.3, 30.0])
def test_eps_deficit_with_two_degrees_of_freedom_is_the_exponential_integral(a):
    """X ~ chi^2_2 = Exp(mean 2): E[a/(X + a)] = (a/2) e^(a/2) E1(a/2)."""
    assert blocks.deficit(a, 2) == pytest.approx(a / 2 * math.exp(a / 2) * special.exp1(a / 2), rel=1e-13, abs=0)


@pytest.mark.parametrize("a", [1e-300, 1e-100, 1e-12, 1e-5, 0.3, 30.0, 1e6])
def test_eps_deficit_with_one_degree_of_freedom_is_the_scaled_erfc(a):
    """X = Z^2: E[a/(Z^2 + a)] = sqrt(pi a / 2) e^(a/2) erfc(sqrt(a/2)); for small a that is
    sqrt(pi a / 2), far above a (quad's window missed the slow tail and returned -a)."""
    exact = math.sqrt(math.pi * a / 2) * special.erfcx(math.sqrt(a / 2))
    assert blocks.deficit(a, 1) == pytest.approx(exact, rel=1e-13, abs=0)


@pytest.mark.parametrize("dof", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("a", [1e-30, 1e-10, 1e-3, 2.0, 1e4])
def test_eps_deficit_of_few_degrees_of_freedom_is_its_definition(dof, a):
    """E[a/(X + a)] integrated against the chi^2_dof density by mpmath (40 digits, cut at a, every
    5 decades up to 1, and at the density's bulk): where the slow tail of small dof matters most."""
    mpmath.mp.dps = 40
    k, am = mpmath.mpf(dof), mpmath.mpf(a)

    def density(x):
        return x ** (k / 2 - 1) * mpmath.exp(-x / 2) / (2 ** (k / 2) * mpmath.gamma(k / 2))
    cuts = sorted({am * mpmath.mpf(10) ** j for j in range(0, 305, 5) if am * 10.0 ** j < 1} | {am})
    exact = mpmath.quad(lambda x: am / (x + am) * density(x), [0, *cuts, 1, k, 10 * k + 100, mpmath.inf])
    assert blocks.deficit(a, dof) == pytest.approx(float(exact), rel=1e-12, abs=0)


@pytest.mark.parametrize("dof", [9, 511, 1023])
def test_eps_deficit_is_eps_times_the_mean_inverse_chi_square(dof):
    """E[a/(X + a)] = a E[1/X] - a^2 E[1/X^2] + ..., E[1/X] = 1/(dof - 2), E[1/X^2] = 1/((dof-2)(dof-4))."""
    a = NORM_EPS * (dof + 1)
    series_sum = a / (dof - 2) - a * a / ((dof - 2) * (dof - 4)) + a**3 / ((dof - 2) * (dof - 4) * (dof - 6))
    assert blocks.deficit(a, dof) == pytest.approx(series_sum, rel=1e-12, abs=0)


def test_norm_preact_var_is_one_minus_eps_times_the_mean_inverse_variance():
    """Layer 1, N(0, 1.7) input, Gaussian weights, sigma_w^2 = 2: V = 3.4. Layer norm divides by
    v = V_a chi^2_(n-1)/n, V_a = V chi^2_n/n (the sample's own mean square): E 1/v =
    n/(n-3) n/((n-2) V). Batch norm: v B = g^T G g, G the batch's Gram: v = V chi^2_(B-1)
    chi^2_n/(B n), E 1/v = B/(B-3) n/(n-2) / V. (The theory's width terms are the leading
    2/n of n/(n-2): 4/n^2 = 6e-5 apart.)"""
    n, B, V = 256, 32, 3.4
    text = f"width: {n}\nbatch: {B}\ndepth: 1\ninput: {{var: 1.7}}\nseries: [{{activation: tanh, init: he_normal, norm: %s}}]"
    ln = theory.predict(series(text % "layer"))[1, 2]
    bn = theory.predict(series(text % "batch"))[1, 2]
    assert 1 - ln == pytest.approx(NORM_EPS * n / (n - 3) * n / ((n - 2) * V), rel=1e-4)
    assert 1 - bn == pytest.approx(NORM_EPS * B / (B - 3) * n / ((n - 2) * V), rel=1e-4)
    # The bias is in V for layer norm, and cancels in batch norm.
    biased = series(text % "batch", "series.0.bias_var=0.3")
    assert theory.predict(biased)[1, 2] == theory.predict(series(text % "batch"))[1, 2]


def test_batch_norm_eps_term_is_smaller_with_normalized_and_uniform_weights():
    """The width term is (2 + kappa)/n, kappa the weights' excess kurtosis: a normalized unit's
    weights have a fixed sum of squares (kappa = -2: none); uniform weights kappa = -6/5."""
    n, B = 128, 64
    text = f"width: {n}\nbatch: {B}\ndepth: 1\nseries: [{{activation: tanh, norm: batch, %s}}]"
    inf = NORM_EPS * B / ((B - 3) * 1.0)  # infinite width, V = 1
    normal, uniform, normalized = (1 - theory.predict(series(text % kind))[1, 2] for kind in
                                   ("init: lecun_normal", "init: lecun_uniform", "normalize_weights: true"))
    assert normal == pytest.approx(inf * (1 + 2 / n), rel=1e-4)
    assert uniform == pytest.approx(inf * (1 + 0.8 / n), rel=1e-4)
    assert normalized == pytest.approx(inf, rel=1e-4)


@pytest.mark.parametrize("init, kurtosis", [("lecun_normal", 0.0), ("lecun_uniform", stats.uniform(-1, 2).stats("k")),
                                              ("lecun_truncated", stats.truncnorm(-2, 2).stats("k"))])
def test_weight_kurtosis_is_scipys(init, kurtosis):
    from snn_lab.theory import finite_width

    assert finite_width.weight_kurtosis(series(f"series: [{{activation: relu, init: {init}}}]")) == \
        pytest.approx(float(kurtosis), rel=1e-12, abs=1e-15)


def _deficits(s, trials: int, seed: int) -> np.ndarray:
    """(trials, depth): 1 - the pooled variance of each norm layer's output, simulated in numpy."""
    act, rng = s.make_activation(), np.random.default_rng(seed)
    n, B, axis = s.width, s.batch, 0 if s.norm == "batch" else 1
    out = np.empty((trials, s.depth))
    for t in range(trials):
        x = rng.standard_normal((B, n)) + s.input.mean
        for layer in range(s.depth):
            if s.normalize_weights:
                W = rng.standard_normal((n, n))
                W -= W.mean(axis=0)
                W /= np.sqrt((W * W).sum(axis=0))
            else:
                W = rng.uniform(-1.0, 1.0, (n, n)) * math.sqrt(3.0 / n)
            h = x @ W
            p = (h - h.mean(axis=axis, keepdims=True)) / np.sqrt(h.var(axis=axis, keepdims=True) + NORM_EPS)
            out[t, layer] = 1.0 - p.var()
            x = act.fn(p)
    return out


@pytest.mark.parametrize("text", [
    "width: 64\nbatch: 32\ndepth: 2\ninput: {mean: 0.3}\nseries: [{activation: relu, normalize_weights: true, norm: layer}]",
    "width: 64\nbatch: 64\ndepth: 1\nseries: [{activation: tanh, init: lecun_uniform, norm: batch}]",
])
def test_eps_term_at_finite_width_matches_monte_carlo(text):
    """The eps term resolved to ~1e-8 at width 64, where its width terms are 3-6% of it."""
    s = series(text)
    sim = _deficits(s, trials=400, seed=13)
    assert_matches(sim, 1.0 - theory.predict(s)[1:, 2], family_size=s.depth, what="1 - preact var")


# ---- gradients ---------------------------------------------------------------------------------

def test_relu_batch_norm_gradient_explodes_by_pi_over_pi_minus_1():
    """Yang et al. (2019): in the large-batch limit ReLU + batch norm multiplies the gradient's
    mean square by pi/(pi - 1) per layer, whatever the weight variance."""
    rate = math.pi / (math.pi - 1)
    for init in ("lecun_normal", "he_normal"):
        s = series(f"depth: 6\nbatch: 10000000\nseries: [{{activation: relu, init: {init}, norm: batch}}]")
        limit, why = blocks.growth_limit(s)
        assert why is None and limit == pytest.approx(rate, rel=1e-13)
        g = theory.predict_probes(s, correlation=False)[:, 0]
        np.testing.assert_allclose(g[1:5] / g[2:6], rate, rtol=1e-4)  # O(1/B) and O(eps / S) = 3e-5 apart


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_batch_norm_gradient_limit_is_at_least_one_for_every_activation(name):
    """E[phi'(z)^2] / Var phi(z) >= 1 (Gaussian Poincare inequality); = 1 only for linear phi.
    The ratio here from scipy's quad of fn and deriv, not the package's moments."""
    s = series(f"series: [{{activation: {name}, norm: batch}}]")
    act = make_activation(name)
    ratio = quad_gauss(lambda x: act.deriv(x) ** 2) / (
        quad_gauss(lambda x: act.fn(x) ** 2) - quad_gauss(act.fn) ** 2)
    limit, _ = blocks.growth_limit(s)
    assert limit == pytest.approx(ratio, rel=1e-9)
    assert limit >= 1.0 - 1e-12
    if name == "linear":
        assert limit == pytest.approx(1.0, abs=1e-14)


def test_linear_batch_norm_at_finite_batch():
    """Deep in a linear batch-norm net the error signal sums to 0 over the batch, and the norm's
    backward projects it off its output p (|p|^2 = B): (B - 2)/(B - 1) of its mean square is kept.
    It is divided by v, E 1/v = B/((B - 3) S) with S = M - C = 1 + 1/(B - 1): (B - 2)/(B - 3) per
    layer. The top layer gets an i.i.d. signal: it keeps (B - 2)/B, so (B - 1)(B - 2)/(B (B - 3))."""
    for B in (6, 12, 100):
        s = series(f"depth: 5\nbatch: {B}\nseries: [{{activation: linear, norm: batch}}]")
        g = theory.predict_probes(s, correlation=False)[:, 0]
        np.testing.assert_allclose(g[1:4] / g[2:5], (B - 2) / (B - 3), rtol=1e-4)  # eps
        assert g[4] == pytest.approx((B - 1) * (B - 2) / (B * (B - 3)), rel=1e-4)
        assert theory.report(s)["gradient_growth"] == pytest.approx((B - 2) / (B - 3), rel=1e-4)


@pytest.mark.parametrize("init, sw", [("he_normal", 2.0), ("lecun_normal", 1.0)])
def test_layer_norm_relu_gradient_is_one_per_layer_and_one_half_into_the_input(init, sw):
    """chi_l = sigma_w^2 E[relu'^2] / V_l, V_l = sigma_w^2 E x_(l-1)^2: E relu'^2 = 1/2 and
    E x^2 = 1/2 after a layer norm (p symmetric, E p^2 = 1), 1 for the N(0, 1) input."""
    g = theory.predict_probes(series(f"depth: 6\nwidth: 256\nseries: [{{activation: relu, init: {init}, norm: layer}}]"),
                              correlation=False)[:, 0]
    expected = [0.5] + [1.0] * 6
    np.testing.assert_allclose(g, expected, rtol=1e-4)  # O(eps / V): 2e-5 per layer
    assert sw * 0.5 / (sw * 1.0) == expected[0]


def test_plain_series_gradient_is_the_product_of_chi1_over_the_layers_passed():
    """tanh at a small weight variance: through layer l, sigma_w^2 E[tanh'(h_l)^2] (h_l ~ N(0, q_l)),
    from scipy's quad; the ratio at layer 0 has passed every layer."""
    s = series("depth: 3\nseries: [{activation: tanh, gain: 0.8}]")
    q = theory.predict(s)[:, 2]
    act = make_activation("tanh")
    chi = [0.64 * quad_gauss(lambda x, ql=ql: act.deriv(math.sqrt(ql) * x) ** 2) for ql in q]
    g = theory.predict_probes(s, correlation=False)[:, 0]
    np.testing.assert_allclose(g, [chi[1] * chi[2] * chi[3], chi[2] * chi[3], chi[3], 1.0], rtol=1e-11)


# ---- residual blocks ---------------------------------------------------------------------------

@pytest.mark.parametrize("var0", [1.0, 2.5])
def test_nf_residual_variance_grows_by_alpha_squared_per_block(var0):
    """NFNets (Brock et al. 2021): normalized weights, gamma-scaled relu and beta_l = the expected
    sd make every branch's output unit-variance and independent of the stream: var_l = var_0 + l alpha^2."""
    s = series(f"depth: 12\ninput: {{var: {var0}, mean: 0.3}}\nseries: [{{activation: {{name: relu, scale: nf}}, "
               "normalize_weights: true, residual: {alpha: 0.2, beta: expected}}]")
    pred = theory.predict(s)
    np.testing.assert_allclose(pred[:, 1], var0 + 0.04 * np.arange(13), rtol=1e-13)
    np.testing.assert_allclose(pred[1:, 2], 1.0, rtol=1e-13)  # each branch sees unit variance


def test_plain_residual_linear_net_grows_geometrically():
    """x_l = x_(l-1) + alpha x_(l-1) W: E x^2 gains alpha^2 sigma_w^2 E x^2 per block."""
    s = series("depth: 8\ninput: {var: 0.7, mean: 0.5}\nseries: [{activation: linear, gain: 1.3, residual: 0.6}]")
    pred = theory.predict(s)
    M = pred[:, 1] + pred[:, 0] ** 2
    np.testing.assert_allclose(M, (0.7 + 0.25) * (1 + 0.36 * 1.69) ** np.arange(9), rtol=1e-13)
    np.testing.assert_allclose(pred[:, 0], 0.5, rtol=1e-13)
    g = theory.predict_probes(s, correlation=False)[:, 0]  # the skip adds: 1 + alpha^2 sigma_w^2
    np.testing.assert_allclose(g, (1 + 0.36 * 1.69) ** np.arange(8, -1, -1), rtol=1e-13)


# ---- NF scaling -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_nf_scale_gives_unit_variance_for_every_activation(name):
    """gamma phi(z), z ~ N(0, 1), with scale: nf has variance 1 (scipy's quad of the function)."""
    act = series(f"series: [{{activation: {{name: {name}, scale: nf}}}}]").make_activation()
    assert quad_gauss(lambda x: act.fn(x) ** 2) - quad_gauss(act.fn) ** 2 == pytest.approx(1.0, rel=1e-10)


# ---- small networks in numpy: what the theory says is exact ------------------------------------

def _network(s, trials: int, seed: int) -> np.ndarray:
    """(trials, depth + 1, 4): mean, var, cosine of two samples, gradient ratio (dL/dx at each output)."""
    act, rng = s.make_activation(), np.random.default_rng(seed)
    n, B, L = s.width, s.batch, s.depth
    out = np.empty((trials, L + 1, 4))
    for t in range(trials):
        x = math.sqrt(s.input.var) * rng.standard_normal((B, n)) + s.input.mean
        xs, saved = [x], []
        for _ in range(L):
            W = rng.standard_normal((n, n)) * math.sqrt(s.weight_var / n)
            h = x @ W
            axis = 0 if s.norm == "batch" else 1
            sigma = np.sqrt(h.var(axis=axis, keepdims=True) + NORM_EPS)
            p = (h - h.mean(axis=axis, keepdims=True)) / sigma
            mask = None
            y = act.fn(p)
            if s.dropout:
                a, b = alpha_dropout_affine(s.dropout, act.saturation)
                mask = rng.random(y.shape) >= s.dropout
                y = a * np.where(mask, y, act.saturation) + b
                mask = a * mask
            x = x + s.residual.alpha * y if s.residual else y
            saved.append((W, p, sigma, axis, mask))
            xs.append(x)
        d = rng.standard_normal((B, n))
        top = (d * d).mean()
        out[t, L, 3] = 1.0
        for layer in range(L, 0, -1):
            W, p, sigma, axis, mask = saved[layer - 1]
            g = d * act.deriv(p) * (s.residual.alpha if s.residual else 1.0)
            if mask is not None:
                g = g * mask
            g = (g - g.mean(axis=axis, keepdims=True) - p * (g * p).mean(axis=axis, keepdims=True)) / sigma
            d = g @ W.T + (d if s.residual else 0.0)
            out[t, layer - 1, 3] = (d * d).mean() / top
        for i, v in enumerate(xs):
            u = v / np.linalg.norm(v, axis=1, keepdims=True)
            total = u.sum(axis=0)
            out[t, i, :3] = v.mean(), v.var(), (total @ total - B) / (B * (B - 1))
    return out


@pytest.mark.parametrize("text", [
    "series: [{activation: relu, init: he_normal, norm: batch}]",
    "series: [{activation: selu, norm: batch, dropout: 0.1, residual: 0.7}]",
])
def test_batch_norm_at_a_small_batch_matches_a_wide_network(text):
    """Width 1024, batch 8: the theory is exact at infinite width for any batch (the sphere law,
    and the backward pass through the norm); what is left is O(1/width), under the tolerance."""
    s = series("width: 1024\nbatch: 8\ndepth: 3\ndtype: float64\n" + text)
    sim = _network(s, trials=24, seed=3)
    pred, probes = theory.predict(s), theory.predict_probes(s)
    truth = np.column_stack([pred[:, :2], probes[:, 1], probes[:, 0]])
    assert_matches(sim[:, 1:, :3], truth[1:, :3], family_size=12, what="mean, var, cosine")
    assert_matches(sim[:, :-1, 3], truth[:-1, 3], family_size=3, what="gradient ratio")


def test_layer_norm_output_law_is_exact_at_width_16():
    """Gaussian weights and input: each sample's normalized pre-activation is uniform on the sphere
    at any width, so relu's mean and variance after one layer norm of 16 units are exact."""
    s = series("width: 16\nbatch: 4096\ndepth: 1\ndtype: float64\nseries: [{activation: relu, norm: layer}]")
    sim = _network(s, trials=32, seed=5)
    truth = theory.predict(s)[1, :2]
    assert truth[0] != pytest.approx(1 / math.sqrt(2 * math.pi), rel=1e-3)  # not the Gaussian value
    assert_matches(sim[:, 1, :2], truth, family_size=2, what="layer norm, width 16")


# ---- degenerate inputs, the report and the command --------------------------------------------

def test_batch_norm_of_identical_samples_gives_zero_and_an_undetermined_gradient():
    """input.correlation 1: every unit sees one value across the batch; x - mean = 0, so p = 0."""
    s = series("depth: 3\ninput: {correlation: 1.0}\nseries: [{activation: tanh, norm: batch}]")
    pred = theory.predict(s)
    np.testing.assert_array_equal(pred[1:], 0.0)  # tanh(0) = 0: mean, var and preact var
    assert np.isnan(theory.predict_probes(s)[:-1, 0]).all()
    rep = theory.report(s)
    assert rep["gradient_growth"] is None and "no variance" in rep["reasons"]["gradient_growth"]


@pytest.mark.parametrize("text", [
    "series: [{activation: relu, norm: batch}]",
    "series: [{activation: tanh, norm: layer, bias_var: 0.1}]",
    "series: [{activation: selu, residual: {alpha: 0.3, beta: expected}}]",
])
def test_block_report_keys_and_reasons(text):
    rep = theory.report(series("depth: 4\n" + text))
    assert rep["status"] in ("normalized", "residual") and rep["fixed_point"] is None
    for key, value in rep.items():
        if value is None and key != "overflow_layer":  # None there: nothing overflowed
            assert key in rep["reasons"], key
    assert set(rep["layers"][0]) == {"layer", *theory.THEORY, "theory_grad_ratio", "gradient_growth"}
    assert (rep["status"] == "residual") == ("variance_growth" in rep)
    json.dumps(rep, allow_nan=False)
    assert theory.fixed_point(series("depth: 4\n" + text)).status == rep["status"]


def test_theory_command_on_blocks_and_phase_refused(tmp_path):
    cfg = tmp_path / "b.yaml"
    cfg.write_text("depth: 4\nseries: [{activation: relu, init: he_normal, norm: batch}]\n")
    out = cli_runner().invoke(main, ["theory", str(cfg)])
    assert out.exit_code == 0 and "gradient growth" in out.output and "normalized" not in out.output.lower()[:0]
    out = cli_runner().invoke(main, ["theory", "--json", str(cfg)])
    assert json.loads(out.stdout)["series"][0]["gradient_growth_limit"] == pytest.approx(math.pi / (math.pi - 1))
    out = cli_runner().invoke(main, ["theory", "--phase", "--activation", "relu", "--set", "series.0.norm=batch"])
    assert out.exit_code == 2
    assert "--phase draws the order-to-chaos diagram of plain layers" in out.output
