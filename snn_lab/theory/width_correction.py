"""Finite-width theory beside the mean-field columns: the 1/width shift and the spread across trials.

At width n the engine's pooled statistics (mean, var, preact_var over batch x units) differ from
the infinite-width prediction (meanfield.predict) in two ways, both to leading order in 1/n:
- shift(): the systematic O(1/n) bias of their expectation (moved here from the tests);
- spread(): their trial-to-trial variance, O(1/n) per layer and compounding with depth.
Both rest on one picture. Given layer l - 1's outputs, a layer's n pre-activations are i.i.d.
over units with covariance K over the batch (K_bb = q_b, the sample's own variance): a unit's
weights are shared by the samples, the units are not. K fluctuates from network to network:
its log has relative variance A for one sample and covariance C between two distinct samples.
Each layer maps A, C linearly (the slope of the q-map in log q, squared) and adds the sampling
variance of its own n units, Var or Cov of the unit statistic that feeds K, over n q'^2. This
is the four-point vertex of Roberts, Yaida & Hanin (2022, ch. 4-5) for the batch's diagonal;
for ReLU with He weights the log-variance grows by exactly 5/n a layer, Hanin & Nica (2019).
Carried in log q, a pooled statistic v(q) gets its spread from a log-normal law with exponent
p = d log v / d log q (capped at 1, a homogeneous activation's), which keeps ReLU's exact
multiplicative growth right at depth ~ width. The weights' kurtosis enters the shift (a fourth
cumulant of the pre-activations), not the spread: there it is O(1/n^2).
Norm layers and residual connections: NaN with a reason (theory/blocks.py has only its eps
term at finite width). docs/finite-width.md has the formulas and the measured checks.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

import numpy as np

from snn_lab import gaussian
from snn_lab.activations import Activation, alpha_dropout_affine
from snn_lab.config import Series
from snn_lab.theory import meanfield, safe
from snn_lab.theory.finite_width import weight_kurtosis

# Columns beside theory.THEORY: the corrected prediction, its spread across trials, and the
# simulation's z-score against them (results.py computes the last from the measured values).
FW = ("fw_mean", "fw_var", "fw_preact_var")
FW_SD = tuple(f"{c}_sd" for c in FW)
FW_Z = ("fw_z_mean", "fw_z_var", "fw_z_preact_var")
# The expansion parameter: one sample's predicted Var(log q). The leading order holds while it
# is small (a homogeneous activation such as ReLU excepted: exact in it); past ~0.25 the spread
# of a non-homogeneous one is underestimated (docs/finite-width.md).
LOG_Q = "fw_log_q_var"
COLUMNS = (*FW, *FW_SD, LOG_Q)  # what predict() returns, in order
_HERMITE = 64  # terms of Mehler's series for the covariance of two samples' unit statistics
_NUMERIC = (ArithmeticError, ValueError, RuntimeError)
# Where the layer-by-layer theory stops (NaN from there on, with the reason): an expansion
# parameter Var(log q) past _A_MAX is far beyond leading order (sd of log q 2), and a q outside
# _Q_RANGE would overflow the fourth moments (q^4) the theory needs.
_A_MAX = 4.0
_Q_RANGE = (1e-70, 1e70)


def _stop(q: float, A: float) -> str | None:
    """Why the theory stops at a layer with pre-activation variance q and Var(log q) = A."""
    if not _Q_RANGE[0] < q < _Q_RANGE[1]:
        return f"q = {q:.3g} is beyond the range where its moments are finite ({_Q_RANGE[0]:g} to {_Q_RANGE[1]:g})"
    if not A <= _A_MAX:
        return f"Var(log q) = {A:.3g} > {_A_MAX:g}: the 1/width expansion has broken down"
    return None


def reach(series: Series) -> str | None:
    """Why the finite-width theory does not apply to this series (None: it does)."""
    if series.norm != "none":
        return f"{series.norm} norm: the finite-width shift and spread are not derived for norm layers"
    if series.residual is not None:
        return "residual connections: the finite-width shift and spread are not derived for a skip"
    return None


# ---- one layer's unit statistics --------------------------------------------------------

def _powers(act: Activation, q: float, rate: float) -> np.ndarray:
    """E Y, E Y^2, E Y^3, E Y^4 of a layer's output at pre-activation N(0, q), after alpha dropout."""
    x, w = gaussian.nodes(0.0, math.sqrt(q), act.kinks)
    y = act.fn(x)
    powers = np.array([w @ y ** k for k in range(1, 5)])
    if rate:  # kept with probability 1 - rate, else set to the saturation; then a y + b
        a, b = alpha_dropout_affine(rate, act.saturation)
        ys = np.array([1.0, *powers])
        binom = [[1], [1, 1], [1, 2, 1], [1, 3, 3, 1], [1, 4, 6, 4, 1]]
        kept = np.array([sum(binom[k][j] * a ** j * b ** (k - j) * ys[j] for j in range(k + 1))
                         for k in range(1, 5)])
        dropped = np.array([(a * act.saturation + b) ** k for k in range(1, 5)])
        powers = (1 - rate) * kept + rate * dropped
    return powers


