"""Mean-field theory folded over a series: the per-layer prediction and its fixed-point analysis.

Two maps carry a signal through a random layer of infinite width:
- random i.i.d. weights (Poole et al. 2016, Schoenholz et al. 2017): pooled over units, the
  pre-activation is N(0, q) with q = sigma_w^2 E[Y^2] + sigma_b^2 of the previous output Y;
- normalized weights (each unit's weights sum to omega = 0, squares to tau = gain^2): the map
  g(mu, nu) of Klambauer et al. (2017), pre-activation N(mu omega, nu tau + sigma_b^2).
Both then need only the activation's Gaussian moments (Activation.moments) and, with alpha
dropout, its affine correction (alpha_dropout_affine). Everything here returns data.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from snn_lab import gaussian
from snn_lab.activations import Activation, alpha_dropout_affine
from snn_lab.config import Series
from snn_lab.statistics import json_number
from snn_lab.theory.brackets import walk

# Columns of predict(), in order: what engine.run_trial records as mean, var, preact_var.
THEORY = ("theory_mean", "theory_var", "theory_preact_var")

_CRITICAL = 1e-9  # |slope - 1| below this is "critical": a depth scale would exceed 1e9 layers
_Q_LIMITS = (1e-300, 1e300)  # q beyond these: collapsed to 0 / grown without bound
_TINY_Q = 1e-200  # where the q -> 0+ limits are evaluated (sd 1e-100: still a normal float)
# q_map is exact to ~1e-15 relative (tests/test_moments.py: closed forms and quadrature vs
# mpmath); a sign of q_map(q) - q smaller than 100 times that is rounding, not signal.
_NOISE = 1e-13
_EPS = float(np.finfo(np.float64).eps)


# ---- one layer: an activation, alpha dropout, Gaussian pre-activations -------------------------

def _dropout_affine(act: Activation, rate: float) -> tuple[np.ndarray, np.ndarray]:
    """(A, c) with [E Y, E Y^2] = A @ [E phi, E phi^2] + c, Y the output after alpha dropout."""
    if not rate:
        return np.eye(2), np.zeros(2)
    keep, sat = 1.0 - rate, act.saturation
    a, b = alpha_dropout_affine(rate, sat)
    # Y = a X + b, X = phi with probability keep and sat otherwise: E X = keep E phi + (1 - keep) sat.
    base = np.array([(1.0 - keep) * sat, (1.0 - keep) * sat * sat])
    lin = np.array([[a, 0.0], [2.0 * a * b, a * a]])
    return keep * lin, lin @ base + np.array([b, b * b])


def output_moments(act: Activation, mean: float, var: float, dropout: float = 0.0) -> tuple[float, float]:
    """E[Y] and E[Y^2] of a layer's output for pre-activation N(mean, var), after alpha dropout."""
    mo = act.moments(mean, math.sqrt(var))
    A, c = _dropout_affine(act, dropout)
    e1, e2 = A @ (mo.m1, mo.m2) + c
    return float(e1), float(e2)


def _moment_gradient(act: Activation, mean: float, var: float) -> np.ndarray:
    """d[E phi, E phi^2] / d(mean, var) for z ~ N(mean, var), var > 0: a 2x2 array."""
    # Gaussian identities dE f/dm = E[f (z-m)] / s^2, dE f/d(s^2) = E[f ((z-m)^2 - s^2)] / (2 s^4):
    # f = phi or phi^2 is integrated, never differentiated, so kinks cost nothing.
    x, w = gaussian.nodes(mean, math.sqrt(var), act.kinks)
    y = act.fn(x)
    y0 = act.fn(np.array([float(mean)]))[0]
    d = x - mean
    # Subtracting f(mean) leaves both identities unchanged (E[z-m] = E[(z-m)^2 - s^2] = 0) but
    # removes the constant part of f, which would otherwise cancel at rounding level.
    f = np.stack([y - y0, y * y - y0 * y0])
    return np.column_stack([f @ (w * d) / var, f @ (w * (d * d - var)) / (2.0 * var * var)])


def g_map(act: Activation, mu: float, nu: float, omega: float = 0.0, tau: float = 1.0,
          bias_var: float = 0.0, dropout: float = 0.0) -> tuple[float, float]:
    """Klambauer et al.'s g: input (mean mu, variance nu) -> output (mean, variance)."""
    e1, e2 = output_moments(act, mu * omega, nu * tau + bias_var, dropout)
    return e1, e2 - e1 * e1


