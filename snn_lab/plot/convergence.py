"""The convergence figure: mean and variance against depth, simulation beside theory."""

from __future__ import annotations

import numpy as np
from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from snn_lab.plot import finite_width as plot_finite_width
from snn_lab.plot.base import (
    GREY,
    STYLE,
    _dark,
    _figure,
    _finite,
    _mark_overflow,
    _overflow_handle,
    _title,
    legend_head,
    series_style,
)
from snn_lab.results import Results
from snn_lab.statistics import SETTLE, settle_layer


def convergence(results: Results) -> Figure:
    """Mean and variance of the post-activations against layer, simulation beside theory."""
    has_theory = "theory_mean" in results.summary and "theory_var" in results.summary
    log_var, symlog_mean = _scales(results.summary, has_theory)
    with rc_context(STYLE):
        fig = _figure((9.5, 6.8))
        ax_mean, ax_var = fig.subplots(2, 1, sharex=True)
        if log_var:
            ax_var.set_yscale("log")
        if symlog_mean:
            ax_mean.set_yscale("symlog", linthresh=1.0)
            ax_mean.set_yticks(_symlog_ticks(results.summary, has_theory))
        overflowed, finite_width = False, plot_finite_width.present(results.summary)
        settles = False
        for i, label in enumerate(results.labels):
            rows = results.series_summary(label)
            if len(rows["layer"]) == 0:
                continue
            style = series_style(i)
            overflowed |= _curve(ax_mean, rows, "mean", style, has_theory, geometric=False)
            overflowed |= _curve(ax_var, rows, "var", style, has_theory, geometric=log_var)
            if finite_width:
                for ax, stat, log in ((ax_mean, "mean", False), (ax_var, "var", log_var)):
                    plot_finite_width.overlay(ax, rows, stat, style["color"], _dark(style["color"]), log)
            settles |= _settle_marks(ax_var, rows, style["color"])
        ax_mean.axhline(0.0, color=GREY, linewidth=0.8, zorder=1)
        ax_var.axhline(1.0, color=GREY, linewidth=0.8, zorder=1)
        ax_mean.set_ylabel(r"mean $\mu$")
        ax_var.set_ylabel(r"variance $\nu$" + (" (log scale)" if log_var else ""))
        ax_var.set_xlabel(r"layer $l$ (0: the input)")
        ax_mean.set_title(r"post-activation mean $\mu$ (target 0)", loc="left")
        ax_var.set_title(r"post-activation variance $\nu$ (target 1)", loc="left")
        depth = int(results.summary["layer"].max()) if len(results.summary["layer"]) else 1
        ax_var.set_xlim(0, max(depth, 1))
        band = "±1 sd across trials"
        if log_var:
            band += "\n(variance: $\\nu\\,e^{\\pm \\mathrm{sd}/\\nu}$)"
        handles = legend_head(results.labels, band, has_theory)
        if finite_width:
            handles += plot_finite_width.handles()
        handles.append(Line2D([], [], color=GREY, linewidth=0.8, label="target (0, 1)"))
        if settles:
            handles += [Line2D([], [], color=GREY, marker="^", linestyle="none", markersize=7,
                               label=f"converged: within {SETTLE:.0%} of the\nfixed point from here on"),
                        Line2D([], [], color=GREY, marker="^", markerfacecolor="none", linestyle="none",
                               markersize=7, label="... in theory")]
        if overflowed:
            handles.append(_overflow_handle())
        ax_mean.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        fig.suptitle(_title(results, "what depth does to the signal"))
    return fig


def _settle_marks(ax, rows: dict, color) -> bool:
    """Triangles on the layer axis where the series converges: filled simulated, open in theory."""
    drawn = False
    # Theory first and larger: where both fall on one layer, the filled one sits inside the open one.
    for column, filled in (("theory_settled", False), ("settled", True)):
        layer = settle_layer(rows[column]) if column in rows else None
        if layer is not None:
            ax.plot([layer], [0.0], marker="^", markersize=6 if filled else 10, color=color, linestyle="none",
                    markerfacecolor=color if filled else "white", transform=ax.get_xaxis_transform(),
                    clip_on=False, zorder=7 if filled else 6)
            drawn = True
    return drawn


def _curve(ax, rows: dict, stat: str, style: dict, has_theory: bool, geometric: bool,
           downward: bool = False) -> bool:
    """One series' simulated statistic with its across-trial band, and its theory line.

    On a log axis the band is y e^(+-sd/y): the same as y +- sd while sd << y, and it never
    reaches zero (y - sd can, and a log axis cannot show it).
    """
    x = rows["layer"]
    y = _finite(rows[stat])
    sd = _finite(rows.get(f"{stat}_sd", np.full(len(x), np.nan)))
    color = style["color"]
    with np.errstate(all="ignore"):
        lo, hi = (y * np.exp(-sd / y), y * np.exp(sd / y)) if geometric else (y - sd, y + sd)
    ax.fill_between(x, lo, hi, color=color, alpha=0.2, linewidth=0, zorder=2)
    ax.plot(x, y, color=color, linestyle=style["linestyle"], marker=style["marker"],
            markersize=4, markevery=max(1, len(x) // 12), linewidth=1.8, zorder=3)
    if has_theory:
        ax.plot(x, _finite(rows[f"theory_{stat}"]), color=_dark(color), linestyle="--",
                linewidth=1.3, zorder=4)
    return _mark_overflow(ax, x, rows[stat], color, downward=downward, log=geometric)


def _symlog_ticks(summary: dict, has_theory: bool) -> list[float]:
    """0 and about six decades either side, for a symlog mean axis (the default crowds them)."""
    cols = [summary["mean"]] + ([summary["theory_mean"]] if has_theory else [])
    v = np.concatenate([_finite(c) for c in cols])
    v = v[np.isfinite(v)]
    top = max(1, int(np.ceil(np.log10(max(np.abs(v).max(), 1.0)))))
    step = max(1, -(-top // 6))
    first = 0 if step == 1 else step  # 10^0 beside 0 crowds it once decades are skipped
    ticks = [0.0]
    for sign in (1.0, -1.0):
        if (sign * v).max() >= 1.0:
            ticks += [sign * 10.0 ** k for k in range(first, top + 1, step)]
    return sorted(ticks)


def _scales(summary: dict, has_theory: bool) -> tuple[bool, bool]:
    """(variance axis logarithmic: positive values span more than two decades,
    mean axis symlog: |mean| grew past 1e3)."""
    def values(stat):
        cols = [summary[stat]] + ([summary[f"theory_{stat}"]] if has_theory else [])
        v = np.concatenate([_finite(c) for c in cols])
        return v[np.isfinite(v)]

    var, mean = values("var"), values("mean")
    positive = var[var > 0]
    log_var = bool(positive.size) and positive.max() > 100 * positive.min()
    return log_var, bool(mean.size) and np.abs(mean).max() > 1e3
