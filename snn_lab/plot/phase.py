"""The mean-field phase diagram (snn-lab theory --phase), with a sweep overlaid."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib import colors as mcolors
from matplotlib import rc_context
from matplotlib import ticker as mticker
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from snn_lab.activations import suggest
from snn_lab.errors import SnnLabError
from snn_lab.plot.base import (
    FORMATS,
    STYLE,
    _figure,
    _finite,
    _overflow_handle,
    as_typed,
)
from snn_lab.plot.sweeps import _last_layers, readable, readable_ticks
from snn_lab.plot.writer import write_figure as _write
from snn_lab.theory import phase as ph
from snn_lab.theory.phase import PhaseDiagram

PHASE_OVERLAY_COLUMNS = ("point", "series", "layer", "sigma_w2", "sigma_b2")


class OverlayError(SnnLabError, ValueError):
    """A sweep overlay that cannot be drawn; `option` names what to change (overlay, stat, layer, series)."""

    def __init__(self, option: str, message: str):
        super().__init__(message)
        self.option = option


def phase_overlay(folder: str | Path, stat: str = "var", layer: int | None = None,
                  series: str | None = None) -> dict:
    """One series' statistic per sweep point (sweep.read), at (sigma_w2, sigma_b2).

    layer None: each point's last layer. Returns weight_var, bias_var, value (arrays), point,
    stat, layer, series.
    """
    from snn_lab.sweep import SweepError, read

    if not Path(folder).is_dir():
        raise OverlayError("overlay", f"expected a sweep folder with a sweep.csv; {folder} is not a folder")
    try:
        t = read(folder).table
    except SweepError as exc:
        raise OverlayError("overlay", str(exc)) from None
    path = Path(folder) / "sweep.csv"
    missing = [c for c in PHASE_OVERLAY_COLUMNS if c not in t]
    if missing:
        raise OverlayError("overlay", f"{path} lacks the column(s) {', '.join(missing)} (expected a "
                                      "sweep.csv: point, the swept keys, sigma_w2, sigma_b2, then "
                                      "summary.csv's columns)")
    stats = [c for c in t if c not in PHASE_OVERLAY_COLUMNS + ("activation", "init", "trials")]
    if stat not in t:
        hint = suggest(stat, stats)
        raise OverlayError("stat", f"{path} has no column {stat!r} (expected one of: {', '.join(stats)})"
                           + (f"; did you mean {hint!r}?" if hint else ""))
    if not len(t["point"]):
        raise OverlayError("overlay", f"{path} has no rows")
    labels = list(dict.fromkeys(t["series"].tolist()))
    if series is None and len(labels) > 1:
        raise OverlayError("series", f"the sweep has {len(labels)} series; choose one (expected one "
                                     f"of: {', '.join(labels)})")
    if series is not None and series not in labels:
        hint = suggest(series, labels) or next((x for x in labels if x.lower() == series.lower()), None)
        raise OverlayError("series", f"no series {series!r} in the sweep (expected one of: "
                                     f"{', '.join(labels)})" + (f"; did you mean {hint!r}?" if hint else ""))
    label = series if series is not None else labels[0]
    mine = t["series"] == label
    if layer is None:
        last = _last_layers(t)
        keep = mine & np.array([lay == last.get(key, -1) for key, lay in
                                zip(zip(t["point"], t["series"]), t["layer"].tolist())], dtype=bool)
    else:
        keep = mine & (t["layer"] == layer)
        if not keep.any():
            layers = sorted(set(t["layer"][mine].tolist()))
            nearest = min(layers, key=lambda v: abs(v - layer))
            raise OverlayError("layer", f"no rows at layer {layer} (the sweep has layers {layers[0]}.."
                                        f"{layers[-1]}; nearest: {nearest})")
    return {"point": t["point"][keep].tolist(), "weight_var": t["sigma_w2"][keep].astype(np.float64),
            "bias_var": t["sigma_b2"][keep].astype(np.float64), "value": t[stat][keep].astype(np.float64),
            "stat": stat, "layer": "last" if layer is None else layer, "series": label}


def _edges(values: np.ndarray) -> tuple[float, float]:
    """The outer edges of the cells centred on a grid's values (pcolormesh shading 'nearest')."""
    half = (values[-1] - values[0]) / (2 * (values.size - 1)) if values.size > 1 else 0.5
    return float(values[0] - half), float(values[-1] + half)


