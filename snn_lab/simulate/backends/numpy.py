"""The numpy backend: always present. numpy's own loops, on blocks that stay in cache."""

from __future__ import annotations

import math
import threading

import numpy as np

from snn_lab.simulate import backends

_scratch = threading.local()  # per-thread scratch buffers (the sums' float64 copy, the activation's)


def _buffer(name: str, dtype: np.dtype, size: int) -> np.ndarray:
    """This thread's scratch array `name` of at least `size` entries of dtype (no allocation)."""
    key, bufs = (name, np.dtype(dtype).char), _scratch.__dict__.setdefault("bufs", {})
    buf = bufs.get(key)
    if buf is None or buf.size < size:
        buf = bufs[key] = np.empty(max(size, 1 << 16), dtype)
    return buf[:size]


def as_float64(x: np.ndarray) -> np.ndarray:
    """x's entries as a flat float64 array (this thread's buffer for float32: no allocation)."""
    flat = x.reshape(-1)
    if flat.dtype == np.float64:
        return flat
    out = _buffer("float64", np.float64, flat.size)
    np.copyto(out, flat)
    return out


def sums(x: np.ndarray) -> tuple[float, float]:
    """(sum, sum of squares) in float64, both as BLAS dots (against ones: 4x numpy's sum here)."""
    v = as_float64(x)
    ones = getattr(_scratch, "ones", None)
    if ones is None or ones.size < v.size:
        ones = _scratch.ones = np.ones(max(v.size, 1 << 16))
    return float(np.dot(v, ones[:v.size])), float(np.dot(v, v))


def box_muller(words: np.ndarray, out: np.ndarray, factor: float) -> None:
    """Steps of 2k entries, one per row of words (streams, words) and of out (streams, 2k or
    2k - 1), in the layout of the compiled loop: a row's first k entries get r cos t, the next
    ones r sin t (the last sine dropped for an odd count), r = sqrt(factor ln u1), factor =
    -2 scale^2, t = 2 pi u2 as a signed turn.

    float32: the k words read as 2k 32-bit integers, u1 = (first k + 1/2) 2^-32, u2 the next k;
    float64: u1 = ((word >> 11) + 1/2) 2^-53 from k words, u2 the next (k + 1) // 2 words read
    as 32-bit integers.
    """
    size = out.shape[1]
    k = (size + 1) // 2
    if out.dtype == np.float32:
        u = words.view(np.uint32)
        r = u[:, :k].astype(np.float32)
        r += np.float32(0.5)
        r *= np.float32(2.0 ** -32)
        t = u[:, k:2 * k].view(np.int32).astype(np.float32)
        t *= np.float32(2.0 * math.pi * 2.0 ** -32)
        factor = np.float32(factor)
    else:
        r = (words[:, :k] >> np.uint64(11)).astype(np.float64)
        r *= 2.0 ** -53
        r += 2.0 ** -54
        t = np.ascontiguousarray(words[:, k:]).view(np.uint32)[:, :k].view(np.int32).astype(np.float64)
        t *= 2.0 * math.pi * 2.0 ** -32
    np.log(r, out=r)
    r *= factor
    np.sqrt(r, out=r)
    if out.dtype == np.float32:  # numpy's float32 sine and cosine are vectorized
        np.multiply(np.cos(t), r, out=out[:, :k])
        np.sin(t, out=t)
        t *= r
        out[:, k:] = t[:, :size - k]
        return
    # Where numpy vectorizes the float64 tangent (AVX-512: 1.4 ns) its sine and cosine are still
    # scalar libm calls (12 ns each); on AVX2 all three are scalar and this costs what they do:
    # cos t and sin t from w = tan(t/2), within a few ulps of 1 absolute.
    t *= 0.5
    np.tan(t, out=t)
    q = np.square(t)
    q += 1.0
    np.divide(r, q, out=r)  # r / (1 + w^2)
    q -= 2.0  # w^2 - 1
    np.multiply(q, r, out=q)
    np.negative(q, out=out[:, :k])
    t *= r
    t *= 2.0
    out[:, k:] = t[:, :size - k]


def words_for(size: int, dtype: np.dtype) -> int:
    """Raw words a step of `size` entries takes (see box_muller)."""
    k = (size + 1) // 2
    return k + (k + 1) // 2 if dtype == np.float64 else k


def elu_exp(lam: float, lam_alpha: float):
    """The ELU family's fn (kernel ("elu", lambda, lambda alpha)) with exp(x) - 1 for expm1, for
    float32: numpy's float32 expm1 is scalar, 8x its exp here (docs/engine.md, Performance);
    within ~2 ulp of lambda alpha absolute, inside the backends' stated bound."""
    def fn(x, out):
        one = x.dtype.type
        neg = _buffer("neg", x.dtype, x.size).reshape(x.shape)
        np.minimum(x, one(0.0), out=neg)
        np.exp(neg, out=neg)
        neg -= one(1.0)
        neg *= one(lam_alpha)
        np.maximum(x, one(0.0), out=out)
        if lam != 1.0:
            out *= one(lam)
        out += neg
        return out
    return fn


def activate_blocks(act, h, x, block, out, sums, fn=None) -> None:
    """Backend.activate with `fn` (default act.fn) and a given `sums`, block by block, in place."""
    fn = fn or act.fn
    trials = h.shape[0]
    h2, x2 = h.reshape(trials, -1), x.reshape(trials, -1)
    for t in range(trials):
        for b, start in enumerate(range(0, h2.shape[1], block)):
            hb, xb = h2[t, start:start + block], x2[t, start:start + block]
            out[t, b, :2] = sums(hb)
            fn(hb, out=xb)
            out[t, b, 2:] = sums(xb)


def _fn(act, dtype):
    """act's function as this backend applies it: float32's ELU family through elu_exp."""
    if act.kernel is not None and act.kernel[0] == "elu" and dtype == np.float32:
        return elu_exp(*act.kernel[1:])
    return act.fn


class NumpyBackend:
    """Box-Muller and the activations in numpy; float64 sums through a per-thread buffer."""

    name = "numpy"

    def normals(self, states, out, scale):
        rows, step = out.reshape(len(states), -1), 2 * backends.PAIRS
        for start in range(0, rows.shape[1], step):  # a step of every stream at once (small trials: one)
            part = rows[:, start:start + step]
            words = np.empty((len(states), words_for(part.shape[1], out.dtype)), np.uint64)
            for state, w in zip(states, words):
                with backends.sfc64(state) as stream:
                    w[:] = stream.random_raw(w.size)
            box_muller(words, part, -2.0 * scale * scale)

    def activate(self, act, h, x, block, out):
        activate_blocks(act, h, x, block, out, sums, _fn(act, h.dtype))

    def apply(self, act, h, x):
        _fn(act, h.dtype)(h, out=x)

    def sums(self, x):
        return sums(x)

    def act_grad(self, act, p, y, g, out, tmp):
        return np.multiply(act.deriv_given(p, y, out, tmp), g, out=out)