def g_jacobian(act: Activation, mu: float, nu: float, omega: float = 0.0, tau: float = 1.0,
               bias_var: float = 0.0, dropout: float = 0.0) -> np.ndarray:
    """The 2x2 Jacobian d(mu~, nu~) / d(mu, nu) of g_map, analytic (needs nu tau + bias_var > 0)."""
    m, v = mu * omega, nu * tau + bias_var
    if not v > 0:
        raise ValueError(f"the Jacobian needs a pre-activation variance > 0, got {v!r}")
    A, _ = _dropout_affine(act, dropout)
    grad = A @ _moment_gradient(act, m, v)  # d[E Y, E Y^2] / d(m, v)
    e1, _ = output_moments(act, m, v, dropout)
    rows = np.array([grad[0], grad[1] - 2.0 * e1 * grad[0]])  # nu~ = E Y^2 - (E Y)^2
    return rows * np.array([omega, tau])  # chain rule: m = mu omega, v = nu tau + bias_var


# ---- the series' layer map in q, and the prediction ---------------------------------------

def weight_scale(series: Series) -> float:
    """tau of the series' weights: gain^2 when normalized, sigma_w^2 = E[sum of w^2] otherwise."""
    return series.gain * series.gain if series.normalize_weights else series.weight_var


def preact_var(series: Series, mean: float, var: float) -> float:
    """Pooled pre-activation variance q of a layer whose input has this (mean, var)."""
    if series.normalize_weights:
        return series.gain * series.gain * var + series.bias_var  # sum w = 0 removes the mean
    # A unit's weights sum to N(0, sigma_w^2), not 0: pooled over units the input mean adds mean^2.
    return series.weight_var * (var + mean * mean) + series.bias_var


def layer_stats(series: Series, act: Activation, q: float) -> tuple[float, float]:
    """(mean, var) of a layer's output when its pre-activations are N(0, q)."""
    return g_map(act, 0.0, q, tau=1.0, dropout=series.dropout)


def mean_var_map(series: Series, mean: float, var: float, act: Activation | None = None) -> tuple[float, float]:
    """The next layer's output (mean, var) when this layer's output has (mean, var)."""
    return layer_stats(series, act or series.make_activation(), preact_var(series, mean, var))


def predict(series: Series) -> np.ndarray:
    """(depth + 1, len(THEORY)) float64: per layer the predicted mean, var and preact var.

    Layer 0 is the input. A q that overflows is recorded as inf, and from there on the
    variance as inf and the mean as NaN (its sign is not determined); nothing is raised.
    A series with a norm or a residual is theory/blocks.py's.
    """
    if is_block(series):
        from snn_lab.theory import blocks  # blocks builds on this module's layer maps

        return blocks.predict(series)
    act = series.make_activation()
    out = np.empty((series.depth + 1, len(THEORY)))
    mean, var = series.input.mean, series.input.var
    out[0] = (mean, var, var)
    with np.errstate(all="ignore"):  # overflow is data here, as in the engine
        for layer in range(1, series.depth + 1):
            q = preact_var(series, mean, var)
            if not math.isfinite(q):
                out[layer:] = (math.nan, math.inf, math.inf)
                break
            mean, var = layer_stats(series, act, q)
            out[layer] = (mean, var, q)
    return out


# Columns of predict_probes(), beside the engine's measured grad_ratio and correlation.
PROBES = ("theory_grad_ratio", "theory_correlation")
# q range where theory_correlation is computed: an exploding or collapsing series leaves it
# NaN there rather than spend minutes on quadratures graded over 100 octaves.
_PAIR_RANGE = (1e-12, 1e12)


def pair_output(series: Series, act: Activation, q: float, c: float, pair: float | None = None) -> float:
    """E[Y_a Y_b] of two inputs' outputs whose pre-activations (variance q) have correlation c (`pair`: E phi phi)."""
    A, const = _dropout_affine(act, series.dropout)
    gain, shift = A[0, 0], const[0]  # averaged over independent masks: Y = gain * phi + shift
    m1 = act.moments(0.0, math.sqrt(q)).m1
    return gain * gain * (act.pair_moment(q, c) if pair is None else pair) + 2.0 * gain * shift * m1 + shift * shift


