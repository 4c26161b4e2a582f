"""The mean-field phase diagram over (sigma_w^2, sigma_b^2): q*, chi_1, c*, xi_c, the critical line.

Every number comes from theory/meanfield.py, evaluated on a template Series whose gain and bias_var are
set per grid point (Poole et al. 2016; Schoenholz et al. 2017). Everything here returns data.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from snn_lab.theory import meanfield as theory
from snn_lab.theory import phase_grid
from snn_lab.config import InputSpec, Series
from snn_lab.errors import SnnLabError
from snn_lab.statistics import json_number

MAX_N = 401  # grid points per axis


class GridError(SnnLabError):
    """A grid option that is not START,STOP,N of variances, or a series the diagram is not for (exit 2)."""


def grid(text: str, option: str, example: str) -> np.ndarray:
    """START,STOP,N -> numpy.linspace(START, STOP, N), with values printed as typed (1.2, not
    1.2000000000000002); every problem a GridError naming the option and a valid example.
    option '--bias-var-range' (sigma_b^2) may start at 0; sigma_w^2 must start above it."""
    parts = text.split(",")
    try:
        start, stop, n = float(parts[0]), float(parts[1]), int(parts[2])
        if len(parts) != 3:
            raise ValueError
    except (ValueError, IndexError):
        raise GridError(f"{option}: expected START,STOP,N (two numbers and a count), e.g. "
                        f"{example}; found {text!r}") from None
    low = 0.0 if option == "--bias-var-range" else None  # sigma_w^2 = 0 has no weights at all
    if not (math.isfinite(start) and math.isfinite(stop)):
        raise GridError(f"{option}: START and STOP must be finite numbers; found {text!r} (e.g. {example})")
    if (low is None and start <= 0) or (low is not None and start < low):
        bound = "> 0" if low is None else ">= 0"
        nearest = f"{stop / max(n - 1, 1):g}" if low is None else "0"
        raise GridError(f"{option}: START is a variance and must be {bound}; found {start:g} "
                        f"(nearest valid: {nearest}, e.g. {example})")
    if not stop > start:
        raise GridError(f"{option}: STOP must be greater than START; found {start:g},{stop:g} "
                        f"(e.g. {start:g},{start + 4:g},{n})")
    if not 2 <= n <= MAX_N:
        raise GridError(f"{option}: N must be an integer in [2, {MAX_N}]; found {n} "
                        f"(nearest valid: {min(max(n, 2), MAX_N)})")
    return np.array([float(f"{v:.15g}") for v in np.linspace(start, stop, n)])


def widen(axis: np.ndarray, values, positive: bool) -> np.ndarray:
    """The grid extended by whole steps (its spacing kept) to cover the finite `values`, e.g. a
    sweep's points: not below a START of 0 (positive: sigma_w^2 > 0; else sigma_b^2 >= 0), and
    not at all if that needs more than MAX_N points. The caller lists what is still outside."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if not v.size or axis.size < 2:
        return axis
    step = (axis[-1] - axis[0]) / (axis.size - 1)
    # 1e-9 of a step: a point on a grid value after rounding needs no extra step
    below = max(0, math.ceil((axis[0] - v.min()) / step - 1e-9))
    above = max(0, math.ceil((v.max() - axis[-1]) / step - 1e-9))
    start = float(f"{axis[0] - below * step:.15g}")
    if start < 0 or (positive and start == 0):  # no variance there: those values stay outside
        below, start = 0, float(axis[0])
    if not below + above or axis.size + below + above > MAX_N:
        return axis
    return np.array([float(f"{start + k * step:.15g}") for k in range(axis.size + below + above)])


# Where q grows without bound, chi_1 is taken in the limit q -> infinity, evaluated here (the
# mirror of theory's q -> 0+ limit at 1e-200): for ReLU-like activations E[phi'^2] has settled.
_HUGE_Q = 1e200
# theory.fixed_point walks to q = 1e+-300, its stride squared every 4 steps (brackets.walk),
# before it calls q grown or collapsed. A grid scans from factors of 16 and calls q grown
# (collapsed) once it passes _FAR (1 / _FAR) with no change of sign: a fixed point beyond
# needs |chi_1(infinity) - 1| < ~1e-40 for the unbounded activations.
_FAR = 1e40
_SCAN = 16.0


