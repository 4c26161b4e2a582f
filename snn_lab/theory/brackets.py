"""The theory's one bracket search: walk geometrically from a point until a function changes
sign. The q-map's fixed point (meanfield.fixed_point, and phase.settle on a grid) and the
correlation map's c* use it."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable


def walk(f: Callable[[float], float], x0: float, f0: float, factor: float,
         bounds: tuple[float, float], noise: Callable[[float], float],
         speedup: int = 0) -> tuple[float, float] | str:
    """(a, b), a < b, around the first resolved change of sign of f on x0 * factor^k, k = 1, 2, ...

    f0 = f(x0) must be resolved (|f0| > noise(x0)); values within noise(x) of 0 are stepped
    over. "beyond" if x leaves bounds first, "overflow" if f stops being finite. speedup
    k > 0 squares the factor every k steps, the bound itself the last point looked at: q's walk
    to 1e+-300 (a q-map that grows or collapses) takes ~20 steps, not ~1000.
    """
    x = x_next = x0
    for step in itertools.count(1):
        if speedup and step % speedup == 0:
            factor *= factor
        at_bound, x_next = x_next in bounds, x_next * factor
        if speedup and not at_bound:  # a long stride looks at the bound itself before "beyond"
            x_next = min(max(x_next, bounds[0]), bounds[1])
        if not bounds[0] <= x_next <= bounds[1]:
            return "beyond"
        f_next = f(x_next)
        if not math.isfinite(f_next):
            return "overflow"
        if abs(f_next) <= noise(x_next):
            continue
        if (f_next > 0) != (f0 > 0):
            return (x, x_next) if x < x_next else (x_next, x)
        x = x_next
