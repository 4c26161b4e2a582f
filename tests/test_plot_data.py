"""The data behind the run figures, against independent truths: every default figure's panels
hold data, each series' map and fixed point are its own (roots found here with scipy), the
histograms' densities are the closed forms, the convergence distances follow the fixed point."""

from __future__ import annotations

import math

import numpy as np
import pytest
from click.testing import CliRunner
from matplotlib.collections import Collection
from matplotlib.patches import Polygon
from scipy import integrate, optimize

from snn_lab import plot, results
from snn_lab.activations import ALPHA01, LAMBDA01
from snn_lab.cli import main
from snn_lab.plot.convergence import convergence_data
from snn_lab.plot.histograms import histogram_panels
from snn_lab.plot.probes import measured_panels
from snn_lab.plot.layer_map import field, fixed_line, map_data
from snn_lab.statistics import SETTLE

FOUR = """\
name: four
trials: 2
width: 32
depth: 16
batch: 32
dtype: float64
series:
  - {label: SELU, activation: selu}
  - {label: ReLU, activation: relu}
  - {label: ReLU (He), activation: relu, init: he_normal}
  - {label: SELU 3/4, activation: selu, gain: 0.75}
  - {label: SELU from 2, activation: selu, input: {mean: 0.3, var: 2.0}}
"""


def _run(out, *args, text=None):
    done = CliRunner().invoke(main, ["run", *args, "--out", str(out), "-q"], input=text, catch_exceptions=False)
    assert done.exit_code == 0, done.output
    return results.read(out)


@pytest.fixture(scope="module")
def default(tmp_path_factory):
    """The default experiment (selu_vs_relu) at tiny sizes."""
    return _run(tmp_path_factory.mktemp("d") / "r", "selu_vs_relu", "--set", "width=16", "--set", "depth=8",
                "--set", "batch=16", "--set", "trials=2")


@pytest.fixture(scope="module")
def four(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("f") / "r", "-", text=FOUR)


def _selu(x):
    return np.where(x > 0, LAMBDA01 * x, LAMBDA01 * ALPHA01 * np.expm1(np.minimum(x, 0.0)))


def _gauss(f, q: float) -> float:
    """E f(h), h ~ N(0, q), by scipy quad (split at the kink)."""
    s = math.sqrt(q)

    def dens(x):
        return f(x) * math.exp(-x * x / (2 * q)) / (s * math.sqrt(2 * math.pi))

    return sum(integrate.quad(dens, a, b, epsabs=1e-14, epsrel=1e-12)[0] for a, b in ((-40 * s, 0), (0, 40 * s)))


def _selu_out(q: float) -> tuple[float, float]:
    m = _gauss(_selu, q)
    return m, _gauss(lambda x: _selu(x) ** 2, q) - m * m


def _has_data(ax) -> bool:
    """A panel shows data: a line with a finite point, a filled or hatched area, or arrows."""
    for line in ax.get_lines():
        x, y = (np.asarray(v, dtype=float) for v in line.get_data())
        if (np.isfinite(x) & np.isfinite(y)).any():
            return True
    return any(isinstance(c, Collection) and len(c.get_paths()) or hasattr(c, "U") for c in ax.collections) or \
        any(isinstance(p, Polygon) for p in ax.patches)


def test_default_run_figures_have_no_empty_panel(default):
    """Every figure drawn by default for the default experiment: each Axes holds data."""
    names = [n for n in plot.FIGURES if n not in plot.OPTIONAL_FIGURES or plot.OPTIONAL_FIGURES[n](default)]
    assert {"convergence", "map", "histograms", "probes"} <= set(names)
    for name in names:
        fig = plot.FIGURES[name](default)
        assert fig.axes, name
        for ax in fig.axes:
            assert _has_data(ax), f"{name}: the panel {ax.get_title(loc='left')!r} is empty"


def test_probes_draw_only_what_was_measured(default, tmp_path):
    """The default measure (dead, correlation): two panels, the gradient named as not measured;
    measure: [] draws no probes figure by default."""
    assert [p[0] for p in measured_panels(default)] == ["dead_fraction", "correlation"]
    fig = plot.probes(default)
    assert len(fig.axes) == 2 and "gradients" in fig._supxlabel.get_text()
    none = _run(tmp_path / "n", "selu_vs_relu", "--set", "width=8", "--set", "depth=2", "--set", "batch=8",
                "--set", "trials=2", "--set", "measure=[]")
    assert not plot.OPTIONAL_FIGURES["probes"](none)
    assert plot.probes(none).axes == []  # asked for by name: a note, no empty panel


