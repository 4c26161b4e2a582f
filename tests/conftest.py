"""Shared test helpers: tolerances derived from sample sizes, small experiments."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from snn_lab import config


def z_threshold(family_size: int, false_alarm: float = 1e-4) -> float:
    """Two-sided normal quantile so that `family_size` comparisons false-alarm with prob < false_alarm."""
    return NormalDist().inv_cdf(1.0 - false_alarm / (2.0 * family_size))


def assert_matches(samples: np.ndarray, truth, family_size: int, what: str = "") -> None:
    """Trial means equal the truth within z standard errors (axis 0 holds independent trials).

    The standard error comes from the trials' own spread; with >= 16 trials the t and normal
    quantiles are close enough that z_threshold keeps the stated false-alarm rate.
    """
    samples = np.asarray(samples, dtype=np.float64)
    n = samples.shape[0]
    assert n >= 16, "too few trials for a normal-quantile tolerance"
    mean = samples.mean(axis=0)
    se = samples.std(axis=0, ddof=1) / math.sqrt(n)
    z = np.abs(mean - truth) / se
    limit = z_threshold(family_size)
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
