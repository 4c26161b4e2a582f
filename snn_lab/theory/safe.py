"""Theory that never costs a run its numbers: what cannot be computed is NaN, with the reason.

A hostile or extreme config (an input variance of 0, a gain of 1e-300, a series that
overflows) may leave the mean-field maps without a value: the simulation's numbers are still
written, the theory columns are NaN, and notes(exp) says why (meta.json's theory_notes).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from snn_lab.config import Series
from snn_lab.theory import meanfield

# What a numeric routine raises when its input is beyond it (ZeroDivisionError, OverflowError,
# NaN to int, numpy's LinAlgError, brentq's sign and convergence errors); not MemoryError.
NUMERIC = (ArithmeticError, ValueError, RuntimeError)
_CACHE: OrderedDict = OrderedDict()  # (kind, series, correlation) -> (array, note): few entries
_CACHE_SIZE = 8


def _cached(key, compute):
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    value = _CACHE[key] = compute()
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return value


def _why(series: Series, what: str, exc: BaseException) -> str:
    """One sentence: which prediction failed and, where it is plain, why."""
    q1 = meanfield.preact_var(series, series.input.mean, series.input.var)
    if q1 == 0:
        cause = (f"the first layer's pre-activation variance is 0 (input var {series.input.var:g}, "
                 f"sigma_w^2 {series.weight_var:g}, sigma_b^2 {series.bias_var:g})")
    elif not math.isfinite(q1):
        cause = "the first layer's pre-activation variance overflows"
    else:
        cause = f"{type(exc).__name__}: {exc}"
    return f"{what} cannot be computed for this series ({cause}); its theory columns are NaN"


def predict(series: Series) -> np.ndarray:
    """meanfield.predict, NaN where it cannot be computed."""
    return _predict(series)[0].copy()


def _predict(series: Series) -> tuple[np.ndarray, str | None]:
    def compute():
        try:
            with np.errstate(all="ignore"):
                return meanfield.predict(series), None
        except NUMERIC as exc:
            return (np.full((series.depth + 1, len(meanfield.THEORY)), math.nan),
                    _why(series, "the mean-field prediction", exc))
    return _cached(("predict", series), compute)


def predict_probes(series: Series, correlation: bool = True, prediction: np.ndarray | None = None,
                   progress: Callable[[int], None] | None = None) -> np.ndarray:
    """meanfield.predict_probes, NaN where it cannot be computed; progress(n) over depth layers.

    `prediction` is accepted for the callers of meanfield.predict_probes; the guarded
    prediction of the same series is used (computed once and kept).
    """
    return _probes(series, correlation, progress)[0].copy()


def _probes(series: Series, correlation: bool, progress=None) -> tuple[np.ndarray, str | None]:
    def compute():
        done = [0]

        def tell(n: int) -> None:
            done[0] += n
            if progress is not None:
                progress(n)

        pred, _ = _predict(series)
        try:
            with np.errstate(all="ignore"):
                return meanfield.predict_probes(series, correlation, pred, tell), None
        except NUMERIC as exc:
            return (np.full((series.depth + 1, len(meanfield.PROBES)), math.nan),
                    _why(series, "the gradient and correlation prediction", exc))
        finally:
            if progress is not None and done[0] < series.depth:
                progress(series.depth - done[0])
    return _cached(("probes", series, bool(correlation)), compute)


def notes(series: tuple[Series, ...], correlation: bool,
          progress: Callable[[int], None] | None = None) -> dict[str, str]:
    """Every series' theory computed (and kept for results.collect); label -> why it is NaN."""
    out = {}
    for s in series:
        why = [n for n in (_predict(s)[1], _probes(s, correlation, progress)[1]) if n]
        if why:
            out[s.label] = "; ".join(why)
    return out


def work(series: tuple[Series, ...]) -> int:
    """Units of progress that notes() reports: each series' depth."""
    return sum(s.depth for s in series)


def fixed_output(series: Series) -> tuple[tuple[float, float] | None, str | None]:
    """((mean, var) of the output at the series' fixed point, None), or (None, why there is none)."""
    def compute():
        try:
            with np.errstate(all="ignore"):
                fp = meanfield.fixed_point(series)
        except NUMERIC as exc:
            return None, _why(series, "the fixed point", exc)
        if fp.status == "fixed" and all(v is not None and math.isfinite(v) for v in (fp.mean, fp.var)):
            return (float(fp.mean), float(fp.var)), None
        return None, fp.note or fp.status
    return _cached(("fixed", series), compute)


def report(series: Series, depth: int | None = None) -> dict:
    """meanfield.report, JSON-safe: non-finite numbers null; a failed analysis says why."""
    try:
        with np.errstate(all="ignore"):
            rep = meanfield.report(series, depth)
    except NUMERIC as exc:
        import dataclasses

        if depth is not None:
            series = dataclasses.replace(series, depth=depth)
        note = _why(series, "the mean-field analysis", exc)
        pred = predict(series)
        rep = {"label": series.label, "status": "unavailable", "note": note, "fixed_point": None,
               "reasons": {"fixed_point": note}, "overflow_layer": None,
               "layers": [{"layer": i, **dict(zip(meanfield.THEORY, row.tolist()))}
                          for i, row in enumerate(pred)]}
    return _finite(rep)


def _finite(value):
    """Non-finite floats (anywhere in a nested report) -> None: strict JSON has no Infinity."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value
