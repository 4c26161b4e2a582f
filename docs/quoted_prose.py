"""Quoted numbers inside the prose of finite-width.md, normalization.md and results.md (registered
in docs/quoted_numbers.py's table by importing this module)."""

from __future__ import annotations

import sys

from quoted_base import ROOT, at, numbers, summary


def relu_exact_excess(n: int) -> float:
    """n^2 (Var(log R) - 5/n) of one ReLU-He layer's exact law (tests/test_width_correction.py's closed form).

    R = (2/n) chi^2_K, K ~ Binomial(n, 1/2) given K > 0: Var(log R) = E psi'(K/2) + Var psi(K/2).
    """
    import numpy as np
    from scipy import special, stats

    k = np.arange(1, n + 1)
    p = stats.binom.pmf(k, n, 0.5) / (1 - 0.5 ** n)
    exact = p @ special.polygamma(1, k / 2) + p @ special.digamma(k / 2) ** 2 - (p @ special.digamma(k / 2)) ** 2
    return float((exact - 5.0 / n) * n * n)


@numbers("relu-exact-law", "docs/finite-width.md")
def relu_exact_law() -> str:
    return f"5/n + {relu_exact_excess(32):.1f}/n^2 at n = 32\n  and 5/n + {relu_exact_excess(512):.1f}/n^2 at n = 512"


def _table():
    sys.path.insert(0, str(ROOT / "docs"))
    import finite_width_table as fwt

    return fwt


@numbers("finite-width-law-se", "docs/finite-width.md")
def finite_width_law_se() -> str:
    widths = _table().LAW_WIDTHS
    se = ", ".join(f"{100 * (2 / (trials - 1)) ** 0.5:.2g}% at {'n = ' if i == 0 else ''}{n}"
                   for i, (n, trials) in enumerate(widths))
    c = relu_exact_excess(32)
    return (f"(standard errors of the measured values, sqrt(2 / (N - 1)) of N networks: {se}). ReLU at\n"
            f"n = 32 gains {100 * c / (5 * 32):.1f}% more than 5/n per layer: the exact law's {c:.1f}/n^2, "
            f"{c:.1f} / (5 x 32) = {c / (5 * 32):.3f}")


@numbers("finite-width-tanh-low", "docs/finite-width.md", kind="costly",
         form=r"Var\(log q\) [\d.]+ to [\d.]+: [\d.]+ to [\d.]+% low")
def finite_width_tanh_low() -> str:
    fwt = _table()
    tanh = dict(fwt.law_table())["tanh"]
    deep = [(cell[-1][0], cell[-1][2], n) for (n, _), cell in zip(fwt.LAW_WIDTHS, tanh)]  # layer n/2
    spread = [p / n for _, p, n in deep]
    low = [100 * (m - p) / m for m, p, _ in deep]
    return f"Var(log q) {min(spread):.2f} to {max(spread):.2f}: {min(low):.2g} to {max(low):.2g}% low"


@numbers("finite-width-silu-late", "docs/finite-width.md", slow=True)
def finite_width_silu_late() -> str:
    import numpy as np
    from quoted_runs import finite_width_run

    from snn_lab import config, examples
    from snn_lab.theory import meanfield

    s = finite_width_run()[0]
    silu = {k: v[s["series"] == "silu (He)"] for k, v in s.items()}
    series = next(x for x in config.load(str(examples.path("finite_width"))).series if x.label == "silu (He)")
    q = meanfield.predict(series)[:-1, 2]
    slope = max(x * meanfield.q_slope(series, x) / meanfield.q_map(series, x) for x in q)
    beyond = int(silu["layer"][silu["fw_log_q_var"] > 0.5].min())
    ratio = at(silu, "var_sd", 8) / at(silu, "fw_var_sd", 8)
    assert np.isfinite(ratio), "silu-He's layer 8 has no predicted spread"
    return (f"(s up to {slope:.2f}): silu-He at width {series.width} passes\n  0.5 at layer {beyond}, and at layer 8 "
            f"its measured sd of var is {ratio:.1f} times the predicted one")


