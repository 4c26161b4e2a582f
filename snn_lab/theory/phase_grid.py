"""c* on the phase grid's chaotic side: Newton's method on the correlation map, a lean 2-D rule.

meanfield.correlation_fixed_point brackets c* and refines it with Brent's method: ~10 nested 2-D
quadratures (gaussian.pair_expect) a point. Here Newton's method on c_map(c) - c takes its slope
chi_c(c) - 1 (Price's theorem), both from one set of gaussian.polar_pair_nodes, and starts at a
neighbour's c*: ~3 evaluations a point. The formulas stay meanfield's (c_map and chi_c are
handed the two pair expectations); anything Newton cannot settle goes to the bracket search.
"""

from __future__ import annotations

import math

import numpy as np

from snn_lab import gaussian
from snn_lab.activations import Activation
from snn_lab.config import Series
from snn_lab.theory import meanfield as theory

# Converged when a Newton step moves c by less than this: the step after it would be ~1e-22
# (quadratic convergence), and chi_c, taken at the last iterate, is off by ~1e-12 (xi_c by
# 1e-12 / |ln chi_c|, no more than rounding in the excess, ~1e-15 / (1 - chi_c), moves c* and
# xi_c for Brent's method). Or when the excess is rounding (< meanfield._NOISE) and the steps
# stop shrinking: c* is then as resolved as the excess allows.
_STEP = 1e-12
# Newton starts on gaussian.polar_pair_nodes' coarse rule (~1e-7) and moves to the full one
# once a step is below this: then ~2 full evaluations finish (quadratic convergence).
_COARSE = 1e-6
_MAX_STEPS = 30  # Newton from c = 0 takes < 10 where c* is resolved; more means near-critical


def correlation_fixed_point(series: Series, q: float, near: float | None = None,
                            act: Activation | None = None) -> tuple[float, float]:
    """(c*, chi_c at c*) as meanfield.correlation_fixed_point returns them, by Newton's method
    from `near` (a neighbouring grid point's c*) where the lean rule applies; else by that search."""
    act = act or series.make_activation()
    # The polar rule cuts at 0 only: a kink elsewhere, or a q the rule does not cover, goes the plain way.
    if any(k != 0.0 for k in act.kinks) or not 1e-12 < q < 1e12:
        return theory.correlation_fixed_point(series, q, near)
    if not series.dropout:
        at_one = theory.chi_c(series, 1.0, q, act)  # c = 1: a 1-D quadrature
        if at_one <= 1.0 + theory._CRITICAL:
            return 1.0, at_one
    if theory.c_map(series, 0.0, q, act) <= theory._NOISE:  # c = 0: E[phi]^2, also 1-D
        return 0.0, theory.chi_c(series, 0.0, q, act)
    # c_map(c) - c is convex on [0, 1] and positive below c* (meanfield.correlation_fixed_point):
    # from any c <= c* Newton's steps rise monotonically to c*. From c > c* one step lands at or
    # below c* unless the slope there is >= 0 (past the excess's minimum): then restart at 0.
    c, last, prev, coarse = (near if near is not None and 0.0 < near < 1.0 else 0.0), math.inf, None, True
    for _ in range(_MAX_STEPS):
        cmap, chi = maps(series, act, q, c, coarse)
        excess, slope = cmap - c, chi - 1.0
        if not (math.isfinite(excess) and math.isfinite(slope)):
            break
        if slope >= 0.0:
            if c == 0.0:
                break  # not the convex picture above: leave it to the bracket search
            c, last, prev = 0.0, math.inf, None
            continue
        step = excess / slope
        if coarse and abs(step) <= _COARSE:  # near the coarse rule's root: on with the full rule
            c, last, prev, coarse = min(max(c - step, 0.0), 1.0 - 2.0 ** -40), math.inf, None, False
            continue
        if abs(step) <= _STEP or (abs(excess) <= theory._NOISE and abs(step) > 0.5 * last):
            return c - step, chi
        if prev is not None and (moved := abs(c - prev[0])) > 0.0 and \
                abs(step) * moved <= _STEP and abs(step) ** 3 <= 1e-15 * moved ** 2:
            # Quadratic convergence (steps ~ M d^2): the next step would be ~|step|^3 / moved^2
            # <= 1e-15. chi_c at c - step from the secant through the last two iterates: off by
            # ~|step| moved chi_c'' / 2, as small as the _STEP rule leaves it, one evaluation sooner.
            return c - step, chi - step * (chi - prev[1]) / (c - prev[0])
        last, prev = abs(step), (c, chi)
        c = min(max(c - step, 0.0), 1.0 - 2.0 ** -40)  # 2^-40: where the bracket search calls c* 1
    return theory.correlation_fixed_point(series, q, near)


def maps(series: Series, act: Activation, q: float, c: float, coarse: bool = False) -> tuple[float, float]:
    """(c_map(c), chi_c(c)) at variance q from one set of polar nodes (q in (1e-12, 1e12))."""
    u1, u2, w = gaussian.polar_pair_nodes(q, c, coarse)
    y1, y2 = act.fn(u1), act.fn(u2)
    # np.sum, not w @ y (a BLAS dot of ~50,000 terms may start threads: 20x the CPU time here) nor
    # einsum (no pairwise summation: its ~1e-14 noise in the excess moved c* by 1e-10 near chi_c = 1).
    pair = None if act.pair_form is not None else float(np.sum(w * y1 * y2))  # a closed form wins
    slopes = float(np.sum(w * act.deriv_given(u1, y1) * act.deriv_given(u2, y2)))
    return theory.c_map(series, c, q, act, pair), theory.chi_c(series, c, q, act, slopes)
