"""Sweep figures: a statistic against the swept keys (lines, or a heatmap for two keys)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from matplotlib import colors as mcolors
from matplotlib import rc_context
from matplotlib import ticker as mticker
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from snn_lab import safefs
from snn_lab.activations import suggest
from snn_lab.errors import SnnLabError
from snn_lab.plot.base import (
    FORMATS,
    GREY,
    PALETTE,
    STYLE,
    _dark,
    _figure,
    _finite,
    _overflow_handle,
    as_typed,
    series_style,
)
from snn_lab.plot.writer import write_figure as _write
from snn_lab.sweep import SweepTable, pooled

# The default statistic: how far the chosen layer is from SELU's fixed point (0, 1). One number
# per point that is 0 exactly where the signal is self-normalized, whatever else was swept.
SWEEP_DEFAULT_STAT = "distance"
SWEEP_MAX_LINES = len(PALETTE)  # more than two keys: lines per panel, one colour each
SWEEP_LABELS = {
    "distance": r"distance from $(0, 1)$: $\sqrt{\mu^2 + (\nu - 1)^2}$",
    "mean": r"mean $\mu$", "var": r"variance $\nu$",
    "preact_mean": "pre-activation mean", "preact_var": "pre-activation variance",
    "grad_sq": r"gradient $E[\delta_l^2]$", "grad_ratio": r"gradient ratio $E[\delta_l^2]/E[\delta_L^2]$",
    "dead_fraction": "fraction of dead units", "correlation": "cosine of two inputs"}
SWEEP_TARGETS = {"distance": 0.0, "mean": 0.0, "var": 1.0, "grad_ratio": 1.0}
SWEEP_SIGNED = ("mean", "preact_mean", "correlation")  # heatmaps centred on 0, blue below, red above
_MEASURE = {"grad_sq": "gradients", "grad_ratio": "gradients", "dead_fraction": "dead",
            "correlation": "correlation"}


class SweepPlotError(SnnLabError, ValueError):
    """A statistic or layer that the sweep cannot show."""


def sweep_stats(sweep: SweepTable) -> tuple[str, ...]:
    """What a sweep figure can show: 'distance', then every summary column with an across-trial sd."""
    return ("distance", *(c for c in sweep.table if f"{c}_sd" in sweep.table))


def _last_layers(table: dict) -> dict:
    """{(point, series): its last layer} (a swept depth, or a series' own, differs by point)."""
    last: dict = {}
    for key, layer in zip(zip(table["point"], table["series"]), table["layer"].tolist()):
        last[key] = max(last.get(key, 0), layer)
    return last


def sweep_layers(sweep: SweepTable) -> int:
    """The deepest layer every (point, series) has: a --layer is one of 0..this."""
    return min(_last_layers(sweep.table).values(), default=0)


def _check_sweep(sweep: SweepTable, stat: str, layer: int | None) -> None:
    valid = sweep_stats(sweep)
    if stat not in valid:
        hint = suggest(stat, valid)
        raise SweepPlotError(f"unknown statistic {stat!r}" + (f"; did you mean {hint!r}?" if hint else "")
                             + f" (expected one of: {', '.join(valid)})")
    needed = ("mean", "var") if stat == "distance" else (stat,)
    if any(np.isnan(sweep.table[c]).all() for c in needed):
        hint = f" (add '{_MEASURE[stat]}' to measure:)" if stat in _MEASURE else ""
        raise SweepPlotError(f"{stat} was not measured in this sweep{hint}")
    top = sweep_layers(sweep)
    if layer is not None and not 0 <= layer <= top:
        shallow = " (the shallowest point's depth)" if int(sweep.table["layer"].max()) > top else ""
        raise SweepPlotError(f"layer {layer} is out of range: this sweep has layers 0..{top}{shallow}, "
                             "0 being the input")


def sweep_values(sweep: SweepTable, stat: str = SWEEP_DEFAULT_STAT, layer: int | None = None) -> dict:
    """sweep.csv's rows at one layer (default: each point's and series' last) with the statistic.

    Adds 'y' (the statistic), 'se' (its standard error, sd / sqrt(trials)) and 'theory' (NaN
    where there is none). For 'distance' = sqrt(mean^2 + (var - 1)^2), the standard error is
    first-order propagation with the mean and variance taken as independent,
    sqrt((mean se_mean)^2 + ((var - 1) se_var)^2) / distance, and the theory is the same
    formula on theory_mean and theory_var.
    """
    _check_sweep(sweep, stat, layer)
    t = sweep.table
    if layer is None:
        last = _last_layers(t)
        keep = np.array([lay == last[key] for key, lay in
                         zip(zip(t["point"], t["series"]), t["layer"].tolist())], dtype=bool)
    else:
        keep = t["layer"] == layer
    rows = {k: v[keep] for k, v in t.items()}
    nan = np.full(int(keep.sum()), np.nan)
    root = np.sqrt(rows["trials"].astype(np.float64))
    with np.errstate(all="ignore"):
        if stat == "distance":
            m, v = rows["mean"], rows["var"]
            y = np.sqrt(m ** 2 + (v - 1.0) ** 2)
            se = np.sqrt((m * rows["mean_sd"] / root) ** 2 + ((v - 1.0) * rows["var_sd"] / root) ** 2) / y
            has = "theory_mean" in rows and "theory_var" in rows
            theory = np.sqrt(rows["theory_mean"] ** 2 + (rows["theory_var"] - 1.0) ** 2) if has else nan
        else:
            y, se = rows[stat], rows[f"{stat}_sd"] / root
            theory = rows.get(f"theory_{stat}", nan)
    rows.update(y=y, se=np.where(np.isfinite(se) & np.isfinite(y), se, np.nan), theory=theory)
    return rows


def _axis_values(values: np.ndarray) -> tuple[list, bool]:
    """A key's distinct values (numbers ascending, text in grid order) and whether they are text."""
    text = values.dtype == object
    distinct = list(dict.fromkeys(values.tolist()))
    return (distinct if text else sorted(distinct)), text


def readable(v: float, digits: int = 6) -> str:
    """A number as a person writes it: 0.5, 1, 2, 1024, 1e8, 1.93e94, 1e-5 (not 5e-1, 1e+08)."""
    text = f"{v:.{digits}g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}e{int(exponent)}"
    return text


def _show_value(v) -> str:
    return v if isinstance(v, str) else readable(v)


READABLE_TICKS = 8  # at most this many labelled ticks on an axis or colour bar


def readable_ticks(axis, log: bool = False, values=None) -> None:
    """Label an axis (or a colour bar's long axis) with readable numbers, at most READABLE_TICKS:
    at `values` (e.g. the swept ones) when there are that few, else at 1-2-5 steps (log: 1, 2, 5
    per decade over up to 2 decades, decades beyond). Minor ticks unlabelled."""
    if values is not None and 0 < len(values) <= READABLE_TICKS:
        axis.set_major_locator(mticker.FixedLocator(sorted(values)))
        axis.set_minor_locator(mticker.NullLocator())
    elif log:
        lo, hi = sorted(v for v in axis.get_view_interval())
        narrow = lo > 0 and hi <= 100.0 * lo  # 1, 2, 5 per decade: at most 7 ticks over 2 decades
        axis.set_major_locator(mticker.LogLocator(subs=(1.0, 2.0, 5.0) if narrow else (1.0,),
                                                  numticks=READABLE_TICKS))
    else:
        axis.set_major_locator(mticker.MaxNLocator(READABLE_TICKS - 2, steps=[1, 2, 2.5, 5, 10]))
    axis.set_major_formatter(mticker.FuncFormatter(lambda v, _: readable(v)))
    axis.set_minor_formatter(mticker.NullFormatter())


def thin_labels(labels: list[str]) -> list[str]:
    """Every k-th label of a long category axis (the others blank): at most READABLE_TICKS + 4 shown."""
    k = -(-len(labels) // (READABLE_TICKS + 4))
    return [text if i % k == 0 else "" for i, text in enumerate(labels)]


def _log_span(values, decades: float) -> bool:
    """Positive finite values spanning more than `decades` decades: a log axis reads better."""
    v = _finite(values)
    v = v[np.isfinite(v)]
    return bool(v.size) and bool((v > 0).all()) and v.max() > 10.0 ** decades * v.min()


def _sweep_what(sweep: SweepTable, stat: str, layer: int | None) -> str:
    depth = sweep_layers(sweep)
    deepest = int(sweep.table["layer"].max()) if len(sweep.table["layer"]) else 0
    at = (f"layer {layer}" if layer is not None else
          f"the last layer ({depth})" if depth == deepest else "each point's last layer")
    return f"{stat} at {at}"


def sweep_figures(sweep: SweepTable, stat: str = SWEEP_DEFAULT_STAT,
                  layer: int | None = None) -> dict[str, Figure]:
    """The statistic against the swept keys: lines for one key, a heatmap per series for two,
    lines against the first key (one per combination of the others) for more.

    Named 'sweep-<stat>' (with '-layer<N>' when a layer is chosen). Raises SweepPlotError for a
    statistic or layer this sweep does not have.
    """
    if "seed" in sweep.keys and len(sweep.keys) > 1:  # replicate seeds: one line or cell per setting, all seeds' trials pooled
        sweep = pooled(sweep, "seed")
    rows = sweep_values(sweep, stat, layer)
    name = f"sweep-{stat}" + (f"-layer{layer}" if layer is not None else "")
    draw = _sweep_heatmap if len(sweep.keys) == 2 else _sweep_lines
    return {name: draw(sweep, rows, stat, _sweep_what(sweep, stat, layer))}


def _sweep_title(sweep: SweepTable, rows: dict, what: str) -> str:
    trials = sorted(set(rows["trials"].tolist()))
    counted = f" ({trials[0]} trials)" if len(trials) == 1 else ""
    seeds = sweep.manifest.get("pooled", {}).get("seed")
    if seeds:
        counted = counted[:-1] + f" pooled over {len(seeds)} seeds)" if counted else f" (pooled over {len(seeds)} seeds)"
    return as_typed(f"{sweep.manifest.get('name', 'sweep')}: ") + f"{what} against {as_typed(', '.join(sweep.keys))}{counted}"


def _sweep_lines(sweep: SweepTable, rows: dict, stat: str, what: str) -> Figure:
    """One key: one line per series. More: one panel per series, one line per combination."""
    key, others = sweep.keys[0], sweep.keys[1:]
    labels = list(dict.fromkeys(rows["series"].tolist()))
    xs, text = _axis_values(rows[key])
    combos = list(dict.fromkeys(zip(*(rows[k].tolist() for k in others)))) if others else [()]
    shown = combos[:SWEEP_MAX_LINES]
    panels = labels if others else [None]
    log_x = not text and _log_span(xs, 1)
    log_y = _log_span(rows["y"], 2)
    has_theory = bool(np.isfinite(rows["theory"]).any())
    with rc_context(STYLE):
        ncols = min(len(panels), 2)
        nrows = -(-len(panels) // ncols)
        fig = _figure((5.2 * ncols + 2.6, 3.9 * nrows + 0.6))
        axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True)).ravel()
        overflowed = 0
        for ax, panel in zip(axes, panels):
            lines = ([(label, (), series_style(i)) for i, label in enumerate(labels)] if panel is None
                     else [(panel, c, {**series_style(labels.index(panel)), "color": PALETTE[j]})
                           for j, c in enumerate(shown)])
            for label, combo, style in lines:
                mine = rows["series"] == label
                for k, v in zip(others, combo):
                    mine &= rows[k] == v
                overflowed += _sweep_line(ax, rows, mine, key, xs, text, label, combo, others, style)
            if panel is not None:
                more = (f" (first {len(shown)} of {len(combos)} combinations)"
                        if len(combos) > len(shown) else "")
                ax.set_title(f"{as_typed(panel)}{more}", loc="left")
            if stat in SWEEP_TARGETS and not (log_y and SWEEP_TARGETS[stat] <= 0):
                ax.axhline(SWEEP_TARGETS[stat], color=GREY, linewidth=0.8, zorder=1)
            if log_x:
                ax.set_xscale("log")
            if log_y:
                ax.set_yscale("log")
                ax.set_ylim(*_log_limits(rows))
            if text:
                ax.set_xticks(range(len(xs)), thin_labels([as_typed(_show_value(v)) for v in xs]))
                ax.set_xlim(-0.5, len(xs) - 0.5)  # half a category of room: the end markers are whole
            else:
                readable_ticks(ax.xaxis, log_x, xs)  # the swept values themselves, when few
            readable_ticks(ax.yaxis, log_y)
            ax.set_xlabel(as_typed(key) + (" (log scale)" if log_x else ""))
            ax.set_ylabel(SWEEP_LABELS.get(stat, stat) + (" (log scale)" if log_y else ""))
        for ax in axes[len(panels):]:
            ax.set_axis_off()
        handles = []
        if not others:
            handles += [Line2D([], [], label=as_typed(label), markersize=5, linewidth=1.8, **series_style(i))
                        for i, label in enumerate(labels)]
        else:
            handles += [Line2D([], [], color=PALETTE[j], linewidth=1.8,
                               label=as_typed(", ".join(f"{k} = {_show_value(v)}" for k, v in zip(others, c))))
                        for j, c in enumerate(shown)]
        handles.append(Line2D([], [], color=GREY, marker="|", markersize=8, linestyle="none",
                              label="± standard error\n(sd / √trials)"))
        if has_theory:
            handles.append(Line2D([], [], color="0.2", linestyle="--", linewidth=1.3,
                                  label="mean-field theory"))
        if overflowed:
            handles.append(_overflow_handle(f"inf/NaN ({overflowed} points;\nleft the float range)"))
        axes[0].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
        fig.suptitle(_sweep_title(sweep, rows, what))
    return fig


def _log_limits(rows: dict) -> tuple[float, float]:
    """A log axis for the simulated values with their error bars, and the theory, unless a bar's
    foot or the theory dives far below the values (a bar reaching 0; the theory exactly 0 at a
    fixed point): that leaves through the bottom."""
    y, se = _finite(rows["y"]), np.nan_to_num(rows["se"], nan=0.0)
    ok = np.isfinite(y) & (y > 0)
    sim, top, foot = y[ok], (y + se)[ok], (y - se)[ok]
    floor = sim.min() / 100
    theory = _finite(rows["theory"])
    shown = [sim, top[np.isfinite(top)], foot[foot >= floor], theory[np.isfinite(theory) & (theory >= floor)]]
    both = np.concatenate(shown)
    return float(both.min()) / 2, float(both.max()) * 2


def _sweep_line(ax, rows, mine, key, xs, text, label, combo, others, style) -> int:
    """One line with standard-error bars and its theory dashed; an X at the foot of the axes
    where the value left the float range. Returns how many points did."""
    order = [xs.index(v) for v in rows[key][mine].tolist()]
    idx = np.flatnonzero(mine)[np.argsort(order, kind="stable")]
    x = np.arange(len(xs))[np.sort(order)] if text else rows[key][idx].astype(np.float64)
    y, se, theory = rows["y"][idx], rows["se"][idx], rows["theory"][idx]
    gid = "|".join([label, *(f"{k}={_show_value(v)}" for k, v in zip(others, combo))])
    color = style["color"]
    bars = ax.errorbar(x, _finite(y), yerr=np.nan_to_num(se, nan=0.0), color=color,
                       linestyle=style["linestyle"], marker=style["marker"], markersize=5,
                       linewidth=1.8, capsize=3, elinewidth=1.0, zorder=3)
    bars.lines[0].set_gid(f"sweep:{gid}")
    if np.isfinite(theory).any():
        line, = ax.plot(x, _finite(theory), color=_dark(color), linestyle="--", linewidth=1.3, zorder=4)
        line.set_gid(f"theory:{gid}")
    gone = ~np.isfinite(y)
    if gone.any():
        ax.plot(x[gone], np.full(gone.sum(), 0.04), transform=ax.get_xaxis_transform(), marker="X",
                markersize=10, color=color, markeredgecolor="black", linestyle="none", zorder=6,
                clip_on=False, gid=f"overflow:{gid}")
    return int(gone.sum())


def _sweep_heatmap(sweep: SweepTable, rows: dict, stat: str, what: str) -> Figure:
    """Two keys: one panel per series, the first key across, the second up, one colour scale."""
    kx, ky = sweep.keys
    labels = list(dict.fromkeys(rows["series"].tolist()))
    xs, _ = _axis_values(rows[kx])
    ys, _ = _axis_values(rows[ky])
    grids, theories = {}, {}
    for label in labels:
        z, th = np.full((len(ys), len(xs)), np.nan), np.full((len(ys), len(xs)), np.nan)
        for vx, vy, y, t, s in zip(rows[kx].tolist(), rows[ky].tolist(), rows["y"], rows["theory"],
                                   rows["series"]):
            if s == label:
                z[ys.index(vy), xs.index(vx)], th[ys.index(vy), xs.index(vx)] = y, t
        grids[label], theories[label] = z, th
    has_theory = bool(np.isfinite(rows["theory"]).any())
    finite = _finite(rows["y"])
    finite = finite[np.isfinite(finite)]
    if _log_span(finite, 2):
        norm, cmap = mcolors.LogNorm(finite.min(), finite.max()), "viridis"
    elif finite.size and (stat in SWEEP_SIGNED or finite.min() < 0 < finite.max()):
        top = float(np.abs(finite).max()) or 1.0
        norm, cmap = mcolors.Normalize(-top, top), "RdBu_r"
    elif finite.size:
        norm, cmap = mcolors.Normalize(finite.min(), finite.max()), "viridis"
    else:
        norm, cmap = mcolors.Normalize(0.0, 1.0), "viridis"
    annotate = len(xs) * len(ys) <= 64
    with rc_context(STYLE):
        ncols = min(len(labels), 3)
        nrows = -(-len(labels) // ncols)
        width = max(4.2, 0.55 * len(xs) + 2.2) * ncols + 1.2
        fig = _figure((max(width, 7.5), max(3.4, 0.4 * len(ys) + 2.0) * nrows + 0.8))
        axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
        bad_total, mesh = 0, None
        for ax, label in zip(axes, labels):
            z = grids[label]
            bad = ~np.isfinite(z)
            bad_total += int(bad.sum())
            ax.grid(False)
            ax.add_patch(Rectangle((-0.5, -0.5), len(xs), len(ys), facecolor="0.85", edgecolor="0.55",
                                   hatch="///", linewidth=0, zorder=0))
            mesh = ax.pcolormesh(np.arange(len(xs) + 1) - 0.5, np.arange(len(ys) + 1) - 0.5,
                                 np.ma.masked_invalid(z), cmap=cmap, norm=norm, zorder=1)
            mesh.set_gid(f"sweep:{label}")
            if annotate:
                for (r, c), v in np.ndenumerate(z):
                    shade = sum(mcolors.to_rgb(mesh.cmap(norm(v)))) / 3 if np.isfinite(v) else 1.0
                    cell = readable(v, 3) if np.isfinite(v) else ("inf" if np.isinf(v) else "NaN")
                    if has_theory:  # rounding noise of an exact 0 (the fixed point) shown as 0
                        t = theories[label][r, c]
                        cell += f"\n({readable(0.0 if abs(t) < 1e-12 else t, 3)})"
                    ax.text(c, r, cell, ha="center", va="center", fontsize=7.5, zorder=2,
                            color="white" if shade < 0.5 else "black")
            ax.set_xlim(-0.5, len(xs) - 0.5)
            ax.set_ylim(-0.5, len(ys) - 0.5)
            ax.set_xticks(range(len(xs)), thin_labels([as_typed(_show_value(v)) for v in xs]))
            ax.set_yticks(range(len(ys)), thin_labels([as_typed(_show_value(v)) for v in ys]))
            ax.set_xlabel(as_typed(kx))
            ax.set_ylabel(as_typed(ky))
            note = f"  ({int(bad.sum())} of {bad.size} cells inf/NaN)" if bad.any() else ""
            ax.set_title(f"{as_typed(label)}{note}", loc="left", fontsize=10)
        for ax in axes[len(labels):]:
            ax.set_axis_off()
        log = isinstance(norm, mcolors.LogNorm)
        # One colour bar for every panel: they share `norm`, one scale.
        bar = fig.colorbar(mesh, ax=list(axes[:len(labels)]), label=SWEEP_LABELS.get(stat, stat)
                           + (" (log scale)" if log else ""), shrink=0.9)
        readable_ticks(bar.ax.yaxis, log)
        notes = []
        if annotate and has_theory:
            notes.append(Line2D([], [], linestyle="none", label="cells: simulation (mean-field theory)"))
        if bad_total:
            notes.append(Patch(facecolor="0.85", edgecolor="0.55", hatch="///",
                               label=f"inf/NaN: left the float range ({bad_total} cells)"))
        if notes:
            fig.legend(handles=notes, loc="outside lower left", frameon=False, fontsize=8, ncols=2)
        fig.suptitle(_sweep_title(sweep, rows, what))
    return fig


def save_sweep_figures(sweep: SweepTable, out_dir: str | Path, formats: Iterable[str] = ("png",),
                       stat: str = SWEEP_DEFAULT_STAT, layer: int | None = None) -> list[Path]:
    """Draw the sweep's figures and write each in every format into out_dir; returns the files."""
    formats = list(dict.fromkeys(formats))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"unknown figure format {unknown[0]!r} (expected one of: {', '.join(FORMATS)})")
    figures = sweep_figures(sweep, stat, layer)
    out_dir = Path(out_dir)
    safefs.real_dir(out_dir)  # never a symbolic link planted in the results folder
    written = []
    for name, fig in figures.items():
        written += _write(fig, [(out_dir / f"{name}.{fmt}", fmt) for fmt in formats])
    return written
