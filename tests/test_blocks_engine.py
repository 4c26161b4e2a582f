"""Norm layers and residual blocks in the engine, against a forward pass written out here.

The reference below is the textbook layer (Ioffe & Szegedy 2015; Ba et al. 2016; He et al.
2016; Brock et al. 2021), in float64, independent of the engine's chunked code. Its gradients
come from central finite differences, never from the backward pass under test.
"""

from __future__ import annotations

import numpy as np
import pytest

from snn_lab import config
from snn_lab.config import NORM_EPS
from snn_lab.simulate import engine, norms, probes, streams
from snn_lab.statistics import PROBES, STATS

GRAD = len(STATS) + PROBES.index("grad_sq")

KINDS = {
    "plain": "activation: tanh",
    "batch norm": "activation: relu\n  init: he_normal\n  norm: batch",
    "layer norm": "activation: selu\n  norm: layer",
    "residual": "activation: tanh\n  residual: {alpha: 0.5}",
    "NF residual": ("activation: {name: relu, scale: nf}\n  normalize_weights: true\n"
                    "  residual: {alpha: 0.3, beta: expected}"),
    "residual batch norm": "activation: elu\n  norm: batch\n  residual: 0.7",
}


def tiny(kind: str, width: int = 6, batch: int = 5, depth: int = 3, **top) -> config.Series:
    extra = "".join(f"{k}: {v}\n" for k, v in top.items())
    text = (f"seed: 3\ntrials: 1\nwidth: {width}\ndepth: {depth}\nbatch: {batch}\ndtype: float64\n"
            f"input: {{mean: 0.3, var: 1.5, correlation: 0.2}}\n{extra}series:\n- {KINDS[kind]}\n")
    return config.load(text=text).series[0]


def reference_layer(s: config.Series, layer: int, x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, dict]:
    """One layer from the definitions, and what its backward pass needs (phi', p, scale)."""
    act = s.make_activation()
    h = x @ w / s.betas()[layer]
    scale = None
    if s.norm != "none":
        ax = 0 if s.norm == "batch" else 1
        centred = h - h.mean(axis=ax, keepdims=True)
        inv = 1.0 / np.sqrt((centred ** 2).mean(axis=ax, keepdims=True) + NORM_EPS)
        h, scale = centred * inv, inv.reshape(-1)
    y = act.fn(h.copy())
    out = x + s.residual.alpha * y if s.residual else y
    return out, {"deriv": act.deriv(h), "p": h, "scale": scale}


def reference(s: config.Series, x: np.ndarray, weights: list[np.ndarray], start: int = 0) -> np.ndarray:
    """x_depth from x_start."""
    for layer in range(start + 1, s.depth + 1):
        x, _ = reference_layer(s, layer, x, weights[layer])
    return x


def finite_difference(f, x: np.ndarray, step: float = 1e-6) -> np.ndarray:
    grad = np.empty_like(x)
    for i in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[i] += step
        down[i] -= step
        grad[i] = (f(up) - f(down)) / (2 * step)
    return grad


def network(s: config.Series):
    weights = [None] + [streams.layer_weights(s, 3, 0, layer) for layer in range(1, s.depth + 1)]
    return streams.input_values(s, 3, 0), weights


@pytest.mark.parametrize("kind", KINDS)
def test_backward_matches_finite_differences_at_every_layer(kind):
    s = tiny(kind)
    x0, weights = network(s)
    top = np.random.default_rng(0).standard_normal((s.batch, s.width))
    xs, caches = [x0], []
    for layer in range(1, s.depth + 1):
        x, cache = reference_layer(s, layer, xs[-1], weights[layer])
        xs.append(x)
        caches.append(cache)
    derivs = np.stack([c["deriv"] for c in caches])
    normed = np.stack([c["p"] for c in caches]) if s.norm != "none" else None
    scales = np.stack([c["scale"] for c in caches]) if s.norm != "none" else None
    grad_sq = probes.backward(s, derivs, lambda layer: weights[layer], top, normed, scales)
    for layer in range(s.depth + 1):
        fd = finite_difference(lambda v: float(np.sum(top * reference(s, v, weights, layer))), xs[layer])
        assert grad_sq[layer] == pytest.approx(np.mean(fd ** 2), rel=1e-7), f"{kind}: layer {layer}"


