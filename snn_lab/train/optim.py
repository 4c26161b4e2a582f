"""Optimizers: plain SGD, heavy-ball momentum and Adam, updating the parameters in place."""

from __future__ import annotations

import numpy as np

ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8  # Kingma & Ba (2015)'s defaults


class Optimizer:
    """w <- w - lr * direction(grad), the direction by kind: grad, its momentum, or Adam's ratio."""

    def __init__(self, kind: str, params: list[np.ndarray], lr: float, momentum: float = 0.9):
        self.kind, self.lr, self.momentum, self.t = kind, lr, momentum, 0
        self.m = [np.zeros_like(p) for p in params] if kind != "sgd" else []
        self.v = [np.zeros_like(p) for p in params] if kind == "adam" else []

    def step(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        """One update of every parameter from its gradient."""
        self.t += 1
        with np.errstate(all="ignore"):
            if self.kind == "sgd":
                for p, g in zip(params, grads):
                    p -= p.dtype.type(self.lr) * g
            elif self.kind == "momentum":  # v <- mu v + g; w <- w - lr v
                for p, g, m in zip(params, grads, self.m):
                    m *= m.dtype.type(self.momentum)
                    m += g
                    p -= p.dtype.type(self.lr) * m
            else:
                b1, b2 = ADAM_BETAS
                rate = self.lr * np.sqrt(1.0 - b2 ** self.t) / (1.0 - b1 ** self.t)  # bias corrections
                for p, g, m, v in zip(params, grads, self.m, self.v):
                    dt = p.dtype.type
                    m *= dt(b1)
                    m += dt(1.0 - b1) * g
                    v *= dt(b2)
                    v += dt(1.0 - b2) * (g * g)
                    p -= dt(rate) * m / (np.sqrt(v) + dt(ADAM_EPS))
