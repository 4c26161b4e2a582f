"""The input-output Jacobian's spectrum at infinite width: free probability's first two moments.

J_L = D_L W_L ... D_1 W_1, D_l = diag(phi'(h_l)). At infinite width the factors are
asymptotically free, so the S-transform of J J^T is the product of its factors' (Pennington,
Schoenholz & Ganguli 2017, "Resurrecting the sigmoid in deep learning through dynamical
isometry"; Pennington, Schoenholz & Ganguli 2018, "The emergence of spectral universality in
deep networks"). A distribution with mean m and variance v has S(z) = (1/m)(1 - (v/m^2) z +
O(z^2)), so through a product the means multiply and the normalized variances v/m^2 add:

    E[lambda]    = prod_l chi_l,            chi_l = sigma_w^2 E[phi'(h_l)^2]   (chi_1 of meanfield)
    Var[lambda]  = E[lambda]^2 sum_l (mu4_l / mu2_l^2 - 1 + s_W)

with mu_k = E[phi'(h_l)^k], h_l ~ N(0, q_l) along predict()'s q (q* at every layer for inputs
on the fixed point, the papers' setting), and s_W the normalized variance of W W^T's spectrum:
1 for i.i.d. weights (Marchenko-Pastur), 0 for orthogonal ones. At q* with chi = 1 this is
Pennington et al.'s sigma^2_JJ^T = L (mu2/mu1^2 - 1 - s_1), s_1 = -1 (Gaussian), 0 (orthogonal).
Assumptions: infinite width (finite width adds O(L^2 / n): docs/isometry.md), weights
independent across layers, a plain layer (no norm, residual or dropout). The density of
lambda for the linear Gaussian network (Fuss-Catalan) is fuss_catalan_density.
"""

from __future__ import annotations

import math

import numpy as np

from snn_lab import gaussian
from snn_lab.config import Series
from snn_lab.theory import meanfield

# Columns of jacobian_moments(), in order: beside jacobian.csv's measured mean and var.
JACOBIAN_THEORY = ("theory_mean", "theory_var")


def weight_spread(series: Series) -> float:
    """s_W: Var/mean^2 of W W^T's eigenvalues at infinite width: 1 i.i.d., 0 orthogonal."""
    return 0.0 if series.initializer.kind == "orthogonal" else 1.0


def derivative_moments(series: Series, q: float, act=None) -> tuple[float, float]:
    """(E[phi'(h)^2], E[phi'(h)^4]) for h ~ N(0, q), by quadrature split at the kinks."""
    act = act or series.make_activation()
    if not (math.isfinite(q) and q >= 0):
        return math.nan, math.nan
    if q == 0:
        x, w = np.zeros(1), np.ones(1)
    else:
        x, w = gaussian.nodes(0.0, math.sqrt(q), act.kinks)
    d2 = act.deriv(x) ** 2
    return float(w @ d2), float(w @ (d2 * d2))


def jacobian_moments(series: Series) -> tuple[np.ndarray, str | None]:
    """((depth + 1, 2) mean and variance of lambda per layer, layer 0 being J = I; a note when
    the theory does not apply (NaN then))."""
    out = np.full((series.depth + 1, len(JACOBIAN_THEORY)), math.nan)
    if meanfield.is_block(series) or series.dropout:
        what = "a residual block" if series.residual is not None else "a norm" if series.norm != "none" \
            else "dropout"
        return out, (f"the Jacobian's free-probability moments are for plain layers; this series has {what}: "
                     "theory_mean and theory_var are NaN")
    act = series.make_activation()
    q = meanfield.predict(series)[:, 2]
    s_w = weight_spread(series)
    mean, spread = 1.0, 0.0
    out[0] = (1.0, 0.0)
    with np.errstate(all="ignore"):
        for layer in range(1, series.depth + 1):
            mu2, mu4 = derivative_moments(series, q[layer], act)
            mean *= meanfield.chi1(series, q[layer], act) if math.isfinite(q[layer]) else math.nan
            spread += (mu4 / (mu2 * mu2) - 1.0 if mu2 > 0 else math.nan) + s_w
            out[layer] = (mean, mean * mean * spread)
    return out, None


def linear_gaussian_variance(n: int, depth: int) -> np.ndarray:
    """E[(1/n) sum lambda^2 - ((1/n) sum lambda)^2] per layer 0..depth for J = W_1 ... W_L, W i.i.d.
    N(0, 1/n), exactly at width n.

    Wick's theorem on one more factor W, B = J^T J: E tr((B W W^T)^2) = (1 + 1/n) tr(B^2) + (tr B)^2 / n
    and E (tr B W W^T)^2 = (tr B)^2 + 2 tr(B^2) / n. So a_L = E tr(A^2)/n, b_L = E (tr A / n)^2 obey
    a_L = (1 + 1/n) a_{L-1} + b_{L-1}, b_L = b_{L-1} + 2 a_{L-1} / n^2, a_0 = b_0 = 1, and the
    expected variance is a_L - b_L: L + O(L^2 / n), the Fuss-Catalan value L at infinite width.
    """
    a, b, out = 1.0, 1.0, [0.0]
    for _ in range(depth):
        a, b = (1.0 + 1.0 / n) * a + b, b + 2.0 * a / n ** 2
        out.append(a - b)
    return np.array(out)


def fuss_catalan_density(depth: int, points: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """(lambda, density) of Fuss-Catalan(depth): the squared singular values of a product of
    `depth` independent square Gaussian matrices with variance 1/n entries, at infinite width.

    Its parametrization (Haagerup & Moeller 2012; Neuschel 2014): for phi in (0, pi/(s + 1)),
    s = depth, lambda(phi) = (sin((s+1) phi))^(s+1) / (sin phi (sin(s phi))^s), and
    density = (sin phi)^2 (sin(s phi))^(s-1) / (pi (sin((s+1) phi))^s); support [0, (s+1)^(s+1)/s^s].
    """
    s = depth
    phi = np.linspace(0.0, math.pi / (s + 1), points + 2)[1:-1]
    # In logarithms: the powers under- and overflow for deep products.
    a, b, c = np.log(np.sin((s + 1) * phi)), np.log(np.sin(phi)), np.log(np.sin(s * phi))
    with np.errstate(under="ignore", over="ignore"):
        lam = np.exp((s + 1) * a - b - s * c)
        dens = np.exp(2.0 * b + (s - 1) * c - s * a) / math.pi
    order = np.argsort(lam)
    return lam[order], dens[order]