def _output_stats(act: Activation, q: float, rate: float) -> np.ndarray:
    """[E Y, E Y^2, Var Y, E Y^4, central 4th moment] of a layer's output at pre-activation N(0, q)."""
    m1, m2, m3, m4 = _powers(act, q, rate)
    return np.array([m1, m2, m2 - m1 * m1, m4, m4 - 4 * m1 * m3 + 6 * m1 * m1 * m2 - 3 * m1 ** 4])


def shift(series: Series) -> np.ndarray:
    """First-order (1/width) bias of the engine's pooled (mean, var, preact_var) per layer vs predict().

    Mean-field theory is the width -> infinity limit. At width n, given one input row, the n
    pre-activations of a layer are i.i.d. with a variance q_b that depends on that row
    (tau times the row's mean square, or its variance for normalized weights), so pooled
    statistics average a statistic f over q_b. Two O(1/n) effects follow, both computed here:
    - the rows' spread V = Var(q_b): E f(q_b) = f(q) + f''(q) V / 2; V propagates layer to
      layer (a row's output moments vary with its q_b) and gains the n outputs' own spread;
    - non-Gaussian pre-activations: h = w.x has fourth cumulant k4 = kappa_w tau^2 E[x^4] / n
      for i.i.d. weights of excess kurtosis kappa_w, and -6 q^2 / n when each unit's weights lie
      on a sphere (normalized); Edgeworth: E f(h) = E f(z) + (k4/24) E f''''(z) = ... + (k4/6) f''(q).
    Shifts in E[Y^2] (or in the row variance) move the next layer's q. The bias of np.var itself
    (it subtracts the pooled sample mean) is not in here: correct() subtracts the predicted
    variance of that mean. Norm and residual series: NaN (see reach).
    """
    if reach(series):
        return np.full((series.depth + 1, 3), math.nan)
    act, n, rate = series.make_activation(), series.width, series.dropout
    q_pred = safe.predict(series)[:, 2]
    normalized = series.normalize_weights
    tau = meanfield.weight_scale(series)
    kappa = weight_kurtosis(series)
    mu, nu = series.input.mean, series.input.var
    if normalized:  # Gaussian input rows: Var of a row's variance is 2 nu^2 / n
        spread, fourth = tau ** 2 * 2 * nu * nu / n, 0.0
    else:  # ... of a row's mean square: Var(x^2) / n
        spread = tau ** 2 * (4 * mu * mu * nu + 2 * nu * nu) / n
        fourth = mu ** 4 + 6 * mu * mu * nu + 3 * nu * nu
    bias_q = 0.0  # bias of E q_b
    out, stats = np.zeros((series.depth + 1, 3)), {}
    for layer in range(1, series.depth + 1):
        q, h = q_pred[layer], 1e-3 * q_pred[layer]
        if _stop(q, spread / q ** 2 if q > 0 else math.inf) or np.isnan(_spread(series).log_q[layer]):
            out[layer:] = math.nan
            break
        if q not in stats:  # at a fixed point q repeats: three quadratures for all its layers
            stats[q] = [_output_stats(act, q + k * h, rate) for k in (-1, 0, 1)]
        lo, mid, hi = stats[q]
        d1, d2 = (hi - lo) / (2 * h), (hi - 2 * mid + lo) / (h * h)
        m = mid[0]
        k4 = -6 * (q - series.bias_var) ** 2 / n if normalized else kappa * tau ** 2 * fourth / n
        b_mean = d2[0] * spread / 2 + d1[0] * bias_q + k4 / 6 * d2[0]
        b_second = d2[1] * spread / 2 + d1[1] * bias_q + k4 / 6 * d2[1]
        # A row's variance is E Y^2 - (E Y)^2 of that row: the k4 shift acts on each moment.
        b_rowvar = d2[2] * spread / 2 + d1[2] * bias_q + k4 / 6 * (d2[1] - 2 * m * d2[0])
        out[layer] = (b_mean, b_second - 2 * m * b_mean, bias_q)
        if normalized:
            bias_q, spread = tau * b_rowvar, tau ** 2 * ((mid[4] - mid[2] ** 2) / n + d1[2] ** 2 * spread)
        else:
            bias_q, spread = tau * b_second, tau ** 2 * ((mid[3] - mid[1] ** 2) / n + d1[1] ** 2 * spread)
        fourth = mid[3]
    return out