@dataclass(frozen=True)
class PhaseDiagram:
    """The grid (rows: sigma_b^2, columns: sigma_w^2) and the critical line chi_1 = 1."""

    activation: str
    weight_var: np.ndarray  # (n_w,) sigma_w^2
    bias_var: np.ndarray  # (n_b,) sigma_b^2
    status: np.ndarray  # (n_b, n_w) theory.FixedPoint status: fixed, marginal, collapses, grows
    q_star: np.ndarray  # NaN where there is no fixed point q* > 0
    chi1: np.ndarray  # at q*, or in the limit q -> 0+ / q -> infinity where q collapses / grows
    region: np.ndarray  # ordered (chi_1 < 1), chaotic (chi_1 > 1), critical (within 1e-9)
    c_star: np.ndarray  # NaN without a q* > 0 (q collapses or grows: see grid_point)
    xi_c: np.ndarray  # -1 / ln chi_c(c*); NaN at criticality and where c* is NaN
    critical: np.ndarray  # (n_b,) sigma_w^2 with chi_1 = 1 per sigma_b^2; NaN if not in the grid
    line: np.ndarray  # (m, 2) (sigma_b^2, sigma_w^2) on the critical line, LINE_DENSITY per grid row

    def to_json(self) -> dict:
        """JSON-ready: lists of rows, non-finite numbers as null."""
        def rows(a):
            return [[json_number(v) for v in row] for row in a]

        return {"activation": self.activation,
                "weight_var": [float(v) for v in self.weight_var],
                "bias_var": [float(v) for v in self.bias_var],
                "status": self.status.tolist(), "region": self.region.tolist(),
                "q_star": rows(self.q_star), "chi1": rows(self.chi1),
                "c_star": rows(self.c_star), "xi_c": rows(self.xi_c),
                "critical_line": [{"bias_var": float(b), "weight_var": json_number(w)}
                                  for b, w in zip(self.bias_var, self.critical)]}


LINE_DENSITY = 8  # critical-line points per sigma_b^2 step of the grid: the drawn line is smooth


def template(activation: str, params: tuple = (), **series) -> Series:
    """A float64 Series with this activation, LeCun init and a N(0, 1) input, for grid points."""
    base = dict(label=activation, activation=activation, activation_params=tuple(params),
                init="lecun_normal", width=1, depth=1, batch=1, dtype="float64", input=InputSpec())
    return Series(**{**base, **series})


def plain(tmpl: Series) -> Series:
    """The template if the diagram applies to it; else GridError saying why (exit 2)."""
    if tmpl.norm != "none" or tmpl.residual is not None:
        what = f"norm: {tmpl.norm}" if tmpl.norm != "none" else f"residual (alpha {tmpl.residual.alpha:g})"
        raise GridError(f"--phase draws the order-to-chaos diagram of plain layers; {tmpl.label} has {what}, "
                        "which has no q-map fixed point to draw (a norm fixes each layer's pre-activation "
                        "law, a skip makes the stream grow). Drop --phase: snn-lab theory prints its "
                        "gradient growth per layer")
    if tmpl.normalize_weights:
        raise GridError("--phase is for random i.i.d. weights; drop --normalize-weights "
                        "(normalized weights follow the map g, not the q-map)")
    return tmpl