def input_correlation(series: Series) -> tuple[float, float]:
    """(cosine of two input vectors, correlation of their first pre-activations)."""
    mean, var, rho = series.input.mean, series.input.var, series.input.correlation
    cross, second = rho * var + mean * mean, var + mean * mean
    q1 = preact_var(series, mean, var)
    # Normalized weights (sum 0) see only the centred part of the inputs.
    tau_cross = series.gain * series.gain * rho * var if series.normalize_weights else series.weight_var * cross
    # q1 = 0 (no input variance, no bias, or weights below the float range): no correlation.
    return (cross / second if second > 0 else math.nan), ((tau_cross + series.bias_var) / q1 if q1 > 0 else math.nan)


def predict_probes(series: Series, correlation: bool = True, prediction: np.ndarray | None = None,
                   progress: Callable[[int], None] | None = None) -> np.ndarray:
    """(depth + 1, len(PROBES)): gradient mean square relative to the top, and input cosine.

    theory_grad_ratio: E[delta_l^2] / E[delta_L^2], delta_l = dL/dx_l the gradient at layer
    l's output (layer 0: the input) for an i.i.d. error signal at the top: going down through
    layer l multiplies it by chi_1(q_l) = tau (a^2 keep) E[phi'(h_l)^2], the layer's own
    pre-activation variance (snn-lab 0.1.0 took the gradient at the pre-activations, one
    layer's factor apart). theory_correlation: the mean cosine similarity of two inputs'
    post-activations, E[Y_a Y_b] / E[Y^2], following the correlation map from the input's
    correlation (Poole et al. 2016). Correlation costs a 2-D quadrature per layer: skipped
    (NaN) if not asked. `prediction`: predict(series), if the caller has it already.
    `progress(n)`: told of each layer done (depth in all). A series with a norm or a residual
    is theory/blocks.py's.
    """
    if is_block(series):
        from snn_lab.theory import blocks

        return blocks.predict_probes(series, correlation, progress)
    act = series.make_activation()
    out = np.full((series.depth + 1, len(PROBES)), math.nan)
    # Each layer's pre-activation variance, from predict() (q[0] is not used).
    q = (predict(series) if prediction is None else prediction)[:, 2]
    with np.errstate(all="ignore"):
        ratio = 1.0
        out[series.depth, 0] = 1.0
        for layer in range(series.depth, 0, -1):
            ratio *= chi1(series, q[layer], act)
            out[layer - 1, 0] = ratio
        done = 0
        if correlation:
            out[0, 1], c = input_correlation(series)
            for layer in range(1, series.depth + 1):
                quadrature = act.pair_form is None
                span = _PAIR_RANGE if quadrature else (0.0, math.inf)
                if not (span[0] < q[layer] < span[1] and math.isfinite(c)):
                    break  # beyond: NaN (the 2-D quadrature's cost grows with |log q|)
                cross = pair_output(series, act, q[layer], c)
                e1, e2 = output_moments(act, 0.0, q[layer], series.dropout)
                out[layer, 1] = cross / e2 if e2 != 0 else math.nan
                if layer < series.depth:
                    centred = cross - e1 * e1 if series.normalize_weights else cross
                    c = (weight_scale(series) * centred + series.bias_var) / q[layer + 1] \
                        if q[layer + 1] != 0 else math.nan
                if progress is not None:
                    progress(1)
                    done += 1
        if progress is not None:
            progress(series.depth - done)
    return out


def is_block(series: Series) -> bool:
    """Whether the series normalizes or adds a skip: theory/blocks.py's theory, not the q-map's."""
    return series.norm != "none" or series.residual is not None


def q_map(series: Series, q: float, act: Activation | None = None) -> float:
    """The next layer's pre-activation variance when this layer's is q."""
    act = act or series.make_activation()
    return preact_var(series, *layer_stats(series, act, q))


def q_slope(series: Series, q: float, act: Activation | None = None) -> float:
    """d q_map / d q at q > 0 (analytic)."""
    act = act or series.make_activation()
    A, _ = _dropout_affine(act, series.dropout)
    (d1, d2) = (A @ _moment_gradient(act, 0.0, q))[:, 1]
    if series.normalize_weights:
        e1, _ = output_moments(act, 0.0, q, series.dropout)
        return series.gain * series.gain * (d2 - 2.0 * e1 * d1)
    return series.weight_var * d2


