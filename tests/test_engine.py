"""The propagation engine against closed forms, a plain reference, and its seeding rules."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import assert_matches, experiment
from snn_lab.simulate import engine, memory, streams
from snn_lab.activations import LAMBDA01, ALPHA01
from snn_lab.initializers import INITIALIZERS, KERAS_TRUNCATION_STD


def trials_of(yaml_text: str, *overrides: str) -> np.ndarray:
    exp = experiment(yaml_text, *overrides)
    return engine.run_experiment(exp)[exp.series[0].label].stats[..., :len(engine.STATS)]


def second_moment(stats: np.ndarray) -> np.ndarray:
    """E[H^2] per trial and layer from the pooled pre-activation mean and variance."""
    return stats[..., 3] + stats[..., 2] ** 2


RELU = """
seed: 1
trials: 48
width: 128
depth: 12
batch: 128
dtype: float64
series: [{activation: relu, init: %s}]
"""


def test_relu_lecun_halves_the_preactivation_second_moment():
    """E[H_l^2] = 2^(1-l) exactly at any width: E[relu(h)^2] = E[h^2]/2 for symmetric h."""
    stats = trials_of(RELU % "lecun_normal")
    layers = np.arange(1, 13)
    truth = 2.0 ** (1 - layers)
    assert_matches(second_moment(stats)[:, 1:], truth, family_size=12, what="ReLU LeCun E[H^2]")


def test_relu_he_keeps_the_preactivation_second_moment_at_two():
    """With N(0, 2/fan_in) weights E[H_l^2] = 2 for unit input at every layer."""
    stats = trials_of(RELU % "he_normal")
    assert_matches(second_moment(stats)[:, 1:], np.full(12, 2.0), family_size=12, what="ReLU He E[H^2]")


SELU = """
seed: 3
trials: 2
width: 512
depth: 50
batch: 512
dtype: float32
input: {mean: 0.0, var: %s}
series: [{activation: selu, init: lecun_normal}]
"""


def test_selu_holds_mean_zero_variance_one_to_depth_50():
    """Each trial, each layer: |mean| < 0.05 and |var - 1| < 5% (the issue's acceptance)."""
    stats = trials_of(SELU % "1.0")
    assert np.all(np.abs(stats[:, 1:, 0]) < 0.05), stats[:, 1:, 0]
    assert np.all(np.abs(stats[:, 1:, 1] - 1.0) < 0.05), stats[:, 1:, 1]


@pytest.mark.parametrize("var", [4.0, 0.1])
def test_selu_pulls_the_variance_back_toward_one(var):
    """From var 4 or 0.1 the distance to 1 shrinks over the first layers and ends below 5%."""
    stats = trials_of(SELU % var).mean(axis=0)
    distance = np.abs(stats[:, 1] - 1.0)
    assert distance[0] > 0.5
    assert np.all(np.diff(distance[:5]) < 0), distance[:6]
    assert distance[-1] < 0.05


def test_same_seed_same_numbers_other_seed_other_numbers():
    text = RELU % "he_normal"
    a = trials_of(text, "trials=2", "depth=3")
    b = trials_of(text, "trials=2", "depth=3")
    c = trials_of(text, "trials=2", "depth=3", "seed=2")
    assert np.array_equal(a, b, equal_nan=True)
    assert not np.array_equal(a, c, equal_nan=True)


def test_series_are_independent_of_each_other_and_of_the_trial_count():
    """Adding a series before it, or more trials, leaves a series' numbers bit for bit."""
    one = experiment("trials: 2\nwidth: 32\ndepth: 4\nbatch: 16\nseries: [{label: A, activation: selu}]")
    two = experiment("trials: 3\nwidth: 32\ndepth: 4\nbatch: 16\n"
                     "series: [{label: B, activation: relu}, {label: A, activation: selu}]")
    a1, a2 = engine.run_experiment(one)["A"].stats, engine.run_experiment(two)["A"].stats
    assert np.array_equal(a1, a2[:2], equal_nan=True)


def reference_trial(series, seed: int, trial: int) -> np.ndarray:
    """A plain float64 implementation: textbook formulas, the same draws (the engine's public samplers)."""
    x = streams.input_values(series, seed, trial, threads=1)
    rows = [(x.mean(), x.var(), x.mean(), x.var())]
    for layer in range(1, series.depth + 1):
        w = streams.layer_weights(series, seed, trial, layer, threads=1)
        h = x @ w
        if series.activation == "selu":
            x = np.where(h > 0, LAMBDA01 * h, LAMBDA01 * ALPHA01 * (np.exp(h) - 1.0))
        elif series.activation == "relu":
            x = np.where(h > 0, h, 0.0)
        else:
            x = np.tanh(h)
        rows.append((x.mean(), x.var(), h.mean(), h.var()))
    return np.array(rows)


@pytest.mark.parametrize("act", ["selu", "relu", "tanh"])
@pytest.mark.parametrize("init", sorted(INITIALIZERS))
def test_engine_equals_a_plain_reference(act, init):
    exp = experiment(f"width: 48\ndepth: 6\nbatch: 40\ndtype: float64\ninput: {{mean: 0.3, var: 2.0}}\n"
                     f"series: [{{activation: {act}, init: {init}}}]")
    s = exp.series[0]
    np.testing.assert_allclose(engine.run_trial(s, exp.seed, 1), reference_trial(s, exp.seed, 1),
                               rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("init", sorted(INITIALIZERS))
def test_initializer_variance_matches_its_samples(init):
    """Sample variance of a large draw against the stated per-weight variance (SE-based)."""
    ini = INITIALIZERS[init]
    s = experiment(f"width: 400\ndtype: float64\nseries: [{{activation: selu, init: {init}}}]").series[0]
    w = streams.layer_weights(s, seed=0, trial=0, layer=1)
    n = w.size
    # The variance estimator's standard error: sqrt((m4 - var^2) / n), measured from the draw.
    m2 = np.mean(w ** 2)
    se = math.sqrt((np.mean(w ** 4) - m2 ** 2) / n)
    assert abs(m2 - ini.variance(400, 400)) < 5 * se
    assert abs(w.mean()) < 5 * math.sqrt(m2 / n)


def test_truncated_normal_constants_match_keras():
    """Keras' 0.8796... is the sd of N(0,1) truncated at 2; uncorrected loses 22.6% variance."""
    fan = 100
    assert INITIALIZERS["lecun_truncated"].variance(fan, fan) * fan == pytest.approx(1.0, rel=1e-15)
    assert INITIALIZERS["lecun_truncated_uncorrected"].variance(fan, fan) * fan == pytest.approx(
        KERAS_TRUNCATION_STD ** 2, rel=1e-15)
    s = experiment("width: 50\nseries: [{activation: selu, init: lecun_truncated}]").series[0]
    w = streams.layer_weights(s, seed=1, trial=0, layer=1)
    assert np.abs(w).max() < 2.0 * math.sqrt(1 / 50) / KERAS_TRUNCATION_STD


def test_normalized_weights_have_zero_sum_and_unit_sum_of_squares():
    exp = experiment("width: 64\nseries: [{activation: selu, normalize_weights: true, gain: 1.5}]")
    w = streams.layer_weights(exp.series[0], seed=0, trial=0, layer=1).astype(np.float64)
    np.testing.assert_allclose(w.sum(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose((w ** 2).sum(axis=0), 1.5 ** 2, rtol=1e-5)


def test_overflow_is_recorded_as_inf_or_nan_not_raised():
    """A linear net with gain 10 multiplies the scale by 10 per layer: float32 overflows ~layer 38."""
    stats = trials_of("trials: 1\nwidth: 32\ndepth: 60\nbatch: 16\n"
                      "series: [{activation: linear, gain: 10.0}]")[0]
    finite = np.isfinite(stats).all(axis=1)
    first_bad = int(np.argmin(finite))
    assert 30 < first_bad < 45
    assert not finite[first_bad:].any()
    assert np.all(np.isfinite(stats[:first_bad]))


def test_memory_estimate_refuses_a_huge_width():
    from snn_lab.yamlio import ConfigError

    exp = experiment("width: 1000000\nbatch: 1024\nseries: [{activation: selu}]")
    with pytest.raises(ConfigError) as err:
        memory.check_memory(exp, available=8 * 2**30)
    message = str(err.value)
    # At least the float32 weights alone (10^12 * 4 bytes), at most this layer's and the next
    # layer's weights (drawn while this one runs) plus 8 activation buffers.
    need = float(message.split("needs about ")[1].split(" GiB")[0])
    assert 4e12 / 2**30 <= need <= (2 * 4e12 + 8 * 1024 * 10**6 * 8) / 2**30
    assert "lower 'width' or 'batch'" in message and message.startswith("<test>:1: series.0:")
