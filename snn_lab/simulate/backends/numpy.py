"""The numpy backend: always present. numpy's own loops, on blocks that stay in cache."""

from __future__ import annotations

import math
import threading

import numpy as np

from snn_lab.simulate import backends

_scratch = threading.local()  # per-thread float64 buffers for the sums


def as_float64(x: np.ndarray) -> np.ndarray:
    """x's entries as a flat float64 array (this thread's buffer for float32: no allocation)."""
    flat = x.reshape(-1)
    if flat.dtype == np.float64:
        return flat
    buf = getattr(_scratch, "buf", None)
    if buf is None or buf.size < flat.size:
        buf = _scratch.buf = np.empty(max(flat.size, 1 << 16))
    out = buf[:flat.size]
    np.copyto(out, flat)
    return out


def sums(x: np.ndarray) -> tuple[float, float]:
    """(sum, sum of squares) in float64: numpy's pairwise sum and BLAS's dot."""
    v = as_float64(x)
    return float(np.add.reduce(v)), float(np.dot(v, v))


def box_muller(words: np.ndarray, out: np.ndarray, factor: float) -> None:
    """One step of 2k entries from its raw words, in the layout of the compiled loop: out's
    first k entries get r cos t, the next ones r sin t (the last sine dropped for an odd count),
    r = sqrt(factor ln u1), factor = -2 scale^2, t = 2 pi u2 as a signed turn.

    float32: the k words read as 2k 32-bit integers, u1 = (first k + 1/2) 2^-32, u2 the next k;
    float64: u1 = ((word >> 11) + 1/2) 2^-53 from k words, u2 the next (k + 1) // 2 words read
    as 32-bit integers.
    """
    size = out.size
    k = (size + 1) // 2
    if out.dtype == np.float32:
        u = words.view(np.uint32)
        r = u[:k].astype(np.float32)
        r += np.float32(0.5)
        r *= np.float32(2.0 ** -32)
        t = u[k:2 * k].view(np.int32).astype(np.float32)
        t *= np.float32(2.0 * math.pi * 2.0 ** -32)
        factor = np.float32(factor)
    else:
        r = (words[:k] >> np.uint64(11)).astype(np.float64)
        r *= 2.0 ** -53
        r += 2.0 ** -54
        t = words[k:].view(np.uint32)[:k].view(np.int32).astype(np.float64)
        t *= 2.0 * math.pi * 2.0 ** -32
    np.log(r, out=r)
    r *= factor
    np.sqrt(r, out=r)
    np.multiply(np.cos(t), r, out=out[:k])
    np.sin(t, out=t)
    t *= r
    out[k:] = t[:size - k]


def words_for(size: int, dtype: np.dtype) -> int:
    """Raw words a step of `size` entries takes (see box_muller)."""
    k = (size + 1) // 2
    return k + (k + 1) // 2 if dtype == np.float64 else k


def activate_blocks(act, h, x, block, out, sums) -> None:
    """Backend.activate with act.fn and a given `sums`, block by block, in place."""
    trials = h.shape[0]
    h2, x2 = h.reshape(trials, -1), x.reshape(trials, -1)
    for t in range(trials):
        for b, start in enumerate(range(0, h2.shape[1], block)):
            hb, xb = h2[t, start:start + block], x2[t, start:start + block]
            out[t, b, :2] = sums(hb)
            act.fn(hb, out=xb)
            out[t, b, 2:] = sums(xb)


class NumpyBackend:
    """Box-Muller and the activations in numpy; float64 sums through a per-thread buffer."""

    name = "numpy"

    def normals(self, streams, out, scale):
        per = out.size // len(streams)
        flat = out.reshape(-1)
        factor = -2.0 * scale * scale
        for i, stream in enumerate(streams):
            part = flat[i * per:(i + 1) * per]
            for start in range(0, per, 2 * backends.PAIRS):
                step = part[start:start + 2 * backends.PAIRS]
                box_muller(stream.random_raw(words_for(step.size, out.dtype)), step, factor)

    def activate(self, act, h, x, block, out):
        activate_blocks(act, h, x, block, out, sums)

    def sums(self, x):
        return sums(x)
