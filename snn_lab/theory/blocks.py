"""Mean-field theory of normalized and residual layers: batch norm, layer norm, skip connections.

A layer of a series with a `norm` or a `residual` (config.Series), input x (batch x width):
    h = x W / beta_l + b,   p = norm(h),   y = dropout(phi(p)),   x' = x + alpha y  (or y).
At infinite width it is carried by three pooled moments of x: the mean m, the second moment
M = E x^2 and the cross moment C = E[x_a x_b] of two distinct samples. With s = tau / beta_l^2
(tau = sigma_w^2, or gain^2 for normalized weights, which then see centred moments M - m^2,
C - m^2), h ~ N(0, q), q = s M + sigma_b^2, and two samples' h have covariance s C + sigma_b^2.
- no norm: p = h.
- layer norm: each sample's p, subtracted its mean and divided by its root mean square over
  the n units, is uniform on the sphere of radius sqrt(n) in the hyperplane sum = 0: one entry
  has gaussian.sphere_nodes(n)'s law. Exact at any width for Gaussian weights (h is then
  isotropic Gaussian over the units); asymptotic for uniform, truncated or normalized weights.
  Two samples' p: Gaussian with correlation c_h = (s C + sigma_b^2) / q (infinite width).
- batch norm: each unit's h over the batch is exchangeable Gaussian (covariance q on the
  diagonal, s C + sigma_b^2 off it), so its p is uniform on the same sphere in R^batch: one
  entry sphere_nodes(B), two entries sphere_pair_expect(B) (correlation -1/(B - 1)). Exact at
  infinite width for every batch size. The bias cancels.
- NORM_EPS: p is the eps-free p times sqrt(v / (v + eps)), v = V X / K the biased variance
  normalized (X ~ chi^2_(K-1); V = q for layer norm, the batch variance S_h = s (M - C) for
  batch norm). The pre-activation's pooled variance is E[v / (v + eps)] = 1 - eps E[1/v] + ...,
  computed exactly over X, times the O(1/width) excess of theory/finite_width.py (the one
  finite-width term here: the simulation resolves it); the activation's moments use p at that scale.
- residual: y is independent of x at infinite width, so m' = m + alpha E y,
  M' = M + 2 alpha m E y + alpha^2 E y^2, C' = C + 2 alpha m E y + alpha^2 E[y_a y_b].
Gradients (dL/dx_l, an i.i.d. error signal at the top): E[delta_{l-1}^2] = chi_l E[delta_l^2],
chi_l = (1 + alpha^2 chi_branch) with a residual, chi_branch without;
chi_branch = s a^2 keep E[phi'(p)^2] / D, D = 1 (no norm), q + eps (layer norm, infinite
width). Batch norm: the error signal's covariance over the batch is followed exactly at
infinite width for any batch (_batch_backward); its large-batch limit is s a^2 keep E[phi'^2]
/ S_h, Yang et al. (2019).
Everything here returns data.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from snn_lab import gaussian
from snn_lab.activations import Activation, Moments
from snn_lab.config import NORM_EPS, Series
from snn_lab.statistics import json_number
from snn_lab.theory import finite_width
from snn_lab.theory.meanfield import (
    _PAIR_RANGE,
    PROBES,
    THEORY,
    _dropout_affine,
    weight_scale,
)


@dataclass(frozen=True)
class Layer:
    """One layer of the prediction: the output's pooled moments, the pre-activation, chi_l."""

    mean: float  # m = E x
    second: float  # M = E x^2
    cross: float  # C = E[x_a x_b], distinct samples (NaN when not followed)
    preact_var: float
    # chi_l = E[delta_(l-1)^2] / E[delta_l^2] deep in the net (batch norm: for the error
    # signal's shape there, see _batch_backward); NaN where undetermined, and at the input.
    chi: float = math.nan
    # Batch norm: (u, w, B) of _batch_backward, which the exact gradient ratio folds over.
    batch: tuple[float, float, int] | None = None
    degenerate: bool = False  # the norm saw no variance (p = 0 in the theory)
    spread: finite_width.Spread | None = None  # layer norm: see finite_width
    anisotropy: float = math.nan  # batch norm: D of the batch's Gram matrix, see finite_width

    @property
    def var(self) -> float:
        """The pooled variance M - m^2."""
        return self.second - self.mean * self.mean


