"""The jacobian measurement: the input-output Jacobian's squared singular values against an
independent forward pass, the gradient probe, exact finite-width results for linear networks,
and free probability's moments (theory/spectrum.py)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from conftest import experiment, z_threshold
from scipy import integrate

from snn_lab import config, results
from snn_lab.simulate import engine, streams
from snn_lab.simulate import jacobian as jac
from snn_lab.statistics import STATS
from snn_lab.theory import spectrum
from snn_lab.validate import ResultsError

GRAD_SQ = len(STATS)  # the gradient probe's grad_sq column in the engine's stats


def run(text: str, *overrides: str):
    exp = experiment(text, *overrides)
    s = exp.series[0]
    return exp, s, engine.run_series(s, exp.seed, exp.trials, measure=exp.measure, jacobian=exp.jacobian,
                                      threads=1)


def _forward(s, seed: int, trial: int, x0: np.ndarray) -> list[np.ndarray]:
    """x_1 .. x_depth of one input by the layer's definition (docs/normalization.md), in float64."""
    act, alpha = s.make_activation(), s.residual.alpha if s.residual else 0.0
    out, x = [], x0
    for layer in range(1, s.depth + 1):
        h = x @ streams.layer_weights(s, seed, trial, layer).astype(np.float64) / s.betas()[layer]
        if s.bias_var:
            h = h + streams.rng_for(seed, s.label, trial, layer).standard_normal(s.width) * math.sqrt(s.bias_var)
        y = act.fn(h)
        x = x + alpha * y if alpha else y
        out.append(x)
    return out


@pytest.mark.parametrize("extra", ["tanh, bias_var: 0.1, gain: 1.3", "selu, init: orthogonal",
                                   "tanh, residual: {alpha: 0.5, beta: expected}"])
def test_spectrum_is_that_of_the_finite_difference_jacobian(extra):
    """Central differences of an independent forward pass (weights and biases regenerated from
    their streams) give the same squared singular values as the engine's product, layer by layer."""
    exp, s, r = run(f"trials: 1\nwidth: 7\ndepth: 3\nbatch: 5\ndtype: float64\nmeasure: [jacobian]\n"
                    f"jacobian: {{inputs: 2, layers: [1, 2, 3]}}\nseries: [{{activation: {extra}}}]")
    x = streams.input_values(s, exp.seed, 0)
    assert len(r.spectra) == 3 * 2
    for sp in r.spectra:
        eps = 1e-6
        cols = []
        for j in range(s.width):
            e = np.zeros(s.width)
            e[j] = eps
            up, down = _forward(s, exp.seed, 0, x[sp.input] + e), _forward(s, exp.seed, 0, x[sp.input] - e)
            cols.append((up[sp.layer - 1] - down[sp.layer - 1]) / (2 * eps))
        lam = np.sort(np.linalg.svd(np.array(cols), compute_uv=False) ** 2)
        np.testing.assert_allclose(sp.values, lam, rtol=1e-6, atol=1e-9)


def test_mean_squared_singular_value_is_the_gradient_probes():
    """grad_sq at the input sends g ~ N(0, I) down: given J_b, E |g_b J_b^T|^2 / n = mean lambda_b and
    Var = 2 tr((J_b J_b^T)^2) / n^2 (Gaussian quadratic form), so over the batch it matches the
    Jacobian's mean squared singular value within that exact standard error."""
    exp, s, r = run("trials: 4\nwidth: 48\ndepth: 6\nbatch: 6\ndtype: float64\nmeasure: [gradients, jacobian]\n"
                    "jacobian: {inputs: 6, layers: [6]}\nseries: [{activation: tanh, gain: 1.4, bias_var: 0.05}]")
    for t in range(exp.trials):
        rows = [sp.summary for sp in r.spectra if sp.trial == t]
        mean = np.array([row[0] for row in rows])
        second = np.array([row[1] + row[0] ** 2 for row in rows])  # tr((J J^T)^2) / n
        expect = mean.mean()
        se = math.sqrt(2.0 * second.sum() / s.width) / s.batch
        assert abs(r.stats[t, 0, GRAD_SQ] - expect) < 4.5 * se, (t, r.stats[t, 0, GRAD_SQ], expect, se)


def test_linear_gaussian_variance_is_the_exact_finite_width_value():
    layers, trials, n = (1, 3, 8), 48, 24
    _exp, s, r = run(f"trials: {trials}\nwidth: {n}\ndepth: 8\nbatch: 1\ndtype: float64\nmeasure: [jacobian]\n"
                    f"jacobian: {{inputs: 1, layers: {list(layers)}}}\nseries: [{{activation: linear}}]")
    exact = spectrum.linear_gaussian_variance(n, 8)
    limit = z_threshold(2 * len(layers), trials)
    for layer in layers:
        rows = np.array([sp.summary for sp in r.spectra if sp.layer == layer])
        for col, truth in ((0, 1.0), (1, exact[layer])):  # E mean lambda = 1 exactly at every width
            v = rows[:, col]
            z = (v.mean() - truth) / (v.std(ddof=1) / math.sqrt(trials))
            assert abs(z) < limit, (layer, col, v.mean(), truth, z)
    assert exact[8] == pytest.approx(8.0, rel=0.5)  # and it is of order L: 8 + O(64 / 24)
    np.testing.assert_allclose(spectrum.jacobian_moments(s)[0][:, 1], np.arange(9.0), rtol=1e-14)


