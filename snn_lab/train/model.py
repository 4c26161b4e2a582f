"""A dense stack of the series' layers with its exact gradients: forward, backward and the loss.

Layer l (1..depth), as the engine defines it: h = x W_l / beta_l + b_l; p = norm(h) (batch or
layer norm, gain 1, shift 0: simulate/norms.py, forward and backward); y = phi(p), alpha
dropout while training; x = y, or x + alpha y in a residual block (where fan-in = fan-out: the
first layer maps the task's inputs to the width and is plain when they differ). A linear
readout maps x_depth to the outputs. Weights and biases are what trains.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.special import log_softmax

from snn_lab.activations import alpha_dropout_affine
from snn_lab.config import Series
from snn_lab.initializers import TRUNCATION, haar_orthogonal
from snn_lab.simulate import backends, norms
from snn_lab.simulate.probes import DEAD_BELOW
from snn_lab.simulate.streams import normalize_weights, rng_for


def init_weights(series: Series, fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
    """One (fan_in, fan_out) weight matrix of the series' initializer, gain and normalization
    (the initializers' scales; rectangular, hence drawn here rather than by streams.fill_weights)."""
    init = series.initializer
    s = series.gain * init.scale(fan_in, fan_out)
    if init.kind == "uniform":
        w = rng.uniform(-s, s, (fan_in, fan_out))
    elif init.kind == "truncated":
        w = rng.standard_normal((fan_in, fan_out))
        bad = np.abs(w) >= TRUNCATION
        while bad.any():  # rejection, from the same stream
            w[bad] = rng.standard_normal(int(bad.sum()))
            bad = np.abs(w) >= TRUNCATION
        w *= s
    elif init.kind == "orthogonal":
        w = series.gain * haar_orthogonal(rng.standard_normal((fan_in, fan_out)))
    else:
        w = s * rng.standard_normal((fan_in, fan_out))
    if series.normalize_weights:
        normalize_weights(series, w)
    return w


@dataclass
class Network:
    """The trained parameters [W_1, b_1, ..., W_depth, b_depth, W_out, b_out] and the layer rules."""

    series: Series
    params: list[np.ndarray]
    dtype: np.dtype
    act: object = field(repr=False, default=None)
    residual: list[bool] = field(default_factory=list)
    betas: list[float] = field(default_factory=list)
    drop: tuple[float, float, float] | None = None  # alpha dropout's (a, b, saturation)
    backend: backends.Backend | None = None  # whose loop applies the activation (the engine's)
    # Arrays reused from step to step (by batch size): fresh large arrays cost page faults, and
    # a step has several per layer. A Pass holds these until the next pass of the same size.
    space: dict = field(default_factory=dict, repr=False)

    @classmethod
    def create(cls, series: Series, dim: int, outputs: int, seed: int, trial: int, backend=None) -> Network:
        """The series' network at init for a task of `dim` inputs and `outputs` outputs; layer l's
        weights from the stream (seed, label + '/train', trial, l), the readout's from l = depth + 1."""
        n, depth, dt = series.width, series.depth, np.dtype(series.dtype)
        label = series.label + "/train"
        params = []
        for layer in range(1, depth + 1):
            rng = rng_for(seed, label, trial, layer)
            w = init_weights(series, dim if layer == 1 else n, n, rng)
            b = rng.standard_normal(n) * math.sqrt(series.bias_var) if series.bias_var else np.zeros(n)
            params += [w.astype(dt), b.astype(dt)]
        rng = rng_for(seed, label, trial, depth + 1)
        params += [(rng.standard_normal((n, outputs)) / math.sqrt(n)).astype(dt), np.zeros(outputs, dt)]
        act = series.make_activation()
        residual = [False] + [series.residual is not None and (layer > 1 or dim == n) for layer in range(1, depth + 1)]
        drop = None
        if series.dropout:
            a, b = alpha_dropout_affine(series.dropout, act.saturation)
            drop = (a, b, act.saturation)
        return cls(series, params, dt, act, residual, series.betas(), drop, backends.get(backend))

    @property
    def depth(self) -> int:
        return self.series.depth

    def buffers(self, rows: int) -> dict[str, list[np.ndarray]]:
        """Each layer's h and y, two error signals and phi'(p)'s two arrays for `rows` examples,
    and the gradients."""
        if rows not in self.space:
            n, dt = self.series.width, self.dtype
            self.space[rows] = {"h": [np.empty((rows, n), dt) for _ in range(self.depth)],
                                "y": [np.empty((rows, n), dt) for _ in range(self.depth)],
                                "g": [np.empty((rows, n), dt) for _ in range(2)],
                                "d": [np.empty((rows, n), dt) for _ in range(2)],  # phi'(p) g and scratch
                                "grads": [np.empty_like(p) for p in self.params]}
        return self.space[rows]


@dataclass
class Pass:
    """What a forward pass keeps for the backward pass and the statistics, layer by layer."""

    xs: list[np.ndarray]  # x_0 .. x_depth
    ps: list[np.ndarray | None] = field(default_factory=list)  # p_l (index 0 unused)
    ys: list[np.ndarray | None] = field(default_factory=list)  # phi(p_l), before dropout
    scales: list[np.ndarray | None] = field(default_factory=list)  # the norm's 1/sqrt(var + eps)
    kept: list[np.ndarray | None] = field(default_factory=list)  # alpha dropout's kept units
    out: np.ndarray | None = None


def forward(net: Network, x: np.ndarray, rng: np.random.Generator | None = None) -> Pass:
    """The outputs of a batch x (rows: examples); rng draws alpha dropout's masks (None: evaluation)."""
    s, dt = net.series, net.dtype
    x = np.asarray(x, dt)
    run = Pass([x], [None], [None], [None], [None])
    alpha = s.residual.alpha if s.residual else 0.0
    space = net.buffers(len(x))
    with np.errstate(all="ignore"):  # overflow is data: a diverged run's loss is NaN, then reported
        for layer in range(1, net.depth + 1):
            w, b = net.params[2 * layer - 2], net.params[2 * layer - 1]
            h = np.matmul(x, w, out=space["h"][layer - 1])
            if net.betas[layer] != 1.0:
                h *= dt.type(1.0 / net.betas[layer])
            h += b
            scale = norms.normalize(s.norm, h) if s.norm != "none" else None
            y = space["y"][layer - 1]
            net.backend.apply(net.act, h, y)  # the engine's loop, without its sums (2/3 of its time)
            run.ys.append(y)
            kept = None
            if net.drop is not None and rng is not None:
                a, c, sat = net.drop
                kept = rng.random(y.shape) >= s.dropout
                y = np.where(kept, y, dt.type(sat)) * dt.type(a) + dt.type(c)
            x = x + dt.type(alpha) * y if net.residual[layer] else y
            run.xs.append(x)
            run.ps.append(h)
            run.scales.append(scale)
            run.kept.append(kept)
        run.out = x @ net.params[-2] + net.params[-1]
    return run


def loss(out: np.ndarray, y: np.ndarray, classification: bool) -> tuple[float, np.ndarray]:
    """(loss, dL/d out): mean cross-entropy over the batch (y classes), or the mean squared error
    over every entry (y targets)."""
    out64 = np.asarray(out, np.float64)
    with np.errstate(all="ignore"):
        if classification:
            rows = np.arange(len(y))
            grad = log_softmax(out64, axis=1)  # one call: scipy's logsumexp costs 5x a log_softmax here
            value = -float(np.mean(grad[rows, y]))
            np.exp(grad, out=grad)  # the softmax
            grad[rows, y] -= 1.0
            return value, grad / len(y)
        diff = out64 - y
        return float(np.mean(diff * diff)), 2.0 * diff / diff.size


def backward(net: Network, run: Pass, d_out: np.ndarray) -> list[np.ndarray]:
    """dL/d params (same order and shapes as net.params) from dL/d out: the chain rule through
    the readout, then each layer's residual skip, dropout, activation, norm and product."""
    s, dt = net.series, net.dtype
    alpha = s.residual.alpha if s.residual else 0.0
    space = net.buffers(len(d_out))
    grads, signals = space["grads"], space["g"]
    g = np.asarray(d_out, dt)
    with np.errstate(all="ignore"):
        np.matmul(run.xs[-1].T, g, out=grads[-2])
        g.sum(axis=0, out=grads[-1])
        # layer l writes dL/dx_{l-1} into signals[l % 2]; the signal it reads is in the other
        g = np.matmul(g, net.params[-2].T, out=signals[(net.depth + 1) % 2])
        for layer in range(net.depth, 0, -1):
            branch = g * dt.type(alpha) if net.residual[layer] else g
            if run.kept[layer] is not None:
                branch = np.where(run.kept[layer], branch * dt.type(net.drop[0]), dt.type(0))
            gh = net.backend.act_grad(net.act, run.ps[layer], run.ys[layer], branch, *space["d"])
            if s.norm != "none":
                gh = norms.backward(s.norm, gh, run.ps[layer], run.scales[layer]).astype(dt)
            gh.sum(axis=0, out=grads[2 * layer - 1])
            inv_beta = dt.type(1.0 / net.betas[layer])
            np.matmul(run.xs[layer - 1].T, gh, out=grads[2 * layer - 2])
            if inv_beta != 1:
                grads[2 * layer - 2] *= inv_beta
            if layer > 1:  # the input's gradient is not needed: one product fewer
                prev = np.matmul(gh, net.params[2 * layer - 2].T, out=signals[layer % 2])
                if inv_beta != 1:
                    prev *= inv_beta
                if net.residual[layer]:
                    prev += g
                g = prev
    return grads


def layer_stats(net: Network, run: Pass) -> np.ndarray:
    """(depth + 1, 3): each x_l's mean and variance over every entry, and the fraction of dead
    units (|phi'(p)| < DEAD_BELOW, probes.py's threshold, on every example); layer 0 is the input."""
    out = np.full((net.depth + 1, 3), math.nan)
    with np.errstate(all="ignore"):
        for layer, x in enumerate(run.xs):
            v = np.asarray(x, np.float64)
            out[layer, :2] = v.mean(), v.var()
            if layer:
                d = np.abs(net.act.deriv(run.ps[layer]))
                out[layer, 2] = float(np.mean(np.all(d < DEAD_BELOW, axis=0)))
    return out