def phase_diagram(diagram, overlay: dict | None = None) -> Figure:
    """chi_1 (left) and xi_c (right) over (sigma_w^2, sigma_b^2) with the critical line chi_1 = 1,
    the phases labelled; an overlay (phase_overlay) adds a sweep's statistic as markers on both
    panels, one colour scale with one colour bar beneath them."""
    w, b = diagram.weight_var, diagram.bias_var
    with rc_context(STYLE):
        fig = _figure((12.5, 5.4 if overlay is None else 6.2))
        ax_chi, ax_xi = fig.subplots(1, 2, sharey=True)
        chi = _finite(diagram.chi1)
        lo, hi = (np.nanmin(chi), np.nanmax(chi)) if np.isfinite(chi).any() else (0.5, 2.0)
        # Diverging at 1: blue shrinks perturbations (ordered), red grows them (chaotic).
        norm = mcolors.TwoSlopeNorm(vcenter=1.0, vmin=min(lo, 0.99), vmax=max(hi, 1.01))
        mesh = ax_chi.pcolormesh(w, b, chi, shading="nearest", cmap="RdBu_r", norm=norm)
        bar = fig.colorbar(mesh, ax=ax_chi, label=r"$\chi_1 = \sigma_w^2\,E[\phi'(z)^2]$ at $q^*$")
        # Each half of the diverging bar has its own scale: ticks on both sides of 1.
        halves = [mticker.MaxNLocator(3, steps=[1, 2, 2.5, 5, 10]).tick_values(a, z)
                  for a, z in ((norm.vmin, 1.0), (1.0, norm.vmax))]
        readable_ticks(bar.ax.yaxis, values=sorted({float(t) for t in np.concatenate(halves)
                                                    if norm.vmin <= t <= norm.vmax}))
        xi = _finite(diagram.xi_c)
        xi = np.where(xi > 0, xi, np.nan)
        ax_xi.set_facecolor("0.88")  # cells without xi_c show through
        if np.isfinite(xi).any():
            xi_norm = mcolors.LogNorm(vmin=np.nanmin(xi), vmax=max(np.nanmax(xi), 1.01 * np.nanmin(xi)))
            xi_mesh = ax_xi.pcolormesh(w, b, xi, shading="nearest", cmap="magma", norm=xi_norm)
            bar = fig.colorbar(xi_mesh, ax=ax_xi, label=r"$\xi_c$ (layers, log scale)")
            readable_ticks(bar.ax.yaxis, log=True)
        grid_w, grid_b = np.meshgrid(w, b)
        for ax in (ax_chi, ax_xi):
            ax.grid(False)
            ax.plot(diagram.line[:, 1], diagram.line[:, 0], color="black", linewidth=2.0, zorder=4)
            for region in ("ordered", "chaotic"):
                cells = diagram.region == region
                if cells.any():  # the centroid of the phase's cells: inside it for these shapes
                    sign = "<" if region == "ordered" else ">"
                    ax.text(grid_w[cells].mean(), grid_b[cells].mean(), f"{region}\n$\\chi_1 {sign} 1$",
                            ha="center", va="center", fontsize=10, zorder=6,
                            bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.75})
            ax.set_xlabel(r"$\sigma_w^2$ (weight variance $\times$ fan-in)")
            # The whole cells at the grid's edges (their centres are the grid values), not half.
            ax.set_xlim(*_edges(w))
            ax.set_ylim(*_edges(b))
            readable_ticks(ax.xaxis)
            readable_ticks(ax.yaxis)
        ax_chi.set_ylabel(r"$\sigma_b^2$ (bias variance)")
        ax_chi.set_title(r"$\chi_1$: gradient growth per layer", loc="left")
        ax_xi.set_title(r"correlation depth $\xi_c = -1/\ln\chi_c$ at $c^*$", loc="left")
        handles = [Line2D([], [], color="black", linewidth=2.0, label=r"critical line $\chi_1 = 1$")]
        if overlay is not None:
            handles += _draw_overlay(fig, (ax_chi, ax_xi), overlay)
        # Outside the panels: inside, the legend would hide grid cells and sweep points.
        fig.legend(handles=handles, loc="outside lower right", ncols=len(handles), frameon=False)
        fig.supxlabel("grey: no xi_c (no q* > 0: q collapses to 0 or grows without bound; on the critical "
                      "line: no exponential depth scale)", x=0.01, ha="left", fontsize=8, color="0.3")
        fig.suptitle(f"{diagram.activation}: mean-field phase diagram (Poole et al. 2016; "
                     "Schoenholz et al. 2017)")
    return fig


def _draw_overlay(fig: Figure, axes, overlay: dict) -> list:
    """The sweep's points on every panel, coloured on one shared scale; legend handles."""
    v = _finite(overlay["value"])
    good = np.isfinite(v)
    handles = []
    if good.any():
        norm = mcolors.Normalize(np.nanmin(v), np.nanmax(v) if np.nanmax(v) > np.nanmin(v) else np.nanmin(v) + 1)
        for ax in axes:
            # clip_on False: a point on the grid's edge is drawn whole, not cut by the frame.
            dots = ax.scatter(overlay["weight_var"][good], overlay["bias_var"][good], c=v[good], norm=norm,
                              cmap="viridis", s=45, edgecolors="black", linewidths=0.8, zorder=7, clip_on=False)
        where = "last layer" if overlay["layer"] == "last" else f"layer {overlay['layer']}"
        bar = fig.colorbar(dots, ax=list(axes), location="bottom", shrink=0.5, aspect=40,
                           label=f"sweep points: {overlay['stat']} ({where}, {as_typed(overlay['series'])})")
        readable_ticks(bar.ax.xaxis)
    if (~good).any():
        for ax in axes:
            ax.scatter(overlay["weight_var"][~good], overlay["bias_var"][~good], marker="X",
                       s=60, color="black", zorder=7, clip_on=False)
        handles.append(_overflow_handle("sweep point: inf/NaN"))
    handles.append(Line2D([], [], marker="o", markersize=7, markerfacecolor="white",
                          markeredgecolor="black", linestyle="none", label="sweep point (simulated)"))
    return handles


