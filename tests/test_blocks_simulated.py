"""Norm layers and residual blocks: the simulation against their mean-field theory.

Tolerances are standard errors from the trials' spread (conftest.assert_matches, t quantiles
over the family of compared values); where a finite-size correction is known to be present
and not modelled, the test says how large it is allowed to be and why.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from conftest import assert_matches, experiment, z_threshold
from snn_lab import theory
from snn_lab.simulate import engine
from snn_lab.statistics import PROBES, STATS

ROOT = Path(__file__).resolve().parents[1]
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


def assert_near(samples, truth, family_size: int, allowance, what: str) -> None:
    """As assert_matches, beside a stated allowance for a bias the theory leaves out."""
    samples = np.asarray(samples, np.float64)
    n = samples.shape[0]
    se = samples.std(axis=0, ddof=1) / math.sqrt(n)
    excess = np.maximum(np.abs(samples.mean(axis=0) - truth) - allowance, 0.0)
    z = np.where(excess > 0, excess / np.where(se > 0, se, np.inf), 0.0)
    limit = z_threshold(family_size, n)
    worst = int(np.argmax(z))
    assert np.all(z < limit), (f"{what}: entry {worst}: simulated {samples.mean(axis=0).flat[worst]:.6g} vs "
                               f"theory {np.broadcast_to(truth, z.shape).flat[worst]:.6g}, beyond the allowance "
                               f"{np.broadcast_to(allowance, z.shape).flat[worst]:.3g} by {z.flat[worst]:.2f} "
                               f"standard errors > {limit:.2f}")


# The theory is the infinite-width limit. At width n the simulation drifts from it by O(l/n) at
# layer l (issue 19 is the 1/n theory): measured for batch norm at layer 8, ReLU's mean by
# -0.010, -0.0022, -0.0006 at widths 128, 512, 2048 (0.16 l/n), tanh's variance by 0.09 l/n.
# Allowed: 0.25 l/n relative to max(1, |theory|). The cosine of two inputs carries its own
# upward O(1/n) bias (about 0.45/n at layer 1 for ReLU, plain or normalized; see the README).
DRIFT, COSINE_BIAS = 0.25, 0.5


@pytest.mark.parametrize("activation", ["relu", "tanh", "{name: selu}"])
@pytest.mark.parametrize("layer", LAYERS)
def test_forward_statistics_and_correlation_match_theory(layer, activation):
    """Mean, variance and the inputs' cosine at every layer, within standard errors and the
    stated finite-width drift."""
    s, stats = run(one(layer, activation, width=512, batch=128, depth=6))
    pred = theory.predict(s)
    probes = theory.predict_probes(s, correlation=True, prediction=pred)
    layers = np.arange(1, s.depth + 1)
    family = 4 * s.depth
    for col, name in ((MEAN, "mean"), (VAR, "var"), (PRE_VAR, "preact var")):
        if col == PRE_VAR and s.norm != "none":
            continue  # fixed by the norm: next test
        truth = pred[layers, 2 if col == PRE_VAR else col]
        allowance = DRIFT * layers / s.width * np.maximum(1.0, np.abs(truth))
        assert_near(stats[:, layers, col], truth, family, allowance, f"{layer} {activation} {name}")
    cosine = probes[layers, 1]
    allowance = COSINE_BIAS / s.width + DRIFT * layers / s.width
    assert_near(stats[:, layers, CORR], cosine, family, allowance, f"{layer} {activation} correlation")


@pytest.mark.parametrize("layer", ["batch norm", "layer norm"])
@pytest.mark.parametrize("activation", ["relu", "{name: selu}"])
def test_layer_one_matches_the_finite_size_theory_exactly(layer, activation):
    """Layer 1 sees i.i.d. Gaussian inputs: its norm's output law is exactly the sphere's (any
    batch for batch norm, any width for layer norm with Gaussian weights), so there the
    theory is exact at width 64 and batch 8: no allowance."""
    s, stats = run(one(layer, activation, width=64, batch=8, depth=1, trials=400))
    pred = theory.predict(s)
    assert_matches(stats[:, 1, :2], pred[1, :2], 2, f"{layer} {activation} layer 1")


@pytest.mark.parametrize("layer", ["batch norm", "layer norm"])
def test_a_norm_layer_fixes_its_preactivations_to_mean_0_variance_1_minus_eps(layer):
    """p has mean 0 and variance v / (v + eps) exactly, about 1 - 1e-5 here. The theory's eps
    term is exact over the chi-square law of v at infinite width. The simulated term varies
    between trials by a few percent (a layer's weights move every sample's v alike); at width
    256 its mean drifts by O(1/n), allowed 2% of the term beside the standard error."""
    s, stats = run(one(layer, "relu", extra="input: {mean: 2.0, var: 3.0}\n"))
    pred = theory.predict(s)
    np.testing.assert_allclose(stats[:, 1:, PRE_MEAN], 0.0, atol=1e-12)
    lost = 1.0 - stats[:, 1:, PRE_VAR]
    assert np.all(lost > 0) and np.all(lost < 1e-3)
    truth = 1.0 - pred[1:, 2]
    assert_near(lost, truth, s.depth, 0.02 * truth, f"{layer}: the variance eps takes")


def test_batch_norm_relu_gradient_grows_by_pi_over_pi_minus_one_per_layer():
    """Yang et al. (2019): with batch norm, ReLU's gradient grows by pi/(pi - 1) = 1.4669 per
    layer at large batch; the theory's exact value for batch 256 is 1.4732. The per-layer
    factor is taken over layers 2..depth-1 (layer 1 -> 0 divides by the input's variance
    instead). Allowed beside the standard error: 0.5% for the finite width (measured: 1.4677,
    1.4685, 1.4721 at widths 128, 512, 2048)."""
    from snn_lab.theory import blocks

    s, stats = run(one("batch norm", "relu", depth=10, measure="[gradients]"))
    assert blocks.growth_limit(s)[0] == pytest.approx(math.pi / (math.pi - 1.0), rel=1e-12)
    ratio = stats[:, :, RATIO]
    span = s.depth - 3
    factor = (ratio[:, 2] / ratio[:, s.depth - 1]) ** (1.0 / span)
    pred = theory.predict_probes(s, correlation=False)[:, 0]
    rate = (pred[2] / pred[s.depth - 1]) ** (1.0 / span)
    assert rate == pytest.approx(math.pi / (math.pi - 1.0), rel=0.01)  # batch 256: near the limit
    assert_near(factor[:, None], rate, 1, 0.005 * rate, "ReLU+BN gradient growth per layer")


@pytest.mark.parametrize("layer, activation", [("layer norm", "relu"), ("residual", "tanh"), ("NF residual", "relu")])
def test_gradient_ratio_matches_theory(layer, activation):
    s, stats = run(one(layer, activation, depth=8, measure="[gradients]"))
    pred = theory.predict_probes(s, correlation=False)[:, 0]
    # Layers 0 .. depth-1 (the top is 1 by definition); each trial's ratio an independent sample.
    assert_matches(stats[:, :-1, RATIO], pred[:-1], s.depth, f"{layer} {activation} grad ratio")


def test_nf_residual_variance_grows_by_alpha_squared_per_block_at_depth_64():
    """NFNets' design (scale nf, normalized weights, beta expected): Var x_l = Var x_0 + l alpha^2,
    the residual variance recursion, simulated at depth 64. With tanh (odd: the stream keeps
    mean 0); a ReLU stream's mean grows (13 at depth 64 here), and its variance then drifts
    from the recursion by O(mean^2 / width): +13% at width 256, +4% at 1024."""
    text = one("NF residual", "{name: tanh, scale: nf}", width=256, batch=128, depth=64, dtype="float32",
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
    1/sqrt(2 pi). The simulation follows the finite-batch value at every B (layers 1..3: a
    drift of 0.16 l/n at most, below the standard error here), and its distance to the
    Gaussian limit shrinks like 1/B."""
    gaussian = 1.0 / math.sqrt(2.0 * math.pi)
    gaps = []
    for batch in (4, 16, 64):
        s, stats = run(one("batch norm", "relu", width=512, batch=batch, depth=3, measure="[]"))
        pred = theory.predict(s)
        assert_matches(stats[:, 1:, MEAN], pred[1:, 0], 9, f"batch {batch} mean")
        gaps.append(gaussian - pred[1, 0])
    # O(1/B): the gap times B stays within a factor 2 while B grows 16-fold.
    scaled = [abs(g) * b for g, b in zip(gaps, (4, 16, 64))]
    assert max(scaled) < 2 * min(scaled), scaled


def test_run_plot_and_check_take_norm_and_residual_series(tmp_path):
    """The whole command on the shipped comparison, made small: run, plot, a baseline and the
    statistical check against it, and the theory check (exit 0: within tolerance)."""
    from conftest import cli_runner
    from snn_lab.cli import main

    def invoke(*args):
        return cli_runner().invoke(main, [str(a) for a in args], catch_exceptions=False)

    out = tmp_path / "r"
    small = ["--set", "width=64", "--set", "batch=64", "--set", "depth=6", "--set", "trials=3"]
    ran = invoke("run", ROOT / "snn_lab" / "configs" / "normalization.yaml", "--out", out, "--quiet", "--plot", *small)
    assert ran.exit_code == 0, ran.output
    assert {"convergence.png", "probes.png"} <= {p.name for p in (out / "plots").iterdir()}
    for arg in (("--baseline", tmp_path / "b.json", "--update"), ("--baseline", tmp_path / "b.json")):
        checked = invoke("check", out, *arg)
        assert checked.exit_code == 0, checked.output
    theory_check = invoke("check", out, "--mode", "theory", "--rtol", "0.05")
    assert theory_check.exit_code == 0, theory_check.output