def chi1(series: Series, q: float, act: Activation | None = None) -> float:
    """chi_1 = tau E[(dY/dh)^2] at pre-activation N(0, q): mean squared gain of a perturbation."""
    # Poole et al.'s sigma_w^2 E[phi'(z)^2]; alpha dropout multiplies the derivative by a on kept
    # units and by 0 on dropped ones, hence the factor a^2 (1 - rate) = A[1, 1].
    act = act or series.make_activation()
    A, _ = _dropout_affine(act, series.dropout)
    return weight_scale(series) * A[1, 1] * act.moments(0.0, math.sqrt(q)).d2


# ---- the fixed point of the q-map ------------------------------------------------------

@dataclass(frozen=True)
class FixedPoint:
    """Where the series' q settles: q*, the output's mean and var there, or why there is none."""

    # "fixed" (q* > 0 reached from the input), "marginal" (every q is fixed: the series keeps
    # its input's q), "collapses" (q -> 0) or "grows" (q -> infinity); "normalized" or
    # "residual" for a series with a norm or a skip, which has no q-map (theory/blocks.py)
    status: str
    q: float | None = None
    mean: float | None = None
    var: float | None = None
    note: str | None = None


def fixed_point(series: Series, act: Activation | None = None, *, step: float = 2.0,
                far: float = _Q_LIMITS[1]) -> FixedPoint:
    """The fixed point q* that the q-map reaches from the series' input, or why there is none.

    The search walks from the input's q by factors of `step` the way the map moves, and calls q
    grown (collapsed) once it passes `far` (1 / far) with no change of sign; the phase diagram
    walks coarser and gives up sooner (phase.settle).
    """
    if is_block(series):
        status = "residual" if series.residual is not None else "normalized"
        return FixedPoint(status, note=f"a {status} series has no q-map fixed point (theory/blocks.py)")
    act = act or series.make_activation()
    q0 = preact_var(series, series.input.mean, series.input.var)

    def excess(q: float) -> float:
        return q_map(series, q, act) - q

    if q0 == 0.0:
        return FixedPoint("collapses", note="q = 0 from the first layer on: the input carries no signal")
    if not math.isfinite(q0):
        return FixedPoint("grows", note="no fixed point: q overflows at the first layer")
    probe = q0 if q0 < _Q_LIMITS[1] else 1.0
    if all(_unresolved(p, excess(p)) for p in (probe * 4.0 ** k for k in range(-3, 4))):
        return FixedPoint("marginal", note=f"every q is a fixed point (marginal): q stays at the "
                                           f"input's q = {q0:.6g} at every depth")
    with np.errstate(all="ignore"):  # near the bounds the moments may overflow: that is an answer
        f0 = excess(q0)
        if not math.isfinite(f0):
            bracket = "overflow"  # the map overflows from where the series starts
        elif _unresolved(q0, f0):
            bracket = (q0, q0)
        else:
            # Walk the way the map moves. Where the excess is within rounding of 0, keep
            # walking: a critical decay looks like that.
            bracket = walk(excess, q0, f0, step if f0 > 0 else 1.0 / step, (1.0 / far, far),
                           lambda q: _NOISE * q, speedup=4)
    if bracket == "overflow" or (bracket == "beyond" and f0 > 0):
        return FixedPoint("grows", note="no fixed point: q grows without bound with depth")
    if bracket == "beyond":
        return FixedPoint("collapses", note="no fixed point q* > 0: q -> 0 with depth "
                                            "(the signal collapses)")
    lo, hi = bracket
    root = lo if lo == hi else find_root(excess, lo, hi)
    mean, var = layer_stats(series, act, root)
    return FixedPoint("fixed", root, mean, var)


def _unresolved(q: float, excess: float) -> bool:
    """Whether q_map(q) - q is within rounding of 0."""
    return abs(excess) <= _NOISE * q


def find_root(f: Callable[[float], float], lo: float, hi: float, rtol: float = 4 * _EPS) -> float:
    """The root of f in [lo, hi], where f changes sign: Brent's method (scipy.optimize.brentq)."""
    # Imported here: scipy.optimize takes ~0.3 s to import, and predict() (every run) needs no root.
    from scipy.optimize import brentq

    return brentq(f, lo, hi, xtol=_Q_LIMITS[0], rtol=rtol)


# ---- two inputs: the correlation map -------------------------------------------------------

