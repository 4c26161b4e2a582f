"""The map figure: each series' own layer map in the (mean, variance) plane, its fixed point,
and its path layer by layer."""

from __future__ import annotations

import math

import numpy as np
from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from snn_lab import theory
from snn_lab.activations import Activation
from snn_lab.config import InputSpec, Series
from snn_lab.plot.base import (
    GREY,
    MAP_LIMITS,
    STYLE,
    _dark,
    _figure,
    _finite,
    _overflow_handle,
    _title,
    as_typed,
    series_objects,
    series_style,
)
from snn_lab.results import Results
from snn_lab.theory.safe import NUMERIC

COLUMNS = 4  # series side by side; more wrap onto further rows
# What the figure says for a series whose layer map has no single fixed point (FixedPoint.status).
NO_POINT = {"collapses": "no fixed point: q -> 0,\nthe signal collapses to (0, 0)",
            "grows": "no fixed point:\nq grows without bound",
            "marginal": "marginal: every q is a fixed point, a line\nof them; finite width drifts near it",
            "normalized": "a series with a norm: no (mean, var) map\n(theory/blocks.py), its path only",
            "residual": "a residual series: no (mean, var) map\n(theory/blocks.py), its path only"}


def map_data(results: Results) -> list[dict]:
    """Per series: label, Series (None if the config no longer loads), the fixed point's status,
    (mu*, nu*) or None, a note when there is none, and its summary rows."""
    built = series_objects(results)
    out = []
    for label in results.labels:
        series = built.get(label)
        status, point, note = "unavailable", None, "no theory for this series"
        if series is not None:
            try:
                with np.errstate(all="ignore"):
                    fp = theory.fixed_point(series)
                status = fp.status
                if status == "fixed" and all(math.isfinite(v) for v in (fp.mean, fp.var)):
                    point, note = (float(fp.mean), float(fp.var)), None
                else:
                    note = NO_POINT.get(status, fp.note or status)
            except NUMERIC as exc:
                note = f"no fixed point computed ({type(exc).__name__})"
        out.append({"label": label, "series": series, "status": status, "fixed": point, "note": note,
                    "rows": results.series_summary(label)})
    return out


def field(series: Series, mus: np.ndarray, nus: np.ndarray) -> tuple[np.ndarray, ...]:
    """(mu, nu, step in mu, step in nu) on the grid: the series' own layer map minus identity."""
    act = series.make_activation()
    mu, nu = np.meshgrid(mus, nus)
    nu = np.maximum(nu, 1e-300)  # the map needs nu > 0; the grid may touch the axis
    with np.errstate(all="ignore"):
        step = np.array([_safe_map(series, act, m, v) for m, v in zip(mu.ravel(), nu.ravel())])
    return mu, nu, step[:, 0].reshape(mu.shape) - mu, step[:, 1].reshape(mu.shape) - nu


def _safe_map(series: Series, act: Activation, mu: float, nu: float) -> tuple[float, float]:
    try:
        return theory.mean_var_map(series, mu, nu, act)
    except NUMERIC:
        return math.nan, math.nan


def fixed_line(series: Series, qs: np.ndarray) -> np.ndarray:
    """(len(qs), 2): the outputs (mean, var) at pre-activation N(0, q), each a fixed point when
    every q is (a marginal series)."""
    act = series.make_activation()
    return np.array([theory.layer_stats(series, act, float(q)) for q in qs])


