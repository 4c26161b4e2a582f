"""The theory's distribution of a layer's output: pre-activations N(0, q) through the activation.

Pooled over units, a plain layer's pre-activation is N(0, q) (meanfield.preact_var); its output
phi(h) then has the density of Activation.density (change of variables) plus its point masses,
and alpha dropout mixes in the saturation value and applies its affine map a y + b.
"""

from __future__ import annotations

import math

import numpy as np

from snn_lab.activations import Activation, alpha_dropout_affine
from snn_lab.config import Series
from snn_lab.theory.meanfield import is_block


def layer_density(series: Series, q: float, y, act: Activation | None = None
                  ) -> tuple[np.ndarray, tuple[tuple[float, float], ...]]:
    """(density at y, ((value, probability), ...) point masses) of a layer's output whose
    pre-activations are N(0, q); NaN density and no masses where the theory does not apply
    (a norm or a residual, phi not monotone, q not positive and finite)."""
    y = np.asarray(y, dtype=np.float64)
    act = act or series.make_activation()
    if is_block(series) or not (math.isfinite(q) and q > 0):
        return np.full(y.shape, math.nan), ()
    std = math.sqrt(q)
    dens, atoms = act.density(y, 0.0, std), act.atoms(0.0, std)
    if not series.dropout:
        return dens, atoms
    # Alpha dropout: Y = a X + b, X = phi(h) kept with probability keep, else the saturation.
    keep = 1.0 - series.dropout
    a, b = alpha_dropout_affine(series.dropout, act.saturation)
    dens = keep * act.density((y - b) / a, 0.0, std) / abs(a)
    atoms = tuple((a * v + b, keep * p) for v, p in atoms) + ((a * act.saturation + b, 1.0 - keep),)
    return dens, atoms


def density_note(series: Series, act: Activation | None = None) -> str | None:
    """Why layer_density has no curve for this series, or None when it has one."""
    act = act or series.make_activation()
    if is_block(series):
        return "no theory density (a norm or a residual)"
    if act.inverse is None:
        return f"no theory density ({act.label} is not monotone)"
    return None
