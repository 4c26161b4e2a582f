"""The theory's bracket search (brackets.walk) and the q-map fixed point that walks with it:
closed forms, and how few steps a long walk takes with its stride growing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from snn_lab import theory
from snn_lab.theory import brackets, meanfield, phase

EPS = float(np.finfo(np.float64).eps)


def counted(f):
    """f, and a list whose length is the number of calls made so far."""
    calls = []

    def g(x):
        calls.append(x)
        return f(x)
    return g, calls


@pytest.mark.parametrize("root", [3.0, 1e7, 1e30, 0.95e40])
def test_a_growing_stride_still_brackets_the_first_root(root):
    """One sign change anywhere in (1, 1e40), the last stretch included (16^33 < 0.95e40 <
    16^34: a plain walk by 16 steps past it)."""
    f, calls = counted(lambda x: math.log(root) - math.log(x))
    lo, hi = brackets.walk(f, 1.0, f(1.0), 16.0, (1e-40, 1e40), lambda x: 0.0, speedup=4)
    assert lo <= root <= hi
    assert len(calls) <= 20
    assert brackets.walk(lambda x: math.log(0.95e40) - math.log(x), 1.0, 1.0, 16.0, (1e-40, 1e40),
                          lambda x: 0.0) == "beyond"


def test_a_growing_stride_reports_beyond_after_the_bound():
    f, calls = counted(lambda x: 1.0)
    assert brackets.walk(f, 1.0, 1.0, 2.0, (1e-300, 1e300), lambda x: 0.0, speedup=4) == "beyond"
    assert calls[-1] == 1e300 and len(calls) < 40  # by doublings alone: 997 calls
    f, calls = counted(lambda x: 1.0)
    assert brackets.walk(f, 1.0, 1.0, 0.5, (1e-300, 1e300), lambda x: 0.0, speedup=4) == "beyond"
    assert calls[-1] == 1e-300 and len(calls) < 40


def test_a_fixed_point_far_from_the_input_is_the_closed_form():
    """Linear units: q -> sigma_w^2 q + sigma_b^2, q* = sigma_b^2 / (1 - sigma_w^2), here 10^6 times
    the input's q: twenty doublings away. The map's excess cancels to eps q* / sigma_b^2."""
    weight_var, bias_var = 1.0 - 1e-6, 2.0
    fp = theory.fixed_point(phase.at(phase.template("linear"), weight_var, bias_var))
    exact = bias_var / (1.0 - weight_var)
    assert fp.status == "fixed"
    assert fp.q == pytest.approx(exact, rel=100 * EPS * exact / bias_var)


@pytest.mark.parametrize("weight_var, bias_var, status", [(1.5, 1.0, "grows"), (0.5, 0.0, "collapses")])
def test_a_map_that_grows_or_collapses_is_called_so_in_a_few_dozen_maps(weight_var, bias_var, status, monkeypatch):
    calls = []
    real = meanfield.q_map
    monkeypatch.setattr(meanfield, "q_map", lambda *a, **k: calls.append(a) or real(*a, **k))
    assert theory.fixed_point(phase.at(phase.template("linear"), weight_var, bias_var)).status == status
    assert len(calls) < 60  # by doublings to 1e+-300: about 1000