def figure_format(path: str | Path) -> str:
    """The format a figure file's suffix names (png, svg, pdf); ValueError for any other."""
    suffix = Path(path).suffix
    fmt = suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise ValueError(f"unknown figure format {suffix or '(none)'!r} (expected a file ending "
                         f"in one of: {', '.join('.' + f for f in FORMATS)})")
    return fmt


def save_phase_diagram(fig: Figure, path: str | Path) -> Path:
    """Write one figure to path, its format from the suffix (png, svg, pdf), as save_figures does."""
    path, fmt = Path(path), figure_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)  # the user's own choice of folder
    return _write(fig, [(path, fmt)])[0]


@dataclass(frozen=True)
class PhaseFigure:
    """What `snn-lab theory --phase` made: the diagram, the sweep drawn over it, the file written,
    and warnings (sweep points the grid could not cover; the grid widened) for the caller to show."""

    diagram: PhaseDiagram
    overlay: dict | None
    path: Path
    warnings: tuple[str, ...] = ()


def save_phase_figure(tmpl, weight_var: np.ndarray, bias_var: np.ndarray, path: str | Path,
                      overlay: str | Path | None = None, stat: str = "var", layer: int | None = None,
                      series: str | None = None) -> PhaseFigure:
    """The phase diagram of tmpl's activation, a sweep's points over it, written to path.

    The grid grows by whole steps to cover every sweep point (phase.widen); a point it cannot
    cover (more than phase.MAX_N values, or a variance of 0 or below) is listed in a warning,
    not drawn. OverlayError names the option (out, overlay, stat, layer, series) at fault.
    """
    path = Path(path)
    try:
        figure_format(path)  # before the grid's seconds of work, not after
    except ValueError as exc:
        raise OverlayError("out", str(exc)) from None
    marks, warnings = None, []
    if overlay is not None:
        marks = phase_overlay(overlay, stat, layer, series)
        weight_var, bias_var, marks, warnings = _cover(weight_var, bias_var, marks)
    diagram = ph.diagram(tmpl, weight_var, bias_var)
    try:
        save_phase_diagram(phase_diagram(diagram, marks), path)
    except ValueError as exc:
        raise OverlayError("out", str(exc)) from None
    except OSError as exc:
        raise OverlayError("out", f"cannot write {path}: {exc.strerror or exc}") from None
    return PhaseFigure(diagram, marks, path, tuple(warnings))


_LISTED = 10  # sweep points named in a warning; the rest counted


def _cover(weight_var: np.ndarray, bias_var: np.ndarray, marks: dict) -> tuple:
    """(grids widened to the sweep's points, the points inside them, warnings)."""
    warnings = []
    w = ph.widen(weight_var, marks["weight_var"], positive=True)
    b = ph.widen(bias_var, marks["bias_var"], positive=False)
    for old, new, option, what in ((weight_var, w, "--weight-var", "sigma_w^2"),
                                   (bias_var, b, "--bias-var-range", "sigma_b^2")):
        if new is not old:
            warnings.append(f"{option} widened from {readable(old[0])},{readable(old[-1])},{old.size} to "
                            f"{readable(new[0])},{readable(new[-1])},{new.size} (the same step) to cover "
                            f"the sweep's {what}")
    wv, bv = marks["weight_var"], marks["bias_var"]
    with np.errstate(invalid="ignore"):  # a NaN coordinate is outside
        inside = (wv >= _edges(w)[0]) & (wv <= _edges(w)[1]) & (bv >= _edges(b)[0]) & (bv <= _edges(b)[1])
    if not inside.all():
        out = np.flatnonzero(~inside)
        named = ", ".join(f"{marks['point'][i]} ({readable(wv[i])}, {readable(bv[i])})" for i in out[:_LISTED])
        more = f" and {out.size - _LISTED} more" if out.size > _LISTED else ""
        warnings.append(f"{out.size} of {inside.size} sweep points lie outside the grid and are not drawn "
                        f"(point (sigma_w^2, sigma_b^2)): {named}{more}; the grid cannot grow to them "
                        f"(at most {ph.MAX_N} values per axis, variances > 0)")
        marks = {**marks, **{k: (np.asarray(v)[inside] if k in ("weight_var", "bias_var", "value")
                                 else [x for x, keep in zip(v, inside) if keep] if k == "point" else v)
                             for k, v in marks.items()}}
    return w, b, marks, warnings
