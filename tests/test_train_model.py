"""The training probe's network: exact gradients against finite differences, every layer kind
and activation, and a linear student that learns a linear teacher."""

from __future__ import annotations

import numpy as np
import pytest

from snn_lab import config
from snn_lab.activations import ACTIVATIONS
from snn_lab.train import model

KINDS = {
    "plain": {},
    "batch_norm": {"norm": "batch"},
    "layer_norm": {"norm": "layer"},
    "residual": {"residual": {"alpha": 0.7, "beta": "expected"}, "depth": 4},  # even and odd depths
}


def _series(activation: str, **extra) -> config.Series:
    exp = config.load(text=f"series: [{{activation: {activation}}}]")
    base = exp.series[0]
    fields = {"width": 4, "depth": 3, "dtype": "float64", "bias_var": 0.1, **extra}
    if isinstance(extra.get("residual"), dict):
        fields["residual"] = config.Residual(**extra["residual"])
    return config.Series(**{**base.__dict__, **fields})


def _check_gradient(series: config.Series, classification: bool, dropout_rng_seed: int | None = None) -> None:
    """Directional derivatives of the loss along random directions, central differences vs backward."""
    rng = np.random.default_rng(7)
    dim, outputs, batch = 4, 3, 6
    net = model.Network.create(series, dim, outputs, seed=3, trial=0)
    for p in net.params:  # nonzero biases and readout: every term of the chain rule is exercised
        p += 0.3 * rng.standard_normal(p.shape)
    x = rng.standard_normal((batch, dim))
    y = rng.integers(0, outputs, batch) if classification else rng.standard_normal((batch, outputs))

    def value(params, with_grad=False):
        saved = net.params
        net.params = params
        masks = None if dropout_rng_seed is None else np.random.default_rng(dropout_rng_seed)
        run = model.forward(net, x, masks)
        loss, d_out = model.loss(run.out, y, classification)
        grads = model.backward(net, run, d_out) if with_grad else None
        net.params = saved
        return loss, grads

    _, grads = value(net.params, True)
    eps = 1e-6
    for _ in range(3):
        direction = [rng.standard_normal(p.shape) for p in net.params]
        plus = value([p + eps * d for p, d in zip(net.params, direction)])[0]
        minus = value([p - eps * d for p, d in zip(net.params, direction)])[0]
        numeric = (plus - minus) / (2 * eps)
        exact = sum(float(np.sum(g * d)) for g, d in zip(grads, direction))
        # central differences err by eps^2 f''' ~ 1e-12 and rounding 1e-16 / eps ~ 1e-10
        assert exact == pytest.approx(numeric, rel=1e-6, abs=1e-8), (series.activation, series.norm)


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_gradients_match_finite_differences_for_every_layer_kind_and_activation(kind, activation):
    _check_gradient(_series(activation, **KINDS[kind]), classification=kind != "plain")
    if kind == "plain":
        _check_gradient(_series(activation), classification=True)


@pytest.mark.parametrize("activation", ["selu", "elu", "tanh"])
def test_gradients_through_alpha_dropout_match_finite_differences(activation):
    """With the masks fixed (the same stream for every evaluation), dropout is an affine map per unit."""
    _check_gradient(_series(activation, dropout=0.2), classification=True, dropout_rng_seed=11)


@pytest.mark.parametrize("scale", [1.0, 1.7])
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_the_derivative_from_the_output_is_the_derivative(activation, scale):
    from snn_lab.activations import make_activation

    act = make_activation(activation, scale)
    x = np.linspace(-6, 6, 1201)
    np.testing.assert_allclose(act.deriv_given(x, act.fn(x)), act.deriv(x), rtol=1e-12, atol=1e-14)
    x32 = x.astype(np.float32)
    assert act.deriv_given(x32, act.fn(x32)).dtype == np.float32
    out, tmp = np.full_like(x32, np.nan), np.full_like(x32, np.nan)  # the backward's reused arrays
    assert act.deriv_given(x32, act.fn(x32), out, tmp) is out
    np.testing.assert_array_equal(out, act.deriv_given(x32, act.fn(x32)))


@pytest.mark.parametrize("kind", ["sgd", "momentum", "adam"])
def test_the_optimizers_follow_their_textbook_updates(kind):
    """Three steps against the formulas written out: SGD, heavy ball (v = mu v + g, w -= lr v),
    and Adam (Kingma & Ba 2015, algorithm 1, betas 0.9, 0.999): our Adam folds the bias
    corrections into the step size (their section 2's efficient form), which moves eps by a
    factor sqrt(1 - beta2^t): a change of order eps / sqrt(v) ~ 1e-7 of a step here."""
    from snn_lab.train.optim import Optimizer

    rng = np.random.default_rng(0)
    p0, grads = rng.standard_normal(5), [rng.standard_normal(5) for _ in range(3)]
    p = p0.copy()
    opt = Optimizer(kind, [p], 0.1, 0.9)
    for g in grads:
        opt.step([p], [g.copy()])
    q, m, v = p0.copy(), np.zeros(5), np.zeros(5)
    for t, g in enumerate(grads, 1):
        if kind == "sgd":
            q = q - 0.1 * g
        elif kind == "momentum":
            m = 0.9 * m + g
            q = q - 0.1 * m
        else:
            m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
            q = q - 0.1 * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
    np.testing.assert_allclose(p, q, rtol=0, atol=1e-15 if kind != "adam" else 1e-6)
