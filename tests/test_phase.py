"""The phase diagram (phase.py, `snn-lab theory --phase`) against closed forms, published points
and an mpmath parametrization of the tanh critical line; the CLI through CliRunner."""

from __future__ import annotations

import csv
import json
import math

import mpmath
import numpy as np
import pytest
from conftest import assert_matches, cli_runner, erf_q_map
from scipy import optimize

from snn_lab import plot, results
from snn_lab.activations import ALPHA01, LAMBDA01
from snn_lab.cli import main
from snn_lab.theory import phase

mp = mpmath.MPContext()  # a private context: other test modules keep their precision
mp.dps = 25
TANH, RELU, SELU = (phase.template(a) for a in ("tanh", "relu", "selu"))


# ---- the critical line of tanh ---------------------------------------------------------------

def test_tanh_without_bias_is_critical_at_weight_variance_one():
    """sigma_b^2 = 0: q* = 0 on the ordered side and tanh'(0) = 1, so chi_1 = sigma_w^2 there and
    the line starts at sigma_w^2 = 1 exactly (Poole et al. 2016; Schoenholz et al. 2017, Fig. 1).
    Just above 1, chi_1 - 1 is second order in sigma_w^2 - 1, hence 1e-6, not rounding level."""
    assert phase.critical_weight_var(TANH, 0.0, 0.8, 1.3) == pytest.approx(1.0, abs=1e-6)
    d = phase.diagram(TANH, [0.55, 0.85, 1.15, 1.45], [0.0, 0.3])
    assert d.critical[0] == pytest.approx(1.0, abs=1e-6)
    ordered = d.status[0] == "collapses"
    assert ordered.tolist() == [True, True, False, False]
    np.testing.assert_allclose(d.chi1[0][ordered], d.weight_var[ordered], rtol=1e-12)


def test_tanh_critical_line_at_a_published_point():
    """Schoenholz, Gilmer, Ganguli, Sohl-Dickstein (2017), "Deep Information Propagation" (ICLR):
    their tanh training experiments use sigma_b^2 = 0.05, where the order-to-chaos transition is
    at sigma_w^2 ~ 1.76 (published to two decimals: tolerance half a unit in the last place plus
    a margin)."""
    assert phase.critical_weight_var(TANH, 0.05, 1.0, 3.0) == pytest.approx(1.76, abs=0.006)


@pytest.mark.parametrize("q_star", [0.05, 0.3, 1.0, 2.5, 6.0])
def test_tanh_critical_line_matches_its_mpmath_parametrization(q_star):
    """On the line, q* and chi_1 = 1 fix both variances (Poole et al. 2016, eqs. 3 and 7):
    sigma_w^2 = 1 / E[sech^4(sqrt(q*) z)], sigma_b^2 = q* - sigma_w^2 E[tanh^2(sqrt(q*) z)],
    evaluated here with mpmath, independently of the project's quadrature and root finding."""
    s = mp.sqrt(mp.mpf(q_star))
    gauss = lambda f: mp.quad(lambda z: f(s * z) * mp.exp(-z * z / 2), [-mp.inf, 0, mp.inf]) / mp.sqrt(2 * mp.pi)
    weight = 1 / gauss(lambda x: mp.sech(x) ** 4)
    bias = mp.mpf(q_star) - weight * gauss(lambda x: mp.tanh(x) ** 2)
    w, b = float(weight), float(bias)
    assert b > 0
    assert phase.critical_weight_var(TANH, b, 0.8 * w, 1.25 * w) == pytest.approx(w, rel=1e-9)


def test_the_drawn_critical_line_is_dense_and_every_point_has_chi1_one():
    """Between grid rows the line is refined too (a figure's line is not a polyline over rows)."""
    d = phase.diagram(TANH, np.linspace(0.5, 3.0, 11), np.linspace(0.0, 0.2, 3))
    assert d.line.shape == (2 * phase.LINE_DENSITY + 1, 2)
    assert np.all(np.diff(d.line[:, 0]) > 0) and np.all(np.diff(d.line[:, 1]) > 0)  # tanh: rises with bias
    for b, w in d.line:
        assert abs(phase._chi_excess(TANH, w, b)) < 1e-9


