"""Shared test helpers: tolerances derived from sample sizes, small experiments."""

from __future__ import annotations

import inspect
import math
from statistics import NormalDist

import numpy as np
import pytest
from click.testing import CliRunner, Result

from snn_lab import config
from snn_lab.activations import ACTIVATIONS, Activation, ActivationKind


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
def erf_registered(monkeypatch):
    """erf as a registry activation ("erf_stub"): smooth, without a closed form in the code, so
    its Gaussian integrals are quadratures while Williams (1997) gives them in closed form."""
    from scipy import special

    def build(name, params):
        return Activation(name, params, lambda x, out=None: special.erf(x),
                          lambda x: 2 / math.sqrt(math.pi) * np.exp(-x * x), saturation=-1.0)
    monkeypatch.setitem(ACTIVATIONS, "erf_stub", ActivationKind({}, build, "erf(x)"))


def erf_q_map(s, q: float) -> float:
    """Williams (1997): E erf(u)^2 = (2/pi) arcsin(2q / (1 + 2q))."""
    return s.weight_var * 2 / math.pi * math.asin(2 * q / (1 + 2 * q)) + s.bias_var


@pytest.fixture
def small_run_args():
    """--set overrides that make the default experiment run in well under a second."""
    return ["--set", "width=64", "--set", "batch=64", "--set", "depth=8", "--set", "trials=3"]


class _OutputThenStderr(Result):
    """A click 8.1 result read the click 8.2 way: output holds what the terminal would show."""

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class _SeparateStderrRunner(CliRunner):
    """click 8.1's runner with stderr captured apart (mix_stderr=False) and output = stdout + stderr."""

    def __init__(self, **kwargs):
        super().__init__(mix_stderr=False, **kwargs)

    def invoke(self, *args, **kwargs) -> Result:
        result = super().invoke(*args, **kwargs)
        result.__class__ = _OutputThenStderr
        return result


def cli_runner(**kwargs) -> CliRunner:
    """A CliRunner whose results have .stdout, .stderr and .output on click 8.1 and on 8.2+ alike.

    click 8.2 always captures stderr apart (result.stderr) and result.output is both streams as a
    terminal shows them; it removed the mix_stderr argument. click 8.1 mixes stderr into stdout
    unless mix_stderr=False, and then its result.output is stdout alone: there output is stdout
    followed by stderr (not interleaved, which the tests do not rely on).
    """
    if "mix_stderr" in inspect.signature(CliRunner.__init__).parameters:
        return _SeparateStderrRunner(**kwargs)
    return CliRunner(**kwargs)


FUZZ_COUNT = {"configs": 0}  # incremented by tests/test_robustness.py


def pytest_terminal_summary(terminalreporter):
    """Say how many fuzzed configs the run checked (robustness issue: the count is printed)."""
    if FUZZ_COUNT["configs"]:
        terminalreporter.write_line(f"fuzz: {FUZZ_COUNT['configs']} configs checked through the loader and the CLI")


def terminal_signals() -> None:
    """preexec_fn for a child that must see Ctrl-C as from a terminal: SIGINT and SIGTERM at
    their defaults. A shell starts a background job (`cmd &`, as CI's runner and `.ci/run &` do)
    with SIGINT ignored (POSIX), and an ignored signal stays ignored across exec."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