def layer_map(results: Results, grid: int = 15) -> Figure:
    """Per series (columns): its own layer map as arrows, its fixed point (star), or why it has
    none, and its simulated path with the theory's dashed; top: every layer, below: a zoom on
    the fixed point (or on the path's second half)."""
    data = map_data(results)
    has_theory = "theory_mean" in results.summary and "theory_var" in results.summary
    cols = max(1, min(COLUMNS, len(data)))
    blocks = max(1, -(-len(data) // cols))
    with rc_context(STYLE):
        fig = _figure((3.6 * cols + 2.2, 6.4 * blocks + 0.6))
        axes = fig.subplots(2 * blocks, cols, squeeze=False)
        overflowed, kinds = False, set()
        for k, d in enumerate(data):
            ax_all, ax_zoom = axes[2 * (k // cols), k % cols], axes[2 * (k // cols) + 1, k % cols]
            style = series_style(k)
            full, zoom = _bounds(d, tail=False), _bounds(d, tail=True)
            for ax, ((mu0, mu1), (nu0, nu1)) in ((ax_all, full), (ax_zoom, zoom)):
                ax.set_xlim(mu0, mu1)
                ax.set_ylim(nu0, nu1)
                if d["series"] is not None and d["status"] not in ("normalized", "residual"):
                    _arrows(ax, *field(d["series"], np.linspace(mu0, mu1, grid), np.linspace(nu0, nu1, grid)))
                    kinds.add("arrows")
                overflowed |= _path(ax, d["rows"], style, has_theory, mark=ax is ax_all)
                kinds |= _attractor(ax, d)
                ax.set_xlabel(r"mean $\mu$")
            ax_all.set_ylabel(r"variance $\nu$")
            ax_zoom.set_ylabel(r"variance $\nu$")
            (mu0, mu1), (nu0, nu1) = zoom
            ax_all.add_patch(Rectangle((mu0, nu0), mu1 - mu0, nu1 - nu0, fill=False, edgecolor="0.2",
                                       linestyle=":", linewidth=1.0, zorder=8))
            # The note (why there is no fixed point) under the label: inside the panel it would hide the path.
            note = f"\n{d['note']}" if d["note"] else ""
            ax_all.set_title(f"{as_typed(d['label'])}: every layer{note}", loc="left", color=_dark(style["color"]),
                             fontsize=9 if note else None)
            ax_zoom.set_title("zoom on the dotted box" + (": the fixed point" if d["fixed"] else
                                                          ": layers from depth/2 on"), loc="left", fontsize=9)
        for k in range(len(data), blocks * cols):  # the last row's unused places
            axes[2 * (k // cols), k % cols].remove()
            axes[2 * (k // cols) + 1, k % cols].remove()
        fig.legend(handles=_handles(has_theory, kinds, overflowed), loc="outside right upper", frameon=False)
        fig.supxlabel(r"arrows: each series' own layer map $(\mu, \nu) \mapsto (\tilde\mu, \tilde\nu)$ in "
                      "mean-field theory (its activation, weights and gain; length $\\propto \\sqrt{\\mathrm{step}}$). "
                      "Random weights feed the mean\ninto the next variance too "
                      r"($q = \sigma_w^2(\nu + \mu^2)$); normalized weights (Klambauer et al. 2017, Fig. 2) do not.",
                      x=0.01, ha="left", fontsize=8, color="0.3")
        fig.suptitle(_title(results, "each series' layer map, its fixed point and its path"))
    return fig


def _attractor(ax, d: dict) -> set:
    """The series' fixed point (a star) or, for a marginal series, its line of fixed points."""
    if d["fixed"] is not None:
        ax.plot(*d["fixed"], marker="*", markersize=15, color="black", markeredgecolor="white",
                linestyle="none", zorder=7)
        return {"star"}
    if d["status"] == "marginal":
        (mu0, mu1), (nu0, nu1) = ax.get_xlim(), ax.get_ylim()
        # Every output (mean, var) of N(0, q): the line runs through the box; q from its extent.
        top = max(abs(mu0), abs(mu1), nu1, 1e-300)
        line = fixed_line(d["series"], np.geomspace(top * 1e-6, top * 1e2, 200))
        ax.plot(line[:, 0], line[:, 1], color="black", linewidth=2.2, alpha=0.55, zorder=3)
        ax.set_xlim(mu0, mu1)
        ax.set_ylim(nu0, nu1)
        return {"line"}
    return set()


def _handles(has_theory: bool, kinds: set, overflowed: bool) -> list:
    handles = [Line2D([], [], color=GREY, marker="o", markersize=3.5, linewidth=1.5, label="simulation"),
               Line2D([], [], marker="o", markersize=8, markerfacecolor="white", markeredgecolor=GREY,
                      linestyle="none", label="input (layer 0)")]
    if has_theory:
        handles.append(Line2D([], [], color="0.2", linestyle="--", linewidth=1.1, label="mean-field theory"))
    if "star" in kinds:
        handles.append(Line2D([], [], marker="*", markersize=12, color="black", linestyle="none",
                              label="the series' fixed point"))
    if "line" in kinds:
        handles.append(Line2D([], [], color="black", alpha=0.55, linewidth=2.2, label="line of fixed points\n(marginal)"))
    if overflowed:
        handles.append(_overflow_handle("last layer shown\n(then inf/NaN or off the chart)"))
    return handles


def _path(ax, rows: dict, style: dict, has_theory: bool, mark: bool) -> bool:
    """One series' (mean, var) layer by layer: input ringed, theory dashed; with mark, an X
    at the last layer shown when later layers are inf/NaN or off the chart (returns True)."""
    color = style["color"]
    mean, var = _finite(rows["mean"]), _finite(rows["var"])
    ax.plot(mean, var, color=color, linestyle=style["linestyle"], linewidth=1.5,
            marker=style["marker"], markersize=3.5, zorder=4)
    ax.plot(mean[:1], var[:1], marker="o", markersize=9, markerfacecolor="white",
            markeredgecolor=color, markeredgewidth=1.8, linestyle="none", zorder=5)
    if has_theory:
        ax.plot(_finite(rows["theory_mean"]), _finite(rows["theory_var"]), color=_dark(color),
                linestyle="--", linewidth=1.1, zorder=4)
    (mu0, mu1), (nu0, nu1) = ax.get_xlim(), ax.get_ylim()
    shown = (mean >= mu0) & (mean <= mu1) & (var >= nu0) & (var <= nu1)  # NaN: not shown
    if not mark or shown.all() or not shown[0]:
        return False
    gone = int(np.argmin(shown))
    k = gone - 1
    why = "inf/NaN" if np.isnan(mean[gone]) or np.isnan(var[gone]) else "off the chart"
    ax.plot(mean[k], var[k], marker="X", markersize=10, color=color, markeredgecolor="black",
            linestyle="none", zorder=6)
    ax.annotate(f"{why} after layer {rows['layer'][k]}", (mean[k], var[k]), xytext=(6, 6),
                textcoords="offset points", fontsize=8, color=_dark(color), zorder=6)
    return True


def g_fixed_point(act: Activation) -> tuple[float, float] | None:
    """(mu*, nu*) of g with omega = 0, tau = 1, or None when g has no fixed point with nu* > 0.

    That g is the layer map of normalized weights with gain 1 (pre-activation variance = nu),
    so theory.fixed_point of such a series is the fixed point of g.
    """
    series = Series(label="g", activation=act.name, activation_params=tuple(act.params.items()),
                    init="lecun_normal", width=1, depth=1, batch=1, dtype="float64",
                    input=InputSpec(0.0, 1.0), normalize_weights=True)
    fp = theory.fixed_point(series)
    return (fp.mean, fp.var) if fp.status == "fixed" else None


def _bounds(d: dict, tail: bool) -> tuple[tuple[float, float], tuple[float, float]]:
    """A box around the fixed point and the path's finite points (all, or from depth/2 on)."""
    rows, fixed = d["rows"], d["fixed"]
    (lo_mu, hi_mu), (lo_nu, hi_nu) = MAP_LIMITS
    mus, nus = [], []
    start = len(rows["layer"]) // 2 if tail else 0
    for m, v in (("mean", "var"), ("theory_mean", "theory_var")):
        if m in rows:
            mm, vv = rows[m][start:], rows[v][start:]
            ok = (mm >= lo_mu) & (mm <= hi_mu) & (vv >= lo_nu) & (vv <= hi_nu)  # finite, not far
            mus += mm[ok].tolist()
            nus += vv[ok].tolist()
    if fixed is not None:
        half = (0.01, 0.02) if tail else (0.3, 0.4)
        mus += [fixed[0] - half[0] * math.sqrt(fixed[1]), fixed[0] + half[0] * math.sqrt(fixed[1])]
        nus += [fixed[1] * (1 - half[1]), fixed[1] * (1 + half[1])]
    if not mus:
        mus, nus = [-0.3, 0.3], [0.6, 1.4]
    mu0, mu1, nu0, nu1 = min(mus), max(mus), min(nus), max(nus)
    pad_mu, pad_nu = 0.08 * (mu1 - mu0) or 0.05 * max(abs(mu0), 1e-300), 0.08 * (nu1 - nu0) or 0.05 * max(nu0, 1e-300)
    return (mu0 - pad_mu, mu1 + pad_mu), (max(nu0 - pad_nu, 0.0), nu1 + pad_nu)


def _arrows(ax, mu, nu, du, dv) -> None:
    """Arrows from (mu, nu) toward the map's image; length grows as the square root of the step."""
    cell_mu, cell_nu = mu[0, 1] - mu[0, 0], nu[1, 0] - nu[0, 0]
    size = np.hypot(du / cell_mu, dv / cell_nu)  # step length in grid cells
    ok = np.isfinite(size) & (size > 0)
    big = size[ok].max() if ok.any() else 1.0
    scale = np.zeros_like(size)
    scale[ok] = 0.9 * np.sqrt(size[ok] / big) / size[ok]  # the longest arrow: 0.9 of a cell
    ax.quiver(mu, nu, np.where(ok, du, 0.0) * scale, np.where(ok, dv, 0.0) * scale, angles="xy",
              scale_units="xy", scale=1, color="0.6", width=0.003, headwidth=4, headlength=4.5, zorder=2)