@numbers("normalization-bn-batch", "docs/normalization.md")
def normalization_bn_batch() -> str:
    from snn_lab import config
    from snn_lab.theory import blocks

    text = ("name: bn\nseed: 0\ntrials: 1\nwidth: 512\ndepth: 8\nbatch: 64\n"  # chi settles in a few layers
            "series:\n  - {label: tanh+BN, activation: tanh, init: lecun_normal, norm: batch}\n")
    rep = blocks.report(config.load(text=text).series[0])
    return (f"{100 * abs(rep['gradient_growth'] / rep['gradient_growth_limit'] - 1):.1f}% per layer for tanh "
            f"(`gradient_growth` {rep['gradient_growth']:.4f} against `gradient_growth_limit` "
            f"{rep['gradient_growth_limit']:.4f})")


@numbers("results-selu-wander", "docs/results.md", slow=True)
def results_selu_wander() -> str:
    import numpy as np

    s = summary(trials=4, width=128, depth=64, batch=512, series=[{"activation": "selu"}])
    deep = s["layer"] >= 1
    off = np.abs(s["var"][deep] - 1)
    return (f"wanders by up to {100 * off.max():.2g}% (layer {int(s['layer'][deep][off.argmax()])}; "
            "4 trials, batch 512, depth 64, seed 0)")


@numbers("normalization-bn-batch-var", "docs/normalization.md", kind="costly",
         form=r"n \(E S / S - 1\) is [-\d.]+ ± [\d.]+ at layer 2, rising to [-\d.]+ ± [\d.]+ at layer 6 for ReLU "
              r"\(tanh: [-\d.]+ ± [\d.]+, [-\d.]+ ± [\d.]+\), \d+ numpy networks at n = B = \d+")
def normalization_bn_batch_var() -> str:
    """The batch variance S of a batch-norm layer's input, per unit with ddof 1, against its
    infinite-width value tau (M - C) of the previous layer (theory/blocks.walk): float64 numpy
    networks written from the layer's definition, gain 1, shift 0 (about 20 s)."""
    import numpy as np

    from snn_lab import config
    from snn_lab.config import NORM_EPS
    from snn_lab.theory import blocks

    n = batch = 128
    depth, trials, cells = 6, 300, {}
    for act, init in (("relu", "he_normal"), ("tanh", "lecun_normal")):
        s = config.load(text=f"name: bn\nseed: 0\ntrials: 1\nwidth: {n}\ndepth: {depth}\nbatch: {batch}\nseries:\n"
                             f"  - {{label: bn, activation: {act}, init: {init}, norm: batch}}\n").series[0]
        walk, tau, fn = blocks.walk(s, grads=False), s.weight_var, s.make_activation().fn
        theory = np.array([tau * (walk[k].second - walk[k].cross) for k in range(depth)])
        rng, S = np.random.default_rng(2017), np.empty((trials, depth))
        for t in range(trials):
            x = rng.standard_normal((batch, n))
            for k in range(depth):
                h = x @ (rng.standard_normal((n, n)) * np.sqrt(tau / n))
                S[t, k] = h.var(axis=0, ddof=1).mean()
                x = fn((h - h.mean(axis=0)) / np.sqrt(h.var(axis=0) + NORM_EPS))
        bias = n * (S.mean(axis=0) / theory - 1)
        se = n * S.std(axis=0, ddof=1) / np.sqrt(trials) / theory
        cells[act] = [f"{bias[k]:.2f} ± {se[k]:.2f}" for k in (1, 5)]
    return (f"n (E S / S - 1) is {cells['relu'][0]} at layer 2, rising to {cells['relu'][1]} at layer 6 for ReLU "
            f"(tanh: {cells['tanh'][0]}, {cells['tanh'][1]}), {trials} numpy networks at n = B = {n}")
