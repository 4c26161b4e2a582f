"""Expectations under a Gaussian by piecewise Gauss-Legendre quadrature, split at kinks."""

from __future__ import annotations

import functools
import itertools
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
    if mean == 0.0 and not any(kinks) and 0.0 < std < math.inf:
        # Centred, kinks at 0 only (the q-map's case, ~10^4 calls on a phase grid): the rule in
        # units of std depends on std only through its graded levels; built once per count.
        t, w = _standard_nodes(len(_graded(std)))
        return std * t, w.copy()
    lo, hi = mean - _HALF_WIDTH * std, mean + _HALF_WIDTH * std
    x, w = _panels(lo, hi, std, (*kinks, *_graded(std)))
    return x, w * np.exp(-0.5 * ((x - mean) / std) ** 2) * (_INV_SQRT_2PI / std)


@functools.cache
def _standard_nodes(levels: int) -> tuple[np.ndarray, np.ndarray]:
    """nodes(0, 1, (0,)) with the graded cuts of a std that has `levels` of them, in units of std."""
    cuts = [0.0, *(sign * 0.5 ** j for j in range(levels // 2) for sign in (-1.0, 1.0))]
    t, w = _panels(-_HALF_WIDTH, _HALF_WIDTH, 1.0, cuts)
    return t, w * np.exp(-0.5 * t * t) * _INV_SQRT_2PI


def _panels(lo: float, hi: float, width: float, cuts, rule=(_NODES, _WEIGHTS)) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on [lo, hi], cut at `cuts`, panels at most `width` wide."""
    # One numpy pass over every panel: a Python loop per segment (np.linspace each) was 70% of
    # a 1-D quadrature's time, and the phase grid runs ~10^5 of them (docs/theory.md).
    unit_x, unit_w = rule
    edges = np.array(sorted({lo, hi, *(c for c in cuts if lo < c < hi)}), dtype=np.float64)
    a, span = edges[:-1], np.diff(edges)
    count = np.maximum(1, np.ceil(span / width)).astype(np.int64)
    seg = np.repeat(np.arange(a.size), count)
    k = np.arange(seg.size) - np.repeat(np.cumsum(count) - count, count)
    step = (span / count)[seg]
    mid, half = a[seg] + step * (k + 0.5), 0.5 * step
    return (mid[:, None] + half[:, None] * unit_x).ravel(), (half[:, None] * unit_w).ravel()


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


# ---- a lean pair rule in polar coordinates: the phase grid (theory/phase_grid.py), pair_moment --
#
# (u1, u2) = sqrt(q) r (cos t, cos(t - phi)), cos phi = c, with r e^(-r^2/2) dr dt / (2 pi).
# A function that bends only at 0 bends along the four rays where u1 or u2 is 0, whatever c:
# panels in t cut there and graded toward them (down to where sqrt(q) r moves |u| by < 3/4
# across a panel, ring by ring) make the integrand smooth on every panel. Rings of r are one
# wide, graded toward 0 when sqrt(q) > 1, and stop at r = 9 (the mass beyond is e^-40.5); 12
# Gauss-Legendre nodes a panel, 6 in rings with < 1e-6 of the mass. Within 3e-15 of
# pair_expect relative to E[f^2] for c <= 0.9999 (tanh, SELU, ELU, GELU at q = 1e-6 .. 1e3),
# with 7 to 11 times fewer nodes (q = 1 .. 500), and one set of nodes serves E[f f] and E[f' f'].
# `coarse`: 6 and 4 nodes, 3.6 times fewer again, within ~1e-7 (Newton's first steps need no more).
_RING_EDGE, _RING_TAIL = 9.0, 1e-6
_BEND, _BASE = 0.75, 0.25 * math.pi
_RULES = {False: tuple(np.polynomial.legendre.leggauss(n) for n in (12, 6)),
          True: tuple(np.polynomial.legendre.leggauss(n) for n in (6, 4))}  # coarse: (bulk, tail)


def polar_pair_nodes(q: float, c: float, coarse: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(u1, u2, w): E[g(u1) h(u2)] = sum of w g(u1) h(u2) for g, h smooth away from 0 (see above)."""
    s, phi = math.sqrt(q), math.acos(min(1.0, max(-1.0, c)))
    zeros = [z % (2.0 * math.pi) for z in (0.5 * math.pi, 1.5 * math.pi, phi + 0.5 * math.pi, phi + 1.5 * math.pi)]
    u1, u2, w = [], [], []
    for depth, rule, r, wr in _rings(s, coarse):
        bends, step = list(zeros), _BASE
        for _ in range(depth):
            bends += [(z + sign * step) % (2.0 * math.pi) for z in zeros for sign in (-1.0, 1.0)]
            step *= 0.5
        t, wt = _panels(0.0, 2.0 * math.pi, _BASE, bends, rule)
        u1.append(np.multiply.outer(r, np.cos(t)).ravel())
        u2.append(np.multiply.outer(r, np.cos(t - phi)).ravel())
        w.append(np.multiply.outer(wr, wt).ravel())
    return np.concatenate(u1), np.concatenate(u2), np.concatenate(w)


@functools.lru_cache(maxsize=16)  # Newton's steps on c at one grid point share q
def _rings(s: float, coarse: bool) -> tuple[tuple[int, tuple, np.ndarray, np.ndarray], ...]:
    """polar_pair_nodes' rings as (grading depth in t, rule, s r, weights incl. 1/(2 pi)), rings
    of one depth and rule merged: they share their nodes in t."""
    graded = [g / s for g in _graded(s) if g > 0]  # r = 1, 1/2, 1/4, ... while s r > 1/2 (as nodes())
    edges = sorted({0.0, *graded, *(float(k) for k in range(1, int(_RING_EDGE) + 1))})
    groups: dict[tuple[int, bool], list] = {}
    for lo, hi in itertools.pairwise(edges):
        lean = math.exp(-0.5 * lo * lo) - math.exp(-0.5 * hi * hi) <= _RING_TAIL
        depth = math.ceil(math.log2(x)) if (x := _BASE * s * hi / _BEND) > 1.0 else 0  # halvings of _BASE
        r, wr = _panels(lo, hi, 1.0, (), _RULES[coarse][lean])
        groups.setdefault((depth, lean), []).append((s * r, wr * r * np.exp(-0.5 * r * r) / (2.0 * math.pi)))
    return tuple((depth, _RULES[coarse][lean],
                  np.concatenate([g[0] for g in parts]), np.concatenate([g[1] for g in parts]))
                 for (depth, lean), parts in groups.items())


# ---- one coordinate of a point on a sphere: what a norm layer's output is made of ---------------
#
# A normalized vector of K entries (subtract the mean, divide by the root mean square) lies on
# the sphere of radius sqrt(K) in the hyperplane sum = 0 of R^K; when the vector was isotropic
# Gaussian before (plus any multiple of (1, ..., 1)) it is uniform there. One entry is then
# sqrt(K - 1) t with (t + 1)/2 ~ Beta((K - 2)/2, (K - 2)/2): E p^2 = 1, E p^4 = 3 (K - 1)/(K + 1).
# With t = sin(theta) the density of theta is proportional to cos(theta)^(K - 3) on
# [-pi/2, pi/2]: analytic for every K >= 3, so Gauss-Legendre panels in theta are exact to
# rounding with no endpoint singularity (a rule in t would see (1 - t^2)^((K - 4)/2)).

# Beyond this K the coordinate's moments differ from the Gaussian's by less than double
# rounding (E p^4 = 3 - 6/(K + 1)): the Gaussian rule is used (nodes(), pair_expect()).
_SPHERE_GAUSSIAN = 2.0 ** 56


def _cos_power(theta: np.ndarray, power: float) -> np.ndarray:
    """cos(theta)^power, through log1p(-sin^2): exact where cos rounds to 1 (theta ~ 1e-9, K ~ 1e17)."""
    s = np.sin(theta)
    return np.exp(0.5 * power * np.log1p(-s * s))


def sphere_nodes(K: int, scale: float = 1.0, kinks: Sequence[float] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights (summing to 1) for p = scale * one entry of a normalized K-vector.

    K = 1: p = 0; K = 2: p = +-scale; K >= 3: the law above, by panels in theta at most one
    standard deviation wide over +-15 of them (or the whole half circle), cut where p crosses a
    kink and, when scale > 1, graded toward 0 as in nodes().
    """
    if K <= 1 or scale == 0.0:
        return np.zeros(1), np.ones(1)
    if K == 2:
        return np.array([-scale, scale]), np.array([0.5, 0.5])
    if K > _SPHERE_GAUSSIAN:
        return nodes(0.0, scale, kinks)
    power = float(K) - 3.0
    sd = 1.0 / math.sqrt(max(power, 1.0))  # of theta; cos^power ~ exp(-power theta^2 / 2)
    edge = min(0.5 * math.pi, _HALF_WIDTH * sd)
    radius = scale * math.sqrt(float(K) - 1.0)
    cuts = [math.asin(k / radius) for k in (*kinks, *_graded(scale)) if abs(k) < radius]
    theta, w = _panels(-edge, edge, sd, cuts)
    w = w * _cos_power(theta, power)
    return radius * np.sin(theta), w / w.sum()


def sphere_expect(f: Callable[[np.ndarray], np.ndarray], K: int, scale: float = 1.0,
                  kinks: Sequence[float] = ()) -> float:
    """E[f(p)], p = scale * one entry of a normalized K-vector (see sphere_nodes)."""
    x, w = sphere_nodes(K, scale, kinks)
    return float(np.dot(w, f(x)))


_PAIR_RULE = (_INNER_NODES, _INNER_WEIGHTS)
_PAIR_PSI_WIDTH = 9.0


def sphere_pair_expect(f: Callable[[np.ndarray], np.ndarray], K: int, scale: float = 1.0) -> float:
    """E[f(p_a) f(p_b)] for two distinct entries of the same normalized K-vector (times scale).

    Their correlation is -1/(K - 1) (the entries sum to 0). In an orthonormal basis of the plane
    of the two directions, the sphere's two coordinates (for K >= 4) have density proportional
    to (1 - r^2)^((K - 5)/2) on the unit disc; with r = sin(psi) and the angle phi the weight is
    sin(psi) cos(psi)^(K - 4), analytic, and p_a = A r cos(phi), p_b = A r cos(phi - phi0) with
    A = scale sqrt(K - 1), cos(phi0) = -1/(K - 1). K = 3: r = 1 (the circle itself). Panels in
    phi are cut where p_a or p_b is 0 and graded toward those angles (every registry activation
    bends at 0); a kink away from 0 is not cut (no registry activation has one). Both
    directions use the 16-node rule of pair_expect's inner integrals, and psi stops at 9 sd
    (the radius is a chi with 2 degrees of freedom: the tail beyond holds e^-40.5 = 3e-18):
    within 1e-15 of 32 nodes over 15 sd (tests/test_theory_blocks.py) at a sixth of the cost.
    """
    if K <= 1 or scale == 0.0:
        v = float(f(np.zeros(1))[0])
        return v * v
    if K == 2:
        a, b = f(np.array([scale, -scale]))
        return float(a * b)
    c = -1.0 / (float(K) - 1.0)
    if K > _SPHERE_GAUSSIAN:
        return pair_expect(f, (), scale * scale, c)
    amp = scale * math.sqrt(float(K) - 1.0)
    phi0 = math.acos(c)
    if K == 3:
        psi, wpsi = np.array([0.5 * math.pi]), np.ones(1)
    else:
        power = float(K) - 4.0
        sd = 1.0 / math.sqrt(max(power, 1.0))
        # Panels also at most 1/A wide: |p| moves by at most about 1 across one.
        psi, wpsi = _panels(0.0, min(0.5 * math.pi, _PAIR_PSI_WIDTH * sd), min(sd, 1.0 / amp), (),
                                  _PAIR_RULE)
        wpsi = wpsi * np.sin(psi) * _cos_power(psi, power)
    r = np.sin(psi)
    # phi: cut at the four angles where p_a or p_b is 0, graded toward them down to a step where
    # the largest |p| moves by < 1/2 across a panel.
    zeros = [(z + 2.0 * math.pi) % (2.0 * math.pi) for z in
             (0.5 * math.pi, 1.5 * math.pi, phi0 + 0.5 * math.pi, phi0 - 0.5 * math.pi)]
    cuts, step = list(zeros), math.pi / 8.0
    while step * amp * float(r.max()) > 0.5:
        cuts += [z + sign * step for z in zeros for sign in (-1.0, 1.0)]
        step *= 0.5
    phi, wphi = _panels(0.0, 2.0 * math.pi, math.pi / 8.0,
                              [(x + 2.0 * math.pi) % (2.0 * math.pi) for x in cuts], _PAIR_RULE)
    wpsi, wphi = wpsi / wpsi.sum(), wphi / wphi.sum()
    fa = f((amp * r[:, None] * np.cos(phi)[None, :]).ravel()).reshape(len(r), len(phi))
    fb = f((amp * r[:, None] * np.cos(phi - phi0)[None, :]).ravel()).reshape(len(r), len(phi))
    return float(wpsi @ (fa * fb) @ wphi)
