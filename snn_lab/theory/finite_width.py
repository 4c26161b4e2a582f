"""The one finite-width term of the norm layers' theory: the eps term's O(1/width) excess.

A norm layer's pooled pre-activation variance is 1 - E[eps / (v + eps)] ~ 1 - eps E[1/v]. At
infinite width the scale of v is fixed; at width n it fluctuates by O(1/sqrt(n)), and Jensen
raises E[1/v] by its relative variance: ~2e-3 of a ~1e-5 term at n = 1024, against a simulated
trial sd of ~1e-8. This module gives that relative variance (the deficit is multiplied by
1 + it), to leading order in 1/n; everything else in theory/blocks.py is the infinite-width limit.
- batch norm: a unit's v B = w^T Q w, w its weights, Q = X^T P X fixed by the batch. Over the
  weights Var / E^2 = 2 tr Q^2 / (tr Q)^2 + kappa sum_i Q_ii^2 / (tr Q)^2 = 2/(B - 1) (the
  chi^2 law, already exact) + (2 + kappa)/n + O(1/(n B)), kappa the weights' excess kurtosis
  (normalized weights: -2, their sum of squares is fixed).
- layer norm: a sample's v scales with V_a = s S2_a + sigma_b^2 (S2_a its mean square over the
  units; centred, S2_a - xbar_a^2, for normalized weights), so the excess is Var(V_a) / V^2
  (and, for normalized weights, E V_a itself differs from V by O(1/n): layer_factor).
  The state is Spread = n (Var xbar, Var S2, Cov(S2, xbar)) over samples: for the N(mean, var)
  input that of n i.i.d. entries; for a norm's output y = Y(p), p uniform on the sphere, the
  i.i.d. value less the projections on p and p^2 - 1, which the sphere holds fixed (to O(1/n));
  for x + alpha y with y independent of x unit by unit, the sums below.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from snn_lab.activations import Activation, alpha_dropout_affine
from snn_lab.config import Series
from snn_lab.initializers import TRUNCATION


class Spread(NamedTuple):
    """n times the variance over samples of a sample's mean, mean square, and their covariance."""

    mean: float
    square: float
    cross: float


def weight_kurtosis(series: Series) -> float:
    """Excess kurtosis of one weight: normal 0, uniform -6/5, truncated normal, normalized -2."""
    if series.normalize_weights:
        return -2.0
    kind = series.initializer.kind
    if kind == "uniform":
        return -1.2
    if kind == "truncated":  # N(0, 1) on [-c, c]: E z^4 = 3 E z^2 - 2 c^3 pdf(c) / P(|z| < c)
        c = TRUNCATION
        tail = 2.0 * math.exp(-0.5 * c * c) / math.sqrt(2.0 * math.pi) / math.erf(c / math.sqrt(2.0))
        m2 = 1.0 - c * tail
        return (3.0 * m2 - c**3 * tail) / (m2 * m2) - 3.0
    return 0.0


def batch_excess(series: Series, anisotropy: float) -> float:
    """Relative excess of a batch norm's E[1/v] at width n: 2 D + kappa / n.

    D = tr G^2 / (tr G)^2 - 1/(B - 1) of the batch's Gram matrix G of the layer's input (centred
    over the batch, averaged over units): 1/n for the i.i.d. input (Wishart), see gram_anisotropy.
    """
    return 2.0 * anisotropy + weight_kurtosis(series) / series.width


def gram_anisotropy(series: Series, before: float, transmission: float, skip: tuple | None = None) -> float:
    """D of a batch-norm layer's output from its input's.

    The branch y: 1/n of its own units' sampling, plus what passes through: the input's Gram
    shapes every unit's law, and a relative change of one of its off-diagonal entries moves the
    output's by T = (a keep)^2 E[phi'_a phi'_b] / S_y (Price). With a skip, x + alpha y
    (`skip` = (alpha, S_x, S_y), the batch variances): the Grams add, with the cross term of two
    unit-wise independent matrices (2 alpha^2 S_x S_y / n) and the part of y's deviation that
    follows x's (T D_x), all over the new trace squared.
    """
    branch = 1.0 / series.width + transmission * transmission * before
    if skip is None:
        return branch
    alpha, sx, sy = skip
    a2 = alpha * alpha
    total = sx + a2 * sy
    return (before * sx * sx + a2 * a2 * branch * sy * sy + 2.0 * a2 * sx * sy * (transmission * before
            + 1.0 / series.width)) / (total * total)