def test_linear_orthogonal_jacobian_is_an_isometry():
    """Orthogonal weights at gain g: J = g^L Q, every lambda = g^(2L): variance 0 to rounding."""
    _exp, s, r = run("trials: 2\nwidth: 40\ndepth: 12\nbatch: 2\ndtype: float64\nmeasure: [jacobian]\n"
                    "jacobian: {inputs: 1, layers: [1, 12]}\nseries: [{activation: linear, init: orthogonal, gain: 1.02}]")
    for sp in r.spectra:
        g2l = 1.02 ** (2 * sp.layer)
        np.testing.assert_allclose(sp.values, g2l, rtol=1e-12)
        assert sp.summary[1] < 1e-24 and sp.summary[-1] == 1.0
        assert sp.summary[jac.SPECTRUM.index("condition")] == pytest.approx(1.0, abs=1e-12)
    theory, note = spectrum.jacobian_moments(s)
    assert note is None and theory[12, 0] == pytest.approx(1.02 ** 24, rel=1e-13) and abs(theory[12, 1]) < 1e-12


@pytest.mark.parametrize("init", ["lecun_normal", "orthogonal"])
def test_tanh_moments_follow_free_probability(init):
    """tanh near its critical line (sigma_w^2 = 1.96, sigma_b^2 = 0.05): the measured mean and variance
    of lambda at width 192 match chi_1^L and the S-transform's variance within the trials' standard
    errors (the O(L^2/n) finite-width bias is below one of them here)."""
    trials, layers = 20, (2, 6)
    _exp, s, r = run(f"trials: {trials}\nwidth: 192\ndepth: 6\nbatch: 1\ndtype: float64\nmeasure: [jacobian]\n"
                    f"jacobian: {{inputs: 1, layers: {list(layers)}}}\n"
                    f"series: [{{activation: tanh, init: {init}, gain: 1.4, bias_var: 0.05}}]")
    theory, _ = spectrum.jacobian_moments(s)
    limit = z_threshold(2 * 2 * len(layers), trials)
    for layer in layers:
        rows = np.array([sp.summary for sp in r.spectra if sp.layer == layer])
        for col in (0, 1):
            v = rows[:, col]
            z = (v.mean() - theory[layer, col]) / (v.std(ddof=1) / math.sqrt(trials))
            assert abs(z) < limit, (layer, col, v.mean(), theory[layer, col], z)
    # The other weights' theory (variance apart by E[lambda]^2 L) is rejected where the spread
    # allows (orthogonal weights; Gaussian ones' heavy tail needs more trials): the test can fail.
    other = spectrum.jacobian_moments(dataclasses.replace(s, init="orthogonal" if init != "orthogonal"
                                                          else "lecun_normal"))[0]
    assert abs(other[6, 1] - theory[6, 1]) == pytest.approx(6 * theory[6, 0] ** 2, rel=1e-9)
    v = np.array([sp.summary[1] for sp in r.spectra if sp.layer == 6])
    assert init != "orthogonal" or abs(v.mean() - other[6, 1]) / (v.std(ddof=1) / math.sqrt(trials)) > limit


def test_mean_is_the_product_of_chi1():
    from snn_lab import theory

    s = experiment("depth: 5\nseries: [{activation: selu, gain: 1.1, bias_var: 0.1}]").series[0]
    q = theory.predict(s)[:, 2]
    chi = np.cumprod([1.0] + [theory.chi1(s, q[layer]) for layer in range(1, 6)])
    np.testing.assert_allclose(spectrum.jacobian_moments(s)[0][:, 0], chi, rtol=1e-13)


def test_relu_derivative_moments_are_a_half():
    """ReLU: phi' is 0 or 1 with probability 1/2: mu4 / mu2^2 - 1 = 1 per layer."""
    s = experiment("depth: 4\nseries: [{activation: relu, init: he_normal}]").series[0]
    assert spectrum.derivative_moments(s, 0.7) == pytest.approx((0.5, 0.5), rel=1e-12)
    np.testing.assert_allclose(spectrum.jacobian_moments(s)[0][:, 1], 2.0 * np.arange(5), rtol=1e-12)


@pytest.mark.parametrize("depth", [1, 2, 5])
def test_fuss_catalan_density_has_the_fuss_catalan_moments(depth):
    """Mass 1 and moments 1 and depth + 1 (the Fuss-Catalan numbers (1/(2s+1)) C(2s+2, 2))."""
    lam, dens = spectrum.fuss_catalan_density(depth, points=20_000)
    assert lam.max() == pytest.approx((depth + 1) ** (depth + 1) / depth ** depth, rel=1e-6)
    # The density is integrable like lambda^(-s/(s+1)) at 0: the grid starts near 0, so the
    # moments (which damp it) are tight, the mass looser.
    for k, truth, tol in ((0, 1.0, 0.03), (1, 1.0, 2e-3), (2, depth + 1.0, 2e-3)):
        assert integrate.trapezoid(dens * lam ** k, lam) == pytest.approx(truth, rel=tol)


