"""The SELU map: each series' path in the (mean, variance) plane over the map's arrows."""

from __future__ import annotations

import numpy as np
from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from snn_lab import theory
from snn_lab.activations import Activation, make_activation
from snn_lab.config import InputSpec, Series
from snn_lab.plot.base import (
    GREY,
    MAP_LIMITS,
    STYLE,
    _activation,
    _dark,
    _figure,
    _finite,
    _overflow_handle,
    _plain,
    _title,
    as_typed,
    series_style,
)
from snn_lab.results import Results


def selu_map(results: Results, grid: int = 17) -> Figure:
    """The (mean, variance) plane: SELU's map g as arrows, its fixed point, each SELU series' path.

    The arrows are g for omega = 0, tau = 1 (Klambauer et al. 2017, Figure 2). Left: every
    layer; right: a zoom on the fixed point and the paths' second half. With no SELU series in
    the run, the field of the default SELU is drawn alone, with a note saying so.
    """
    selu = [(i, s) for i, s in enumerate(results.config.get("series", []))
            if _activation(s).name == "selu" and _plain(s)]
    act = _activation(selu[0][1]) if selu else make_activation("selu")
    has_theory = "theory_mean" in results.summary and "theory_var" in results.summary
    fixed = g_fixed_point(act)
    paths = [(i, s["label"], results.series_summary(s["label"])) for i, s in selu]
    with rc_context(STYLE):
        fig = _figure((12.5, 6.0))
        ax_all, ax_zoom = fig.subplots(1, 2)
        full, zoom = _map_bounds(paths, fixed, tail=False), _map_bounds(paths, fixed, tail=True)
        overflowed = False
        for ax, ((mu0, mu1), (nu0, nu1)) in ((ax_all, full), (ax_zoom, zoom)):
            ax.set_xlim(mu0, mu1)
            ax.set_ylim(nu0, nu1)
            _field(ax, act, np.linspace(mu0, mu1, grid), np.linspace(nu0, nu1, grid))
            for i, _, rows in paths:
                overflowed |= _path(ax, rows, series_style(i), has_theory, mark=ax is ax_all)
            if fixed is not None:
                ax.plot(*fixed, marker="*", markersize=16, color="black", markeredgecolor="white",
                        linestyle="none", zorder=7)
            ax.set_xlabel(r"mean $\mu$")
            ax.set_ylabel(r"variance $\nu$")
        (mu0, mu1), (nu0, nu1) = zoom
        ax_all.add_patch(Rectangle((mu0, nu0), mu1 - mu0, nu1 - nu0, fill=False, edgecolor="0.2",
                                   linestyle=":", linewidth=1.0, zorder=8))
        ax_all.set_title("every layer", loc="left")
        ax_zoom.set_title("zoom on the dotted box: the fixed point and layers from depth/2 on",
                          loc="left")
        handles = [Line2D([], [], markersize=4, linewidth=1.6, label=as_typed(label), **series_style(i))
                   for i, label, _ in paths]
        if fixed is not None:
            where = rf"$(\mu^*, \nu^*) = ({fixed[0]:.3f}, {fixed[1]:.3f})$"
            handles.append(Line2D([], [], marker="*", markersize=12, color="black",
                                  linestyle="none", label=f"fixed point of $g$:\n{where}"))
        if paths:
            handles.append(Line2D([], [], marker="o", markersize=8, markerfacecolor="white",
                                  markeredgecolor=GREY, linestyle="none", label="input (layer 0)"))
        if paths and has_theory:
            handles.append(Line2D([], [], color="0.2", linestyle="--", linewidth=1.1,
                                  label="mean-field theory\n(each series' own weights)"))
        if overflowed:
            handles.append(_overflow_handle("last layer shown\n(then inf/NaN or off the chart)"))
        ax_zoom.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
        note = (r"arrows: $g: (\mu, \nu) \mapsto (\tilde\mu, \tilde\nu)$ of "
                f"{act.label} with $\\omega = 0$, $\\tau = 1$ (Klambauer et al. 2017, Fig. 2), "
                "length $\\propto \\sqrt{\\mathrm{step}}$; random weights feed the mean "
                "into the next variance too, so paths far from $\\mu = 0$ cross the arrows")
        if not paths:
            note += "\nno SELU series in this run: the field of the default SELU alone"
        fig.supxlabel(note, x=0.01, ha="left", fontsize=8, color="0.3")
        what = ("the SELU map g and each SELU series' path, layer by layer" if paths
                else "the SELU map g (no SELU series in this run)")
        fig.suptitle(_title(results, what, trials=bool(paths)))
    return fig


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


def _map_bounds(paths, fixed, tail: bool) -> tuple[tuple[float, float], tuple[float, float]]:
    """A box around the fixed point and the paths' finite points (all, or from depth/2 on)."""
    mu_c, nu_c = fixed if fixed is not None else (0.0, 1.0)
    half = (0.01, 0.02) if tail else (0.3, 0.4)
    mus, nus = [mu_c - half[0], mu_c + half[0]], [nu_c - half[1], nu_c + half[1]]
    (lo_mu, hi_mu), (lo_nu, hi_nu) = MAP_LIMITS
    for _, _, rows in paths:
        start = len(rows["layer"]) // 2 if tail else 0
        for m, v in (("mean", "var"), ("theory_mean", "theory_var")):
            if m not in rows:
                continue
            mm, vv = rows[m][start:], rows[v][start:]
            ok = (mm >= lo_mu) & (mm <= hi_mu) & (vv >= lo_nu) & (vv <= hi_nu)  # finite, not far
            mus += mm[ok].tolist()
            nus += vv[ok].tolist()
    mu0, mu1, nu0, nu1 = min(mus), max(mus), min(nus), max(nus)
    pad_mu, pad_nu = 0.08 * (mu1 - mu0), 0.08 * (nu1 - nu0)
    return (mu0 - pad_mu, mu1 + pad_mu), (max(nu0 - pad_nu, 0.0), nu1 + pad_nu)


def _field(ax, act: Activation, mus: np.ndarray, nus: np.ndarray) -> None:
    """Arrows from (mu, nu) toward g(mu, nu); length grows as the square root of the step."""
    mu, nu = np.meshgrid(mus, nus)
    nu = np.maximum(nu, 1e-6)  # g needs nu > 0; the grid may touch the axis
    step = np.array([theory.g_map(act, m, v) for m, v in zip(mu.ravel(), nu.ravel())])
    du, dv = step[:, 0].reshape(mu.shape) - mu, step[:, 1].reshape(mu.shape) - nu
    size = np.hypot(du / (mus[1] - mus[0]), dv / (nus[1] - nus[0]))  # step length in grid cells
    ok = np.isfinite(size) & (size > 0)
    big = size[ok].max() if ok.any() else 1.0
    scale = np.zeros_like(size)
    scale[ok] = 0.9 * np.sqrt(size[ok] / big) / size[ok]  # the longest arrow: 0.9 of a cell
    ax.quiver(mu, nu, du * scale, dv * scale, angles="xy", scale_units="xy", scale=1,
              color="0.55", width=0.0022, headwidth=4, headlength=4.5, zorder=2)