def at(tmpl: Series, weight_var: float, bias_var: float) -> Series:
    """The template with sigma_w^2 = weight_var and sigma_b^2 = bias_var."""
    if tmpl.norm != "none" or tmpl.residual is not None:
        raise ValueError("the phase diagram is for plain layers: a norm or a residual has no q-map "
                         "fixed point (theory/blocks.py)")
    if tmpl.normalize_weights:
        raise ValueError("the phase diagram is for random i.i.d. weights; normalize_weights "
                         "fixes each unit's sum of squares (use the map g instead)")
    one = tmpl.width * tmpl.initializer.variance(tmpl.width, tmpl.width)  # sigma_w^2 at gain 1
    return dataclasses.replace(tmpl, gain=math.sqrt(weight_var / one), bias_var=bias_var)


def settle(series: Series, act=None) -> tuple[theory.FixedPoint, float]:
    """theory.fixed_point of the series on the grid's coarser scan, and the q where chi_1 is taken."""
    fp = theory.fixed_point(series, act, step=_SCAN, far=_FAR)
    q = {"fixed": fp.q, "collapses": theory._TINY_Q, "grows": _HUGE_Q}.get(
        fp.status, theory.preact_var(series, series.input.mean, series.input.var))  # marginal
    return fp, q


def grid_point(series: Series, near: float | None = None, correlation: bool = True) -> dict:
    """status, q*, chi_1, region, c*, xi_c of one series (NaN where undefined); `near`: a
    neighbour's c*, where the search for this one starts (theory.correlation_fixed_point);
    correlation False: c* and xi_c only where c* = 1 (no 2-D quadrature)."""
    act = series.make_activation()
    fp, q = settle(series, act)
    chi = theory.chi1(series, q, act)
    out = {"status": fp.status, "q_star": fp.q if fp.status == "fixed" else math.nan,
           "chi1": chi, "region": theory._phase(chi), "c_star": math.nan, "xi_c": math.nan}
    # c* needs a q* > 0. Off the chaotic side (and without dropout) c* = 1 and chi_c = chi_1: one
    # 1-D quadrature. On the chaotic side c* < 1 (Schoenholz et al. 2017), as is any c* with
    # dropout (which maps c = 1 below 1): ~3 Newton steps on the correlation map (phase_grid.py).
    cheap = out["region"] != "chaotic" and not series.dropout
    if fp.status in ("fixed", "marginal") and (correlation or cheap):
        c, chi_c = phase_grid.correlation_fixed_point(series, q, near, act)
        xi, _ = theory._depth_scale(chi_c, "chi_c at c*")
        out.update(c_star=c, xi_c=math.nan if xi is None else xi)
    return out


def _chi_excess(tmpl: Series, weight_var: float, bias_var: float) -> float:
    """chi_1 - 1 at one point (the critical line is its zero)."""
    s = at(tmpl, weight_var, bias_var)
    act = s.make_activation()
    return theory.chi1(s, settle(s, act)[1], act) - 1.0


def critical_weight_var(tmpl: Series, bias_var: float, lo: float, hi: float,
                        f_lo: float | None = None, f_hi: float | None = None) -> float:
    """sigma_w^2 in [lo, hi] with chi_1 = 1 at this sigma_b^2 (chi_1 - 1 changes sign there)."""
    # Each chi_1 - 1 costs a fixed-point search: the ends the caller knows are not recomputed.
    known = {w: f for w, f in ((lo, f_lo), (hi, f_hi)) if f is not None}

    def f(w: float) -> float:
        if w not in known:
            known[w] = _chi_excess(tmpl, w, bias_var)
        return known[w]

    if f(lo) == 0.0:
        return lo
    if f(hi) == 0.0:
        return hi
    if (f(lo) > 0) == (f(hi) > 0):
        raise ValueError(f"chi_1 - 1 has the same sign at sigma_w^2 = {lo:g} and {hi:g}")
    return theory.find_root(f, lo, hi, rtol=1e-13)


