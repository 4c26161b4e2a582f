"""Across-trial summaries of the per-layer statistics, and where values left float range."""

from __future__ import annotations

import math

import numpy as np

# Columns of the per-layer statistics array, in order. Layer 0 is the input (no activation:
# its pre-activation columns repeat the input's).
STATS = ("mean", "var", "preact_mean", "preact_var")
# Columns of the optional probes, in order (NaN where a measurement was not asked for).
PROBES = ("grad_sq", "grad_ratio", "dead_fraction", "correlation")
# Every measured per-layer column: the statistics, then the optional probes (NaN if not asked).
MEASURED = (*STATS, *PROBES)
# summary.csv's statistic columns: each measured column's mean across trials, then its spread.
SUMMARY_STATS = tuple(c for s in MEASURED for c in (s, f"{s}_sd"))


def summarize(trials: np.ndarray) -> np.ndarray:
    """(trials, layers, MEASURED) -> (layers, SUMMARY_STATS): mean and sample sd across trials.

    The sd is the spread across trials (ddof=1): the standard error of the mean is
    sd / sqrt(trials). With a single trial the spread is unknown and written as NaN.
    """
    with np.errstate(all="ignore"):
        mean = trials.mean(axis=0)
        sd = trials.std(axis=0, ddof=1) if trials.shape[0] > 1 else np.full_like(mean, math.nan)
    out = np.empty((trials.shape[1], 2 * trials.shape[2]))
    out[:, 0::2], out[:, 1::2] = mean, sd
    return out


# "Converged": a layer's mean within SETTLE of the fixed point's sqrt(var*), and its variance
# within SETTLE of var* (relative), at that layer and every later one.
SETTLE = 0.05
SETTLED = ("settled", "theory_settled")  # summary.csv: 1 from the layer on which it stays, 0 before


def distance(mean: np.ndarray, var: np.ndarray, fixed: tuple[float, float] | None) -> np.ndarray:
    """Per layer: max(|mean - mu*| / sqrt(var*), |var - var*| / var*), the relative distance from
    the fixed point that SETTLE bounds; NaN without a fixed point of positive variance."""
    mean, var = np.asarray(mean, dtype=np.float64), np.asarray(var, dtype=np.float64)
    if fixed is None or not fixed[1] > 0:
        return np.full(mean.shape, math.nan)
    mu, nu = fixed
    with np.errstate(all="ignore"):
        return np.maximum(np.abs(mean - mu) / math.sqrt(nu), np.abs(var - nu) / nu)


def settled(mean: np.ndarray, var: np.ndarray, fixed: tuple[float, float] | None) -> np.ndarray:
    """Per layer: 1.0 where the statistics stay within SETTLE of the fixed point from there to the
    last layer, 0.0 before; NaN at every layer without a fixed point of positive variance."""
    d = distance(mean, var, fixed)
    if fixed is None or not fixed[1] > 0:
        return d  # NaN throughout
    with np.errstate(invalid="ignore"):
        ok = d <= SETTLE
    return np.logical_and.accumulate(ok[::-1])[::-1].astype(np.float64)


def settle_layer(column: np.ndarray) -> int | None:
    """The first layer of a `settled` column that is 1 (None: never, or no fixed point)."""
    hit = np.flatnonzero(np.asarray(column) == 1.0)
    return int(hit[0]) if hit.size else None


def overflow(trials: np.ndarray) -> list[tuple[int, int]]:
    """(trial, first layer) for every trial whose statistics stopped being finite."""
    bad = ~np.isfinite(trials[..., :len(STATS)]).all(axis=2)  # probes may be NaN by design
    return [(t, int(np.argmax(bad[t]))) for t in range(trials.shape[0]) if bad[t].any()]


def deviation(sim: float, sd: float, trials: int, theory: float) -> float:
    """(simulation - theory) in standard errors of the trial mean (NaN if undefined)."""
    se = sd / math.sqrt(trials)
    if not (math.isfinite(se) and math.isfinite(sim) and math.isfinite(theory)) or se == 0:
        return math.nan
    return (sim - theory) / se


def json_number(v):
    """A JSON-ready number: a Python int or float, None for inf/NaN (JSON has neither)."""
    v = v.item() if hasattr(v, "item") else v
    return None if isinstance(v, float) and not math.isfinite(v) else v
