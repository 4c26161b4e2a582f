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
    as_typed,
    fixed_points,
    legend_head,
    series_style,
)
from snn_lab.results import Results
from snn_lab.statistics import SETTLE, SETTLED, distance, settle_layer

# A series whose variance spans more than this ratio (simulation or theory) gets the log panel.
DECADES = 100.0


def convergence_data(results: Results) -> dict:
    """What the figure draws beside the summary columns: which series share the linear variance
    panel and which the log one, each series' fixed point (or why none), its distance from it per
    layer (statistics.distance; simulated and predicted) and the layers where it settles."""
    has_theory = "theory_mean" in results.summary and "theory_var" in results.summary
    fixed = fixed_points(results)
    out = {"linear": [], "log": [], "fixed": fixed, "distance": {}, "settle": {}}
    for label in results.labels:
        rows = results.series_summary(label)
        if len(rows["layer"]) == 0:
            continue
        out["log" if _spans_decades(rows, has_theory) else "linear"].append(label)
        point, _ = fixed[label]
        if point is None:
            continue
        out["distance"][label] = (distance(rows["mean"], rows["var"], point),
                                  distance(rows["theory_mean"], rows["theory_var"], point) if has_theory else None)
        out["settle"][label] = tuple(settle_layer(rows[c]) if c in rows else None for c in SETTLED)
    return out


def convergence(results: Results) -> Figure:
    """Mean and variance of the post-activations against layer, simulation beside theory, and
    each series' distance from its fixed point on a log axis, where it settles marked."""
    has_theory = "theory_mean" in results.summary and "theory_var" in results.summary
    data = convergence_data(results)
    index = {label: i for i, label in enumerate(results.labels)}
    panels = ["mean"] + [k for k in ("linear", "log") if data[k]] + (["distance"] if data["distance"] else [])
    heights = {"mean": 1.0, "linear": 1.0, "log": 1.0, "distance": 1.15}
    with rc_context(STYLE):
        fig = _figure((9.5, 2.3 * len(panels) + 1.0))
        axes = dict(zip(panels, fig.subplots(len(panels), 1, sharex=True, squeeze=False,
                                             height_ratios=[heights[p] for p in panels])[:, 0]))
        overflowed, finite_width = False, plot_finite_width.present(results.summary)
        symlog_mean = _symlog_mean(results.summary, has_theory)
        if symlog_mean:
            axes["mean"].set_yscale("symlog", linthresh=1.0)
            axes["mean"].set_yticks(_symlog_ticks(results.summary, has_theory))
        for panel in ("log", "distance"):
            if panel in axes:
                axes[panel].set_yscale("log")
        for label in data["linear"] + data["log"]:
            rows, style = results.series_summary(label), series_style(index[label])
            var_panel = "log" if label in data["log"] else "linear"
            overflowed |= _curve(axes["mean"], rows, "mean", style, has_theory, geometric=False)
            overflowed |= _curve(axes[var_panel], rows, "var", style, has_theory, geometric=var_panel == "log")
            if finite_width:
                for stat, panel in (("mean", "mean"), ("var", var_panel)):
                    plot_finite_width.overlay(axes[panel], rows, stat, style["color"], _dark(style["color"]),
                                              panel == "log")
        axes["mean"].axhline(0.0, color=GREY, linewidth=0.8, zorder=1)
        axes["mean"].set_ylabel(r"mean $\mu$")
        axes["mean"].set_title(r"post-activation mean $\mu$ (target 0)", loc="left")
        for panel, title in (("linear", r"post-activation variance $\nu$ (target 1)"),
                             ("log", r"variance $\nu$ of the series that span more than two decades (log scale)")):
            if panel in axes:
                axes[panel].axhline(1.0, color=GREY, linewidth=0.8, zorder=1)
                axes[panel].set_ylabel(r"variance $\nu$")
                axes[panel].set_title(title, loc="left")
        if "distance" in axes:
            _distance_panel(axes["distance"], results, data, index, has_theory)
        last = axes[panels[-1]]
        last.set_xlabel(r"layer $l$ (0: the input)")
        depth = int(results.summary["layer"].max()) if len(results.summary["layer"]) else 1
        last.set_xlim(0, max(depth, 1))
        band = "±1 sd across trials"
        if data["log"]:
            band += "\n(log axis: $\\nu\\,e^{\\pm \\mathrm{sd}/\\nu}$)"
        handles = legend_head(results.labels, band, has_theory)
        if finite_width:
            handles += plot_finite_width.handles()
        handles.append(Line2D([], [], color=GREY, linewidth=0.8, label="target (0, 1)"))
        if data["distance"]:
            handles += [Line2D([], [], color=GREY, linestyle=":", linewidth=1.0,
                               label=f"tolerance {SETTLE:g}"),
                        Line2D([], [], color=GREY, marker="^", linestyle="none", markersize=7,
                               label=f"converged: within {SETTLE:.0%} of the\nfixed point from here on"),
                        Line2D([], [], color=GREY, marker="^", markerfacecolor="none", linestyle="none",
                               markersize=7, label="... in theory")]
        if overflowed:
            handles.append(_overflow_handle())
        fig.legend(handles=handles, loc="outside right upper", frameon=False)
        fig.suptitle(_title(results, "what depth does to the signal"))
    return fig