# ---- the spread across trials ---------------------------------------------------------

@dataclass(frozen=True)
class _Unit:
    """One layer's unit statistics at pre-activation N(0, q) (after alpha dropout)."""

    m: float  # E Y
    M: float  # E Y^2
    dm: float  # d E Y / d log q
    dM: float  # d E Y^2 / d log q
    var_y: float  # Var Y over units (masks included)
    var_sq: float  # Var Y^2
    var_c: float  # Var(Y^2 - 2 m Y): what a row's variance feels
    coef: np.ndarray  # Mehler coefficients of E[Y | h] and E[Y^2 | h] (2, _HERMITE)
    cond_var: np.ndarray  # variances of E[Y | h] and E[Y^2 | h] (over h only)

    def cov(self, mix: tuple[float, float], c: float, D: float = 0.0, order: int = 0) -> float:
        """Cov(g(h_a), g(h_b)) (or its c-derivative of this order), g = mix . (E[Y|h], E[Y^2|h]).

        h_a, h_b have correlation c, itself fluctuating with variance D from network to network:
        E_c Cov = Cov(c) + Cov''(c) D / 2 (Mehler's series, differentiated term by term).
        """
        a = mix[0] * self.coef[0] + mix[1] * self.coef[1]
        whole = (mix[0] ** 2 * self.cond_var[0] + mix[1] ** 2 * self.cond_var[1]
                 + 2 * mix[0] * mix[1] * self.cond_var[2])
        # The terms beyond the series' end hold what Parseval leaves: counted at the last rate.
        weights = np.append(a * a, max(whole - a @ a, 0.0))
        k = np.arange(1, _HERMITE + 2, dtype=float)

        def derivative(j: int) -> float:
            falling = np.prod([k - i for i in range(j)], axis=0) if j else np.ones_like(k)
            with np.errstate(all="ignore"):
                powers = np.where(k - j >= 0, float(c) ** np.maximum(k - j, 0), 0.0)
            return float(weights @ (falling * powers))

        if order:
            return derivative(order)
        return derivative(0) + (derivative(2) * D / 2 if D else 0.0)


def _unit(act: Activation, q: float, rate: float) -> _Unit:
    """The layer's unit statistics: moments, slopes in log q (Gaussian identity), Mehler coefficients."""
    x, w = gaussian.nodes(0.0, math.sqrt(q), act.kinks)
    z = x / math.sqrt(q)
    phi = act.fn(x)
    A, c0 = meanfield._dropout_affine(act, rate)
    g1 = A[0, 0] * phi + c0[0]  # E[Y | h] and E[Y^2 | h], over the unit's own mask
    g2 = A[1, 0] * phi + A[1, 1] * phi * phi + c0[1]
    m1, m2, m3, m4 = _powers(act, q, rate)
    # d E f / d log q = E[f (z^2 - 1)] / 2 for z ~ N(0, 1): f is integrated, never differentiated.
    dz = (z * z - 1.0) / 2.0
    # Mehler's formula: Cov(f(h_a), f(h_b)) = sum_k c^k a_k^2, a_k = E[f He_k(z)] / sqrt(k!).
    # Hand-written because no library has it: one 1-D quadrature per layer instead of the
    # 2-D pair_expect (50-90 ms per call, three per layer).
    herm = np.empty((_HERMITE, len(z)))
    prev, cur = np.ones_like(z), z.copy()
    for k in range(_HERMITE):  # normalized He_k by the three-term recurrence (no k! overflow)
        herm[k] = cur
        prev, cur = cur, (z * cur - math.sqrt(k + 1) * prev) / math.sqrt(k + 2)
    coef = herm @ (w[:, None] * np.column_stack([g1, g2]))
    e1, e2 = w @ g1, w @ g2
    cond = np.array([w @ (g1 * g1) - e1 * e1, w @ (g2 * g2) - e2 * e2, w @ (g1 * g2) - e1 * e2])
    return _Unit(m1, m2, float(w @ (g1 * dz)), float(w @ (g2 * dz)), m2 - m1 * m1, m4 - m2 * m2,
                 m4 - 4 * m1 * m3 + 4 * m1 * m1 * m2 - (m2 - 2 * m1 * m1) ** 2, coef.T, cond)


