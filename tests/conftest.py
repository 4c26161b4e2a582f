"""Shared test helpers: tolerances derived from sample sizes, small experiments."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from snn_lab import config


def t_quantile(two_sided: float, dof: int) -> float:
    """t with P(|T_dof| > t) = two_sided (mpmath's regularized incomplete beta)."""
    from mpmath import mp

    tail = lambda t: mp.betainc(dof / 2, 0.5, 0, dof / (dof + t * t), regularized=True) - two_sided
    start = NormalDist().inv_cdf(1.0 - two_sided / 2.0)
    return float(mp.findroot(tail, start * (1.0 + 2.0 / dof)))


def z_threshold(family_size: int, trials: int, false_alarm: float = 1e-4) -> float:
    """Student-t threshold (trials - 1 dof) so that `family_size` comparisons false-alarm with prob < false_alarm.

    The standard error comes from the trials' own spread, so the t quantile is the right one;
    the normal quantile would false-alarm far more often with few trials.
    """
    return t_quantile(false_alarm / family_size, trials - 1)


def assert_matches(samples: np.ndarray, truth, family_size: int, what: str = "") -> None:
    """Trial means equal the truth within z standard errors (axis 0 holds independent trials).

    The standard error comes from the trials' own spread; z_threshold uses the t quantile.
    """
    samples = np.asarray(samples, dtype=np.float64)
    n = samples.shape[0]
    assert n >= 16, "too few trials for a normal-quantile tolerance"
    mean = samples.mean(axis=0)
    se = samples.std(axis=0, ddof=1) / math.sqrt(n)
    z = np.abs(mean - truth) / se
    limit = z_threshold(family_size, n)
    worst = int(np.argmax(z))
    assert np.all(z < limit), (f"{what}: entry {worst}: simulated {mean.flat[worst]:.6g} vs "
                               f"truth {np.broadcast_to(truth, mean.shape).flat[worst]:.6g}, "
                               f"{z.flat[worst]:.2f} standard errors > {limit:.2f}")


def experiment(yaml_text: str, *overrides: str) -> config.Experiment:
    """An Experiment from YAML text."""
    return config.load("<test>", text=yaml_text, overrides=overrides)


@pytest.fixture
def small_run_args():
    """--set overrides that make the default experiment run in well under a second."""
    return ["--set", "width=64", "--set", "batch=64", "--set", "depth=8", "--set", "trials=3"]


FUZZ_COUNT = {"configs": 0}  # incremented by tests/test_robustness.py


def pytest_terminal_summary(terminalreporter):
    """Say how many fuzzed configs the run checked (robustness issue: the count is printed)."""
    if FUZZ_COUNT["configs"]:
        terminalreporter.write_line(f"fuzz: {FUZZ_COUNT['configs']} configs checked through the loader and the CLI")