# ---- closed forms: ReLU, SELU ----------------------------------------------------------------

def test_relu_chi1_is_half_the_weight_variance_everywhere():
    """phi' = 1{z > 0}: E[phi'^2] = 1/2 at any q, so chi_1 = sigma_w^2 / 2 whether q settles,
    collapses (sigma_b^2 = 0, sigma_w^2 < 2) or grows (sigma_w^2 > 2), and the critical line is
    sigma_w^2 = 2 for every sigma_b^2 (2 is not a grid point here)."""
    w = np.linspace(0.55, 4.05, 15)
    d = phase.diagram(RELU, w, [0.0, 0.1, 0.7, 1.5])
    np.testing.assert_allclose(d.chi1, np.broadcast_to(w / 2, d.chi1.shape), rtol=1e-12)
    np.testing.assert_allclose(d.critical, 2.0, rtol=1e-12)
    assert set(d.status[0]) == {"collapses", "grows"} and "fixed" in set(d.status[1])


def test_selu_with_lecun_init_sits_slightly_on_the_chaotic_side():
    """At the SELU fixed point q* = 1 (sigma_w^2 = 1, sigma_b^2 = 0), chi_1 = E[selu'(z)^2] =
    lambda^2 (1/2 + alpha^2 e^2 Phi(-2)), z ~ N(0, 1): 1.0716, the value the README states."""
    truth = LAMBDA01 ** 2 * (0.5 + ALPHA01 ** 2 * math.exp(2.0) * 0.5 * math.erfc(2.0 / math.sqrt(2.0)))
    point = phase.grid_point(phase.at(SELU, 1.0, 0.0))
    assert point["status"] == "fixed" and point["q_star"] == pytest.approx(1.0, rel=1e-12)
    assert point["chi1"] == pytest.approx(truth, rel=1e-12)
    assert round(truth, 4) == 1.0716 and point["region"] == "chaotic"


# ---- regions and the correlation depth ---------------------------------------------------------

@pytest.mark.parametrize("tmpl", [TANH, SELU], ids=["tanh", "selu"])
def test_region_labels_follow_the_sign_of_chi1_minus_one(tmpl):
    """ordered where chi_1 < 1, chaotic where chi_1 > 1 (Poole et al. 2016)."""
    d = phase.diagram(tmpl, np.linspace(0.4, 4.0, 10), np.linspace(0.0, 1.0, 5), correlation=False)
    expected = np.where(d.chi1 < 1.0, "ordered", "chaotic")
    assert (d.region == expected).all()
    assert {"ordered", "chaotic"} <= set(d.region.ravel())


def test_correlation_depth_diverges_toward_the_critical_line():
    """Ordered side: c* = 1 and chi_c(1) = chi_1, so xi_c = -1/ln chi_1 (Schoenholz et al. 2017,
    eq. 9), which grows without bound as chi_1 -> 1; on the chaotic side c* < 1 and xi_c is finite."""
    crit = phase.critical_weight_var(TANH, 0.5, 1.0, 5.0)
    w = crit - np.array([1.5, 0.8, 0.3, 0.1, 0.02, 0.002])
    d = phase.diagram(TANH, np.append(w, crit + 0.5), [0.5])
    xi, chi = d.xi_c[0], d.chi1[0]
    assert (d.region[0][:-1] == "ordered").all() and d.region[0][-1] == "chaotic"
    assert (np.diff(xi[:-1]) > 0).all() and xi[-2] > 100
    np.testing.assert_allclose(xi[:-1], -1.0 / np.log(chi[:-1]), rtol=1e-9)
    assert (d.c_star[0][:-1] == 1.0).all() and 0 < d.c_star[0][-1] < 1 and 0 < xi[-1] < 100


