"""The input-output Jacobian's squared singular values, for a few inputs per trial.

The engine hands this probe each layer's weights and pre-activations; for each of the first
`inputs` samples of a trial's batch it carries J_l = d x_l / d x_0 (rows: input units, columns:
layer l's units, float64) one layer further:

    J_l = J_{l-1} W_l diag(phi'(p_l)) / beta_l            (plain layer; biases enter via p_l)
    J_l = J_{l-1} + alpha J_{l-1} W_l diag(phi'(p_l)) / beta_l   (residual block)

and at the measured layers keeps lambda = the squared singular values of J_l (the eigenvalues
of J J^T). Up to EXACT_MAX units that is LAPACK's SVD (scipy.linalg.svdvals, exact to
rounding); beyond, the moments come exactly from traces and the extremes from ARPACK's Lanczos
(scipy.sparse.linalg.svds), the quantiles being left NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from snn_lab.measures import JacobianSpec

EXACT_MAX = 2048  # widths up to this get the exact SVD
LANCZOS_TOL = 1e-8  # svds' relative tolerance on the extreme singular values
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
# Columns of summarize(), in order: what jacobian.csv holds for one (layer, trial, input).
SPECTRUM = ("mean", "var", "min", "q05", "q25", "median", "q75", "q95", "max", "condition", "within_2")
WITHIN = 2.0  # within_2: the fraction of lambda in [1/WITHIN, WITHIN]


@dataclass
class Spectrum:
    """One (trial, layer, input)'s squared singular values (None above EXACT_MAX) and summary."""

    trial: int
    layer: int
    input: int
    summary: np.ndarray
    values: np.ndarray | None


class JacobianProbe:
    """Carries J for `inputs` samples of each trial of a group through the layers."""

    def __init__(self, spec: JacobianSpec, trials: list[int], width: int, depth: int, act,
                 alpha: float = 0.0):
        self.trials, self.act, self.alpha = trials, act, alpha
        self.k = spec.inputs
        self.measured = set(spec.layers_for(depth))
        self.J = np.empty((len(trials), self.k, width, width))
        self.J[:] = np.eye(width)
        self.spectra: list[Spectrum] = []

    def tasks(self, layer: int, W: np.ndarray, P: np.ndarray, inv_beta: float) -> list:
        """One task per (trial, input): its J one layer further (W: (g, n, n) this layer's
        weights, P: (g, batch, n) its pre-activations), and its spectrum at a measured layer."""
        return [lambda g=g, i=i: self._step(g, i, layer, W[g], P[g, i], inv_beta)
                for g in range(len(self.trials)) for i in range(self.k)]

    def _step(self, g: int, i: int, layer: int, w: np.ndarray, p: np.ndarray, inv_beta: float) -> None:
        J = self.J[g, i]
        with np.errstate(all="ignore"):  # an overflowed layer gives inf/NaN: data, as in the engine
            d = self.act.deriv(p.astype(np.float64)) * float(inv_beta)
            branch = J @ w.astype(np.float64)
            branch *= d
            if self.alpha:
                branch *= self.alpha
                J += branch
            else:
                J[:] = branch
        if layer in self.measured:
            lam = squared_singular_values(J)
            summary = summarize(lam) if lam is not None else extremes(J)
            self.spectra.append(Spectrum(self.trials[g], layer, i, summary, lam))


def squared_singular_values(J: np.ndarray) -> np.ndarray | None:
    """lambda = sigma^2 of J, ascending (exact SVD); all NaN if J is not finite; None above EXACT_MAX."""
    n = J.shape[0]
    if n > EXACT_MAX:
        return None
    if not np.isfinite(J).all():
        return np.full(n, math.nan)
    from scipy.linalg import svdvals

    sigma = svdvals(J, check_finite=False)
    return np.sort(sigma * sigma)


def summarize(lam: np.ndarray) -> np.ndarray:
    """The SPECTRUM columns of a set of squared singular values (NaN where not finite)."""
    out = np.full(len(SPECTRUM), math.nan)
    if not np.isfinite(lam).all():
        return out
    with np.errstate(all="ignore"):
        out[0], out[1] = lam.mean(), lam.var()
        out[2], out[8] = lam[0], lam[-1]
        out[3:8] = np.quantile(lam, QUANTILES)
        out[9] = math.sqrt(lam[-1] / lam[0]) if lam[0] > 0 else math.inf  # sigma_max / sigma_min
        out[10] = np.mean((lam >= 1.0 / WITHIN) & (lam <= WITHIN))
    return out


def extremes(J: np.ndarray) -> np.ndarray:
    """Above EXACT_MAX: mean and var of lambda from tr(J J^T) and tr((J J^T)^2) (exact), min and
    max from ARPACK (svds); the quantiles and within_2 NaN."""
    out = np.full(len(SPECTRUM), math.nan)
    if not np.isfinite(J).all():
        return out
    from scipy.sparse.linalg import ArpackNoConvergence, svds

    n = J.shape[0]
    gram = J.T @ J
    mean = np.trace(gram) / n
    out[0], out[1] = mean, np.vdot(gram, gram) / n - mean * mean
    for col, which in ((8, "LM"), (2, "SM")):
        try:
            s = svds(J, k=1, which=which, tol=LANCZOS_TOL, return_singular_vectors=False,
                     random_state=np.random.default_rng(0))  # a fixed start: the same numbers every run
            out[col] = float(s[0]) ** 2
        except (ArpackNoConvergence, ValueError):
            pass
    out[9] = math.sqrt(out[8] / out[2]) if out[2] > 0 else math.nan
    return out


def memory(spec: JacobianSpec, width: int) -> int:
    """Bytes the probe adds per trial: J per input, and one product and SVD's workspace per thread."""
    return spec.inputs * width * width * 8


def work_flops(spec: JacobianSpec, width: int, depth: int) -> float:
    """Floating-point operations per trial: a product per layer and input, an SVD per measured layer."""
    n = float(width)
    return spec.inputs * (depth * 2.0 * n ** 3 + len(spec.layers_for(depth)) * 12.0 * n ** 3)