def diagram(tmpl: Series, weight_var, bias_var, correlation: bool = True) -> PhaseDiagram:
    """The phase diagram of the template's activation on the grid weight_var x bias_var
    (correlation False: no c* < 1, so no xi_c on the chaotic side; see grid_point)."""
    w = np.asarray(weight_var, dtype=np.float64)
    b = np.asarray(bias_var, dtype=np.float64)
    keys = ("status", "q_star", "chi1", "region", "c_star", "xi_c")
    grid = {k: np.empty((b.size, w.size), dtype=object if k in ("status", "region") else np.float64)
            for k in keys}
    critical = np.full(b.size, math.nan)
    # q_map = sigma_w^2 E[Y^2] + sigma_b^2 grows with both variances, and so does q0: a point
    # whose q grows without bound has growing neighbours to its right and above. Those skip the
    # search (for unbounded activations, most of the chaotic side).
    first_grown = w.size
    with np.errstate(all="ignore"):  # overflow at the grid's edges is an answer, not a warning
        for i, sb in enumerate(b):
            for j, sw in enumerate(w):
                series = at(tmpl, sw, sb)
                if j >= first_grown:
                    chi = theory.chi1(series, _HUGE_Q)
                    point = {"status": "grows", "q_star": math.nan, "chi1": chi,
                             "region": theory._phase(chi), "c_star": math.nan, "xi_c": math.nan}
                else:
                    point = grid_point(series, _start(grid["c_star"], i, j), correlation)
                    if point["status"] == "grows":
                        first_grown = j
                for k in keys:
                    grid[k][i, j] = point[k]
            critical[i] = _crossing(tmpl, w, sb, grid["chi1"][i] - 1.0)
        line = _dense_line(tmpl, w, b, critical)
    return PhaseDiagram(tmpl.make_activation().label, w, b, grid["status"].astype(str),
                        grid["q_star"], grid["chi1"], grid["region"].astype(str),
                        grid["c_star"], grid["xi_c"], critical, line)


def _start(c_star: np.ndarray, i: int, j: int) -> float | None:
    """Where the search for c*[i, j] < 1 starts: the line through the two left neighbours' c*
    (Newton then needs ~3 steps, not ~5), else the left or the lower neighbour's; None if none."""
    left = [c_star[i, k] for k in (j - 1, j - 2) if k >= 0 and 0.0 < c_star[i, k] < 1.0]
    if len(left) == 2 and 0.0 < 2.0 * left[0] - left[1] < 1.0:
        return float(2.0 * left[0] - left[1])
    near = [c for c in (*left, c_star[i - 1, j] if i else math.nan) if 0.0 < c < 1.0]
    return float(near[0]) if near else None


def _dense_line(tmpl: Series, w: np.ndarray, b: np.ndarray, critical: np.ndarray) -> np.ndarray:
    """The critical line between grid rows too: each in-between sigma_b^2 is bracketed by its
    two rows' crossings widened by a grid step, then refined (skipped if chi_1 - 1 keeps its sign)."""
    points = []
    step = float(np.diff(w).max()) if w.size > 1 else 1.0
    for i in range(b.size):
        if math.isfinite(critical[i]):
            points.append((float(b[i]), float(critical[i])))
        if i + 1 == b.size or not (math.isfinite(critical[i]) and math.isfinite(critical[i + 1])):
            continue
        lo = max(float(w[0]), min(critical[i], critical[i + 1]) - step)
        hi = min(float(w[-1]), max(critical[i], critical[i + 1]) + step)
        for t in np.arange(1, LINE_DENSITY) / LINE_DENSITY:
            sb = float(b[i] + t * (b[i + 1] - b[i]))
            try:
                points.append((sb, critical_weight_var(tmpl, sb, lo, hi)))
            except ValueError:
                continue
    return np.array(points, dtype=np.float64).reshape(-1, 2)


def _crossing(tmpl: Series, w: np.ndarray, sb: float, excess: np.ndarray) -> float:
    """The first ordered-to-chaotic crossing of a grid row, refined; NaN if the row has none."""
    for j in range(w.size):
        if abs(excess[j]) <= theory._CRITICAL:
            return float(w[j])
        if j and excess[j - 1] < 0 < excess[j]:
            return critical_weight_var(tmpl, sb, w[j - 1], w[j], excess[j - 1], excess[j])
    return math.nan
