"""Batch and layer normalization of a (batch, width) array, forward in place and backward.

p = (h - mean) / sqrt(var + NORM_EPS), with the biased variance, gain 1 and shift 0: over the
batch for each unit (batch norm, Ioffe & Szegedy 2015) or over the units for each sample (layer
norm, Ba et al. 2016). The statistics accumulate in float64, two passes, chunk by chunk.
"""

from __future__ import annotations

import numpy as np

from snn_lab.config import NORM_EPS

CHUNK = 1 << 16  # entries converted to float64 at a time


def axis(kind: str) -> int:
    """The axis a norm averages over: rows (batch norm) or units (layer norm)."""
    return 0 if kind == "batch" else 1


def normalize(kind: str, h: np.ndarray, rows: int | None = None) -> np.ndarray:
    """Normalize h (batch, width) in place; returns 1 / sqrt(var + eps) (float64), per unit or sample.

    rows: rows converted at a time; the engine fixes it by the layer's width, so that a batch
    norm split into column ranges sums in the same order whatever the split."""
    rows = rows or max(1, CHUNK // h.shape[1])
    parts = range(0, h.shape[0], rows)
    if kind == "layer":  # each row on its own: one chunk at a time
        scale = np.empty(h.shape[0])
        for r in parts:
            block = h[r:r + rows].astype(np.float64)
            block -= block.mean(axis=1, keepdims=True)
            scale[r:r + rows] = 1.0 / np.sqrt(np.einsum("ij,ij->i", block, block) / h.shape[1] + NORM_EPS)
            block *= scale[r:r + rows, None]
            np.copyto(h[r:r + rows], block, casting="unsafe")
        return scale
    mean = np.zeros(h.shape[1])
    for r in parts:
        mean += h[r:r + rows].sum(axis=0, dtype=np.float64)
    mean /= h.shape[0]
    var = np.zeros(h.shape[1])
    for r in parts:  # around the mean: exact where the mean dwarfs the spread
        d = h[r:r + rows] - mean
        var += np.einsum("ij,ij->j", d, d)
    scale = 1.0 / np.sqrt(var / h.shape[0] + NORM_EPS)
    for r in parts:
        np.copyto(h[r:r + rows], (h[r:r + rows] - mean) * scale, casting="unsafe")
    return scale


def backward(kind: str, g: np.ndarray, p: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """dL/dh from dL/dp = g, the normalized p and the scale normalize() returned (exact, eps included).

    dL/dh = scale * (g - mean(g) - p mean(g p)), the means over the normalized axis: the
    statistics depend on every entry they average, hence the two projections.
    """
    ax = axis(kind)
    g64, p64 = np.asarray(g, np.float64), np.asarray(p, np.float64)
    mean_g = g64.mean(axis=ax, keepdims=True)
    mean_gp = (g64 * p64).mean(axis=ax, keepdims=True)
    s = scale[None, :] if ax == 0 else scale[:, None]
    return s * (g64 - mean_g - p64 * mean_gp)
