"""Per-sample figures of docs/normalization.md (registered in docs/quoted_numbers.py's table by
importing this module): the results folder keeps pooled statistics only, so these come from a
float64 forward pass written out here from the layers' definitions, on the engine's own weights
and inputs (snn_lab.simulate.streams), checked against the engine's pooled statistics."""

from __future__ import annotations

import functools

import numpy as np
from quoted_base import numbers

TRIALS = 4  # the normalization example's own count
NUM = r"[\d.]+"


def _forward(s, seed: int, trial: int):
    """Yield (layer, x) for layers 0..depth: h = x W / beta_l, then the norm, phi, the skip."""
    from snn_lab.config import NORM_EPS
    from snn_lab.simulate import streams

    if s.bias_var or s.dropout:
        raise SystemExit(f"{s.label}: biases and dropout are not written out here")
    act, betas, x = s.make_activation(), s.betas(), streams.input_values(s, seed, trial)
    yield 0, x
    for layer in range(1, s.depth + 1):
        h = x @ streams.layer_weights(s, seed, trial, layer) / betas[layer]
        if s.norm != "none":
            axis = 0 if s.norm == "batch" else 1  # batch: each unit over the batch; layer: each sample
            h = h - h.mean(axis=axis, keepdims=True)
            h = h / np.sqrt((h * h).mean(axis=axis, keepdims=True) + NORM_EPS)
        y = act.fn(h)
        x = x + s.residual.alpha * y if s.residual else y
        yield layer, x


@functools.cache
def per_sample(label: str) -> dict[str, np.ndarray]:
    """(trials, depth + 1) arrays for one series of the normalization example in float64 (seed 0):
    the CV of the per-sample squared norm, the mean of the per-sample variances (over units),
    the variance of the per-sample means (over the batch) and the pooled mean."""
    from snn_lab import config, examples
    from snn_lab.simulate import engine

    exp = config.load(str(examples.path("normalization")), overrides=("dtype=float64",))
    s = next(x for x in exp.series if x.label == label)
    out = {k: np.empty((TRIALS, s.depth + 1)) for k in ("cv_norm", "sample_var", "var_of_means", "mean", "var")}
    for t in range(TRIALS):
        for layer, x in _forward(s, exp.seed, t):
            norms, means = (x * x).sum(axis=1), x.mean(axis=1)
            row = {"cv_norm": norms.std() / norms.mean(), "sample_var": x.var(axis=1).mean(),
                   "var_of_means": means.var(), "mean": x.mean(), "var": x.var()}
            for k, v in row.items():
                out[k][t, layer] = v
    # the written-out network is the engine's: its pooled statistics, trial by trial
    stats = engine.run_series(s, exp.seed, TRIALS).stats
    for k, col in (("mean", 0), ("var", 1)):
        if not np.allclose(out[k], stats[..., col], rtol=1e-9, atol=1e-12):
            raise SystemExit(f"{label}: the forward pass written out here is not the engine's ({k})")
    return out


@numbers("normalization-bn-samples", "docs/normalization.md", kind="costly",
         form=rf"goes\n  from {NUM} at layer 1 to {NUM} at layer 64 \(float64, {TRIALS} trials\)")
def normalization_bn_samples() -> str:
    cv = per_sample("ReLU+BN")["cv_norm"].mean(axis=0)
    return f"goes\n  from {cv[1]:.2f} at layer 1 to {cv[-1]:.1f} at layer 64 (float64, {TRIALS} trials)"


@numbers("normalization-nf-samples", "docs/normalization.md", kind="costly",
         form=rf"The mean of the per-sample variances is {NUM}, as predicted\. The excess is the variance of "
              rf"the\n  per-sample means across the batch \({NUM}; float64, {TRIALS} trials\)")
def normalization_nf_samples() -> str:
    nf = per_sample("NF-ReLU")
    return (f"The mean of the per-sample variances is {nf['sample_var'][:, -1].mean():.3f}, as predicted. The excess "
            f"is the variance of the\n  per-sample means across the batch ({nf['var_of_means'][:, -1].mean():.3f}; "
            f"float64, {TRIALS} trials)")


@numbers("normalization-resnet-mean", "docs/normalization.md", kind="costly",
         form=rf"\({NUM} at layer 64, float64, {TRIALS} trials\)")
def normalization_resnet_mean() -> str:
    return f"({per_sample('ResNet ReLU')['mean'][:, -1].mean():.0f} at layer 64, float64, {TRIALS} trials)"
