"""The orthogonal initializer: gain times a Haar-random orthogonal matrix, drawn from the
layer's streams, whose mean-field theory is the Gaussian one (sigma_w^2 = gain^2)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import assert_matches, experiment
from scipy import stats

from snn_lab import theory
from snn_lab.initializers import INITIALIZERS, haar_orthogonal
from snn_lab.simulate import engine, streams


def _series(text: str):
    exp = experiment(text)
    return exp.series[0], exp.seed


@pytest.mark.parametrize("dtype, tol", [("float64", 1e-13), ("float32", 3e-6)])
def test_orthogonal_weights_are_gain_times_an_orthogonal_matrix(dtype, tol):
    s, seed = _series(f"width: 37\ndtype: {dtype}\nseries: [{{activation: tanh, init: orthogonal, gain: 1.5}}]")
    w = streams.layer_weights(s, seed, 0, 3).astype(np.float64)
    np.testing.assert_allclose(w @ w.T, 2.25 * np.eye(37), atol=2.25 * tol)
    np.testing.assert_allclose(w.T @ w, 2.25 * np.eye(37), atol=2.25 * tol)
    assert s.weight_var == pytest.approx(2.25, rel=1e-15)  # sigma_w^2 = gain^2, as lecun_normal's


@pytest.mark.parametrize("shape", [(5, 9), (9, 5), (6, 6)])
def test_haar_orthogonal_has_orthonormal_rows_or_columns(shape):
    q = haar_orthogonal(np.random.default_rng(1).standard_normal(shape))
    k = min(shape)
    small = q @ q.T if shape[0] <= shape[1] else q.T @ q
    np.testing.assert_allclose(small, np.eye(k), atol=1e-14)
    # Entries' variance 1/max(fan_in, fan_out): the registry's variance for either orientation.
    assert np.mean(q * q) == pytest.approx(INITIALIZERS["orthogonal"].variance(*shape), rel=1e-13)


def test_orthogonal_weights_are_haar_distributed():
    """Haar O(n) (Diaconis & Shahshahani 1994): E tr Q = 0, E (tr Q)^2 = 1, E tr Q^2 = 1, and
    Q_11^2 ~ Beta(1/2, (n - 1)/2). QR without the sign fix fails all but the last."""
    n, count = 6, 1500
    s, seed = _series(f"width: {n}\ndtype: float64\nseries: [{{activation: tanh, init: orthogonal}}]")
    qs = np.stack([streams.layer_weights(s, seed, 0, layer) for layer in range(1, count + 1)])
    tr = np.trace(qs, axis1=1, axis2=2)
    tr2 = np.einsum("kij,kji->k", qs, qs)
    for values, truth in ((tr, 0.0), (tr * tr, 1.0), (tr2, 1.0)):
        z = (values.mean() - truth) / (values.std(ddof=1) / math.sqrt(count))
        assert abs(z) < 4.5, (values.mean(), truth, z)
    assert stats.kstest(qs[:, 0, 0] ** 2, stats.beta(0.5, (n - 1) / 2).cdf).pvalue > 1e-4


def test_orthogonal_series_follows_the_gaussian_mean_field():
    """At width 256 the pooled statistics of orthogonal layers match predict() (infinite-width
    Gaussian theory) within the trials' standard errors: tanh below its fixed point, SELU at it."""
    for act in ("tanh", "selu"):
        exp = experiment(f"trials: 16\nwidth: 256\ndepth: 6\nbatch: 64\ndtype: float64\n"
                         f"input: {{var: 2.0}}\nseries: [{{activation: {act}, init: orthogonal, gain: 1.2}}]")
        s = exp.series[0]
        run = engine.run_series(s, exp.seed, exp.trials, threads=1)
        pred = theory.predict(s)
        assert_matches(run.stats[:, 1:, 3], pred[1:, 2], 2 * s.depth, f"{act} preact_var")
        assert_matches(run.stats[:, 1:, 1], pred[1:, 1], 2 * s.depth, f"{act} var")
