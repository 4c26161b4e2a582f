"""SELU parameters for a chosen fixed point, as Klambauer et al. compute them."""

from __future__ import annotations

import math

import numpy as np

from snn_lab.activations import ALPHA01, alpha_dropout_affine, make_activation

_EPS = float(np.finfo(np.float64).eps)


def selu_params(mean: float, var: float, dropout_rate: float | None = None) -> dict:
    """(lambda, alpha) making (mean, var) the fixed point of SELU, as Klambauer et al. compute them.

    Convention of the authors' getSELUparameters.ipynb (bioinf-jku/SNNs): the pre-activation is
    z ~ N(mean, var) and the output of SELU must have that same mean and variance, i.e. the
    fixed point of g with omega = 1, tau = 1 (for mean = 0 any omega gives the same answer,
    and this is eq. (14)'s LAMBDA01, ALPHA01). With dropout_rate, also alpha dropout's (a, b)
    for that fixed point and alpha' = -lambda alpha (their dropout_selu).

    With A = E[z; z > 0], B = E[e^z - 1; z < 0], C = E[z^2; z > 0], D = E[(e^z - 1)^2; z < 0]:
    lambda (A + alpha B) = mean and lambda^2 (C + alpha^2 D) = var + mean^2. Eliminating
    lambda leaves a quadratic in alpha; its root seeds a solve of both equations (scipy's
    hybrj), evaluated with the SELU's own closed-form moments. Raises ValueError when no lambda, alpha > 0 is found.
    """
    mean, var = float(mean), float(var)
    if not (math.isfinite(mean) and math.isfinite(var) and var > 0):
        raise ValueError(f"need a finite mean and a variance > 0, got mean={mean!r}, var={var!r}")
    if dropout_rate is not None and not 0.0 <= dropout_rate < 1.0:
        raise ValueError(f"dropout rate must be in [0, 1), got {dropout_rate!r}")
    std, second = math.sqrt(var), var + mean * mean
    pos = make_activation("selu", **{"lambda": 1.0, "alpha": 0.0}).moments(mean, std)
    elu = make_activation("selu", **{"lambda": 1.0, "alpha": 1.0}).moments(mean, std)
    A, C = pos.m1, pos.m2
    B, D = elu.m1 - A, elu.m2 - C  # the two parts have disjoint support
    alpha = _selu_alpha(mean, second, A, B, C, D)
    if alpha is None:
        # E.g. a mean many sd above 0: e^z - 1 is too rarely reached to pin alpha down.
        raise ValueError(f"found no SELU with lambda > 0 and alpha > 0 whose fixed point is "
                         f"mean={mean:g}, var={var:g}")
    from scipy.optimize import root  # see find_root: imported when needed

    def residual(x: np.ndarray) -> tuple[list[float], list[list[float]]]:
        lam, alpha = x
        mo = make_activation("selu", **{"lambda": lam, "alpha": alpha}).moments(mean, std)
        jac = [[A + alpha * B, lam * B], [2.0 * lam * (C + alpha * alpha * D), 2.0 * lam * lam * alpha * D]]
        return [mo.m1 - mean, mo.m2 - second], jac

    # Polish on the actual moments (MINPACK's hybrj, from a seed already within an ulp or so).
    sol = root(residual, [math.sqrt(second / (C + alpha * alpha * D)), alpha], jac=True,
               method="hybr", options={"xtol": 4 * _EPS})
    lam, alpha = (float(v) for v in sol.x)
    out = {"lambda": lam, "alpha": alpha}
    if dropout_rate is not None:
        sat = -lam * alpha
        a, b = alpha_dropout_affine(dropout_rate, sat, mean, var)
        out.update(alpha_prime=sat, a=a, b=b)
    return out


def _selu_alpha(mean: float, second: float, A: float, B: float, C: float, D: float) -> float | None:
    """The alpha > 0 solving mean^2 (C + alpha^2 D) = second (A + alpha B)^2 with lambda > 0."""
    if mean == 0.0:
        return -A / B if B < 0 else None
    m2 = mean * mean
    qa, qb, qc = m2 * D - second * B * B, -2.0 * second * A * B, m2 * C - second * A * A
    if qa == 0.0:
        roots = [-qc / qb] if qb else []
    else:
        disc = qb * qb - 4.0 * qa * qc
        if disc < 0:
            return None
        # The stable pair: no cancellation between -qb and the root of the discriminant.
        big = -0.5 * (qb + math.copysign(math.sqrt(disc), qb))
        roots = [big / qa] + ([qc / big] if big else [])
    ok = [r for r in roots if r > 0 and (A + r * B) * mean > 0]  # lambda = mean / (A + alpha B) > 0
    # Two valid roots: take the one nearest ALPHA01, where the authors' nsolve starts.
    return min(ok, key=lambda r: abs(r - ALPHA01)) if ok else None
