"""The phase grid's fast c* (theory/phase_grid.py): the polar pair rule against closed forms, and
Newton's c* against the bracket search (meanfield.correlation_fixed_point) it stands in for."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy import special

from snn_lab import gaussian
from snn_lab.activations import make_activation
from snn_lab.theory import meanfield as theory
from snn_lab.theory import phase, phase_grid

QS = [1e-3, 0.4, 2.5, 40.0]
CS = [-0.6, 0.0, 0.5, 0.95, 0.9999]


def _polar(f, g, q, c):
    u1, u2, w = gaussian.polar_pair_nodes(q, c)
    return float(np.sum(w * f(u1) * g(u2)))


@pytest.mark.parametrize("q", QS)
def test_polar_rule_matches_the_arc_cosine_and_arcsine_closed_forms(q):
    """ReLU: E[relu u1 relu u2] = q (sqrt(1 - c^2) + (pi - arccos c) c) / (2 pi) (Cho and Saul 2009);
    its step derivative: P(u1 > 0, u2 > 0) = 1/4 + arcsin(c) / (2 pi) (Sheppard 1899); erf:
    E[erf u1 erf u2] = (2/pi) arcsin(2 q c / (1 + 2 q)) (Williams 1997). Kinks at 0 and a smooth
    bend alike, to rounding relative to the second moment."""
    relu, step = (lambda x: np.maximum(x, 0.0)), (lambda x: (x > 0).astype(float))
    for c in CS:
        cos = q * (math.sqrt(1 - c * c) + (math.pi - math.acos(c)) * c) / (2 * math.pi)
        assert _polar(relu, relu, q, c) == pytest.approx(cos, rel=1e-13, abs=1e-14 * q)
        assert _polar(step, step, q, c) == pytest.approx(0.25 + math.asin(c) / (2 * math.pi), abs=1e-14)
        arcsine = 2 / math.pi * math.asin(2 * q * c / (1 + 2 * q))
        second = 2 / math.pi * math.asin(2 * q / (1 + 2 * q))
        assert abs(_polar(special.erf, special.erf, q, c) - arcsine) <= 1e-13 * second


@pytest.mark.parametrize("name", ["tanh", "selu", "gelu"])
def test_polar_rule_matches_nested_quadrature_for_activations_without_a_pair_form(name):
    """tanh, SELU, GELU have no closed pair moment: the lean rule and pair_expect's nested rule (a
    different construction) agree to rounding relative to E[phi^2], for phi and phi'."""
    act = make_activation(name)
    for q in QS[1:3]:
        scale = [gaussian.expect(lambda x, f=f: f(x) ** 2, 0.0, math.sqrt(q), act.kinks) for f in (act.fn, act.deriv)]
        for c in CS[1:]:
            for f, s in zip((act.fn, act.deriv), scale):
                assert abs(_polar(f, f, q, c) - gaussian.pair_expect(f, act.kinks, q, c)) <= 5e-14 * s


# Chaotic points (sigma_w^2, sigma_b^2), one with alpha dropout (c = 1 maps below 1 there).
POINTS = [("tanh", 2.8, 0.1, 0.0), ("tanh", 4.0, 1.5, 0.0), ("selu", 1.6, 0.4, 0.0),
          ("selu", 1.2, 0.2, 0.1), ("tanh", 3.0, 0.2, 0.05)]


@pytest.mark.parametrize("name, weight_var, bias_var, dropout", POINTS)
def test_newton_c_star_is_the_bracket_search_c_star(name, weight_var, bias_var, dropout):
    """The grid's fast path returns the numbers of the plain per-point search: c* to 1e-10 and
    xi_c = -1/ln chi_c to 1e-9, whether Newton starts at no neighbour, below c*, or above it."""
    series = phase.at(dataclasses.replace(phase.template(name), dropout=dropout), weight_var, bias_var)
    _, q = phase.settle(series)
    c, chi = theory.correlation_fixed_point(series, q)
    assert 0.0 < c < 1.0 and chi < 1.0
    for near in (None, 0.5 * c, c + 0.5 * (1.0 - c)):
        fast_c, fast_chi = phase_grid.correlation_fixed_point(series, q, near)
        assert fast_c == pytest.approx(c, rel=1e-10)
        assert -1.0 / math.log(fast_chi) == pytest.approx(-1.0 / math.log(chi), rel=1e-9)


def test_a_point_off_the_chaotic_side_keeps_c_star_one_without_a_2d_quadrature(monkeypatch):
    """Ordered (chi_1 < 1, no dropout): c* = 1 and chi_c = chi_1, from 1-D quadratures alone."""
    monkeypatch.setattr(phase_grid, "maps", lambda *a: pytest.fail("a 2-D evaluation on the ordered side"))
    series = phase.at(phase.template("tanh"), 1.5, 0.5)
    _, q = phase.settle(series)
    c, chi = phase_grid.correlation_fixed_point(series, q)
    assert c == 1.0 and chi == pytest.approx(theory.chi1(series, q), rel=1e-12) and chi < 1.0
