"""Figures of the jacobian measurement: the squared singular values' density at a few depths,
and their mean and variance against depth, each beside its infinite-width theory (snn_lab.plot
calls these; they need the folder's jacobian tables)."""

from __future__ import annotations

import math

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from snn_lab.results import Results
from snn_lab.theory.spectrum import fuss_catalan_density

DEPTHS_SHOWN = 3  # measured layers per density panel: the first two and the last
FLOOR = 1e-8  # lambda below this (a dead direction, or rounding) is counted, not drawn
PALETTE = ("#0072B2", "#D55E00", "#009E73")  # one colour per depth shown


def has_jacobian(results: Results) -> bool:
    """Whether the folder holds the jacobian measurement's tables."""
    return "jacobian.csv" in results.tables


def _figure(size) -> Figure:
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _empty(results: Results, what: str) -> Figure:
    fig = _figure((6, 2))
    fig.text(0.5, 0.5, f"{results.config.get('name', 'results')}: no {what} (add jacobian to measure:)",
             ha="center", va="center")
    return fig


def _linear_gaussian(series: dict) -> bool:
    """A plain linear series with i.i.d. weights: its lambda follow Fuss-Catalan (times gain^(2L))."""
    act = series["activation"]
    name = act if isinstance(act, str) else act.get("name")
    return (name == "linear" and series.get("init") != "orthogonal" and not series.get("residual")
            and series.get("norm", "none") == "none" and not series.get("normalize_weights")
            and not series.get("bias_var") and (isinstance(act, str) or act.get("scale", 1.0) == 1.0))


def density(results: Results, bins: int = 40) -> Figure:
    """Per series, the density of log10 lambda at up to three measured depths (all trials and
    inputs pooled), with the Fuss-Catalan density for a linear network with Gaussian weights."""
    if not has_jacobian(results) or not len(results.tables["jacobian_values.csv"]["value"]):
        return _empty(results, "squared singular values")
    vals = results.tables["jacobian_values.csv"]
    series = results.config["series"]
    cols = min(3, len(series))
    rows = math.ceil(len(series) / cols)
    fig = _figure((4.2 * cols, 3.0 * rows))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, s in zip(axes, series):
        mine = vals["series"] == s["label"]
        layers = sorted(set(vals["layer"][mine].tolist()))
        shown = sorted({*layers[:DEPTHS_SHOWN - 1], layers[-1]}) if layers else []
        for color, layer in zip(PALETTE, shown):
            lam = vals["value"][mine & (vals["layer"] == layer)]
            lam = lam[np.isfinite(lam)]
            logs = np.log10(lam[lam >= FLOOR])
            if not logs.size:
                continue
            # Densities of the whole sample: the part below FLOOR is missing from the area.
            weights = np.full(logs.size, 1.0 / lam.size)
            edges = np.linspace(math.log10(FLOOR), max(1.0, logs.max()), bins + 1)
            weights /= edges[1] - edges[0]
            below = 1.0 - logs.size / lam.size
            ax.hist(logs, bins=edges, weights=weights, histtype="stepfilled", alpha=0.3, color=color)
            ax.hist(logs, bins=edges, weights=weights, histtype="step", color=color,
                    label=f"layer {layer}" + (f" ({below:.0%} below {FLOOR:.0e})" if below else ""))
            if _linear_gaussian(s):
                x, p = fuss_catalan_density(layer, points=2000)
                gain2l = s.get("gain", 1.0) ** (2 * layer)
                ok = (x >= FLOOR) & np.isfinite(p)
                # p(log10 lambda) = p(lambda) lambda ln 10
                ax.plot(np.log10(x[ok] * gain2l), p[ok] * x[ok] * math.log(10), color=color, linestyle="--",
                        linewidth=1.2)
        ax.set_title(s["label"], fontsize=10)
        ax.set_xlabel(r"$\log_{10} \lambda$ (squared singular value of $J$)")
        ax.set_ylabel("density")
        ax.legend(fontsize=8, loc="upper left")
    for ax in axes[len(series):]:
        ax.set_visible(False)
    if any(_linear_gaussian(s) for s in series):
        fig.legend([Line2D([], [], color="0.3", linestyle="--")], ["Fuss-Catalan (infinite width)"],
                   loc="lower right", fontsize=8)
    fig.suptitle(f"{results.config.get('name', 'results')}: input-output Jacobian spectrum "
                 f"({results.config.get('trials')} trials)")
    return fig


def moments(results: Results) -> Figure:
    """Mean and variance of lambda against depth per series: measured (mean over trials and
    inputs, +- a standard error) and free probability's (dashed)."""
    if not has_jacobian(results):
        return _empty(results, "Jacobian spectrum")
    table = results.tables["jacobian.csv"]
    fig = _figure((11, 4.2))
    axes = fig.subplots(1, 2)
    colors = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
    for i, s in enumerate(results.config["series"]):
        mine = table["series"] == s["label"]
        layers = np.array(sorted(set(table["layer"][mine].tolist())))
        color = colors[i % len(colors)]
        for ax, col in zip(axes, ("mean", "var")):
            stats = []
            for layer in layers:
                v = table[col][mine & (table["layer"] == layer)]
                v = v[np.isfinite(v)]
                se = v.std(ddof=1) / math.sqrt(v.size) if v.size > 1 else math.nan
                stats.append((v.mean() if v.size else math.nan, se))
            y, se = np.array(stats).T
            ax.errorbar(layers, y, yerr=se, color=color, marker="o", markersize=3.5, linewidth=1.4,
                        capsize=2, label=s["label"])
            th = np.array([table[f"theory_{col}"][mine & (table["layer"] == layer)][0] for layer in layers])
            ax.plot(layers, th, color=color, linestyle="--", linewidth=1.1)
    for ax, what in zip(axes, (r"mean of $\lambda$ ($\chi_1^L$ at the fixed point)",
                               r"variance of $\lambda$ (free probability)")):
        ax.set_yscale("log")
        ax.set_xlabel("layer L")
        ax.set_title(what, fontsize=10)
    axes[0].legend(fontsize=8)
    axes[1].legend([Line2D([], [], color="0.3"), Line2D([], [], color="0.3", linestyle="--")],
                   ["measured (+- 1 s.e.)", "theory (infinite width)"], fontsize=8)
    fig.suptitle(f"{results.config.get('name', 'results')}: squared singular values of the input-output "
                 "Jacobian against depth")
    return fig
