"""The tables of docs/finite-width.md: predicted against measured spread across trials.

    python docs/finite_width_table.py     (about a minute; docs/numbers.py writes the first table)

1. Var(log q) of one input's layer (the pooled pre-activation second moment), times the width,
   over many networks drawn from the exact law of Gaussian weights (given a layer, the next
   one's n pre-activations are i.i.d. N(0, K): rotation invariance), against spread().log_preact.
2. The engine at width 64, batch 16, 200 trials: sd of the pooled variance across trials
   against the predicted fw_var_sd.
"""

import functools
import math

import numpy as np

from snn_lab.config import InputSpec, Series
from snn_lab.simulate import engine
from snn_lab.theory import width_correction as wc


def series(activation, init, width, depth, batch, **kw):
    return Series(label=f"{activation}-{init}", activation=activation, activation_params=(), init=init,
                  width=width, depth=depth, batch=batch, dtype="float64", input=InputSpec(0.0, 1.0), **kw)


def exact_law(s, trials, layers, rng):
    act, n, tau = s.make_activation(), s.width, s.weight_var
    x = rng.standard_normal((trials, n))
    K, out = tau * np.mean(x * x, axis=1), {}
    for layer in range(1, max(layers) + 1):
        h = np.sqrt(K)[:, None] * rng.standard_normal((trials, n))
        out[layer] = np.log(np.mean(h * h, axis=1))
        K = tau * np.mean(act.fn(h) ** 2, axis=1)
    return [out[layer] for layer in layers]


LABELS = {"selu": "SELU", "relu": "ReLU-He", "tanh": "tanh", "elu": "ELU"}
LAW_WIDTHS = ((32, 2000), (128, 1000), (512, 400))  # (width, networks) of the first table


@functools.cache  # docs/quoted_numbers.py quotes it in two blocks: one Monte Carlo
def law_table(seed: int = 2019):
    """[(label, [per width: [(n Var(log q), its se, predicted) per layer]])]: the first table."""
    rng, table = np.random.default_rng(seed), []
    for name, init in [("selu", "lecun_normal"), ("relu", "he_normal"), ("tanh", "lecun_normal"),
                       ("elu", "lecun_normal")]:
        cells = []
        for n, trials in LAW_WIDTHS:
            layers = (n // 8, n // 4, n // 2)
            pred = wc.spread(series(name, init, n, n // 2, 1)).log_preact
            cell = []
            for layer, logs in zip(layers, exact_law(series(name, init, n, n // 2, 1), trials, layers, rng)):
                v = logs.var(ddof=1)
                cell.append((v * n, v * n * math.sqrt(2 / (trials - 1)), pred[layer] * n))
            cells.append(cell)
        table.append((LABELS[name], cells))
    return table


def main():
    print("n Var(log q): activation, width, layer: measured (+- se) / predicted")
    for label, cells in law_table():
        for n, cell in zip((32, 128, 512), cells):
            for layer, (v, se, pred) in zip((n // 8, n // 4, n // 2), cell):
                print(f"{label:7} {n:4} {layer:4}: {v:8.2f} (+- {se:5.2f}) / {pred:8.2f}")
    engine_table()


ENGINE_SERIES = [("selu", "lecun_normal", {}), ("relu", "he_normal", {}), ("tanh", "lecun_normal", {}),
                 ("elu", "lecun_normal", {}), ("selu", "lecun_normal", {"dropout": 0.1}),
                 ("selu", "lecun_normal", {"normalize_weights": True}), ("relu", "lecun_uniform", {})]


def engine_rows(layers=(1, 4, 8)):
    """Per ENGINE_SERIES entry, [(layer, measured sd, predicted sd)] of the pooled var across 200 trials."""
    rows = []
    for name, init, kw in ENGINE_SERIES:
        s = series(name, init, 64, 8, 16, **kw)
        sd = engine.run_series(s, 19, 200).stats[:, :, 1].std(axis=0, ddof=1)
        _, pred = wc.correct(s)
        rows.append([(layer, sd[layer], pred[layer, 1]) for layer in layers])
    return rows


def engine_table():
    print("\nengine, width 64, batch 16, 200 trials: sd of the pooled var, measured / predicted")
    for (name, init, kw), cells in zip(ENGINE_SERIES, engine_rows()):
        shown = "  ".join(f"L{layer}: {m:.4f} / {p:.4f}" for layer, m, p in cells)
        print(f"{name:5} {init:13} {kw!s:28} {shown}")


if __name__ == "__main__":
    main()