@pytest.mark.parametrize("kind", KINDS)
def test_engine_forward_and_gradients_match_the_reference(kind):
    """The engine's per-layer statistics and gradient mean squares, from the same weights,
    inputs and top signal, agree with the reference to rounding."""
    s = tiny(kind, width=24, batch=16, depth=4)
    x, weights = network(s)
    measured = np.empty((s.depth + 1, len(PROBES)))
    stats = engine.run_trial(s, 3, 0, measure=("gradients",), probes=measured)
    top = engine.top_signal(s, 3, 0)
    for layer in range(1, s.depth + 1):
        x, cache = reference_layer(s, layer, x, weights[layer])
        p = cache["p"]
        expected = (x.mean(), x.var(), p.mean(), p.var())
        assert stats[layer] == pytest.approx(expected, rel=1e-9, abs=1e-12), f"{kind}: layer {layer}"
    for layer in (0, s.depth // 2):
        fd = finite_difference(lambda v: float(np.sum(top * reference(s, v, weights, layer))),
                               _state(s, weights, layer))
        assert measured[layer, 0] == pytest.approx(np.mean(fd ** 2), rel=1e-7), f"{kind}: layer {layer}"


def _state(s, weights, layer):
    x = streams.input_values(s, 3, 0)
    for k in range(1, layer + 1):
        x, _ = reference_layer(s, k, x, weights[k])
    return x


@pytest.mark.parametrize("kind", ["batch norm", "residual batch norm", "layer norm"])
def test_norm_layers_same_numbers_whatever_the_thread_count(kind):
    s = config.load(text=f"width: 300\nbatch: 64\ndepth: 3\ndtype: float32\nseries:\n- {KINDS[kind]}\n").series[0]
    one = engine.run_series(s, 1, 3, threads=1, measure=("dead", "correlation")).stats
    two = engine.run_series(s, 1, 3, threads=2, measure=("dead", "correlation")).stats
    np.testing.assert_array_equal(one, two)


def test_normalize_matches_numpy_and_backward_is_the_jacobian():
    """norms.normalize against the two-line formula; norms.backward against the full Jacobian."""
    rng = np.random.default_rng(1)
    h = rng.standard_normal((7, 5)) * 3 + 10
    for kind, ax in (("batch", 0), ("layer", 1)):
        p = h.copy()
        scale = norms.normalize(kind, p)
        c = h - h.mean(axis=ax, keepdims=True)
        np.testing.assert_allclose(p, c / np.sqrt((c ** 2).mean(axis=ax, keepdims=True) + NORM_EPS), rtol=1e-12)
        g = rng.standard_normal(h.shape)

        def loss(v, kind=kind):
            q = v.copy()
            norms.normalize(kind, q)
            return float(np.sum(g * q))
        np.testing.assert_allclose(norms.backward(kind, g, p, scale), finite_difference(loss, h), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("kind", ["batch norm", "residual batch norm", "layer norm"])
def test_norm_layers_across_product_chunks_match_the_reference(kind):
    """A batch the engine cuts into several row chunks (width 512: 512 rows a chunk): the batch
    norm's statistics still span the whole batch."""
    s = tiny(kind, width=512, batch=1100, depth=2)
    assert engine._Plan(s, 3, engine.backends.get(None), ()).chunk_rows < s.batch
    x, weights = network(s)
    stats = engine.run_trial(s, 3, 0, threads=2)
    for layer in range(1, s.depth + 1):
        x, cache = reference_layer(s, layer, x, weights[layer])
        expected = (x.mean(), x.var(), cache["p"].mean(), cache["p"].var())
        assert stats[layer] == pytest.approx(expected, rel=1e-9, abs=1e-12), f"{kind}: layer {layer}"


def test_dead_units_see_the_scaled_derivative():
    """A scaled activation's live intervals are its own: gamma phi' crosses 1e-6 elsewhere."""
    from snn_lab.activations import make_activation

    plain, scaled = make_activation("tanh"), make_activation("tanh", scale=1e3)
    edge = probes.live_intervals(plain)[0][1]
    wider = probes.live_intervals(scaled)[0][1]
    # tanh' = 1 - tanh^2 ~ 4 e^(-2|x|): a factor 1e3 moves the edge by ln(1e3) / 2.
    assert wider - edge == pytest.approx(np.log(1e3) / 2, rel=1e-3)