def deficit(a: float, dof: int) -> float:
    """E[a / (X + a)], X ~ chi^2_dof: the share of a normalized variance lost to eps.

    With v = V X / K and a = eps K / V this is E[eps / (v + eps)] (first order: a / (dof - 2)).
    Exact by the Laplace transform of chi^2: a * int_0^inf exp(-a t) (1 + 2 t)^(-dof/2) dt =
    (a/2) U(1, 2 - dof/2, a/2), Tricomi's U. For dof <= 3 the power (1 + 2 t)^(-dof/2) decays too
    slowly for a window of quad's and scipy's hyperu is exact; from dof = 4 (where hyperu gives
    NaN) scipy's quad integrates in t = u / (a + dof), where the integrand decays on a unit scale.
    """
    if dof <= 0 or not a < math.inf:
        return 1.0  # nothing is left to normalize: v = 0 and p = 0
    if a <= 0.0:
        return 0.0
    # Imported when needed, as scipy.optimize in meanfield.
    from scipy.integrate import quad
    from scipy.special import hyperu

    if dof <= 3:
        return min(1.0, 0.5 * a * float(hyperu(1.0, 2.0 - 0.5 * dof, 0.5 * a)))

    unit = 1.0 / (a + dof)

    def integrand(u: float) -> float:
        t = u * unit
        return a * unit * math.exp(-a * t - 0.5 * dof * math.log1p(2.0 * t))

    head = quad(integrand, 0.0, 50.0, epsabs=0.0, epsrel=1e-13, limit=200)[0]
    tail = quad(integrand, 50.0, math.inf, epsabs=0.0, epsrel=1e-10, limit=200)[0]
    return min(1.0, head + tail)


