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
from snn_lab.statistics import PROBES

DEAD_BELOW = 1e-6  # |phi'(h)| below this for every sample of the batch: a dead (or saturated) unit


class LayerProbe:
    """Accumulates one layer's dead-unit and cosine-similarity measurements, block by block."""

    def __init__(self, width: int, blocks: int, dead: bool, correlation: bool):
        self.dead, self.correlation = dead, correlation
        self.alive = np.zeros((blocks, width), bool) if dead else None
        self.rows = np.zeros((blocks, width)) if correlation else None
        self.counts = np.zeros(blocks, np.int64)

    def units(self, i: int, h_block: np.ndarray, act: Activation, deriv_out: np.ndarray | None) -> None:
        """Block i's pre-activations: which units are alive; phi'(h) kept for the backward pass."""
        if not (self.dead or deriv_out is not None):
            return
        d = act.deriv(h_block)
        if self.dead:
            np.any(np.abs(d) >= DEAD_BELOW, axis=0, out=self.alive[i])
        if deriv_out is not None:
            np.copyto(deriv_out, d, casting="unsafe")

    def samples(self, i: int, x_block: np.ndarray) -> None:
        """Block i's post-activations: the sum of its rows scaled to unit length (float64)."""
        if not self.correlation:
            return
        x = x_block.astype(np.float64)
        norms = np.sqrt(np.einsum("ij,ij->i", x, x))
        ok = norms > 0  # an all-zero row has no direction: left out of the average
        self.rows[i] = (x[ok] / norms[ok, None]).sum(axis=0)
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


def backward(series: Series, derivs: np.ndarray, weights, top: np.ndarray) -> np.ndarray:
    """Mean square of delta_l for l = depth .. 0, sending `top` down through the layers.

    delta_l = (delta_{l+1} W_{l+1}^T) * phi'(H_l) (times a on kept units with alpha dropout);
    delta_0 is the gradient at the input. `weights(l)` returns layer l's weights (regenerated
    from their stream rather than stored: one layer's weights in memory at a time).
    """
    depth = series.depth
    grad_sq = np.empty(depth + 1)
    delta, nxt = top, np.empty_like(top)
    with np.errstate(all="ignore"):
        grad_sq[depth] = _mean_square(delta)
        for layer in range(depth - 1, -1, -1):
            np.matmul(delta, weights(layer + 1).T, out=nxt)
            if layer > 0:
                nxt *= derivs[layer - 1]
            delta, nxt = nxt, delta
            grad_sq[layer] = _mean_square(delta)
    return grad_sq


def _mean_square(x: np.ndarray) -> float:
    v = x.reshape(-1).astype(np.float64)
    return float(v @ v) / v.size


def gradient_memory(series: Series) -> int:
    """Bytes the backward pass adds: every layer's phi'(H) and two error-signal buffers."""
    item = np.dtype(series.dtype).itemsize
    return (series.depth + 2) * series.batch * series.width * item
