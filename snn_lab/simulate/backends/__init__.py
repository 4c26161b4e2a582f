"""Backends: the few loops of the engine that need speed, behind one small interface.

A backend draws normals from keyed SFC64 streams, handed over as their states (rows of 4 uint64
words), by Box-Muller on their raw words in one documented layout, and applies an activation in
place with the float64 sums of its input and output. `numpy` is always there; `compiled` (the
optional C extension `_kernels`) is used automatically when it was built. Both draw the same
numbers from the same streams, to within rounding (docs/engine.md, "Backends"). Choose one with
`snn-lab run --backend` or $SNN_LAB_BACKEND: auto (the default), numpy or compiled.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Protocol

import numpy as np

from snn_lab.errors import SnnLabError

ENV = "SNN_LAB_BACKEND"
CHOICES = ("auto", "numpy", "compiled")
PAIRS = 1 << 15  # Box-Muller pairs per step: a step's raw words (256 or 384 KiB) stay in L2


class Backend(Protocol):
    """What the engine asks of a backend."""

    name: str

    def normals(self, states: np.ndarray, out: np.ndarray, scale: float) -> None:
        """Fill out's len(states) equal slices with N(0, scale^2), slice i from the SFC64 state
        states[i] (a, b, c, counter; advanced in place)."""

    def activate(self, act, h: np.ndarray, x: np.ndarray, block: int, sums: np.ndarray) -> None:
        """x = act(h) for (trials, entries) arrays cut into blocks of `block` entries per trial;
        sums[t, b] = float64 (sum h, sum h^2, sum x, sum x^2) of block b of trial t."""

    def sums(self, x: np.ndarray) -> tuple[float, float]:
        """(sum, sum of squares) of a contiguous array's entries, accumulated in float64."""

    def apply(self, act, h: np.ndarray, x: np.ndarray) -> None:
        """x = act(h) for contiguous arrays of one shape, without the sums (training's forward)."""

    def act_grad(self, act, p, y, g, out: np.ndarray, tmp: np.ndarray) -> np.ndarray:
        """out = act's phi'(p) g from y = phi(p) (training's backward; tmp: scratch); returns it."""


_bit_generators = threading.local()  # one numpy SFC64 per thread, its state set per use


@contextlib.contextmanager
def sfc64(state: np.ndarray):
    """numpy's SFC64 at `state` (a row of 4 uint64 words), written back to it when done."""
    gen = _bit_generators.sfc64 = getattr(_bit_generators, "sfc64", None) or np.random.SFC64(0)
    gen.state = {"bit_generator": "SFC64", "state": {"state": state}, "has_uint32": 0, "uinteger": 0}
    yield gen
    state[:] = gen.state["state"]["state"]


class BackendError(SnnLabError, ValueError):
    """An unknown backend name, or the compiled one asked for where it was not built."""


def compiled_missing() -> str | None:
    """Why the compiled backend cannot run here, or None when it can."""
    try:
        from snn_lab.simulate.backends import _kernels  # noqa: F401
    except ImportError as err:
        return f"the C extension was not built ({err}); reinstall with a C compiler to build it"
    return None


def available() -> dict[str, str | None]:
    """Each backend's name -> None if it runs here, else why not."""
    return {"numpy": None, "compiled": compiled_missing()}


def resolve(name: str | None = None) -> str:
    """The backend a run uses: `name`, else $SNN_LAB_BACKEND, else auto (compiled if built)."""
    name = (name or os.environ.get(ENV) or "auto").strip().lower()
    if name not in CHOICES:
        raise BackendError(f"unknown backend {name!r}: expected one of {', '.join(CHOICES)}")
    missing = compiled_missing()
    if name == "auto":
        return "numpy" if missing else "compiled"
    if name == "compiled" and missing:
        raise BackendError(f"the compiled backend is not available: {missing}; use --backend numpy")
    return name


_instances: dict[str, Backend] = {}


def get(name: str | Backend | None = None) -> Backend:
    """The backend object for `name` (see resolve); a backend object is returned as it is."""
    if hasattr(name, "normals"):
        return name
    name = resolve(name)
    if name not in _instances:
        if name == "compiled":
            from snn_lab.simulate.backends.compiled import CompiledBackend as cls
        else:
            from snn_lab.simulate.backends.numpy import NumpyBackend as cls
        _instances[name] = cls()
    return _instances[name]


def describe() -> dict[str, str]:
    """What `snn-lab --version` says of the backends: each one's state, and the default's name."""
    states = {n: "available" if why is None else f"unavailable: {why}" for n, why in available().items()}
    if states["compiled"] == "available":
        from snn_lab.simulate.backends import _kernels
        states["compiled"] = f"available (instruction set: {_kernels.current()})"
    try:
        states["default"] = resolve()
    except BackendError as err:
        states["default"] = f"error: {err}"
    return states
