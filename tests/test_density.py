"""The density of phi(z), z Gaussian (Activation.density, atoms) and of a layer's output
(theory.layer_density), against independent truths: total mass 1, the Gaussian moments'
closed forms (themselves checked against mpmath in test_moments.py), and Monte Carlo bins."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pytest
from scipy import integrate

from snn_lab import theory
from snn_lab.activations import ACTIVATIONS, make_activation
from snn_lab.config import InputSpec, Series

# Every registered activation with a density, a scaled one, and the flat edge cases.
CASES = [(n, {}, 1.0) for n in sorted(ACTIVATIONS) if make_activation(n).inverse is not None] + [
    ("selu", {}, "nf"), ("relu", {}, 2.5), ("leaky_relu", {"slope": 0.0}, 1.0), ("elu", {"alpha": 0.0}, 1.0),
    ("leaky_relu", {"slope": 0.3}, 1.0)]
GAUSS = ((0.4, 0.3), (-1.2, 2.0))


def _case_id(case) -> str:
    name, params, scale = case
    return name + "".join(f"-{k}{v:g}" for k, v in params.items()) + (f"-x{scale}" if scale != 1.0 else "")


def _integrate(f, act, lo: float, hi: float) -> np.ndarray:
    """int f over [lo, hi] (f may return a vector), split where phi's density bends (0, the
    saturation, +-gamma)."""
    cuts = {0.0, lo, hi} | {c for c in (act.saturation, act.gamma, -act.gamma) if c is not None}
    pts = sorted(c for c in cuts if lo <= c <= hi)
    return sum(integrate.quad_vec(f, a, b, epsabs=1e-11, epsrel=1e-10, norm="max")[0] for a, b in itertools.pairwise(pts))


def _support(act, mean, std) -> tuple[float, float]:
    """A range holding all but < 1e-30 of phi(z)'s mass."""
    ends = act.fn(np.array([mean - 12 * std, mean + 12 * std]))
    return float(ends.min()), float(ends.max())


@pytest.mark.parametrize("case", CASES, ids=_case_id)
@pytest.mark.parametrize("mean,std", GAUSS)
def test_density_and_point_masses_hold_mass_one_and_the_gaussian_moments(case, mean, std):
    """int p + sum of masses = 1, and int y p + masses = E phi, int y^2 p + ... = E phi^2."""
    name, params, scale = case
    act = make_activation(name, scale, **params)
    lo, hi = _support(act, mean, std)
    atoms = act.atoms(mean, std)
    powers = np.arange(3)
    totals = _integrate(lambda y: y ** powers * act.density(y, mean, std), act, lo, hi) + sum(
        p * v ** powers for v, p in atoms)
    mo = act.moments(mean, std)
    assert totals[0] == pytest.approx(1.0, abs=1e-8)
    assert totals[1] == pytest.approx(mo.m1, rel=1e-7, abs=1e-9)
    assert totals[2] == pytest.approx(mo.m2, rel=1e-7, abs=1e-9)


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_monte_carlo_histogram_agrees_with_density(case):
    """Binned counts of phi(z) for 100,000 draws: each bin's count, and each point mass's, within
    5 binomial standard errors of the probability the density gives it."""
    name, params, scale = case
    act = make_activation(name, scale, **params)
    mean, std, n = 0.3, 1.3, 100_000
    y = act.fn(np.random.default_rng(20).normal(mean, std, n))
    atoms = act.atoms(mean, std)
    for value, p in atoms:
        hits = np.count_nonzero(y == value)
        assert abs(hits - n * p) < 5 * math.sqrt(n * p * (1 - p)), (value, hits, n * p)
    rest = y[~np.isin(y, [v for v, _ in atoms])]
    edges = np.quantile(rest, np.linspace(0.0, 1.0, 31))[1:-1]  # 28 inner bins, data-placed
    counts = np.histogram(rest, edges)[0]
    width = np.diff(edges)
    probs = integrate.quad_vec(lambda t: act.density(edges[:-1] + t * width, mean, std) * width, 0.0, 1.0,
                               epsrel=1e-7, norm="max")[0]
    z = (counts - n * probs) / np.sqrt(n * probs * (1 - probs))
    assert np.abs(z).max() < 5, z


@pytest.mark.parametrize("name", ["gelu", "silu"])
def test_non_monotone_activation_has_no_density(name):
    """phi not monotone: no change of variables, NaN and a note, never a wrong curve."""
    act = make_activation(name)
    assert np.isnan(act.density([0.5, 1.0], 0.0, 1.0)).all()
    series = _series(name)
    assert "not monotone" in theory.density_note(series)
    assert np.isnan(theory.layer_density(series, 1.0, [0.5])[0]).all()


def _series(activation: str, **kw) -> Series:
    return Series(label="s", activation=activation, activation_params=(), init="lecun_normal", width=8,
                  depth=2, batch=8, dtype="float64", input=InputSpec(), **kw)


def test_relu_layer_density_is_half_normal_and_a_half_mass_at_zero():
    """ReLU of N(0, q): the normal density above 0 and P(0) = 1/2, written out here."""
    q = 2.7
    y = np.linspace(0.01, 6.0, 50)
    dens, atoms = theory.layer_density(_series("relu"), q, y)
    np.testing.assert_allclose(dens, np.exp(-y * y / (2 * q)) / math.sqrt(2 * math.pi * q), rtol=1e-13)
    assert atoms == ((0.0, 0.5),)
    assert (theory.layer_density(_series("relu"), q, [-0.5])[0] == 0).all()


def test_alpha_dropout_density_matches_the_layer_moments():
    """With alpha dropout the output's mass is 1 and its mean and second moment are
    meanfield.output_moments' (dropout's affine map applied to the moments)."""
    series = _series("selu", dropout=0.2)
    act, q = series.make_activation(), 1.3
    lo, hi = -5.0, 12.0
    atoms = theory.layer_density(series, q, [0.0])[1]
    assert len(atoms) == 1 and atoms[0][1] == pytest.approx(0.2)
    powers = np.arange(3)
    moments = _integrate(lambda y: y ** powers * theory.layer_density(series, q, y, act)[0], act, lo, hi) + sum(
        p * v ** powers for v, p in atoms)
    cut = atoms[0][0]  # the dropped units' value: the density's one jump besides the saturation
    assert lo < cut < hi
    e1, e2 = theory.output_moments(act, 0.0, q, series.dropout)
    assert moments[0] == pytest.approx(1.0, abs=1e-7)
    assert moments[1] == pytest.approx(e1, abs=1e-7)
    assert moments[2] == pytest.approx(e2, rel=1e-7)


def test_block_series_has_no_density():
    """A norm or a residual: the output is not phi(N(0, q)); NaN and a note."""
    series = dataclasses.replace(_series("selu"), norm="batch")
    assert np.isnan(theory.layer_density(series, 1.0, [0.0])[0]).all()
    assert "norm" in theory.density_note(series)