def _distance_panel(ax, results: Results, data: dict, index: dict, has_theory: bool) -> None:
    """Each series' distance from its own fixed point (log), the tolerance, where it settles;
    the series without a fixed point are named with the theory's reason."""
    lows = []
    for label, (sim, pred) in data["distance"].items():
        style = series_style(index[label])
        x = results.series_summary(label)["layer"]
        ax.plot(x, _positive(sim), color=style["color"], linestyle=style["linestyle"], marker=style["marker"],
                markersize=4, markevery=max(1, len(x) // 12), linewidth=1.8, zorder=3)
        if has_theory and pred is not None:
            ax.plot(x, _positive(pred), color=_dark(style["color"]), linestyle="--", linewidth=1.3, zorder=4)
        finite = _positive(sim)
        lows.append(np.nanmin(finite) if np.isfinite(finite).any() else SETTLE)
        _settle_marks(ax, data["settle"][label], style["color"])
    ax.axhline(SETTLE, color=GREY, linestyle=":", linewidth=1.0, zorder=1)
    # Down to a little below the simulation's floor (its noise); the theory's geometric approach
    # continues below, to rounding, off the chart.
    ax.set_ylim(bottom=max(min(lows + [SETTLE]) / 3.0, 1e-12))
    ax.set_ylabel("relative distance (log scale)")
    ax.set_title(r"distance from each series' own fixed point $(\mu^*, \nu^*)$: "
                 r"$\max(|\mu-\mu^*|/\sqrt{\nu^*},\ |\nu-\nu^*|/\nu^*)$", loc="left")
    none = [f"{as_typed(label)}: {_short(why)}" for label, (point, why) in data["fixed"].items()
            if point is None and label in index]
    if none:
        ax.text(0.99, 0.97, "not shown (no single fixed point):\n" + "\n".join(none), transform=ax.transAxes,
                ha="right", va="top", fontsize=8, color="0.25",
                bbox={"facecolor": "white", "edgecolor": "0.8", "alpha": 0.9})


def _short(why: str) -> str:
    """The theory's reason, up to its first parenthesis (the rest is detail)."""
    return why.split(" (")[0] or "none found"


def _positive(values) -> np.ndarray:
    """Values for a log axis: 0 and inf/NaN as gaps."""
    v = _finite(values)
    return np.where(v > 0, v, np.nan)


def _settle_marks(ax, layers: tuple[int | None, int | None], color) -> None:
    """Triangles on the layer axis where the series converges: filled simulated, open in theory."""
    sim, pred = layers
    # Theory first and larger: where both fall on one layer, the filled one sits inside the open one.
    for layer, filled in ((pred, False), (sim, True)):
        if layer is not None:
            ax.plot([layer], [0.0], marker="^", markersize=6 if filled else 10, color=color, linestyle="none",
                    markerfacecolor=color if filled else "white", transform=ax.get_xaxis_transform(),
                    clip_on=False, zorder=7 if filled else 6)


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


def _spans_decades(rows: dict, has_theory: bool) -> bool:
    """Whether a series' variance (simulated or predicted) spans more than DECADES, or leaves
    the float range: a linear axis would flatten it, or it the others."""
    cols = [rows["var"]] + ([rows["theory_var"]] if has_theory else [])
    v = np.concatenate([np.asarray(c, dtype=np.float64) for c in cols])
    if not np.isfinite(v).all() and np.isfinite(v).any():
        return True
    positive = v[np.isfinite(v) & (v > 0)]
    return bool(positive.size) and positive.max() > DECADES * positive.min()


def _symlog_mean(summary: dict, has_theory: bool) -> bool:
    """A symlog mean axis: |mean| grew past 1e3."""
    cols = [summary["mean"]] + ([summary["theory_mean"]] if has_theory else [])
    v = np.concatenate([_finite(c) for c in cols])
    v = v[np.isfinite(v)]
    return bool(v.size) and np.abs(v).max() > 1e3
