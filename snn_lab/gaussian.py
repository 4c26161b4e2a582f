"""Expectations under a Gaussian by piecewise Gauss-Legendre quadrature, split at kinks."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

# 32 nodes per panel and panels no wider than one standard deviation (and graded toward 0
# when the sd exceeds 1, see _graded): for an integrand that is analytic on each panel this
# is exact to rounding (~1e-15). Gauss-Hermite on the whole line is not: a jump in phi'
# (SELU at 0) costs it ~1e-3 with 25 nodes, hence the panels (tests/test_moments.py).
# Not scipy.integrate.quad: one fixed rule evaluates the activation once, vectorized, for
# all three moments; quad (adaptive, one scalar call per point, split at the kinks) gave the
# same gelu moments to 1e-16 but took 120 ms against 0.5 ms here, and predict() and the
# pair maps call this per layer.
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(32)
_HALF_WIDTH = 15.0  # standard deviations; the tail beyond carries < 1e-50 of the mass
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def nodes(mean: float, std: float, kinks: Sequence[float] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Quadrature nodes and weights (weights include the N(mean, std^2) density)."""
    lo, hi = mean - _HALF_WIDTH * std, mean + _HALF_WIDTH * std
    cuts = sorted({lo, hi, *(k for k in (*kinks, *_graded(std)) if lo < k < hi)})
    xs, ws = [], []
    for a, b in zip(cuts[:-1], cuts[1:]):
        panels = max(1, math.ceil((b - a) / std))
        edges = np.linspace(a, b, panels + 1)
        mid = 0.5 * (edges[1:] + edges[:-1])[:, None]
        half = 0.5 * (edges[1:] - edges[:-1])[:, None]
        xs.append((mid + half * _NODES).ravel())
        ws.append((half * _WEIGHTS).ravel())
    x = np.concatenate(xs)
    w = np.concatenate(ws) * np.exp(-0.5 * ((x - mean) / std) ** 2) * (_INV_SQRT_2PI / std)
    return x, w


def _graded(std: float) -> tuple[float, ...]:
    """Cuts at 0, +-std, +-std/2, +-std/4, ... down to a unit (or to 1e-17 sd), when std > 1.

    Every registry nonlinearity bends within about a unit of 0 (tanh has poles at +-i pi/2).
    A panel one sd wide straddles that bend once sd >> 1, and Gauss-Legendre then loses
    digits (tanh at sd 30: 1e-4). Panels graded geometrically toward 0 keep the bend at least
    a panel's width from the panel's centre. Below 1e-17 sd a panel's mass is at rounding
    level, so at most ~60 levels are cut whatever the sd.
    """
    if not (std > 1.0 and math.isfinite(std)):
        return ()
    floor = max(0.5, 1e-17 * std)
    cuts, x = [0.0], std
    while x > floor:
        cuts += [-x, x]
        x *= 0.5
    return tuple(cuts)


def expect(f: Callable[[np.ndarray], np.ndarray], mean: float, std: float,
           kinks: Sequence[float] = ()) -> float:
    """E[f(z)] for z ~ N(mean, std^2); f must be vectorized and smooth between kinks."""
    if std == 0.0:
        return float(f(np.array([mean], dtype=np.float64))[0])
    x, w = nodes(mean, std, kinks)
    return float(np.dot(w, f(x)))


def pair_expect(f: Callable[[np.ndarray], np.ndarray], kinks: tuple[float, ...], q: float,
                 c: float) -> float:
    """E[f(u1) f(u2)], (u1, u2) centred Gaussian, variances q, correlation c: nested quadrature."""
    # Outer over u1, inner over u2 | u1 ~ N(c u1, q (1 - c^2)), both split at the kinks. The
    # inner average is a kink smoothed over sd s_c = sqrt(q (1 - c^2)): near c = 1 it is sharp
    # on the outer scale, so the outer panels are also cut at k / c, graded by s_c/|c| * 2^j.
    s = math.sqrt(q)
    if c == 0.0:
        one = expect(f, 0.0, s, kinks)
        return one * one
    sc = s * math.sqrt(max(0.0, (1.0 - c) * (1.0 + c)))
    if sc == 0.0:
        return expect(lambda x: f(x) * f(c * x), 0.0, s, (*kinks, *(k / c for k in kinks)))
    cuts = list(kinks)
    h = sc / abs(c)
    for k in kinks:
        cuts.append(k / c)
        j = 0
        while h * 2.0 ** j < s:
            cuts += [k / c - h * 2.0 ** j, k / c + h * 2.0 ** j]
            j += 1
    x, w = nodes(0.0, s, cuts)
    # Outer nodes beyond ~9 sd carry < 1e-18 of the mass: skip their (costly) inner integrals.
    keep = w > 1e-18 * w.max()
    x, w = x[keep], w[keep]
    inner = np.empty_like(x)
    for i in range(0, len(x), _BATCH):  # in batches: the node arrays stay a few MB
        xi, wi = batch_nodes(c * x[i:i + _BATCH], sc, kinks)
        inner[i:i + _BATCH] = np.einsum("ij,ij->i", wi, f(xi.ravel()).reshape(xi.shape))
    return float(w @ (f(x) * inner))


_BATCH = 256  # outer nodes whose inner integrals are evaluated together
# The inner integrals of pair_expect run on a leaner rule than nodes(): 16 nodes per one-sd
# panel over +-10 sd (the tail beyond holds < 2e-23 of the mass). The Gaussian factor on a
# one-sd panel is entire, so 16 Gauss-Legendre nodes still reach rounding level; the closed
# forms agree to 1e-12 (tests/test_probes_theory.py) at a third of the cost.
_INNER_NODES, _INNER_WEIGHTS = np.polynomial.legendre.leggauss(16)
_INNER_HALF_WIDTH = 10.0


def batch_nodes(means: np.ndarray, std: float, kinks: Sequence[float] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Inner-rule nodes for many means at once, one row each: (len(means), m) nodes and weights.

    The cuts (kinks and graded cuts) sit at the same places for every row, clipped to its
    +-10 sd window (a clipped segment has zero length and zero weight); each segment gets the
    panel count that its widest row needs, so every panel stays at most one sd wide, as in nodes().
    """
    means = np.asarray(means, dtype=np.float64)
    lo, hi = means - _INNER_HALF_WIDTH * std, means + _INNER_HALF_WIDTH * std
    fixed = np.array(sorted({*kinks, *_graded(std)}), dtype=np.float64)
    bounds = np.concatenate([lo[:, None], np.clip(fixed[None, :], lo[:, None], hi[:, None]), hi[:, None]], axis=1)
    xs, ws = [], []
    for a, b in zip(bounds[:, :-1].T, bounds[:, 1:].T):
        width = b - a
        panels = max(1, math.ceil(float(width.max()) / std))
        t = np.arange(panels + 1) / panels
        edges = a[:, None] + width[:, None] * t[None, :]
        mid = 0.5 * (edges[:, 1:] + edges[:, :-1])
        half = 0.5 * (edges[:, 1:] - edges[:, :-1])
        xs.append((mid[:, :, None] + half[:, :, None] * _INNER_NODES).reshape(len(means), -1))
        ws.append((half[:, :, None] * _INNER_WEIGHTS).reshape(len(means), -1))
    x, w = np.concatenate(xs, axis=1), np.concatenate(ws, axis=1)
    w = w * np.exp(-0.5 * ((x - means[:, None]) / std) ** 2) * (_INV_SQRT_2PI / std)
    return x, w