def layer_factor(series: Series, spread: Spread, mean: float, second: float, s: float, V: float) -> float:
    """What a layer norm's deficit is multiplied by at width n: V / E V_a (1 + Var(V_a) / (E V_a)^2).

    s = tau / beta^2. Random weights: E V_a = V. Normalized weights see a sample's centred
    entries through columns that sum to 0: E V_a = s n/(n - 1) (M - m^2 - Var xbar_a) + sigma_b^2,
    below V when the sample's mean varies less than i.i.d. entries' would (a norm's output).
    """
    n = series.width
    var = spread.square
    mean_V = V
    if series.normalize_weights:  # S2 - xbar^2, by the delta method
        var += -4.0 * mean * spread.cross + 4.0 * mean * mean * spread.mean
        mean_V = s * n / (n - 1.0) * (second - mean * mean - spread.mean / n) + series.bias_var
    return V / mean_V * (1.0 + s * s * max(var, 0.0) / (n * mean_V * mean_V))


def input_spread(series: Series) -> Spread:
    """The input: each sample's entries are i.i.d. N(mean, var) over the units."""
    mu, var = series.input.mean, series.input.var
    return Spread(var, 4.0 * mu * mu * var + 2.0 * var * var, 2.0 * mu * var)


def norm_output(act: Activation, series: Series, x: np.ndarray, w: np.ndarray, scale: float) -> Spread:
    """The Spread of y = dropout(phi(p)), p = scale * a sphere entry (nodes x, weights w)."""
    phi = act.fn(x)
    keep, kept, dropped = 1.0, phi, 0.0
    if series.dropout:
        keep = 1.0 - series.dropout
        a, b = alpha_dropout_affine(series.dropout, act.saturation)
        kept, dropped = a * phi + b, a * act.saturation + b
    drop = 1.0 - keep
    g1 = keep * kept + drop * dropped  # E[y | p] and E[y^2 | p], over the unit's own mask
    g2 = keep * kept * kept + drop * dropped * dropped
    e1, e2 = w @ g1, w @ g2
    y3 = keep * (w @ kept**3) + drop * dropped**3
    y4 = keep * (w @ kept**4) + drop * dropped**4
    u = x / scale if scale > 0 else np.zeros_like(x)
    h2 = u * u - 1.0
    c1, c2, d1, d2 = w @ (g1 * u), w @ (g1 * h2), w @ (g2 * u), w @ (g2 * h2)
    return Spread(float(e2 - e1 * e1 - c1 * c1 - 0.5 * c2 * c2),
                  float(y4 - e2 * e2 - d1 * d1 - 0.5 * d2 * d2),
                  float(y3 - e1 * e2 - c1 * d1 - 0.5 * c2 * d2))


def residual(x: Spread, y: Spread, alpha: float, m: float, M: float, e1: float, e2: float) -> Spread:
    """The Spread of x + alpha y, y independent of x unit by unit (m, M: x's; e1, e2: y's)."""
    xy = (M - m * m) * (e2 - e1 * e1) + m * m * y.mean + e1 * e1 * x.mean  # n Var(mean of x y)
    a2 = alpha * alpha
    return Spread(x.mean + a2 * y.mean,
                  x.square + 4.0 * a2 * xy + a2 * a2 * y.square + 4.0 * alpha * e1 * x.cross
                  + 4.0 * a2 * alpha * m * y.cross,
                  x.cross + 2.0 * alpha * e1 * x.mean + 2.0 * a2 * m * y.mean + a2 * alpha * y.cross)