def c_map(series: Series, c: float, q: float, act: Activation | None = None, pair: float | None = None) -> float:
    """Correlation of two inputs' next pre-activations when theirs is c and both variances are q."""
    # q_ab = tau E[Y(u1) Y(u2)] + sigma_b^2 (Poole et al. 2016), centred for normalized weights,
    # over q_map(q) (= q at the fixed point). Distinct inputs draw independent dropout masks,
    # so with dropout c -> 1 maps below 1.
    act = act or series.make_activation()
    both = pair_output(series, act, q, c, pair)
    if series.normalize_weights:
        mean_y, _ = output_moments(act, 0.0, q, series.dropout)
        both -= mean_y * mean_y
    return (weight_scale(series) * both + series.bias_var) / q_map(series, q, act)


def chi_c(series: Series, c: float, q: float, act: Activation | None = None, pair: float | None = None) -> float:
    """d c_map / d c: tau (a keep)^2 E[phi'(u1) phi'(u2)] (`pair` if given) q / q_map(q) (Price)."""
    act = act or series.make_activation()
    A, _ = _dropout_affine(act, series.dropout)
    pair = gaussian.pair_expect(act.deriv, act.kinks, q, c) if pair is None else pair
    return weight_scale(series) * A[0, 0] ** 2 * pair * q / q_map(series, q, act)


def correlation_fixed_point(series: Series, q: float, near: float | None = None) -> tuple[float, float]:
    """(c*, chi_c at c*): the stable fixed point of c_map in [0, 1] at variance q; `near` (a
    neighbouring grid point's c* < 1) starts the bracket search there: ~half the 2-D quadratures."""
    # c_map has a power series in c with non-negative coefficients (Hermite expansion), so on
    # [0, 1] it is increasing and convex with c_map(0) >= 0: c_map(c) - c has at most two roots
    # there, and is positive below the smaller one, c*. Without dropout c = 1 is a root, and it
    # is the stable one when chi_c(1) = chi_1 <= 1; otherwise c_map(c) < c between c* and 1.
    act = series.make_activation()
    if not series.dropout:
        at_one = chi_c(series, 1.0, q, act)
        if at_one <= 1.0 + _CRITICAL:
            return 1.0, at_one

    @functools.lru_cache(maxsize=None)  # brentq evaluates the bracket's ends again: 2-D quadratures
    def excess(c: float) -> float:
        return c_map(series, c, q, act) - c

    c, f0 = 0.0, excess(0.0)
    if f0 > _NOISE:
        bracket = "none"
        if near is not None and 0.0 < near < 1.0 and abs(f1 := excess(near)) > _NOISE:
            # From a neighbour's c*: 10% steps in 1 - c the way the excess points (c* is
            # above `near` where it is positive); if that fails, the walk from 0 below.
            bracket = walk(lambda h: excess(1.0 - h), 1.0 - near, f1, 0.9 if f1 > 0 else 1 / 0.9,
                           (2.0 ** -40, 1.0), lambda h: _NOISE)
        if isinstance(bracket, str):
            # Halve the distance to 1 until the excess turns negative. Closer to 1 than 2^-40
            # the excess is rounding: c* is then 1 as far as double precision can tell.
            bracket = walk(lambda h: excess(1.0 - h), 1.0, f0, 0.5, (2.0 ** -40, 1.0), lambda h: _NOISE)
        c = 1.0 if isinstance(bracket, str) else find_root(excess, 1.0 - bracket[1], 1.0 - bracket[0])
    return c, chi_c(series, c, q, act)


# ---- the analysis in one dictionary ---------------------------------------------------------

def _depth_scale(slope: float, what: str) -> tuple[float | None, str | None]:
    """-1 / log|slope| with the reason when it is not defined."""
    if not math.isfinite(slope):
        return None, f"{what} is not finite"
    if abs(slope) >= 1.0 - _CRITICAL:
        kind = "critical" if abs(abs(slope) - 1.0) <= _CRITICAL else "unstable"
        return None, f"{what} = {slope:.12g}: {kind}, no exponential depth scale"
    return (0.0 if slope == 0.0 else -1.0 / math.log(abs(slope))), None


def _phase(chi: float) -> str:
    """Order-to-chaos phase from chi_1 (Poole et al. 2016)."""
    if abs(chi - 1.0) <= _CRITICAL:
        return "critical"
    return "ordered" if chi < 1.0 else "chaotic"