def test_each_series_gets_its_own_fixed_point(four):
    """SELU: (0, 1) (Klambauer et al. 2017); SELU with gain 3/4: the root of q = 0.5625 E selu(h)^2,
    h ~ N(0, q), found here with brentq, not SELU's (0, 1); ReLU collapses; ReLU (He) is marginal."""
    data = {d["label"]: d for d in map_data(four)}
    assert data["SELU"]["fixed"] == pytest.approx((0.0, 1.0), abs=1e-9)
    def excess(q):  # the next layer's q minus this one's: sigma_w^2 E[y^2] - q
        m, v = _selu_out(q)
        return 0.5625 * (v + m * m) - q

    q = optimize.brentq(excess, 1e-3, 1.0, xtol=1e-14)
    assert data["SELU 3/4"]["fixed"] == pytest.approx(_selu_out(q), abs=1e-8)
    assert data["SELU 3/4"]["fixed"][1] < 0.5  # far from gain 1's attractor
    assert data["ReLU"]["fixed"] is None and data["ReLU"]["status"] == "collapses"
    assert data["ReLU (He)"]["fixed"] is None and data["ReLU (He)"]["status"] == "marginal"
    # The figure: the star in each series' panels sits at that series' own fixed point, and the
    # series without one say so in their titles.
    fig = plot.layer_map(four)
    titles = {ax.get_title(loc="left").split(": every layer")[0]: ax for ax in fig.axes
              if "every layer" in ax.get_title(loc="left")}
    for label in ("SELU", "SELU 3/4"):
        stars = [ln for ln in titles[label].get_lines() if ln.get_marker() == "*"]
        assert len(stars) == 1
        np.testing.assert_allclose(np.ravel(stars[0].get_data()), data[label]["fixed"], atol=1e-12)
    assert "no fixed point" in titles["ReLU"].get_title(loc="left")
    assert "every q is a fixed point" in titles["ReLU (He)"].get_title(loc="left")


def test_marginal_relu_he_line_is_var_equal_pi_minus_1_mean_squared(four):
    """ReLU of N(0, q): mean sqrt(q / 2 pi), E y^2 = q / 2, so every fixed point of He-initialized
    ReLU has var = (pi - 1) mean^2."""
    series = next(d["series"] for d in map_data(four) if d["label"] == "ReLU (He)")
    line = fixed_line(series, np.geomspace(1e-3, 1e3, 7))
    np.testing.assert_allclose(line[:, 1], (math.pi - 1) * line[:, 0] ** 2, rtol=1e-12)


def test_map_arrows_are_the_series_own_layer_map(four):
    """SELU with gain 3/4 and random LeCun weights: from (mu, nu) the next layer's output is SELU's
    moments at q = 0.5625 (nu + mu^2), integrated here."""
    series = next(d["series"] for d in map_data(four) if d["label"] == "SELU 3/4")
    mu, nu, du, dv = field(series, np.array([-0.2, 0.3]), np.array([0.5, 1.5]))
    for i in range(2):
        for j in range(2):
            m, v = _selu_out(0.5625 * (nu[i, j] + mu[i, j] ** 2))
            assert (mu[i, j] + du[i, j], nu[i, j] + dv[i, j]) == pytest.approx((m, v), abs=1e-10)


def test_histogram_density_is_the_closed_form_at_the_theory_q(four):
    """ReLU (He) keeps q = 2 (input N(0, 1), sigma_w^2 = 2): half-normal density of variance 2
    above 0 and a point mass 1/2 at 0; SELU's layer 1 has q = 1. The figure draws those curves."""
    panels = histogram_panels(four)
    y = np.linspace(0.05, 5.0, 40)
    for panel in panels["ReLU (He)"]:
        assert panel["q"] == pytest.approx(2.0, rel=1e-12)
        np.testing.assert_allclose(panel["density"](y), np.exp(-y * y / 4) / math.sqrt(4 * math.pi), rtol=1e-12)
        assert panel["atoms"] == ((0.0, 0.5),)
    first = panels["SELU"][0]
    assert first["layer"] == 1 and first["q"] == pytest.approx(1.0, rel=1e-12)
    x = np.array([-1.0, 0.5, 2.0])  # SELU's inverse: x / lambda above 0, log(1 + y / (lambda alpha)) below
    h = np.where(x > 0, x / LAMBDA01, np.log1p(x / (LAMBDA01 * ALPHA01)))
    jac = np.where(x > 0, 1 / LAMBDA01, 1 / (LAMBDA01 * ALPHA01 + x))
    np.testing.assert_allclose(first["density"](x), np.exp(-h * h / 2) / math.sqrt(2 * math.pi) * jac, rtol=1e-12)
    fig = plot.histograms(four)
    dashed = [ln for ax in fig.axes for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    assert len(dashed) == sum(len(p) for p in panels.values())  # one theory curve per panel


def test_convergence_distance_and_settle_marks_follow_the_fixed_point(four):
    """SELU started at (0.3, 2): its distance from (0, 1) is max(|mu|, |nu - 1|) per layer; the
    triangle sits at the first layer from which it stays within SETTLE. ReLU's variance (2^-16
    of its start) gets the log panel; the series without a fixed point are named, not drawn."""
    data = convergence_data(four)
    rows = four.series_summary("SELU from 2")
    sim, pred = data["distance"]["SELU from 2"]
    np.testing.assert_allclose(sim, np.maximum(np.abs(rows["mean"]), np.abs(rows["var"] - 1)), atol=1e-9)
    np.testing.assert_allclose(pred, np.maximum(np.abs(rows["theory_mean"]), np.abs(rows["theory_var"] - 1)),
                               atol=1e-9)
    within = pred <= SETTLE
    first = next(i for i in range(len(within)) if within[i:].all())
    assert data["settle"]["SELU from 2"][1] == first > 0
    assert "ReLU" in data["log"] and "SELU" in data["linear"] and "ReLU (He)" in data["linear"]
    assert set(data["distance"]) == {"SELU", "SELU 3/4", "SELU from 2"}
    fig = plot.convergence(four)
    dist = fig.axes[-1]
    assert dist.get_yscale() == "log"
    marks = [ln for ln in dist.get_lines() if ln.get_marker() == "^"]
    assert first in {float(ln.get_xdata()[0]) for ln in marks}
    assert any("ReLU (He)" in t.get_text() and "ReLU:" in t.get_text() for t in dist.texts)
