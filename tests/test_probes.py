"""The article's other claims, measured: gradients, dead units and input correlations.

Each simulated probe is compared with its mean-field prediction within standard errors taken
from the trials' spread (t quantiles), or with the article's qualitative claim where there is
no closed form (dead units).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import assert_matches, experiment
from snn_lab import theory
from snn_lab.simulate import engine
from snn_lab.statistics import PROBES, STATS

GRAD, RATIO, DEAD, CORR = (len(STATS) + PROBES.index(c) for c in PROBES)


def run(text: str, *overrides: str):
    exp = experiment(text, *overrides)
    s = exp.series[0]
    return s, engine.run_series(s, exp.seed, exp.trials, measure=exp.measure).stats


BASE = """
seed: 5
trials: 24
width: 256
depth: 8
batch: 128
dtype: float64
measure: [gradients, dead, correlation]
series: [{activation: %s, init: %s}]
"""


@pytest.mark.parametrize("act, init, per_layer", [("relu", "lecun_normal", 0.5), ("relu", "he_normal", 1.0)])
def test_relu_gradient_shrinks_by_half_with_lecun_and_is_kept_with_he(act, init, per_layer):
    """E[delta_l^2] = sigma_w^2 E[relu'(h)^2] E[delta_{l+1}^2] = (sigma_w^2 / 2) E[delta_{l+1}^2]."""
    s, stats = run(BASE % (act, init))
    truth = per_layer ** (s.depth - np.arange(1, s.depth))
    # Layers 1 .. depth-1 (the top is 1 by definition), each trial's ratio an independent sample.
    assert_matches(stats[:, 1:-1, RATIO], truth, family_size=s.depth - 1, what=f"{act} {init} grad ratio")


def test_selu_gradient_grows_by_chi1_per_layer():
    """At SELU's fixed point the gradient's mean square grows by chi_1 = 1.0716 per layer down."""
    s, stats = run(BASE % ("selu", "lecun_normal"))
    chi1 = theory.chi1(s, 1.0)
    assert chi1 == pytest.approx(1.0716, abs=1e-4)
    truth = chi1 ** (s.depth - np.arange(1, s.depth))
    assert_matches(stats[:, 1:-1, RATIO], truth, family_size=s.depth - 1, what="SELU grad ratio")


def test_relu_he_correlation_of_uncorrelated_inputs_is_the_arc_cosine_map():
    """Cosine 1/pi = 0.3183 at layer 1 and 0.4937 at layer 2 (Cho and Saul's kernel).

    Finite width biases the simulation upward by O(1/width). Measured with 48 trials, batch
    128: layer 1 +0.0070 (se 0.0008) at width 64, +0.0017 (se 0.0003) at 256, +0.0006 (se
    0.0003) at 512, i.e. about 0.45/width; layer 2 +0.015 (se 0.005) at 64, +0.0012 (se
    0.003) at 256. The allowance below is 1/width at layer 1 and 4/width at layer 2, on top
    of the t-quantile standard-error bound.
    """
    from conftest import z_threshold

    s, stats = run(BASE % ("relu", "he_normal"), "depth=2")
    c = 1 / math.pi
    truth2 = (math.sqrt(1 - c * c) + (math.pi - math.acos(c)) * c) / math.pi
    assert truth2 == pytest.approx(0.4937, abs=5e-5)
    k = z_threshold(2, stats.shape[0])
    for layer, truth, allowance in ((1, c, 1.0 / s.width), (2, truth2, 4.0 / s.width)):
        cos = stats[:, layer, CORR]
        se = cos.std(ddof=1) / math.sqrt(len(cos))
        assert abs(cos.mean() - truth) < allowance + k * se, (layer, cos.mean(), truth, se)


def test_dead_units_none_for_selu_and_growing_for_deep_relu():
    """SELU units cannot die; deep ReLU nets lose more units the deeper they go."""
    text = """
seed: 2
trials: 2
width: 128
depth: 60
batch: 64
dtype: float32
measure: [dead]
series: [{activation: %s, init: %s}]
"""
    _, selu = run(text % ("selu", "lecun_normal"))
    _, relu = run(text % ("relu", "he_normal"))
    assert np.all(selu[:, 1:, DEAD] == 0.0)
    dead = relu[:, 1:, DEAD].mean(axis=0)
    # Seen (seed 2, 2 trials): 0.0 at layer 1, 0.156 at layer 10, 0.363 at layer 30, 0.391 at layer 60.
    assert dead[0] < 0.02 and dead[9] > 0.1 and dead[-1] > dead[9]
    assert np.all(np.isnan(relu[:, 0, DEAD]))  # the input has no activation


def test_input_correlation_is_followed_from_a_chosen_start():
    """input.correlation sets the cosine of the inputs (mean 0: cosine = correlation)."""
    s, stats = run(BASE % ("tanh", "lecun_normal"), "input.correlation=0.5", "depth=3")
    pred = theory.predict_probes(s)
    assert_matches(stats[:, :, CORR], pred[:, 1], family_size=4, what="tanh correlation")
    assert pred[0, 1] == pytest.approx(0.5)


def test_probes_not_asked_for_are_nan_and_cost_nothing():
    s, stats = run(BASE % ("selu", "lecun_normal"), "depth=2", "trials=1", "measure=[]")
    assert np.all(np.isnan(stats[:, :, len(engine.STATS):]))