def report(series: Series, depth: int | None = None) -> dict:
    """The mean-field analysis of a series, JSON-ready (non-finite numbers become null).

    jacobian: of g_map at (mean*, var*) with omega = 0 and tau = weight_scale(series), the
    series' bias variance and dropout. For normalized weights these are the weights' actual
    sum and sum of squares. For random weights they are their expectations (E sum w = 0,
    E sum w^2 = sigma_w^2), the reading Klambauer et al. give for random initialization; the
    pooled map that predict() iterates also feels the mean (q = sigma_w^2 (var + mean^2) + ...),
    and its linearization has one non-zero eigenvalue, q_slope.

    With no fixed point q* > 0 the analysis is evaluated where the series goes: at the
    input's q when every q is fixed, in the limit q -> 0+ when q collapses (chi1, q_slope,
    phase, xi_q only); nothing when q grows without bound. reasons[key] says why a value is null.
    """
    if is_block(series):
        from snn_lab.theory import blocks

        return blocks.report(series, depth)
    if depth is not None:
        series = dataclasses.replace(series, depth=depth)
    act = series.make_activation()
    fp = fixed_point(series)
    out: dict = {"label": series.label, "status": fp.status, "note": fp.note,
                 "fixed_point": None if fp.status != "fixed" else
                 {"q": json_number(fp.q), "mean": json_number(fp.mean), "var": json_number(fp.var)},
                 "g_params": {"omega": 0.0, "tau": weight_scale(series), "bias_var": series.bias_var,
                              "dropout": series.dropout}}
    values, reasons = _linearization(series, act, fp)
    if fp.status != "fixed":
        reasons["fixed_point"] = fp.note
    out.update(values, reasons=reasons)
    pred = predict(series)
    bad = ~np.isfinite(pred).all(axis=1)
    out["overflow_layer"] = int(np.argmax(bad)) if bad.any() else None
    out["layers"] = [{"layer": i, **{k: json_number(v) for k, v in zip(THEORY, row)}}
                     for i, row in enumerate(pred)]
    return out


def _linearization(series: Series, act: Activation, fp: FixedPoint) -> tuple[dict, dict[str, str]]:
    """Jacobian, slopes, phase, c* and depth scales where the series settles; reasons for nulls."""
    keys = ("jacobian", "spectral_norm", "q_slope", "chi1", "phase", "c_star", "chi_c", "xi_q", "xi_c")
    out: dict = dict.fromkeys(keys)
    if fp.status == "grows":
        return out, dict.fromkeys(keys, "q grows without bound: there is no fixed point to linearize at")
    reasons: dict[str, str] = {}
    if fp.status == "collapses":
        out["q_slope"] = q_map(series, _TINY_Q, act) / _TINY_Q  # q_map(0) = 0 when q collapses
        out["chi1"] = chi1(series, _TINY_Q, act)
        reasons.update(dict.fromkeys(("jacobian", "spectral_norm", "c_star", "chi_c", "xi_c"),
                                     "evaluated only at a fixed point q* > 0; q -> 0 here"))
    else:  # fixed, or marginal: then the series stays at its input's q
        q = fp.q if fp.status == "fixed" else preact_var(series, series.input.mean, series.input.var)
        mean, var = layer_stats(series, act, q)
        jac = g_jacobian(act, mean, var, 0.0, weight_scale(series), series.bias_var, series.dropout)
        out["jacobian"] = [[json_number(x) for x in row] for row in jac]
        out["spectral_norm"] = np.linalg.norm(jac, 2) if np.isfinite(jac).all() else math.nan  # SVD needs finite
        out["q_slope"], out["chi1"] = q_slope(series, q, act), chi1(series, q, act)
        out["c_star"], out["chi_c"] = correlation_fixed_point(series, q)
        out["xi_c"], why = _depth_scale(out["chi_c"], "chi_c at c*")
        if why:
            reasons["xi_c"] = why
    out["xi_q"], why = _depth_scale(out["q_slope"], "slope of the q-map")
    if fp.status == "marginal":
        why = "every q is fixed: the q-map has slope 1 everywhere"
    if why:
        out["xi_q"], reasons["xi_q"] = None, why
    out["phase"] = _phase(out["chi1"])
    numbers = {k: json_number(v) for k, v in out.items() if k not in ("jacobian", "phase") and v is not None}
    return {**out, **numbers}, reasons
