"""Choosing a backend: automatic, forced by --backend or $SNN_LAB_BACKEND, recorded in meta.json,
and a missing compiled backend said plainly (exit 2, with the reason)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from snn_lab.activations import ACTIVATIONS, make_activation
from snn_lab.cli import main
from snn_lab.simulate import backends
from snn_lab.simulate.backends import numpy as numpy_backend

SMALL = ["--set", "width=16", "--set", "batch=16", "--set", "depth=3", "--set", "trials=2", "-q"]
BUILT = backends.compiled_missing() is None


def invoke(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env, catch_exceptions=False)


def backend_of(folder) -> tuple[str, str | None]:
    meta = json.loads((folder / "meta.json").read_text())
    return meta["backend"], meta["kernels"]


def test_auto_runs_the_compiled_backend_where_it_was_built(tmp_path, monkeypatch):
    monkeypatch.delenv(backends.ENV, raising=False)
    assert invoke("run", "--out", tmp_path / "r", *SMALL).exit_code == 0
    backend, kernels = backend_of(tmp_path / "r")
    assert backend == ("compiled" if BUILT else "numpy")
    assert (kernels is not None) == BUILT


@pytest.mark.parametrize("how", ["option", "environment"])
def test_numpy_can_be_forced(tmp_path, how):
    args = ["--backend", "numpy"] if how == "option" else []
    out = invoke("run", "--out", tmp_path / "r", *SMALL, *args,
                 env={backends.ENV: "numpy"} if how == "environment" else None)
    assert out.exit_code == 0, out.output
    assert backend_of(tmp_path / "r") == ("numpy", None)


def test_the_option_wins_over_the_environment(tmp_path):
    out = invoke("run", "--out", tmp_path / "r", *SMALL, "--backend", "numpy", env={backends.ENV: "compiled"})
    assert out.exit_code == 0 and backend_of(tmp_path / "r")[0] == "numpy"


def test_an_unknown_backend_in_the_environment_is_a_usage_error(tmp_path):
    out = invoke("run", "--out", tmp_path / "r", *SMALL, env={backends.ENV: "cuda"})
    assert out.exit_code == 2
    assert "unknown backend 'cuda': expected one of auto, numpy, compiled" in out.output
    assert not (tmp_path / "r").exists()


def test_a_missing_compiled_backend_is_said_with_its_reason(tmp_path, monkeypatch):
    monkeypatch.setattr(backends, "compiled_missing", lambda: "the C extension was not built (no compiler)")
    out = invoke("run", "--out", tmp_path / "r", *SMALL, "--backend", "compiled")
    assert out.exit_code == 2
    assert "the compiled backend is not available: the C extension was not built (no compiler)" in out.output
    assert "--backend numpy" in out.output and not (tmp_path / "r").exists()
    version = invoke("--version").output
    assert "backend compiled: unavailable: the C extension was not built (no compiler)" in version
    assert "default backend: numpy" in version
    assert invoke("run", "--out", tmp_path / "auto", *SMALL).exit_code == 0  # auto falls back
    assert backend_of(tmp_path / "auto")[0] == "numpy"


@pytest.mark.skipif(not BUILT, reason="the compiled backend was not built here")
def test_version_names_the_instruction_set_in_use():
    from snn_lab.simulate.backends import _kernels

    assert f"backend compiled: available (instruction set: {_kernels.current()})" in invoke("--version").output


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, scale", [("selu", 1.0), ("elu", 1.0), ("selu", 1.3)])
def test_the_numpy_elu_path_is_the_plain_function_to_a_few_ulp(name, scale, dtype):
    """The numpy backend's ELU-family loop (exp(x) - 1 for expm1, for speed) returns act.fn's
    numbers to within 3 ulp of lambda alpha absolute, and both are within that of the exact
    value (math.expm1 in float64 on the dtype's inputs); inf, -inf, NaN and -0 as act.fn."""
    act = make_activation(name, scale)
    _, lam, lam_alpha = act.kernel
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.standard_normal(20_000) * 3, -np.logspace(-30, 2, 200), np.logspace(-30, 2, 200),
                        [0.0, -0.0, np.inf, -np.inf, np.nan, -1e4]]).astype(dtype)
    fast = numpy_backend.elu_exp(lam, lam_alpha)(x, out=np.empty_like(x))
    plain = act.fn(x, out=np.empty_like(x))
    exact = np.array([lam * v if v > 0 else lam_alpha * math.expm1(v) if v <= 0 else v for v in x.astype(float)])
    tol = 3 * np.finfo(dtype).eps * lam_alpha + 2 * np.finfo(dtype).eps * np.abs(exact)
    finite = np.isfinite(exact)
    assert np.all(np.abs(fast[finite] - plain[finite]) <= tol[finite])
    assert np.all(np.abs(fast[finite] - exact[finite]) <= tol[finite])
    assert np.array_equal(fast[~finite], plain[~finite], equal_nan=True)
    assert np.array_equal(np.signbit(fast[x == 0]), np.signbit(plain[x == 0]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_training_calls_are_activate_and_the_derivative_on_every_backend(dtype):
    """apply (the training's forward) writes what activate writes, without the sums; act_grad
    is phi'(p) g against act.deriv in float64, within 8 ulp of |g| plus 2 ulp (y's rounding)."""
    rng = np.random.default_rng(3)
    p = (rng.standard_normal((64, 32)) * 3).astype(dtype)
    g = rng.standard_normal(p.shape).astype(dtype)
    eps = np.finfo(dtype).eps
    for name in sorted(ACTIVATIONS):
        act = make_activation(name)
        exact = act.deriv(p.astype(np.float64)) * g.astype(np.float64)
        for which in ("numpy", "compiled") if BUILT else ("numpy",):
            backend = backends.get(which)
            x, y = np.empty_like(p), np.empty_like(p)
            backend.activate(act, p.reshape(1, -1), x.reshape(1, -1), p.size, np.empty((1, 1, 4)))
            backend.apply(act, p, y)
            assert np.array_equal(x, y), (name, which)
            d = backend.act_grad(act, p, y, g, np.empty_like(p), np.empty_like(p))
            assert np.all(np.abs(d - exact) <= 8 * eps * np.abs(g) + 2 * eps * np.abs(exact)), (name, which)