def _log_normal(v: float, g: float, S: float) -> float:
    """Var of a statistic v(q) when log q has variance S: g^2 S to first order, g = dv / dlog q.

    Resummed as a log-normal with exponent p = |g / v| capped at 1: exact for a homogeneous
    activation (ReLU: E Y ~ q^(1/2), E Y^2 ~ q), first order for the others.
    """
    if not S > 0 or g == 0:
        return 0.0
    p = min(abs(g / v), 1.0) if v != 0 else 1.0
    x = p * p * S
    return g * g * S * (math.expm1(x) / x if x > 0 else 1.0)


@dataclass(frozen=True)
class Spread:
    """The predicted spread across trials, per layer (row 0: the input)."""

    sd: np.ndarray  # (depth + 1, 3): sd of the pooled mean, var, preact_var across trials
    log_q: np.ndarray  # Var(log q_b): one sample's pre-activation variance (0 at the input)
    log_preact: np.ndarray  # Var(log preact second moment) as pooled over the batch and the units
    mean_var: np.ndarray  # (depth + 1, 2): Var of the pooled output mean and pre-activation mean
    note: str | None = None  # why the layers from some depth on are NaN


def spread(series: Series) -> Spread:
    """Leading-order trial-to-trial spread of the engine's pooled statistics (module docstring)."""
    return _spread(series)


