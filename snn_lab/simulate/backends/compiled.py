"""The compiled backend: the C loops of `_kernels` (Box-Muller straight from SFC64 state words,
activations fused with their float64 sums), which release the GIL."""

from __future__ import annotations

from snn_lab.simulate import backends
from snn_lab.simulate.backends import _kernels
from snn_lab.simulate.backends import numpy as numpy_backend

_KINDS = {"linear": _kernels.LINEAR, "relu": _kernels.RELU, "leaky": _kernels.LEAKY,
          "elu": _kernels.ELU, "tanh": _kernels.TANH}


class CompiledBackend:
    """The same numbers as the numpy backend to within rounding (the C loops use their own
    polynomial log, sin, cos, expm1 and tanh, which vectorize and give the same bits on every
    instruction set)."""

    name = "compiled"

    def normals(self, states, out, scale):
        _kernels.normals(states, out, scale, backends.PAIRS)  # advances states in place

    def activate(self, act, h, x, block, out):
        if act.kernel is None:  # an activation without a C loop: numpy's, with the C sums
            numpy_backend.activate_blocks(act, h, x, block, out, _kernels.sums)
            return
        name, p1, p2 = act.kernel
        _kernels.activate_many(_KINDS[name], p1, p2, h, x, h.shape[0], block, out)

    def sums(self, x):
        return _kernels.sums(x)

    def apply(self, act, h, x):
        if act.kernel is None:
            act.fn(h, out=x)
        else:
            _kernels.activate_many(_KINDS[act.kernel[0]], *act.kernel[1:], h, x, 1, max(h.size, 1), None)

    def act_grad(self, act, p, y, g, out, tmp):
        if act.kernel is None or act.kernel[0] != "elu":  # only the ELU family has a C loop (SELU's training)
            return numpy_backend.NumpyBackend.act_grad(self, act, p, y, g, out, tmp)
        _kernels.elu_grad(act.kernel[1], act.kernel[2], p, y, g, out)
        return out