def test_above_the_exact_width_moments_are_exact_and_extremes_lanczos(monkeypatch):
    J = np.random.default_rng(3).standard_normal((60, 60)) / math.sqrt(60)
    exact = jac.summarize(jac.squared_singular_values(J))
    monkeypatch.setattr(jac, "EXACT_MAX", 50)
    assert jac.squared_singular_values(J) is None
    est = jac.extremes(J)
    for name, rtol in (("mean", 1e-12), ("var", 1e-10), ("max", 1e-7), ("min", 1e-4), ("condition", 1e-4)):
        i = jac.SPECTRUM.index(name)
        assert est[i] == pytest.approx(exact[i], rel=rtol), name
    assert np.isnan(est[jac.SPECTRUM.index("median")])


@pytest.mark.parametrize("extra, where, words", [
    ("measure: [jacobian]\nseries: [{activation: relu, norm: batch}]", "series.0.norm", "does not support norm"),
    ("measure: [jacobian]\nseries: [{activation: selu, dropout: 0.1}]", "series.0.dropout", "does not support dropout"),
    ("jacobian: {inputs: 2}\nseries: [{activation: selu}]", "jacobian", "add jacobian to measure"),
    ("measure: [jacobian]\nbatch: 3\njacobian: {inputs: 4}\nseries: [{activation: selu}]", "jacobian.inputs", "batch 3"),
    ("measure: [jacobian]\ndepth: 8\njacobian: {layers: [4, 9]}\nseries: [{activation: selu}]", "jacobian.layers",
     "layer 9 is beyond"),
    ("measure: [jacobian]\njacobian: {input: 2}\nseries: [{activation: selu}]", "jacobian.input", "did you mean 'inputs'"),
])
def test_bad_jacobian_options_are_located_config_errors(extra, where, words):
    with pytest.raises(config.ConfigError) as info:
        experiment(extra)
    text = str(info.value.problems[0])
    assert f": {where}:" in text and words in text, text


def test_default_layers_span_the_depth():
    exp = experiment("measure: [jacobian]\ndepth: 128\nseries: [{activation: selu}]")
    assert exp.jacobian.layers_for(128) == (1, 16, 32, 48, 64, 80, 96, 112, 128)
    assert exp.to_dict()["jacobian"] == {"layers": None, "inputs": 2}
    assert "jacobian" not in experiment("series: [{activation: selu}]").to_dict()


def test_results_folder_keeps_and_checks_the_jacobian_tables(tmp_path):
    from snn_lab.executors import simulate

    exp = experiment("trials: 2\nwidth: 8\ndepth: 4\nbatch: 3\nmeasure: [jacobian]\n"
                     "jacobian: {inputs: 2, layers: [2, 4]}\nseries: [{activation: tanh}, {activation: linear, "
                     "residual: 0.3}]")
    out = results.write(simulate(exp), tmp_path / "r")
    back = results.read(out)
    table = back.tables["jacobian.csv"]
    assert len(table["series"]) == 2 * 2 * 2 * 2 and len(back.tables["jacobian_values.csv"]["value"]) == 16 * 8
    assert np.isnan(table["theory_var"][table["series"] == "linear-lecun_normal"]).all()
    assert "residual block" in back.meta["jacobian_notes"]["linear-lecun_normal"]
    text = (out / "jacobian.csv").read_text().splitlines()
    text[3] = text[3].replace(",4,", ",3,", 1)
    (out / "jacobian.csv").write_text("\n".join(text) + "\n")
    with pytest.raises(ResultsError, match=r"jacobian.csv: line 4: \(series, trial, layer, input\)"):
        results.read(out)


def test_jacobian_figures_are_drawn_only_when_measured(tmp_path, monkeypatch):
    from snn_lab import plot
    from snn_lab.plot import spectrum as plot_spectrum
    from snn_lab.executors import simulate

    # The other figures are another test's (and slow to draw): a blank page stands in for each.
    blank = lambda res: plot_spectrum._empty(res, "figure")
    monkeypatch.setattr(plot, "FIGURES", {n: f if n.startswith("jacobian") else blank for n, f in plot.FIGURES.items()})

    text = "trials: 2\nwidth: 8\ndepth: 4\nbatch: 2\n{}series: [{{activation: linear}}, {{activation: tanh}}]"
    measured = results.write(simulate(experiment(text.format("measure: [jacobian]\n"))), tmp_path / "a")
    names = {p.stem for p in plot.save_figures(results.read(measured), tmp_path / "pa")}
    assert {"jacobian_density", "jacobian_moments"} <= names
    plain = results.write(simulate(experiment(text.format(""))), tmp_path / "b")
    names = {p.stem for p in plot.save_figures(results.read(plain), tmp_path / "pb")}
    assert not names & {"jacobian_density", "jacobian_moments"}
