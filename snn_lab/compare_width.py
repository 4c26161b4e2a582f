"""`check --mode theory --finite-width`: the simulation against the finite-width band.

Two changes to the infinite-width check (compare.compare_theory), where a series has the
finite-width columns (docs/finite-width.md):
- the reference of mean, var and preact_var is the corrected prediction fw_* (mean-field +
  its O(1/width) shift), so the threshold needs no rtol floor for the finite-width bias: the
  check is as sharp at width 64 as at width 4096;
- each measured spread across trials is judged against the predicted one, fw_*_sd: with T
  trials (T - 1) sd^2 / sd_pred^2 is chi^2 with T - 1 degrees of freedom for near-normal
  statistics; judged only where the expansion parameter fw_log_q_var is at most SPREAD_LIMIT
  (beyond, the leading order underestimates the spread, and log-normal tails are heavier
  than chi^2 allows for).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import chi2

FORWARD = ("mean", "var", "preact_var")
SPREAD_LIMIT = 0.25  # predicted Var(log q) above this: the spread is not judged


def reference(cols: dict, stat: str, i: int) -> tuple[float, bool]:
    """(the value the trial mean is judged against, whether it is the corrected one)."""
    fw = cols.get(f"fw_{stat}")
    if fw is not None and math.isfinite(fw[i]):
        return float(fw[i]), True
    theory = cols.get(f"theory_{stat}")
    return (float(theory[i]) if theory is not None else math.nan), False


def spread_checks(cols: dict, i: int, layer: int) -> list[tuple[str, float, float, int]]:
    """(statistic, predicted sd, measured sd, trials) to judge at row i: near-normal ones only."""
    out = []
    for stat in FORWARD if layer else FORWARD[:2]:  # layer 0's preact columns repeat the input's
        pred, expansion = cols.get(f"fw_{stat}_sd"), cols.get("fw_log_q_var")
        if pred is None or expansion is None or not expansion[i] <= SPREAD_LIMIT:
            continue
        p, sd, trials = float(pred[i]), float(cols[f"{stat}_sd"][i]), int(cols["trials"][i])
        if not (math.isfinite(p) and p > 0 and math.isfinite(sd) and trials >= 2):
            continue
        out.append((stat, p, sd, trials))
    return out


def judge_spread(pred: float, sd: float, trials: int, level: float) -> tuple[bool, float, float]:
    """(within, threshold on |sd - pred|, standard error of sd) by the two-sided chi^2 test."""
    dof = trials - 1
    lo, hi = (pred * math.sqrt(chi2.ppf(level / 2, dof) / dof),
              pred * math.sqrt(chi2.isf(level / 2, dof) / dof))
    threshold = (hi - pred) if sd >= pred else (pred - lo)
    return bool(lo <= sd <= hi), threshold, pred / math.sqrt(2.0 * dof)


def count_spreads(series: dict) -> int:
    """How many spreads the family judges (for the per-value level)."""
    return sum(len(spread_checks(cols, i, int(layer))) for cols in series.values()
               for i, layer in enumerate(cols["layer"]))


def has_columns(series: dict) -> bool:
    """Whether any series carries a finite corrected prediction."""
    return any(np.isfinite(cols.get("fw_var", np.array([math.nan]))).any() for cols in series.values())