class _Walker:
    """Folds the layer map over a series; caches the activation's expectations per (law, scale)."""

    def __init__(self, series: Series, cross: bool, grads: bool):
        self.s, self.follow = series, cross or series.norm == "batch"  # batch norm needs C
        self.grads = grads
        self.act: Activation = series.make_activation()
        self.affine = _dropout_affine(self.act, series.dropout)
        self.betas = series.betas()
        self.cache: dict = {}

    def moments(self, K: int | None, scale: float) -> Moments:
        """E phi, E phi^2, E phi'^2 at p = scale * (sphere entry, K) or scale * N(0, 1) (K None)."""
        key = ("m", K, scale)
        if key not in self.cache:
            act = self.act
            if K is None:
                self.cache[key] = act.moments(0.0, scale)
            else:
                x, w = gaussian.sphere_nodes(K, scale, act.kinks)
                y, dy = act.fn(x), act.deriv(x)
                self.cache[key] = Moments(float(w @ y), float(w @ (y * y)), float(w @ (dy * dy)))
        return self.cache[key]

    def pair(self, K: int | None, scale: float, c: float) -> float:
        """E[phi(p_a) phi(p_b)]: Gaussian (variance scale^2, correlation c) or sphere (K)."""
        key = ("p", K, scale, c)
        if key not in self.cache:
            act = self.act
            if scale == 0.0:
                v = float(act.fn(np.zeros(1))[0])
                value = v * v
            elif K is None:
                quadrature = act.pair_form is None
                value = act.pair_moment(scale * scale, c) if not quadrature or \
                    _PAIR_RANGE[0] < scale * scale < _PAIR_RANGE[1] else math.nan
            else:
                value = gaussian.sphere_pair_expect(act.fn, K, scale)
            self.cache[key] = value
        return self.cache[key]

    def slopes(self, K: int, scale: float) -> tuple[float, float, float, float]:
        """E phi'^2, E[phi'^2 u^2], E[phi'_a phi'_b], E[phi'_a u_a phi'_b u_b], u = p / scale."""
        key = ("g", K, scale)
        if key not in self.cache:
            d = self.act.deriv
            x, w = gaussian.sphere_nodes(K, scale, self.act.kinks)
            dy2 = d(x) ** 2
            self.cache[key] = (float(w @ dy2), float(w @ (dy2 * x * x)) / (scale * scale) if scale else math.nan,
                               gaussian.sphere_pair_expect(d, K, scale),
                               gaussian.sphere_pair_expect(lambda t: d(t) * t / scale, K, scale))
        return self.cache[key]

    def layer(self, index: int, prev: Layer) -> Layer:
        """Layer `index` from its input's moments."""
        ser = self.s
        s = weight_scale(ser) / (self.betas[index] * self.betas[index])
        m, M, C = prev.mean, prev.second, prev.cross
        centre = m * m if ser.normalize_weights else 0.0
        q = s * (M - centre) + ser.bias_var
        q_ab = s * (C - centre) + ser.bias_var
        if not math.isfinite(q):
            return Layer(math.nan, math.inf, math.nan, math.inf)
        K = pair_K = None
        degenerate, lost = False, 0.0
        c = q_ab / q if q > 0 else 1.0
        if ser.norm == "none":
            pre, denom = q, 1.0
        else:
            K = ser.width if ser.norm == "layer" else ser.batch
            # The variance the norm divides by: per sample over the units (layer norm: q), per
            # unit over the batch (batch norm: the bias and the samples' shared part cancel).
            V = q if ser.norm == "layer" else max(0.0, s * (M - C))
            degenerate = not V > 0.0 or K <= 1
            lost = deficit(NORM_EPS * K / V if V > 0 else math.inf, K - 1)
            # The simulated preact var resolves eps / width: the one finite-width term.
            factor = 1.0 + finite_width.batch_excess(ser, prev.anisotropy) if ser.norm == "batch" else \
                finite_width.layer_factor(ser, prev.spread, m, M, s, V) if V > 0 else 1.0
            pre, denom = 1.0 - min(lost * factor, 1.0), V + NORM_EPS  # NaN stays NaN
            if ser.norm == "batch":  # two entries of one unit's normalized batch
                pair_K, c = K, -1.0 / max(K - 1, 1)
        scale = math.sqrt(pre)
        mo = self.moments(K, scale)
        A, const = self.affine
        e1, e2 = (float(v) for v in A @ (mo.m1, mo.m2) + const)
        cross = math.nan
        if self.follow and math.isfinite(C):
            gain, shift = A[0, 0], const[0]  # averaged over the two samples' independent masks
            cross = gain * gain * self.pair(pair_K, scale, c) + 2.0 * gain * shift * mo.m1 + shift * shift
        r = ser.residual
        alpha = 0.0 if r is None else r.alpha
        branch, batch = s * A[1, 1] * mo.d2 / denom, None
        if degenerate or (ser.norm == "layer" and K <= 2):
            branch = math.nan  # p = 0 up to rounding (or K <= 2): its gradient is not determined
        elif ser.norm == "batch" and self.grads:
            batch = _batch_backward(self.slopes(K, scale), A, s * lost / NORM_EPS, K)
            u, w, _ = batch
            # Deep in the net the error signal reaching the branch sums to 0 over the batch
            # (without a skip) or is nearly i.i.d. (the skip carries it): see _probe_rows.
            branch = u / K if r is not None else (K * u - w) / (K * (K - 1))
        chi = branch if r is None else 1.0 + alpha * alpha * branch
        spread, anisotropy = None, math.nan
        if ser.norm == "batch":
            x, w = gaussian.sphere_nodes(K, scale, self.act.kinks)
            slope = A[0, 0] * float(w @ self.act.deriv(x))
            S_y = e2 - cross  # the branch's batch variance
            transmission = slope * slope * pre / S_y if S_y > 0 else 0.0
            anisotropy = finite_width.gram_anisotropy(ser, prev.anisotropy, transmission,
                                                      None if r is None else (alpha, M - C, S_y))
        if ser.norm == "layer":
            spread = finite_width.norm_output(self.act, ser, *gaussian.sphere_nodes(K, scale, self.act.kinks), scale)
            if r is not None:
                spread = finite_width.residual(prev.spread, spread, alpha, m, M, e1, e2)
        if r is None:
            return Layer(e1, e2, float(cross), pre, chi, batch, degenerate, spread, anisotropy)
        step = 2.0 * alpha * m * e1
        return Layer(m + alpha * e1, M + step + alpha * alpha * e2, C + step + alpha * alpha * cross, pre,
                     chi, batch, degenerate, spread, anisotropy)


