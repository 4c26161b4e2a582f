"""Optional per-layer measurements beside mean and variance: gradients, dead units, correlation.

The article's other claims (Klambauer et al. 2017): SELU has no vanishing gradient, its units
cannot die, and deep ReLU networks lose what distinguishes their inputs. The forward pass hands
each block of pre-activations and activations to a LayerProbe; the backward pass sends a
Gaussian error signal down through the same weights, regenerated from their streams.
"""

from __future__ import annotations

import math

import numpy as np

from snn_lab.activations import Activation
from snn_lab.config import Series
from snn_lab.simulate import norms
from snn_lab.simulate.backends.numpy import as_float64

DEAD_BELOW = 1e-6  # |phi'(h)| below this for every sample of the batch: a dead (or saturated) unit


class LayerProbe:
    """Accumulates one layer's dead-unit and cosine-similarity measurements, block by block."""

    def __init__(self, width: int, blocks: int, dead: bool, correlation: bool, act: Activation):
        self.dead, self.correlation = dead, correlation
        self.live = live_intervals(act) if dead else ()
        self.alive = np.zeros((blocks, width), bool) if dead else None
        self.rows = np.zeros((blocks, width)) if correlation else None
        self.counts = np.zeros(blocks, np.int64)

    def units(self, i: int, h: np.ndarray) -> None:
        """Block i's pre-activations: which units have a sample where |phi'(h)| >= DEAD_BELOW.

        From the live intervals of phi' (live_intervals): a column maximum or minimum per
        half-line, a comparison per bounded interval, instead of phi' of every entry."""
        if not self.dead:
            return
        alive = self.alive[i]
        for lo, hi in self.live:
            if lo == -math.inf and hi == math.inf:
                alive[:] = True
            elif hi == math.inf:
                alive |= h.max(axis=0) > lo
            elif lo == -math.inf:
                alive |= h.min(axis=0) < hi
            else:
                alive |= ((h > lo) & (h < hi)).any(axis=0)

    def samples(self, i: int, x_block: np.ndarray) -> None:
        """Block i's post-activations: the sum of its rows scaled to unit length (float64)."""
        if not self.correlation:
            return
        x = as_float64(x_block).reshape(x_block.shape)
        norms = np.sqrt(np.einsum("ij,ij->i", x, x))
        ok = norms > 0  # an all-zero row has no direction: left out of the average
        with np.errstate(divide="ignore"):
            scale = np.where(ok, 1.0 / norms, 0.0)
        self.rows[i] = scale @ x
        self.counts[i] = int(ok.sum())

    def result(self) -> tuple[float, float]:
        """(fraction of dead units, mean cosine similarity over pairs of distinct samples)."""
        dead = 1.0 - float(self.alive.any(axis=0).mean()) if self.dead else math.nan
        corr = math.nan
        if self.correlation:
            s, m = self.rows.sum(axis=0), int(self.counts.sum())
            # sum_{a != b} r_a . r_b = |sum_a r_a|^2 - sum_a |r_a|^2, and |r_a| = 1.
            corr = (float(s @ s) - m) / (m * (m - 1)) if m > 1 else math.nan
        return dead, corr


_LIVE_RANGE, _LIVE_GRID = 100.0, 400_001  # where phi' is classified; beyond, as at the ends


_live_cache: dict[tuple, tuple[tuple[float, float], ...]] = {}


def live_intervals(act: Activation) -> tuple[tuple[float, float], ...]:
    """The open intervals where |phi'(h)| >= DEAD_BELOW, edges found with scipy's brentq
    (computed once per activation and parameters)."""
    key = (act.name, tuple(sorted(act.params.items())), act.gamma)  # gamma moves where |phi'| crosses
    if key not in _live_cache:
        _live_cache[key] = _live(act)
    return _live_cache[key]


def _live(act: Activation) -> tuple[tuple[float, float], ...]:
    from scipy.optimize import brentq  # ~0.17 s to import: only runs that count dead units pay it

    x = np.linspace(-_LIVE_RANGE, _LIVE_RANGE, _LIVE_GRID)
    with np.errstate(all="ignore"):
        d = act.deriv(x)
    live = np.abs(d) >= DEAD_BELOW
    deriv = lambda v: float(act.deriv(np.array([v]))[0])  # noqa: E731
    excess = lambda v: abs(deriv(v)) - DEAD_BELOW  # noqa: E731

    def edge(a: float, b: float) -> float:
        """Where |phi'| crosses DEAD_BELOW in [a, b] (the jump itself where phi' jumps)."""
        return brentq(excess, a, b, xtol=1e-15) if excess(a) * excess(b) < 0 else b

    edges = []
    flips = live[1:] != live[:-1]
    zeros = live[1:] & live[:-1] & (np.sign(d[1:]) != np.sign(d[:-1]))  # phi' = 0 between grid points
    for j in np.flatnonzero(flips | zeros):
        if flips[j]:
            edges.append(edge(x[j], x[j + 1]))
        else:
            zero = brentq(deriv, x[j], x[j + 1], xtol=1e-15)
            edges += [edge(x[j], zero), edge(zero, x[j + 1])]
    bounds = [-math.inf, *edges, math.inf]
    pieces = zip(bounds[:-1], bounds[1:])
    return tuple((lo, hi) for k, (lo, hi) in enumerate(pieces) if bool(live[0]) == (k % 2 == 0))


def backward(series: Series, derivs: np.ndarray, weights, top: np.ndarray,
             normed: np.ndarray | None = None, scales: np.ndarray | None = None) -> np.ndarray:
    """Mean square of g_l = dL/dx_l for l = depth .. 0, sending g_depth = `top` down the layers.

    Through layer l (x_l = y or x_{l-1} + alpha y, y = phi(p), p = norm(h), h = x_{l-1} W / beta):
    dL/dp = g_l * alpha * phi'(p) (times a on kept units with alpha dropout: `derivs`), then the
    norm's exact backward (norms.backward, from `normed` p and `scales`), then W^T / beta, plus
    g_l through the skip. `weights(l)` returns layer l's weights (regenerated from their stream
    rather than stored: one layer's weights in memory at a time).
    """
    depth, alpha, betas = series.depth, series.residual.alpha if series.residual else 0.0, series.betas()
    grad_sq = np.empty(depth + 1)
    g = top
    with np.errstate(all="ignore"):
        grad_sq[depth] = _mean_square(g)
        for layer in range(depth, 0, -1):
            branch = g * derivs[layer - 1]
            if alpha:
                branch *= alpha
            if series.norm != "none":
                branch = norms.backward(series.norm, branch, normed[layer - 1], scales[layer - 1]).astype(g.dtype)
            prev = branch @ weights(layer).T
            if betas[layer] != 1.0:
                prev /= g.dtype.type(betas[layer])
            if alpha:
                prev += g
            g = prev
            grad_sq[layer - 1] = _mean_square(g)
    return grad_sq


def _mean_square(x: np.ndarray) -> float:
    v = as_float64(x)
    return float(v @ v) / v.size


def gradient_memory(series: Series) -> int:
    """Bytes the backward pass adds: every layer's phi'(H) and two error-signal buffers."""
    item = np.dtype(series.dtype).itemsize
    return (series.depth + 2) * series.batch * series.width * item