@functools.lru_cache(maxsize=8)  # correct() and predict() both need it; a Series is frozen
def _spread(series: Series) -> Spread:
    depth, n, B = series.depth, series.width, series.batch
    if reach(series):
        nan = np.full(depth + 1, math.nan)
        return Spread(np.full((depth + 1, 3), math.nan), nan, nan, np.full((depth + 1, 2), math.nan))
    act, rate, normalized = series.make_activation(), series.dropout, series.normalize_weights
    q = safe.predict(series)[:, 2]
    tau, sb2 = meanfield.weight_scale(series), series.bias_var
    mu, nu, rho = series.input.mean, series.input.var, series.input.correlation

    def pool(same: float, cross: float) -> float:  # Var of a unit statistic averaged over n x B
        return (same + (B - 1) * cross) / (n * B)

    sd, mean_var = np.zeros((depth + 1, 3)), np.zeros((depth + 1, 2))
    log_q, log_preact = np.zeros(depth + 1), np.zeros(depth + 1)
    # The input: entries i.i.d. N(mu, nu) over units, correlation rho between samples.
    v_mean, v_var = pool(nu, rho * nu), pool(2 * nu * nu, 2 * nu * nu * rho * rho)
    sd[0], mean_var[0] = np.sqrt([v_mean, v_var, v_var]), (v_mean, v_mean)
    log_preact[0] = v_var / nu ** 2 if nu > 0 else math.nan
    # Layer 1's K: tau times the row's mean square (centred for normalized weights) + sigma_b^2.
    if normalized:
        same, cross = 2 * nu * nu, 2 * nu * nu * rho * rho
    else:
        same = 4 * mu * mu * nu + 2 * nu * nu
        cross = 4 * mu * mu * nu * rho + 2 * nu * nu * rho * rho
    A, C = tau * tau * same / (n * q[1] ** 2), tau * tau * cross / (n * q[1] ** 2)
    c = meanfield.input_correlation(series)[1]
    # D: Var of two samples' pre-activation covariance K_ab / q, O(1/n). It reaches the pooled
    # statistics at O(1/n^2) per pair, but there are B^2 pairs: it matters once the batch is a
    # fair fraction of the width. Here Var(x_a x_b) of the input's entries (centred: normalized).
    pair = nu * nu * (1 + rho * rho) + (0.0 if normalized else 2 * mu * mu * nu * (1 + rho))
    D = tau * tau * pair / (n * q[1] ** 2)
    units: dict[float, _Unit] = {}  # at a fixed point q repeats: one quadrature for all its layers
    for layer in range(1, depth + 1):
        ql = q[layer]
        why = _stop(ql, A)
        if why:
            for a in (sd, mean_var, log_q, log_preact):
                a[layer:] = math.nan
            return Spread(sd, log_q, log_preact, mean_var, f"from layer {layer} on: {why}")
        u = units.get(ql) or units.setdefault(ql, _unit(act, ql, rate))
        S = (A + (B - 1) * C) / B  # Var of the batch's mean of delta log q_b
        centred = (-2.0 * u.m, 1.0)  # Y^2 - 2 m Y, a row's variance to first order
        noise_mean = pool(u.var_y, u.cov((1.0, 0.0), c, D))
        noise_var = pool(u.var_c, u.cov(centred, c, D))
        noise_pre = pool(2 * ql * ql, 2 * ql * ql * (c * c + D))
        v_mean = _log_normal(u.m, u.dm, S) + noise_mean
        v_var = _log_normal(u.M - u.m ** 2, u.dM - 2 * u.m * u.dm, S) + noise_var
        v_pre = _log_normal(ql, ql, S) + noise_pre
        sd[layer] = np.sqrt([v_mean, v_var, v_pre])
        mean_var[layer] = (v_mean, pool(ql, ql * c))
        log_q[layer], log_preact[layer] = A, S + noise_pre / (ql * ql)
        if layer == depth:
            break
        qn = q[layer + 1]
        if normalized:  # the next K follows the row's variance
            slope, same, cross = u.dM - 2 * u.m * u.dm, u.var_c, u.cov(centred, c, D)
            pair = u.cov(centred, c) + (u.M - u.m * u.m) ** 2 - u.cov((1.0, 0.0), c) ** 2
        else:  # ... or its mean square
            slope, same, cross = u.dM, u.var_sq, u.cov((0.0, 1.0), c, D)
            pair = u.cov((0.0, 1.0), c) + u.M ** 2 - (u.cov((1.0, 0.0), c) + u.m * u.m) ** 2
        s = tau * slope / qn  # d log q' / d log q
        chi = tau * u.cov((1.0, 0.0), c, order=1) / qn  # d c' / d c (Price)
        A = s * s * A + tau * tau * same / (n * qn * qn)
        C = s * s * C + tau * tau * cross / (n * qn * qn)
        D = chi * chi * D + tau * tau * max(pair, 0.0) / (n * qn * qn)
        c = (tau * (u.cov((1.0, 0.0), c) + (0.0 if normalized else u.m * u.m)) + sb2) / qn
    return Spread(sd, log_q, log_preact, mean_var)


def correct(series: Series) -> tuple[np.ndarray, np.ndarray]:
    """(corrected prediction, predicted sd across trials), each (depth + 1, 3) like predict().

    The corrected prediction is predict() + shift(), less the predicted variance of the pooled
    mean that np.var subtracts (output and pre-activation alike): what the engine's trial mean
    estimates to O(1/width).
    """
    pred = safe.predict(series)
    sp = _spread(series)
    fw = pred + shift(series)
    fw[:, 1] -= sp.mean_var[:, 0]
    fw[:, 2] -= sp.mean_var[:, 1]
    fw[0, 2] = fw[0, 1]  # layer 0's pre-activation columns repeat the input's
    return fw, sp.sd.copy()