def _batch_backward(slopes, A: np.ndarray, inverse: float, K: int) -> tuple[float, float, int]:
    """(u, w, B): one batch-norm layer's backward pass at infinite width, any batch size B.

    Per unit, over the batch: dL/dh = P D g / sigma, P = I - 1 1^T / B - u u^T / B the projector
    off 1 and the normalized output u (|u|^2 = B), D = diag(a mask phi'(p)), sigma^2 = v + eps,
    then dL/dx = s (W^T dL/dh). For an incoming error signal with covariance alpha I + beta 1 1^T
    over the batch (independent of this layer's forward pass at infinite width), the outgoing
    one is rho (I - 1 1^T / B) with rho (B - 1) = alpha u + beta w, where (E over the sphere)
    u = s E[1/sigma^2] E tr(P D^2 P) = s E[1/sigma^2] a^2 keep ((B - 1) E phi'^2 - E phi'^2 u^2),
    w = s E[1/sigma^2] E |P D 1|^2 = s E[1/sigma^2] (a^2 keep (B - 1) E phi'^2 - a^2 keep
    E phi'^2 u^2 - (B - 1) (a keep)^2 (E phi'_a phi'_b + E phi'_a u_a phi'_b u_b)).
    `inverse` is s E[1/sigma^2] (exact over chi^2). The mean square (the diagonal) goes from
    alpha + beta to rho (B - 1)/B: by u / B for an i.i.d. signal, by (B u - w) / (B (B - 1)) for
    one that sums to 0 over the batch (the shape below a batch norm); as B -> infinity both tend
    to s a^2 keep E phi'^2 / S_h (Yang et al. 2019).
    """
    e1, e2, p1, p2 = slopes
    diag, off = A[1, 1], A[0, 0] * A[0, 0]
    u = inverse * diag * ((K - 1) * e1 - e2)
    w = inverse * (diag * ((K - 1) * e1 - e2) - (K - 1) * off * (p1 + p2))
    return u, w, K


def walk(series: Series, cross: bool = True, grads: bool = True, progress=None) -> list[Layer]:
    """Layer 0 (the input) to depth; `cross`: follow C (always, for batch norm); `grads`: the
    batch norm's backward terms (two more 2-D quadratures a layer); `progress(1)` per layer."""
    w = _Walker(series, cross, grads)
    inp = series.input
    out = [Layer(inp.mean, inp.var + inp.mean * inp.mean, inp.correlation * inp.var + inp.mean * inp.mean,
                 inp.var, spread=finite_width.input_spread(series), anisotropy=1.0 / series.width)]
    with np.errstate(all="ignore"):  # overflow is data here, as in meanfield.predict
        for index in range(1, series.depth + 1):
            out.append(w.layer(index, out[-1]))
            if progress is not None:
                progress(1)
    return out


def predict(series: Series) -> np.ndarray:
    """(depth + 1, len(THEORY)): as meanfield.predict, for a normalized or residual series."""
    return _theory_rows(walk(series, cross=False, grads=False))


def predict_probes(series: Series, correlation: bool = True, progress=None) -> np.ndarray:
    """(depth + 1, len(PROBES)): gradient ratio E[delta_l^2] / E[delta_L^2] and cosine C/M."""
    return _probe_rows(series, walk(series, cross=correlation, progress=progress), correlation)


def _theory_rows(layers: list[Layer]) -> np.ndarray:
    out = np.empty((len(layers), len(THEORY)))
    for i, lay in enumerate(layers):
        out[i] = (math.nan, math.inf, math.inf) if not math.isfinite(lay.second) else (
            lay.mean, lay.var, lay.preact_var)
    return out


def _probe_rows(series: Series, layers: list[Layer], correlation: bool) -> np.ndarray:
    """The probes' columns from a walk: the error signal's covariance (alpha I + beta 1 1^T over
    the batch, alpha = 1 and beta = 0 at the top) folded down through the layers."""
    depth = len(layers) - 1
    out = np.full((depth + 1, len(PROBES)), math.nan)
    skip = 0.0 if series.residual is None else series.residual.alpha ** 2
    a, b = 1.0, 0.0
    out[depth, 0] = 1.0
    with np.errstate(all="ignore"):
        for index in range(depth, 0, -1):
            lay = layers[index]
            if lay.batch is None:  # only the diagonal matters (no batch norm below)
                a, b = (a + b) * lay.chi, 0.0
            else:
                u, w, K = lay.batch
                rho = (a * u + b * w) / (K - 1)
                a, b = (a + skip * rho, b - skip * rho / K) if skip else (rho, -rho / K)
            out[index - 1, 0] = a + b
        if correlation:
            out[:, 1] = [lay.cross / lay.second if lay.second > 0 else math.nan for lay in layers]
    return out


