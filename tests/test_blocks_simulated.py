"""Norm layers and residual blocks: the simulation against their mean-field theory.

Tolerances are standard errors from the trials' spread (conftest.assert_matches, t quantiles
over the family of compared values); where a finite-size correction is known to be present
and not modelled, the test says how large it is allowed to be and why.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import assert_matches, experiment
from snn_lab import theory
from snn_lab.simulate import engine
from snn_lab.statistics import PROBES, STATS

MEAN, VAR, PRE_MEAN, PRE_VAR = range(4)
RATIO, CORR = len(STATS) + PROBES.index("grad_ratio"), len(STATS) + PROBES.index("correlation")

LAYERS = {
    "batch norm": "norm: batch",
    "layer norm": "norm: layer",
    "residual": "residual: {alpha: 0.3}",
    "NF residual": "normalize_weights: true\n  residual: {alpha: 0.3, beta: expected}",
    "residual batch norm": "norm: batch\n  residual: {alpha: 0.5}",
}


def run(text: str, *overrides: str):
    exp = experiment(text, *overrides)
    s = exp.series[0]
    return s, engine.run_series(s, exp.seed, exp.trials, measure=exp.measure).stats


def one(layer: str, activation: str, width=256, batch=256, depth=8, trials=16, dtype="float64",
        init="he_normal", measure="[correlation]", extra="") -> str:
    return (f"seed: 11\ntrials: {trials}\nwidth: {width}\nbatch: {batch}\ndepth: {depth}\ndtype: {dtype}\n"
            f"measure: {measure}\n{extra}series:\n- activation: {activation}\n  init: {init}\n  {LAYERS[layer]}\n")


@pytest.mark.parametrize("activation", ["relu", "tanh", "{name: selu}"])
@pytest.mark.parametrize("layer", LAYERS)
def test_forward_statistics_and_correlation_match_theory(layer, activation):
    """Mean, variance and the inputs' cosine at every layer, within standard errors."""
    s, stats = run(one(layer, activation))
    pred = theory.predict(s)
    probes = theory.predict_probes(s, correlation=True, prediction=pred)
    layers = slice(1, s.depth + 1)
    assert_matches(stats[:, layers, MEAN], pred[layers, 0], 3 * s.depth, f"{layer} {activation} mean")
    assert_matches(stats[:, layers, VAR], pred[layers, 1], 3 * s.depth, f"{layer} {activation} var")
    assert_matches(stats[:, layers, CORR], probes[layers, 1], 3 * s.depth, f"{layer} {activation} correlation")
    if s.norm == "none":
        assert_matches(stats[:, layers, PRE_VAR], pred[layers, 2], 3 * s.depth, f"{layer} {activation} preact var")


@pytest.mark.parametrize("layer", ["batch norm", "layer norm"])
def test_a_norm_layer_fixes_its_preactivations_to_mean_0_variance_1_minus_eps(layer):
    """p has mean 0 and variance v / (v + eps) exactly; the theory's first-order eps term is
    within rounding of it (the simulated value barely varies: its spread is ~1e-8)."""
    s, stats = run(one(layer, "relu", trials=4, extra="input: {mean: 2.0, var: 3.0}\n"))
    pred = theory.predict(s)
    np.testing.assert_allclose(stats[:, 1:, PRE_MEAN], 0.0, atol=1e-12)
    assert np.all(stats[:, 1:, PRE_VAR] < 1.0) and np.all(stats[:, 1:, PRE_VAR] > 1.0 - 1e-3)
    np.testing.assert_allclose(stats[:, 1:, PRE_VAR].mean(axis=0), pred[1:, 2], rtol=0, atol=2e-8)


