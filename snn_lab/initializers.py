"""Weight initializers: each a variance (what theory needs) and a sampler (what runs)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# Keras/TensorFlow's correction for a normal truncated at two standard deviations: the
# standard deviation of N(0, 1) restricted to [-2, 2], published as this literal.
KERAS_TRUNCATION_STD = 0.87962566103423978
TRUNCATION = 2.0


def truncated_variance(c: float = TRUNCATION) -> float:
    """Variance of N(0, 1) conditioned on |z| < c (0.7737 for c = 2)."""
    pdf = math.exp(-0.5 * c * c) / math.sqrt(2.0 * math.pi)
    return 1.0 - 2.0 * c * pdf / math.erf(c / math.sqrt(2.0))


@dataclass(frozen=True)
class Initializer:
    """A weight ensemble: its scale and shape (streams.fill_weights draws it) and its variance."""

    name: str
    scale: Callable[[int, int], float]  # (fan_in, fan_out) -> the sampler's std parameter
    kind: str  # "normal" | "uniform" | "truncated" | "orthogonal": the shape of the distribution
    summary: str

    def variance(self, fan_in: int, fan_out: int) -> float:
        """Variance of one weight (gain 1): what mean-field theory uses."""
        s = self.scale(fan_in, fan_out)
        if self.kind == "uniform":
            return s * s / 3.0  # U(-s, s)
        if self.kind == "truncated":
            return s * s * truncated_variance()
        return s * s


INITIALIZERS: dict[str, Initializer] = {i.name: i for i in [
    Initializer("lecun_normal", lambda fi, fo: math.sqrt(1.0 / fi), "normal", "N(0, 1/fan_in)"),
    Initializer("he_normal", lambda fi, fo: math.sqrt(2.0 / fi), "normal", "N(0, 2/fan_in)"),
    Initializer("glorot_normal", lambda fi, fo: math.sqrt(2.0 / (fi + fo)), "normal",
                "N(0, 2/(fan_in + fan_out))"),
    Initializer("lecun_uniform", lambda fi, fo: math.sqrt(3.0 / fi), "uniform",
                "U(-sqrt(3/fan_in), sqrt(3/fan_in)): variance 1/fan_in"),
    Initializer("lecun_truncated", lambda fi, fo: math.sqrt(1.0 / fi) / KERAS_TRUNCATION_STD,
                "truncated", "Keras: normal truncated at 2 sd, corrected to variance 1/fan_in"),
    Initializer("lecun_truncated_uncorrected", lambda fi, fo: math.sqrt(1.0 / fi), "truncated",
                "normal truncated at 2 sd, uncorrected: variance 0.774/fan_in"),
    # PyTorch's orthogonal_(gain) and Keras' Orthogonal(gain): gain times a Haar (semi-)orthogonal
    # matrix, whose entries have variance 1/max(fan_in, fan_out): 1/fan_in for the square layers
    # here, so sigma_w^2 = gain^2 as for lecun_normal with the same gain.
    Initializer("orthogonal", lambda fi, fo: math.sqrt(1.0 / max(fi, fo)), "orthogonal",
                "gain x Haar-random orthogonal (QR of a Gaussian, signs fixed): variance 1/fan_in"),
]}


def haar_orthogonal(g: np.ndarray) -> np.ndarray:
    """The Haar-random (semi-)orthogonal matrix of a Gaussian one's QR, in float64.

    (rows, cols) with orthonormal columns if rows >= cols, else orthonormal rows. numpy's QR
    leaves the signs of diag(R) to LAPACK, which makes Q not Haar: Q D with D = sign(diag R)
    is (Mezzadri 2007, "How to generate random matrices from the classical compact groups").
    """
    g = np.asarray(g, np.float64)
    wide = g.shape[0] < g.shape[1]
    q, r = np.linalg.qr(g.T if wide else g)
    q *= np.where(np.diagonal(r) < 0, -1.0, 1.0)  # a zero diagonal (probability 0) keeps its sign
    return q.T if wide else q