def _arcsine_fixed_points(s) -> tuple[float, float, float]:
    """(q*, c*, chi_c at c*) of erf from Williams' (1997) closed forms, by scipy's brentq alone:
    q_map(q) - q falls from sigma_b^2 > 0; chaotic, c_map(c) - c falls from c_map(0) > 0 to < 0
    just below c = 1 (slope chi_1 > 1 there)."""
    sw2, sb2 = s.weight_var, s.bias_var
    q = optimize.brentq(lambda q: erf_q_map(s, q) - q, 1e-9, sw2 + sb2 + 1, xtol=1e-300, rtol=1e-15)
    pair = lambda c: sw2 * 2 / math.pi * math.asin(2 * q * c / (1 + 2 * q)) + sb2 - c * q
    c = optimize.brentq(pair, 0.0, 1 - 1e-9, xtol=1e-300, rtol=1e-15) if pair(1 - 1e-9) < 0 else 1.0
    return q, c, sw2 * 4 / math.pi / math.sqrt((1 + 2 * q) ** 2 - (2 * q * c) ** 2)


def test_chaotic_side_c_star_and_xi_c_solve_the_arcsine_maps(erf_registered):
    """erf's correlation map is the arcsine kernel (Williams 1997): on the chaotic side the grid's
    c* < 1 solves it, chi_c is its slope there (< 1: stable) and xi_c = -1/ln chi_c (Schoenholz et
    al. 2017); on the ordered side c* = 1 and chi_c = chi_1, as before. The grid starts each c*
    search at a neighbour's: it must land on the same root."""
    tmpl = phase.template("erf_stub")
    d = phase.diagram(tmpl, [0.5, 1.2, 2.0, 3.0], [0.05, 0.6])
    assert {"ordered", "chaotic"} <= set(d.region.ravel())
    for (i, j), region in np.ndenumerate(d.region):
        q, c, chi = _arcsine_fixed_points(phase.at(tmpl, d.weight_var[j], d.bias_var[i]))
        assert d.q_star[i, j] == pytest.approx(q, rel=1e-12)
        assert (region == "chaotic") == (c < 1.0)
        assert d.c_star[i, j] == pytest.approx(c, rel=1e-10) and d.xi_c[i, j] == pytest.approx(-1 / math.log(chi), rel=1e-9)
        if region == "ordered":
            assert d.c_star[i, j] == 1.0 and chi == pytest.approx(d.chi1[i, j], rel=1e-12)


def test_tanh_chaotic_c_star_against_monte_carlo():
    """At the grid's tanh q* and c* < 1, sampled pairs (u1, u2) of variance q* and correlation c*
    give sigma_w^2 E[tanh u1 tanh u2] + sigma_b^2 = c* q*, sigma_w^2 E[tanh'(u1) tanh'(u2)] = chi_c
    and sigma_w^2 E[tanh^2 u1] + sigma_b^2 = q*, within the samples' standard errors."""
    d = phase.diagram(TANH, [2.0, 3.5], [0.3])
    sw2, sb2 = 3.5, 0.3
    q, c, xi = d.q_star[0, 1], d.c_star[0, 1], d.xi_c[0, 1]
    assert d.region[0, 1] == "chaotic" and 0 < c < 1
    z = np.random.default_rng(20).standard_normal((2, 400_000))
    u1, u2 = math.sqrt(q) * z[0], math.sqrt(q) * (c * z[0] + math.sqrt(1 - c * c) * z[1])
    t1, t2 = np.tanh(u1), np.tanh(u2)
    samples = np.stack([sw2 * t1 * t2 + sb2, sw2 * (1 - t1 ** 2) * (1 - t2 ** 2), sw2 * t1 ** 2 + sb2], axis=1)
    assert_matches(samples, [c * q, math.exp(-1 / xi), q], family_size=3, what="tanh c*, chi_c, q*")


def test_to_json_turns_non_finite_numbers_into_null():
    d = phase.diagram(TANH, [0.5, 3.0], [0.0, 0.2])
    out = json.loads(json.dumps(d.to_json()))
    assert out["q_star"][0][0] is None  # collapsed: no q* > 0
    assert [p["bias_var"] for p in out["critical_line"]] == [0.0, 0.2]
    assert len(out["chi1"]) == 2 and len(out["chi1"][0]) == 2


# ---- the command line ------------------------------------------------------------------------

SMALL = ["--weight-var", "0.5,3.5,7", "--bias-var-range", "0,0.5,3"]


def invoke(*args):
    return cli_runner().invoke(main, ["theory", *map(str, args)], catch_exceptions=False)