def test_batch_norm_relu_gradient_grows_by_pi_over_pi_minus_one_per_layer():
    """Yang et al. (2019): with batch norm, ReLU's gradient grows by pi/(pi - 1) = 1.4669 per
    layer (large batch and width). The per-layer factor is taken over layers 2..depth-1 (layer
    1 -> 0 divides by the input's variance instead). Allowed beside the standard error: 0.5%
    for the O(1/batch + 1/width) corrections the theory leaves out (measured within 0.4% at
    batch and width 256 to 2048)."""
    s, stats = run(one("batch norm", "relu", depth=10, measure="[gradients]"))
    ratio = stats[:, :, RATIO]
    span = s.depth - 3
    factor = (ratio[:, 2] / ratio[:, s.depth - 1]) ** (1.0 / span)
    rate = math.pi / (math.pi - 1.0)
    pred = theory.predict_probes(s, correlation=False)[:, 0]
    assert (pred[2] / pred[s.depth - 1]) ** (1.0 / span) == pytest.approx(rate, rel=1e-9)
    se = factor.std(ddof=1) / math.sqrt(len(factor))
    assert abs(factor.mean() - rate) < 4 * se + 0.005 * rate, (factor.mean(), rate, se)


@pytest.mark.parametrize("layer, activation", [("layer norm", "relu"), ("residual", "tanh"), ("NF residual", "relu")])
def test_gradient_ratio_matches_theory(layer, activation):
    s, stats = run(one(layer, activation, depth=8, measure="[gradients]"))
    pred = theory.predict_probes(s, correlation=False)[:, 0]
    # Layers 0 .. depth-1 (the top is 1 by definition); each trial's ratio an independent sample.
    assert_matches(stats[:, :-1, RATIO], pred[:-1], s.depth, f"{layer} {activation} grad ratio")


def test_nf_residual_variance_grows_by_alpha_squared_per_block_at_depth_64():
    """NFNets' design (scale nf, normalized weights, beta expected): Var x_l = Var x_0 + l alpha^2,
    the residual variance recursion, simulated at depth 64."""
    text = one("NF residual", "{name: relu, scale: nf}", width=256, batch=128, depth=64, dtype="float32",
               init="lecun_normal")
    s, stats = run(text)
    pred = theory.predict(s)
    layers = np.arange(s.depth + 1)
    np.testing.assert_allclose(pred[:, 1], s.input.var + layers * 0.3 ** 2, rtol=1e-9)
    assert_matches(stats[:, 1:, VAR], pred[1:, 1], s.depth, "NF residual var")


def test_plain_residual_variance_recursion_at_depth_64():
    """x_l = x_{l-1} + alpha tanh(h): M_l = M_{l-1} + alpha^2 E tanh(h)^2, simulated at depth 64."""
    s, stats = run(one("residual", "tanh", width=256, batch=128, depth=64, dtype="float32", init="lecun_normal"))
    pred = theory.predict(s)
    assert_matches(stats[:, 1:, VAR], pred[1:, 1], s.depth, "residual tanh var")


def test_batch_norm_approaches_the_gaussian_limit_as_the_batch_grows():
    """Batch norm at infinite width: each unit's p over a batch of B is uniform on a sphere, so
    E relu(p) is E relu(sqrt(B-1) t), (t+1)/2 ~ Beta((B-2)/2, (B-2)/2), not the Gaussian
    1/sqrt(2 pi). The simulation follows the finite-batch value at every B, and its distance to
    the Gaussian limit shrinks like 1/B."""
    gaussian = 1.0 / math.sqrt(2.0 * math.pi)
    gaps = []
    for batch in (4, 16, 64):
        s, stats = run(one("batch norm", "relu", width=512, batch=batch, depth=3, measure="[]"))
        pred = theory.predict(s)
        assert_matches(stats[:, 1:, MEAN], pred[1:, 0], 9, f"batch {batch} mean")
        gaps.append(gaussian - pred[1, 0])
    # O(1/B): the gap times B stays within a factor 2 while B grows 16-fold.
    scaled = [g * b for g, b in zip(gaps, (4, 16, 64))]
    assert all(g > 0 for g in gaps) and max(scaled) < 2 * min(scaled), scaled
