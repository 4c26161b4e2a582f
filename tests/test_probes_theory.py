"""Theory of the backward signal and of input correlations against published closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import experiment
from snn_lab import gaussian, theory
from snn_lab.activations import ACTIVATIONS, make_activation


@pytest.mark.parametrize("name, params", [("relu", {}), ("leaky_relu", {"slope": 0.2}), ("linear", {})])
@pytest.mark.parametrize("q, c", [(1.0, 0.3), (2.5, -0.7), (0.3, 0.99), (1.0, 0.0), (4.0, 1.0)])
def test_pair_closed_forms_match_the_quadrature(name, params, q, c):
    act = make_activation(name, **params)
    assert act.pair_form is not None
    assert act.pair_moment(q, c) == pytest.approx(gaussian.pair_expect(act.fn, act.kinks, q, c), abs=1e-12)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_pair_moment_limits_are_the_one_dimensional_moments(name):
    """c = 1: E[phi^2]; c = 0: E[phi]^2 (independent inputs)."""
    act = make_activation(name)
    mo = act.moments(0.0, math.sqrt(1.7))
    assert act.pair_moment(1.7, 1.0) == pytest.approx(mo.m2, rel=1e-9, abs=1e-12)
    assert act.pair_moment(1.7, 0.0) == pytest.approx(mo.m1 ** 2, rel=1e-9, abs=1e-12)


def series(text: str):
    return experiment(text).series[0]


def test_relu_he_correlation_follows_the_arc_cosine_map():
    """Uncorrelated inputs: cosine 1/pi at layer 1, 0.4937 at layer 2 (Cho and Saul 2009)."""
    pred = theory.predict_probes(series("depth: 3\nseries: [{activation: relu, init: he_normal}]"))
    assert pred[0, 1] == 0.0
    assert pred[1, 1] == pytest.approx(1 / math.pi, rel=1e-12)
    c = 1 / math.pi
    assert pred[2, 1] == pytest.approx((math.sqrt(1 - c * c) + (math.pi - math.acos(c)) * c) / math.pi, rel=1e-12)
    assert pred[2, 1] == pytest.approx(0.4937, abs=5e-5)


def test_gradient_ratio_halves_per_layer_for_relu_lecun_and_is_kept_for_he():
    """dL/dx at each layer's output: through layer l the mean square gains sigma_w^2 E[relu'^2]
    = sigma_w^2 / 2, so 2^-(L - l) with LeCun (sigma_w^2 = 1) and 1 with He (2), input included."""
    lecun = theory.predict_probes(series("depth: 6\nseries: [{activation: relu}]"), correlation=False)
    he = theory.predict_probes(series("depth: 6\nseries: [{activation: relu, init: he_normal}]"), correlation=False)
    np.testing.assert_allclose(lecun[:, 0], 0.5 ** np.arange(6, -1, -1), rtol=1e-13)
    np.testing.assert_allclose(he[:, 0], 1.0, rtol=1e-13)


def test_selu_gradient_grows_by_chi1_per_layer_at_its_fixed_point():
    """chi_1 = E[selu'(z)^2] at z ~ N(0, 1), computed here from the closed form, not the code."""
    lam, alpha = 1.0507009873554804934, 1.6732632423543772848
    # E[selu'^2] = lam^2 (P(z>0) + alpha^2 E[e^{2z}; z<0]) = lam^2 (1/2 + alpha^2 e^2 Phi(-2)).
    phi_m2 = 0.5 * math.erfc(2 / math.sqrt(2))
    chi1 = lam * lam * (0.5 + alpha * alpha * math.exp(2.0) * phi_m2)
    pred = theory.predict_probes(series("depth: 8\nseries: [{activation: selu}]"), correlation=False)
    np.testing.assert_allclose(pred[:-1, 0] / pred[1:, 0], chi1, rtol=1e-12)  # the input's too
    assert chi1 == pytest.approx(1.0716, abs=1e-4)


def test_input_correlation_is_followed_from_a_chosen_start():
    pred = theory.predict_probes(series("depth: 2\ninput: {correlation: 0.5}\nseries: [{activation: linear}]"))
    np.testing.assert_allclose(pred[:, 1], 0.5, rtol=1e-12)  # a linear net keeps the cosine


def test_a_first_layer_that_overflows_grows_without_bound():
    """gain 1e200: sigma_w^2 = 1e400 is inf as a double; the theory says 'grows', not 'collapses'."""
    rep = theory.report(series("series: [{activation: elu, gain: 1.0e200}]"))
    assert rep["status"] == "grows" and rep["fixed_point"] is None