def test_phase_writes_the_figure_and_a_summary(tmp_path):
    out = invoke("--phase", "--activation", "tanh", *SMALL, "--out", tmp_path / "p.png")
    assert out.exit_code == 0, out.output
    assert (tmp_path / "p.png").stat().st_size > 10_000
    assert "sigma_b^2 = 0        sigma_w^2 = 1.0000" in out.output
    assert f"wrote {tmp_path / 'p.png'}" in out.output


def test_phase_json_has_the_grid_and_the_critical_line(tmp_path):
    out = invoke("--phase", "--activation", "relu", *SMALL, "--out", tmp_path / "p.svg", "--json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["weight_var"] == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5] and data["bias_var"] == [0.0, 0.25, 0.5]
    assert [len(data[k]) for k in ("chi1", "region", "xi_c", "q_star")] == [3, 3, 3, 3]
    assert [p["weight_var"] for p in data["critical_line"]] == [2.0, 2.0, 2.0]
    assert data["figure"] == str(tmp_path / "p.svg") and (tmp_path / "p.svg").is_file()


@pytest.mark.parametrize("args, message", [
    (["--weight-var", "1,2"], "error: --weight-var: expected START,STOP,N (two numbers and a count), "
                              "e.g. 0.5,4.5,41; found '1,2'"),
    (["--weight-var", "0,4,41"], "error: --weight-var: START is a variance and must be > 0; found 0 "
                                 "(nearest valid: 0.1, e.g. 0.5,4.5,41)"),
    (["--bias-var-range", "-1,2,21"], "error: --bias-var-range: START is a variance and must be >= 0; "
                                      "found -1 (nearest valid: 0, e.g. 0,2,21)"),
    (["--bias-var-range", "2,1,5"], "error: --bias-var-range: STOP must be greater than START"),
    (["--weight-var", "0.5,4,5000"], "error: --weight-var: N must be an integer in [2, 401]; found 5000 "
                                     "(nearest valid: 401)"),
    (["--gain", "1.2"], "error: --gain has no effect with --phase"),
    (["--out", "p.txt"], "error: --out: unknown figure format '.txt' (expected a file ending in one of: "
                         ".png, .svg, .pdf)"),
])
def test_bad_phase_options_exit_2_naming_the_option(tmp_path, args, message):
    args = [tmp_path / a if a == "p.txt" else a for a in args]
    out = invoke("--phase", "--activation", "tanh", *args)
    assert out.exit_code == 2
    assert out.output.startswith(message), out.output


def test_phase_needs_one_activation_and_grid_options_need_phase():
    out = invoke("--phase")
    assert out.exit_code == 2 and "Name one with --activation (one of: selu, relu" in out.output
    out = invoke("--activation", "tanh", "--weight-var", "1,2,3")
    assert out.exit_code == 2
    assert out.output.startswith("error: --weight-var applies only with --phase")


def sweep_csv(folder, series=("SELU",), drop=(), gains=(0.9, 1.0, 1.1)):
    """A synthetic sweep folder (the contract: sweep.json, sweep.csv): 3 gain points x layers 0..2 per
    series; the columns the overlay does not read are NaN."""
    folder.mkdir()
    (folder / "sweep.json").write_text(json.dumps({
        "sweep_version": 1, "keys": ["gain"], "axes": {"gain": list(gains)}, "complete": True,
        "points": [{"name": f"gain={g}", "values": {"gain": g}} for g in gains]}))
    columns = ["point", "gain", "sigma_w2", "sigma_b2", *results.SUMMARY_COLUMNS]
    with open(folder / "sweep.csv", "w", newline="") as f:
        out = csv.writer(f)
        out.writerow([c for c in columns if c not in drop])
        for gain in gains:
            for label in series:
                for layer in range(3):
                    row = dict(point=f"gain={gain}", gain=gain, sigma_w2=gain * gain, sigma_b2=0.0,
                               series=label, activation="selu", init="lecun_normal", layer=layer,
                               trials=4, mean=0.0, var=gain ** (2 * layer), theory_var=1.0)
                    out.writerow([row.get(c, "nan") for c in columns if c not in drop])
    return folder


def test_overlay_reads_one_series_at_each_points_last_layer(tmp_path):
    marks = plot.phase_overlay(sweep_csv(tmp_path / "s"), "var")
    np.testing.assert_allclose(marks["weight_var"], [0.81, 1.0, 1.21])
    np.testing.assert_allclose(marks["value"], [0.9 ** 4, 1.0, 1.1 ** 4])
    out = invoke("--phase", "--activation", "selu", *SMALL, "--out", tmp_path / "p.png",
                 "--overlay", tmp_path / "s", "--layer", 1)
    assert out.exit_code == 0, out.output
    assert "overlay: 3 sweep points, var of SELU" in out.output and (tmp_path / "p.png").is_file()


def test_overlay_of_a_real_sweep_marks_each_point_with_its_last_layer(tmp_path):
    config = tmp_path / "edge.yaml"
    config.write_text("name: edge\ntrials: 2\nwidth: 32\ndepth: 4\nbatch: 16\ndtype: float64\n"
                      "series: [{label: tanh, activation: tanh}]\n"
                      "sweep: {gain: [0.8, 1.5], bias_var: [0.0, 0.1]}\n")
    ran = cli_runner().invoke(main, ["run", str(config), "--out", str(tmp_path / "s"), "-q"], catch_exceptions=False)
    assert ran.exit_code == 0, ran.output
    marks = plot.phase_overlay(tmp_path / "s", "var")
    assert len(marks["point"]) == 4
    for point, w, b, value in zip(marks["point"], marks["weight_var"], marks["bias_var"], marks["value"]):
        gain, bias = (float(part.split("=")[1]) for part in point.split(","))
        assert w == pytest.approx(gain ** 2, rel=1e-12) and b == bias  # LeCun normal: sigma_w^2 = gain^2
        with open(tmp_path / "s" / "points" / point / "summary.csv", newline="") as f:
            last = [r for r in csv.DictReader(f) if r["layer"] == "4"]
        assert value == float(last[0]["var"])


@pytest.mark.parametrize("kind, args, message", [
    ("missing", [], "error: --overlay: {csv}: line 1: column 'sigma_w2' is missing (2 missing)"),
    ("two", [], "error: --series: the sweep has 2 series; choose one (expected one of: SELU, ReLU)"),
    ("two", ["--series", "RELU"], "error: --series: no series 'RELU' in the sweep (expected one of: "
                                  "SELU, ReLU); did you mean 'ReLU'?"),
    ("one", ["--stat", "vr"], "error: --stat: {csv} has no column 'vr'"),
    ("one", ["--layer", 7], "error: --layer: no rows at layer 7 (the sweep has layers 0..2; nearest: 2)"),
])
def test_bad_overlays_exit_2_naming_the_option(tmp_path, kind, args, message):
    folder = sweep_csv(tmp_path / "s", series=("SELU", "ReLU") if kind == "two" else ("SELU",),
                       drop=("sigma_w2", "sigma_b2") if kind == "missing" else ())
    out = invoke("--phase", "--activation", "selu", *SMALL, "--out", tmp_path / "p.png",
                 "--overlay", folder, *args)
    assert out.exit_code == 2
    assert out.output.startswith(message.format(csv=folder / "sweep.csv")), out.output
    assert not (tmp_path / "p.png").exists()


# ---- the overlay's grid, colour bars and ticks -------------------------------------------------

def colour_bars(fig) -> list:
    return [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]


def shown(axis) -> list[str]:
    """The labels of the ticks inside an axis' view (a drawn figure): what a reader sees."""
    lo, hi = sorted(axis.get_view_interval())
    return [t.label1.get_text() for t in axis.get_major_ticks()
            if lo - 1e-12 <= t.get_loc() <= hi + 1e-12 and t.label1.get_text()]


def test_the_grid_widens_by_whole_steps_to_cover_every_sweep_point(tmp_path):
    """Points at sigma_w^2 = 0.81..1.21, sigma_b^2 = 0 beside a grid of sigma_w^2 1..2, sigma_b^2
    0.5..1: both axes grow by whole steps (0.5) to 0.5..2 and 0..1; the figure's limits hold
    every point whole, and each point is drawn on both panels."""
    made = plot.save_phase_figure(RELU, phase.grid("1,2,3", "--weight-var", ""),
                                  phase.grid("0.5,1,2", "--bias-var-range", ""), tmp_path / "p.png",
                                  sweep_csv(tmp_path / "s"), "var")
    assert made.diagram.weight_var.tolist() == [0.5, 1.0, 1.5, 2.0]
    assert made.diagram.bias_var.tolist() == [0.0, 0.5, 1.0]
    one_side = phase.widen(np.array([1.0, 1.5, 2.0]), [0.01, 3.1], positive=True)  # START 0: no variance
    assert one_side.tolist() == [1.0, 1.5, 2.0, 2.5, 3.0, 3.5]
    assert [w.split(" widened from ")[0] for w in made.warnings] == ["--weight-var", "--bias-var-range"]
    assert "1,2,3 to 0.5,2,4" in made.warnings[0] and len(made.overlay["point"]) == 3
    fig = plot.phase_diagram(made.diagram, made.overlay)
    for ax in fig.axes[:2]:
        (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
        assert x0 <= 0.81 - 0.2 and x1 >= 2.25 and y0 <= -0.25 and y1 >= 1.25  # whole edge cells
        dots = [c for c in ax.collections if c.get_offsets().shape == (3, 2)]
        assert len(dots) == 1 and not dots[0].get_clip_on()
        np.testing.assert_allclose(dots[0].get_offsets(), np.c_[[0.81, 1.0, 1.21], [0.0, 0.0, 0.0]])


def test_a_point_the_grid_cannot_reach_is_listed_in_a_warning_and_the_cli_prints_it(tmp_path):
    """sigma_w^2 = 0.01 lies 2 steps below a grid from 1 by 0.5: a START of 0 is no variance, so the
    grid keeps its range and the warning names the point; the other two points are drawn."""
    folder = sweep_csv(tmp_path / "s", gains=(0.1, 1.0, 1.1))
    made = plot.save_phase_figure(RELU, phase.grid("1,2,3", "--weight-var", ""),
                                  phase.grid("0,1,3", "--bias-var-range", ""), tmp_path / "p.png", folder, "var")
    assert made.diagram.weight_var.tolist() == [1.0, 1.5, 2.0]
    assert len(made.warnings) == 1 and made.warnings[0].startswith(
        "1 of 3 sweep points lie outside the grid and are not drawn (point (sigma_w^2, sigma_b^2)): gain=0.1 (0.01, 0);")
    np.testing.assert_allclose(made.overlay["weight_var"], [1.0, 1.21])
    out = invoke("--phase", "--activation", "relu", "--weight-var", "1,2,3", "--bias-var-range", "0,1,3",
                 "--out", tmp_path / "q.png", "--overlay", folder, "--json")
    assert out.exit_code == 0 and out.stderr == f"warning: {made.warnings[0]}\n"
    assert json.loads(out.stdout)["warnings"] == list(made.warnings)


def test_phase_figure_has_one_colour_bar_per_scale_and_readable_ticks(tmp_path):
    """chi_1, xi_c and the sweep's statistic: three scales, three colour bars; the sweep's points on
    both panels share one normalization. Tick labels are plain numbers (1, 1.5, 2; no 5e-1, no 10^x)."""
    d = phase.diagram(TANH, phase.grid("0.5,2,4", "--weight-var", ""), [0.0, 0.5])
    marks = plot.phase_overlay(sweep_csv(tmp_path / "s"), "var")
    alone, fig = plot.phase_diagram(d), plot.phase_diagram(d, marks)
    assert len(colour_bars(alone)) == 2 and len(colour_bars(fig)) == 3
    norms = {id(c.norm) for ax in fig.axes[:2] for c in ax.collections if c.get_offsets().shape == (3, 2)}
    assert len(norms) == 1
    fig.draw_without_rendering()
    assert shown(fig.axes[0].xaxis) == ["0.5", "1", "1.5", "2"]
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            labels = shown(axis)
            assert len(labels) <= 8 and all(x == f"{float(x):g}" and "e" not in x for x in labels), labels
