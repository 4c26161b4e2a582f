"""Figures of the training probe (a train: block): loss curves with trial bands, one panel per
depth (Klambauer et al. 2017's Figure 1 layout), and each layer's variance on the held-out set
at several training steps (does self-normalization survive training?). snn_lab.plot calls these."""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from snn_lab.plot.base import _figure, as_typed
from snn_lab.results import Results

PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
STEPS_SHOWN = 4  # training steps drawn per variance panel: first, last and evenly between


def has_training(results: Results) -> bool:
    """Whether the folder holds the training tables."""
    return "training.csv" in results.tables


def _empty(results: Results) -> Figure:
    fig = _figure((6, 2))
    fig.text(0.5, 0.5, f"{as_typed(results.config.get('name', 'results'))}: no training (add a train: block)",
             ha="center", va="center")
    return fig


def family(series: dict) -> str:
    """A series' name without its depth: 'SELU-16' -> 'SELU' when depth is 16 (its colour in every panel)."""
    return re.sub(rf"[-_ ]?(?:d|depth|L)?{series['depth']}$", "", series["label"]) or series["label"]


def _curve(t: dict, label: str, column: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(steps, mean, min, max over trials) of a training.csv column for one series."""
    mine = t["series"] == label
    steps = np.array(sorted(set(t["step"][mine].tolist())))
    values = np.array([t[column][mine & (t["step"] == s)] for s in steps], dtype=np.float64)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN step (a diverged run) stays NaN
        return steps, np.nanmean(values, axis=1), np.nanmin(values, axis=1), np.nanmax(values, axis=1)


def loss_curves(results: Results) -> Figure:
    """Training loss against step, the trials' mean with their range shaded, one panel per depth;
    the held-out loss dashed."""
    if not has_training(results):
        return _empty(results)
    t = results.tables["training.csv"]
    series = results.config["series"]
    depths = sorted({s["depth"] for s in series})
    families = list(dict.fromkeys(family(s) for s in series))
    fig = _figure((4.0 * len(depths), 3.4))
    axes = fig.subplots(1, len(depths), squeeze=False, sharey=True).ravel()
    for ax, depth in zip(axes, depths):
        for s in (s for s in series if s["depth"] == depth):
            color = PALETTE[families.index(family(s)) % len(PALETTE)]
            steps, mean, lo, hi = _curve(t, s["label"], "train_loss")
            ax.fill_between(steps, lo, hi, color=color, alpha=0.2, linewidth=0)
            ax.plot(steps, mean, color=color, label=as_typed(family(s)))
            steps, mean, _, _ = _curve(t, s["label"], "eval_loss")
            ax.plot(steps, mean, color=color, linestyle="--", linewidth=0.9)
        ax.set_title(f"depth {depth}")
        ax.set_xlabel("step")
        ax.set_yscale("log")
    axes[0].set_ylabel("loss (train: solid, band = trial range; held-out: dashed)", fontsize=8)
    axes[-1].legend(loc="upper right", fontsize=8)
    fig.suptitle(f"{as_typed(results.config.get('name', 'results'))}: training loss "
                 f"({results.config.get('trials')} trials)")
    return fig


def layer_variance(results: Results) -> Figure:
    """Per series, each layer's variance on the held-out set (trials' mean) against layer, at up to
    STEPS_SHOWN training steps: lines that stay at 1 keep self-normalizing while the weights move."""
    if not has_training(results):
        return _empty(results)
    t = results.tables["training_layers.csv"]
    series = results.config["series"]
    steps_all = sorted(set(t["step"].tolist()))
    picks = sorted({steps_all[round(i * (len(steps_all) - 1) / (STEPS_SHOWN - 1))] for i in range(STEPS_SHOWN)})
    cols = min(3, len(series))
    rows = math.ceil(len(series) / cols)
    fig = _figure((4.0 * cols, 2.8 * rows))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    shades = [PALETTE[0], PALETTE[5], PALETTE[2], PALETTE[1]]
    for ax, s in zip(axes, series):
        mine = t["series"] == s["label"]
        for color, step in zip(shades, picks):
            rows_ = mine & (t["step"] == step)
            layers = np.array(sorted(set(t["layer"][rows_].tolist())))
            var = np.array([np.mean(t["var"][rows_ & (t["layer"] == layer)]) for layer in layers])
            var = np.where(np.isfinite(var) & (var > 0), var, np.nan)
            ax.plot(layers, var, color=color, marker="o", markersize=2.5, label=f"step {step}")
        ax.axhline(1.0, color="0.45", linewidth=0.8, linestyle=":")
        ax.set_yscale("log")
        ax.set_title(as_typed(s["label"]))
        ax.set_xlabel("layer")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("variance (held-out)")
    for ax in axes[len(series):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{as_typed(results.config.get('name', 'results'))}: each layer's variance through training")
    return fig
