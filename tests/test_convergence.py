"""'In how many layers does it converge?': the settled columns, against closed forms."""

from __future__ import annotations

import math

import numpy as np

from snn_lab import theory
from snn_lab.executors import simulate
from snn_lab.results import to_json
from snn_lab.statistics import SETTLE, settle_layer, settled

from conftest import experiment


def test_settled_marks_the_layers_from_which_every_later_one_is_within_tolerance():
    mean = np.zeros(6)
    var = np.array([4.0, 1.2, 1.04, 1.2, 1.01, 0.99])  # in, out, in, out, in, in
    s = settled(mean, var, (0.0, 1.0))
    assert s.tolist() == [0, 0, 0, 0, 1, 1] and settle_layer(s) == 4
    assert settle_layer(settled(mean, np.full(6, 1.2), (0.0, 1.0))) is None  # never
    assert np.isnan(settled(mean, var, None)).all() and settle_layer(settled(mean, var, None)) is None
    # The mean's tolerance is in units of the fixed point's sd: 0.05 * sqrt(4) = 0.1.
    assert settled(np.array([0.09, 0.11]), np.array([4.0, 4.0]), (0.0, 4.0)).tolist() == [0.0, 0.0]
    assert settled(np.array([0.11, 0.09]), np.array([4.0, 4.0]), (0.0, 4.0)).tolist() == [0.0, 1.0]


def test_selu_from_var_4_settles_where_the_q_map_says():
    """The theory's layer, against the map walked by hand: SELU's fixed point is (0, 1) and var 4
    decays toward it (Klambauer et al. 2017, Theorem 2). With random LeCun weights a layer's
    pre-activation is N(0, E[x^2] of the layer below); the layer where mean and variance
    both stay within 5% follows from walking that, layer by layer."""
    exp = experiment("""name: t
trials: 4
width: 256
batch: 256
depth: 30
dtype: float64
series: [{label: v4, activation: selu, input: {mean: 0, var: 4}}]
""")
    s = exp.series[0]
    (mu, nu), why = theory.fixed_output(s)
    assert why is None and abs(mu) < 1e-9 and abs(nu - 1.0) < 1e-9
    act, q = s.make_activation(), 4.0  # q: the pre-activation variance, the layer below's E[x^2]
    walked = []
    for _ in range(s.depth):
        m, q = theory.output_moments(act, 0.0, q)  # E[selu(h)], E[selu(h)^2] for h ~ N(0, q)
        walked.append(abs(m) <= SETTLE and abs(q - m * m - 1) <= SETTLE)
    expected = next(i + 1 for i in range(len(walked)) if all(walked[i:]))
    res = simulate(exp)
    got = to_json(res)["series"][0]["settles_at"]
    assert got["theory"] == expected
    # The simulation (4 networks of width 256) lands within a few layers of it: the variance
    # approaches 1 geometrically, so a 5% band is crossed at a layer that noise moves little.
    assert got["simulation"] is not None and abs(got["simulation"] - expected) <= 3


def test_a_series_without_a_fixed_point_says_why():
    exp = experiment("""name: t
trials: 2
width: 16
batch: 16
depth: 5
series: [{label: lecun, activation: relu}, {label: he, activation: relu, init: he_normal}]
""")
    res = simulate(exp)
    points = res.meta["fixed_points"]
    assert "collapses" in points["lecun"]["note"] and "marginal" in points["he"]["note"]
    assert all(s["settles_at"] == {"simulation": None, "theory": None} for s in to_json(res)["series"])
    assert math.isnan(res.summary["settled"][0])