def growth_limit(series: Series) -> tuple[float | None, str | None]:
    """chi_l deep in a normalized series without a skip, eps -> 0 and K -> infinity; or why not.

    Batch norm: a^2 keep E[phi'(z)^2] / Var Y(z), z ~ N(0, 1): the large-batch gradient
    explosion rate of Yang et al. (2019), pi / (pi - 1) for ReLU, and >= 1 for every activation
    without dropout (Gaussian Poincare inequality; = 1 only for a linear phi). Layer norm:
    s a^2 keep E[phi'(z)^2] / (s E Y(z)^2 + sigma_b^2) (E Y^2 - (E Y)^2 for normalized weights).
    """
    if series.residual is not None:
        return None, "the skip's share of the gradient changes with depth: see the per-layer factor"
    act = series.make_activation()
    A, const = _dropout_affine(act, series.dropout)
    mo = act.moments(0.0, 1.0)
    e1, e2 = A @ (mo.m1, mo.m2) + const
    if series.norm == "batch":
        return float(A[1, 1] * mo.d2 / (e2 - e1 * e1)), None
    s = weight_scale(series)
    second = e2 - e1 * e1 if series.normalize_weights else e2
    return float(s * A[1, 1] * mo.d2 / (s * second + series.bias_var)), None


def report(series: Series, depth: int | None = None) -> dict:
    """meanfield.report's dictionary for a normalized or residual series (same keys, and more).

    No q-map fixed point: a norm fixes each layer's pre-activation law, a skip makes the stream
    grow. Added: gradient_growth (chi at the deepest layer, for the error signal's shape there:
    below a batch norm it sums to 0 over the batch), gradient_growth_limit (deep, large
    batch or width; see growth_limit), gradient_ratio_input (E[delta_0^2] / E[delta_L^2]), and
    for a residual series variance_growth (var_L / var_(L-1)) and variance_increment
    (var_L - var_(L-1)); per layer also theory_grad_ratio and gradient_growth (chi_l).
    """
    if depth is not None:
        series = dataclasses.replace(series, depth=depth)
    r = series.residual
    kind = {"batch": f"batch norm over a batch of {series.batch}",
            "layer": f"layer norm over {series.width} units", "none": "no norm"}[series.norm]
    if r is None:
        status, note = "normalized", (f"{kind}: the norm fixes every layer's pre-activation law (mean 0, "
                                      "variance 1 - O(eps)), so there is no q-map fixed point to find")
    else:
        status, note = "residual", (f"x_l = x_(l-1) + {r.alpha:g} * branch ({kind}, beta {r.beta}): the "
                                    "stream's variance grows with depth, so there is no fixed point")
    keys = ("jacobian", "spectral_norm", "q_slope", "chi1", "phase", "c_star", "chi_c", "xi_q", "xi_c")
    why = f"not defined for a {status} series (no q-map fixed point); see gradient_growth"
    reasons = {"fixed_point": note, **dict.fromkeys(keys, why)}
    layers = walk(series, cross=False)
    pred, probes = _theory_rows(layers), _probe_rows(series, layers, False)
    chis = [math.nan] + [lay.chi for lay in layers[1:]]
    out: dict = {"label": series.label, "status": status, "note": note, "fixed_point": None,
                 "g_params": {"omega": 0.0, "tau": weight_scale(series), "bias_var": series.bias_var,
                              "dropout": series.dropout},
                 "block": {"norm": series.norm, "residual": None if r is None else
                           {"alpha": r.alpha, "beta": r.beta},
                           "activation_gain": series.make_activation().gamma},
                 **dict.fromkeys(keys)}
    L = series.depth
    out["gradient_growth"] = json_number(chis[L]) if L else None
    if out["gradient_growth"] is None:
        reasons["gradient_growth"] = ("the norm sees no variance (p = 0 up to rounding): its "
                                      "gradient is not determined" if L else "depth 0")
    out["gradient_growth_limit"], limit_why = growth_limit(series)
    if limit_why:
        reasons["gradient_growth_limit"] = limit_why
    out["gradient_ratio_input"] = json_number(probes[0, 0])
    if out["gradient_ratio_input"] is None:
        reasons["gradient_ratio_input"] = "a layer's gradient factor is not determined or overflows"
    if r is not None:
        if L and np.isfinite(pred[L - 1:, 1]).all():
            out["variance_growth"] = json_number(pred[L, 1] / pred[L - 1, 1])
            out["variance_increment"] = json_number(pred[L, 1] - pred[L - 1, 1])
        else:
            out["variance_growth"] = out["variance_increment"] = None
            reasons["variance_growth"] = reasons["variance_increment"] = \
                "the variance overflows" if L else "depth 0"
    out["reasons"] = reasons
    bad = ~np.isfinite(pred).all(axis=1)
    out["overflow_layer"] = int(np.argmax(bad)) if bad.any() else None
    out["layers"] = [{"layer": i, **{k: json_number(v) for k, v in zip(THEORY, row)},
                      "theory_grad_ratio": json_number(probes[i, 0]), "gradient_growth": json_number(chis[i])}
                     for i, row in enumerate(pred)]
    return out