def predict(series: Series) -> tuple[np.ndarray, str | None]:
    """(depth + 1, len(COLUMNS)); NaN with the reason where the theory does not reach."""
    why = reach(series)
    if why is None:
        try:
            with np.errstate(all="ignore"):
                fw, sd = correct(series)
                sp = _spread(series)
                return np.column_stack([fw, sd, sp.log_q]), (f"finite-width theory: {sp.note}" if sp.note else None)
        except _NUMERIC as exc:
            why = f"the finite-width theory cannot be computed ({type(exc).__name__}: {exc})"
    return np.full((series.depth + 1, len(COLUMNS)), math.nan), why


# ---- how deep until the spread matters --------------------------------------------------

def depth_scale(series: Series, width: int, size: float = 0.5, cap: int | None = None) -> dict:
    """At this width: the depth where one sample's q spreads by `size` (sd of log q), and the
    limit of that spread where the q-map's fixed point bounds it. JSON-ready, nulls with reasons.

    The search follows spread()'s one-sample recursion up to `cap` layers (4 x width).
    depth_over_width is PDLT's expansion parameter L / n at that depth.
    """
    cap = cap or 4 * width
    out: dict = {"width": width, "spread": size, "depth": None, "depth_over_width": None,
                 "log_q_var_at_cap": None, "cap": cap, "limit_log_q_var": None, "limit_sd": None,
                 "reasons": {}}
    why = reach(series)
    if why:
        out["reasons"] = {"depth": why, "limit_sd": why}
        return out
    one = dataclasses.replace(series, width=width, batch=1, depth=cap)
    try:
        with np.errstate(all="ignore"):
            A, reached = _walk(one, size * size)
            out["depth"], out["log_q_var_at_cap"] = reached, (A if reached is None else None)
            if reached is None:
                out["reasons"]["depth"] = f"the sd of log q stays below {size:g} for {cap} layers"
            else:
                out["depth_over_width"] = reached / width
            limit, why = _limit(one)
            out["limit_log_q_var"] = None if limit is None else float(limit)
    except _NUMERIC as exc:
        why = f"the finite-width theory cannot be computed ({type(exc).__name__}: {exc})"
        out["reasons"]["depth"] = why
    if why:
        out["reasons"]["limit_sd"] = why
    else:
        out["limit_sd"] = math.sqrt(out["limit_log_q_var"])
    return {k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in out.items()}


def _feed(u: _Unit, normalized: bool) -> tuple[float, float]:
    """(d E f / d log q, Var f) of the unit statistic f that makes the next layer's q."""
    if normalized:  # the row's variance
        return u.dM - 2 * u.m * u.dm, u.var_c
    return u.dM, u.var_sq  # the row's mean square


def _walk(one: Series, target: float) -> tuple[float, int | None]:
    """(Var log q at the last layer walked, first layer where it reaches target or None)."""
    act, n, tau = one.make_activation(), one.width, meanfield.weight_scale(one)
    q = safe.predict(one)[:, 2]
    mu, nu = one.input.mean, one.input.var
    same = 2 * nu * nu if one.normalize_weights else 4 * mu * mu * nu + 2 * nu * nu
    A = tau * tau * same / (n * q[1] ** 2)
    units: dict[float, _Unit] = {}  # at a fixed point q repeats: one quadrature for all its layers
    for layer in range(1, one.depth + 1):
        if A >= target:
            return A, layer
        if layer == one.depth or _stop(q[layer], 0.0):
            break
        u = units.get(q[layer]) or units.setdefault(q[layer], _unit(act, q[layer], one.dropout))
        slope, fresh = _feed(u, one.normalize_weights)
        s = tau * slope / q[layer + 1]
        A = s * s * A + tau * tau * fresh / (n * q[layer + 1] ** 2)
    return A, None


def _limit(one: Series) -> tuple[float | None, str | None]:
    """The one-sample Var(log q) as depth -> infinity at a stable fixed point: fresh / (1 - s^2)."""
    fp = meanfield.fixed_point(one)
    if fp.status != "fixed":
        return None, f"no bounded limit: the q-map has no stable fixed point q* > 0 ({fp.status})"
    tau = meanfield.weight_scale(one)
    slope, fresh = _feed(_unit(one.make_activation(), fp.q, one.dropout), one.normalize_weights)
    s = tau * slope / fp.q
    if not abs(s) < 1:
        return None, f"the slope of the q-map in log q at q* is {s:.6g}: the spread is not bounded"
    return tau * tau * fresh / (one.width * fp.q ** 2) / (1 - s * s), None
