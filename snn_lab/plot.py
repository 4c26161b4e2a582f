"""Figures from a results folder: convergence, the SELU map, activations, histograms, probes.

The only module that imports matplotlib. Figures are matplotlib.figure.Figure objects on the
Agg canvas (no pyplot, no global state, no display needed); save_figures writes them with
their metadata stripped, so plotting the same results twice gives byte-identical files.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from matplotlib import colors as mcolors
from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import MaxNLocator

from snn_lab import plot_finite_width, plot_spectrum, safefs, theory
from snn_lab.activations import Activation, make_activation, suggest
from snn_lab.config import InputSpec, Series
from snn_lab.errors import SnnLabError
from snn_lab.results import FILES, Results
from snn_lab.sweep import SweepTable, pooled

FORMATS = ("png", "svg", "pdf")

# Okabe & Ito's colour-blind-safe palette (yellow last: it is faint on white).
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
LINESTYLES = ("-", (0, (6, 1.5, 1.5, 1.5)), (0, (1.2, 1.2)), (0, (6, 1.5, 1.5, 1.5, 1.5, 1.5)))
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")

# Metadata that would change from one save to the next (dates, versions) is left out.
METADATA = {"png": {"Software": None},
            "svg": {"Date": None, "Creator": None},
            "pdf": {"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None}}
STYLE = {"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 9,
         "xtick.labelsize": 9, "ytick.labelsize": 9, "figure.titlesize": 12, "savefig.dpi": 120,
         "axes.grid": True, "grid.alpha": 0.25, "grid.linewidth": 0.6,
         "axes.spines.top": False, "axes.spines.right": False,
         "svg.hashsalt": "snn-lab", "svg.fonttype": "path",
         "figure.autolayout": False, "figure.constrained_layout.use": False}
GREY = "0.45"
# The map shows at most this (mean, variance) box; paths leaving it are marked where they leave.
MAP_LIMITS = ((-3.0, 5.0), (0.0, 25.0))


# ---- shared pieces ---------------------------------------------------------------------------

def series_style(i: int) -> dict:
    """Colour, line style and marker of the i-th series (the same in every figure)."""
    return {"color": PALETTE[i % len(PALETTE)], "linestyle": LINESTYLES[i % len(LINESTYLES)],
            "marker": MARKERS[i % len(MARKERS)]}


def _dark(color: str) -> tuple:
    """A darker shade of a colour: theory lines stay visible on top of their simulation."""
    return tuple(0.55 * c for c in mcolors.to_rgb(color))


def _figure(size: tuple[float, float]) -> Figure:
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _finite(values) -> np.ndarray:
    """float64 copy with inf and NaN as NaN (matplotlib leaves gaps there)."""
    x = np.asarray(values, dtype=np.float64)
    return np.where(np.isfinite(x), x, np.nan)


def last_finite(values) -> int | None:
    """Index of the last finite value before the values left the float range, or None."""
    bad = ~np.isfinite(np.asarray(values, dtype=np.float64))
    if not bad.any():
        return None
    first = int(np.argmax(bad))
    return first - 1 if first > 0 else None


def _activation(series: dict) -> Activation:
    """The Activation of a series in the resolved config (a name or a mapping with parameters)."""
    spec = series["activation"]
    if isinstance(spec, str):
        return make_activation(spec)
    params = {k: v for k, v in spec.items() if k != "name"}
    return make_activation(spec["name"], **params)


def _plain(series: dict) -> bool:
    """A plain layer x -> phi(x W): no norm, no residual block, no output scale (the maps of g
    describe it)."""
    act = series.get("activation")
    scaled = isinstance(act, dict) and act.get("scale", 1.0) != 1.0
    return series.get("norm", "none") == "none" and not series.get("residual") and not scaled


def as_typed(text) -> str:
    """User text (a label, a name, a value) shown as typed: its '$' never starts mathtext."""
    return str(text).replace("$", r"\$")


def _title(results: Results, what: str, trials: bool = True) -> str:
    trials = results.config.get("trials") if trials else None
    name = as_typed(results.config.get("name", "results"))
    return f"{name}: {what}" + (f" ({trials} trials)" if trials else "")


def _mark_overflow(ax, x, y, color, downward: bool = False, log: bool = False) -> bool:
    """An X at the last finite point of a curve that left the float range, labelled.

    downward: the curve is computed from the top layer down (gradients), so it is followed
    from the right. log: on a log axis a value that underflowed to 0 is lost as well.
    """
    x, y = np.asarray(x), np.asarray(y, dtype=np.float64)
    order = slice(None, None, -1) if downward else slice(None)
    with np.errstate(invalid="ignore"):
        gone = ~np.isfinite(y[order]) | ((y[order] <= 0) if log else False)
    k = last_finite(np.where(gone, np.nan, 0.0))
    if k is None:
        return False
    why = "inf/NaN" if not np.isfinite(y[order][k + 1]) else "0 (underflow)"
    k = len(y) - 1 - k if downward else k
    ax.plot(x[k], y[k], marker="X", markersize=10, color=color, markeredgecolor="black",
            linestyle="none", zorder=6)
    where = f"below layer {x[k]}" if downward else f"after layer {x[k]}"
    ax.annotate(f"{why} {where}", (x[k], y[k]), xytext=(6, 8) if downward else (-6, 8),
                textcoords="offset points", ha="left" if downward else "right", fontsize=8,
                color=_dark(color), zorder=6)
    return True


# ---- convergence -----------------------------------------------------------------------------

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
        ax_mean.axhline(0.0, color=GREY, linewidth=0.8, zorder=1)
        ax_var.axhline(1.0, color=GREY, linewidth=0.8, zorder=1)
        ax_mean.set_ylabel(r"mean $\mu$")
        ax_var.set_ylabel(r"variance $\nu$" + (" (log scale)" if log_var else ""))
        ax_var.set_xlabel(r"layer $l$ (0: the input)")
        ax_mean.set_title(r"post-activation mean $\mu$ (target 0)", loc="left")
        ax_var.set_title(r"post-activation variance $\nu$ (target 1)", loc="left")
        depth = int(results.summary["layer"].max()) if len(results.summary["layer"]) else 1
        ax_var.set_xlim(0, max(depth, 1))
        handles = [Line2D([], [], label=as_typed(label), markersize=5, linewidth=1.8, **series_style(i))
                   for i, label in enumerate(results.labels)]
        band = "±1 sd across trials"
        if log_var:
            band += "\n(variance: $\\nu\\,e^{\\pm \\mathrm{sd}/\\nu}$)"
        handles.append(Patch(color=GREY, alpha=0.3, label=band))
        if has_theory:
            handles.append(Line2D([], [], color="0.2", linestyle="--", linewidth=1.3,
                                  label="mean-field theory"))
        if finite_width:
            handles += plot_finite_width.handles()
        handles.append(Line2D([], [], color=GREY, linewidth=0.8, label="target (0, 1)"))
        if overflowed:
            handles.append(_overflow_handle())
        ax_mean.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        fig.suptitle(_title(results, "what depth does to the signal"))
    return fig


def _overflow_handle(label: str = "last finite layer\n(then inf/NaN)") -> Line2D:
    return Line2D([], [], marker="X", markersize=9, color="white", markeredgecolor="black",
                  linestyle="none", label=label)


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


# ---- the SELU map ----------------------------------------------------------------------------

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


# ---- activations -----------------------------------------------------------------------------

def activations(results: Results) -> Figure:
    """Every activation in the run and its derivative on [-5, 5]."""
    seen: dict[str, tuple[int, Activation]] = {}
    users: dict[str, list[str]] = {}
    for i, s in enumerate(results.config.get("series", [])):
        act = _activation(s)
        seen.setdefault(act.label, (i, act))
        users.setdefault(act.label, []).append(s["label"])
    with rc_context(STYLE):
        fig = _figure((10, 4.6))
        ax_f, ax_d = fig.subplots(1, 2)
        x = np.linspace(-5.0, 5.0, 2001)
        for label, (i, act) in seen.items():
            style = series_style(i)
            kw = {"color": style["color"], "linestyle": style["linestyle"], "linewidth": 1.8}
            series = as_typed(", ".join(users[label]))
            ax_f.plot(x, act.fn(x.copy()), label=f"{label}\n(series: {series})", **kw)
            xd, yd = _split_at_kinks(x, act)
            ax_d.plot(xd, yd, **kw)
            if act.name == "selu":
                _selu_notes(ax_f, ax_d, act, style["color"])
        for ax in (ax_f, ax_d):
            ax.axhline(0.0, color=GREY, linewidth=0.7, zorder=1)
            ax.axvline(0.0, color=GREY, linewidth=0.7, zorder=1)
            ax.set_xlim(-5, 5)
            ax.set_xlabel(r"$x$")
        ax_f.set_title(r"activation $f(x)$", loc="left")
        ax_d.set_title(r"derivative $f'(x)$", loc="left")
        ax_f.set_ylabel(r"$f(x)$")
        ax_d.set_ylabel(r"$f'(x)$")
        ax_d.legend(*ax_f.get_legend_handles_labels(), loc="upper left", bbox_to_anchor=(1.02, 1.0),
                    frameon=False)
        fig.suptitle(_title(results, "the activations in this run", trials=False))
    return fig


def _split_at_kinks(x: np.ndarray, act: Activation) -> tuple[np.ndarray, np.ndarray]:
    """The derivative with a gap at each kink, so a jump is not drawn as a vertical line."""
    xs, ys = [], []
    edges = [x[0], *[k for k in act.kinks if x[0] < k < x[-1]], x[-1]]
    for a, b in zip(edges[:-1], edges[1:]):
        seg = x[(x >= a) & (x <= b)]
        seg = seg[(seg != a) | (a == x[0])]
        seg = seg[(seg != b) | (b == x[-1])]
        xs += [seg, [np.nan]]
        ys += [act.deriv(seg), [np.nan]]
    return np.concatenate(xs[:-1]), np.concatenate(ys[:-1]).astype(np.float64)


def _selu_notes(ax_f, ax_d, act: Activation, color) -> None:
    """SELU's two regimes: saturation at -lambda alpha on the left, slope lambda on the right."""
    lam, alpha = act.params["lambda"], act.params["alpha"]
    ax_f.axhline(-lam * alpha, color=color, linewidth=0.8, linestyle=":", zorder=1)
    ax_f.annotate(rf"saturation $-\lambda\alpha = {-lam * alpha:.3f}$", (4.9, -lam * alpha),
                  xytext=(0, 4), textcoords="offset points", fontsize=8, color=_dark(color),
                  ha="right", va="bottom")
    ax_d.annotate(rf"$x > 0$: $\lambda = {lam:.3f}$", (2.5, lam), xytext=(0, 5),
                  textcoords="offset points", fontsize=8, color=_dark(color), ha="center")
    left = rf"$x < 0$: $\lambda\alpha\,e^x$" "\n" rf"(up to $\lambda\alpha = {lam * alpha:.3f}$)"
    ax_d.annotate(left, (-4.8, lam * alpha), fontsize=8, color=_dark(color), ha="left", va="top")


# ---- histograms ------------------------------------------------------------------------------

def histograms(results: Results, bins: int = 30) -> Figure:
    """Per series, trial 0's activations at layers 1, depth/4, depth/2 and depth (samples.csv)."""
    samples = results.samples or {"series": np.array([], dtype=object), "layer": np.array([]),
                                  "value": np.array([])}
    labels = results.labels
    layers = {lab: sorted({int(v) for v in samples["layer"][samples["series"] == lab]} - {0})
              for lab in labels}
    ncols = max([len(v) for v in layers.values()] + [1])
    with rc_context(STYLE):
        fig = _figure((2.7 * ncols + 1.0, 1.9 * len(labels) + 0.9))
        axes = np.atleast_2d(fig.subplots(len(labels), ncols, squeeze=False))
        for r, label in enumerate(labels):
            color = series_style(r)["color"]
            mine = samples["series"] == label
            rows = [samples["value"][mine & (samples["layer"] == layer)] for layer in layers[label]]
            span = _row_span(rows)
            for c in range(ncols):
                ax = axes[r, c]
                if c >= len(rows):
                    ax.set_axis_off()
                    if c == 0:
                        ax.text(0.02, 0.5, f"{as_typed(label)}: no samples stored", transform=ax.transAxes)
                    continue
                _histogram(ax, rows[c], layers[label][c], color, bins, span)
                if c == 0:
                    ax.set_ylabel(f"{as_typed(label)}\ndensity")
        for ax in axes[-1]:
            ax.set_xlabel("activation value")
        fig.suptitle(_title(results, "distribution of the activations (trial 0, 1000 sampled "
                                     "entries per layer)", trials=False))
    return fig


def _row_span(rows: list[np.ndarray]) -> tuple[float, float] | None:
    """A shared x range for a series' layers when their spreads are comparable, else None."""
    finite = [v[np.isfinite(v)] for v in rows]
    if not finite or any(v.size < 2 for v in finite):
        return None
    sds = [float(v.std()) for v in finite]
    if min(sds) <= 0 or max(sds) > 10 * min(sds):
        return None
    lo = min(float(v.min()) for v in finite)
    hi = max(float(v.max()) for v in finite)
    pad = 0.03 * (hi - lo)
    return lo - pad, hi + pad


def _histogram(ax, values: np.ndarray, layer: int, color, bins: int, span) -> None:
    """One panel: a density histogram; a point mass (ReLU's zeros) is reported, not drawn."""
    ok = np.isfinite(values)
    v = values[ok]
    notes = []
    if (~ok).any():
        notes.append(f"{(~ok).sum()} of {values.size} inf/NaN")
    if v.size:
        atoms, counts = np.unique(v, return_counts=True)
        top = int(np.argmax(counts))
        if counts[top] > 0.05 * v.size and counts[top] > 1:
            share = counts[top] / v.size
            notes.append(f"point mass P(x = {atoms[top]:g}) = {share:.2f}\n(not drawn)")
            rest = v[v != atoms[top]]
        else:
            rest = v
        if rest.size:
            weights = np.full(rest.size, 1.0 / v.size)  # drawn area: the continuous part's mass
            edges = np.linspace(*span, bins + 1) if span else np.histogram_bin_edges(rest, bins)
            ax.hist(rest, bins=edges, weights=weights / (edges[1] - edges[0]),
                    histtype="stepfilled", color=color, alpha=0.35, edgecolor=color, linewidth=1.0)
        if span:
            ax.set_xlim(*span)
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.ticklabel_format(style="sci", scilimits=(-2, 4))
        mu, nu = float(v.mean()), float(v.var())
        # Plain-text Greek: mathtext in a dozen panel titles costs more than the whole drawing.
        ax.set_title(f"layer {layer}: \u03bc = {mu:.3g}, \u03bd = {nu:.3g}", fontsize=9, loc="left")
    else:
        ax.set_title(f"layer {layer}", fontsize=9, loc="left")
        notes.append("no finite values: left the float range")
    if notes:
        ax.text(0.98, 0.95, "\n".join(notes), transform=ax.transAxes, ha="right", va="top",
                fontsize=7.5, color="0.25")


# ---- probes: gradients, dead units, correlations ---------------------------------------------

# (column, the `measure:` entry that fills it, panel title, y label)
PROBE_PANELS = (
    ("grad_ratio", "gradients",
     r"gradient $E[\delta_l^2]\,/\,E[\delta_L^2]$ of an error sent back from the top layer $L$"
     " (1: no vanishing or exploding)", "ratio (log scale)"),
    ("dead_fraction", "dead",
     r"dead units: $|\phi'(h)| < 10^{-6}$ for every input of the batch", "fraction of units"),
    ("correlation", "correlation",
     "correlation: mean cosine similarity of two distinct inputs' post-activations", "cosine"),
)


def probes(results: Results) -> Figure:
    """Gradient ratio, dead units and input correlation against layer (the `measure:` probes).

    A panel whose columns are absent (older results) or were not measured shows a note instead.
    """
    depth = int(results.summary["layer"].max()) if len(results.summary["layer"]) else 1
    shown = [_probe_measured(results, column, measure) for column, measure, _, _ in PROBE_PANELS]
    with rc_context(STYLE):
        fig = _figure((9.5, 9.2))
        # The gradient panel spans many decades (ReLU with LeCun init: 2^-depth): more height.
        axes = fig.subplots(3, 1, sharex=True, height_ratios=(1.4 if shown[0] else 1, 1, 1))
        overflowed, theory_shown, measured = False, False, []
        for ax, (column, measure, title, ylabel), ok in zip(axes, PROBE_PANELS, shown):
            ax.set_title(title, loc="left")
            if not ok:
                ax.text(0.5, 0.5, f"not measured (add '{measure}' to measure:)", ha="center",
                        va="center", transform=ax.transAxes, color="0.3")
                ax.set_yticks([])
                ax.spines["left"].set_visible(False)
                continue
            measured.append(column)
            ax.set_ylabel(ylabel)
            if column == "grad_ratio":
                ax.set_yscale("log")
                ax.axhline(1.0, color=GREY, linewidth=0.8, zorder=1)
            missing = []
            for i, label in enumerate(results.labels):
                rows = _probe_rows(results.series_summary(label), column)
                if len(rows["layer"]) == 0:
                    continue
                if not np.isfinite(rows[column]).any():
                    missing.append(label)
                    continue
                theory = rows.get(f"theory_{column}")
                has_theory = theory is not None and bool(np.isfinite(theory).any())
                theory_shown |= has_theory
                overflowed |= _curve(ax, rows, column, series_style(i), has_theory,
                                     geometric=column == "grad_ratio",
                                     downward=column == "grad_ratio")
            if column != "grad_ratio":
                _unit_range(ax, results.summary, column)
            if missing:
                ax.text(0.01, 0.03, "inf/NaN at every layer: " + as_typed(", ".join(missing)),
                        transform=ax.transAxes, fontsize=8, color="0.25", va="bottom",
                        bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8})
        axes[-1].set_xlabel(r"layer $l$ (0: the input)")
        axes[-1].set_xlim(0, max(depth, 1))
        handles = [Line2D([], [], label=as_typed(label), markersize=5, linewidth=1.8, **series_style(i))
                   for i, label in enumerate(results.labels)]
        if measured:
            band = "±1 sd across trials"
            if "grad_ratio" in measured:
                band += "\n(gradient: $r\\,e^{\\pm \\mathrm{sd}/r}$)"
            handles.append(Patch(color=GREY, alpha=0.3, label=band))
        if theory_shown:
            handles.append(Line2D([], [], color="0.2", linestyle="--", linewidth=1.3,
                                  label="mean-field theory"))
        if overflowed:
            handles.append(_overflow_handle("last finite layer\n(then inf/NaN or 0)"))
        axes[0].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        fig.suptitle(_title(results, "gradients, dead units and input correlations"
                            if measured else "probes (none measured in this run)"))
    return fig


def _probe_measured(results: Results, column: str, measure: str) -> bool:
    """The column is in the summary and was measured: listed under measure:, or not all NaN."""
    if column not in results.summary:
        return False
    listed = results.config.get("measure")
    if isinstance(listed, list) and measure in listed:
        return True
    return not np.isnan(results.summary[column]).all()


def _probe_rows(rows: dict, column: str) -> dict:
    """A series' rows for one probe panel: dead units from layer 1 (the input has none), and
    not where the pre-activations left the float range (every unit then looks dead)."""
    if column != "dead_fraction":
        return rows
    rows = {k: v[1:] for k, v in rows.items()}
    if "preact_var" in rows:
        ok = np.isfinite(rows["preact_var"])
        rows["dead_fraction"] = np.where(ok, rows["dead_fraction"], np.nan)
    return rows


def _unit_range(ax, summary: dict, column: str) -> None:
    """0..1 (with a margin) for a fraction or a cosine; lower only if the data go below 0."""
    v = _finite(summary[column])
    low = min(0.0, float(np.nanmin(v))) if np.isfinite(v).any() else 0.0
    ax.set_ylim(low - 0.04, 1.04)


# ---- saving ----------------------------------------------------------------------------------

FIGURES: dict[str, Callable[[Results], Figure]] = {
    "convergence": convergence, "map": selu_map, "activations": activations,
    "histograms": histograms, "probes": probes,
    "jacobian_density": plot_spectrum.density, "jacobian_moments": plot_spectrum.moments}
# Drawn by default only when measured (measure: [jacobian]).
OPTIONAL_FIGURES = {"jacobian_density": plot_spectrum.has_jacobian, "jacobian_moments": plot_spectrum.has_jacobian}


def save_figures(results: Results, out_dir: str | Path, formats: Iterable[str] = ("png",),
                 names: Iterable[str] | None = None) -> list[Path]:
    """Draw the figures (all, or those named) and write each in every format into out_dir
    as <name>.<format>; returns the files written."""
    formats = list(dict.fromkeys(formats))
    names = [n for n in FIGURES if n not in OPTIONAL_FIGURES or OPTIONAL_FIGURES[n](results)] \
        if names is None else list(dict.fromkeys(names))
    for value, valid, what in ((formats, FORMATS, "figure format"), (names, FIGURES, "figure")):
        unknown = [v for v in value if v not in valid]
        if unknown:
            raise ValueError(f"unknown {what} {unknown[0]!r} (expected one of: {', '.join(valid)})")
    out_dir = Path(out_dir)
    safefs.real_dir(out_dir)  # never a symbolic link planted in the results folder
    written = []
    for name in names:
        written += _write(FIGURES[name](results), [(out_dir / f"{name}.{fmt}", fmt) for fmt in formats])
    return written


def _write(fig: Figure, files: list[tuple[Path, str]]) -> list[Path]:
    """Save one figure to each (path, format), laid out once: every file has the same geometry."""
    with rc_context(STYLE):
        # Lay out once, the same way whatever the formats and their order; then no layout
        # engine at all, so that savefig draws only once per file.
        fig.draw_without_rendering()
        fig.set_layout_engine(None)
        for path, fmt in files:
            buf = io.BytesIO()
            fig.savefig(buf, format=fmt, metadata=METADATA[fmt])
            safefs.write_bytes(path, buf.getvalue())  # atomic; a link at path is replaced, not followed
    return [path for path, _ in files]


def find_latest(root: str | Path = "results") -> Path | None:
    """The most recent complete results folder directly under root (meta.json's finished_utc,
    then its modification time), or None."""
    root = Path(root)
    best, best_key = None, None
    for folder in sorted(root.iterdir()) if root.is_dir() else ():
        if folder.name.startswith(".") or not folder.is_dir():
            continue  # hidden: a run still being built, or an old one being replaced
        if not all((folder / f).is_file() for f in FILES):
            continue
        try:
            meta = json.loads((folder / "meta.json").read_text("utf-8"))
            mtime = (folder / "meta.json").stat().st_mtime_ns
        except (OSError, ValueError):
            continue
        if not isinstance(meta, dict) or not meta.get("complete"):
            continue
        key = (str(meta.get("finished_utc") or ""), mtime)
        if best_key is None or key > best_key:
            best, best_key = folder, key
    return best


# ---- sweeps: a statistic against the swept keys ----------------------------------------------

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


def _show_value(v) -> str:
    return v if isinstance(v, str) else f"{v:g}"


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
                ax.set_xticks(range(len(xs)), [as_typed(_show_value(v)) for v in xs])
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
    """A log axis for the simulated values, with the theory unless it dives far below them
    (exactly 0 at a fixed point): the line then leaves through the bottom."""
    sim = _finite(rows["y"])
    sim = sim[np.isfinite(sim) & (sim > 0)]
    theory = _finite(rows["theory"])
    theory = theory[np.isfinite(theory) & (theory >= sim.min() / 100)]
    both = np.concatenate([sim, theory])
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
                    cell = f"{v:.3g}" if np.isfinite(v) else ("inf" if np.isinf(v) else "NaN")
                    if has_theory:  # rounding noise of an exact 0 (the fixed point) shown as 0
                        t = theories[label][r, c]
                        cell += f"\n({0.0 if abs(t) < 1e-12 else t:.3g})"
                    ax.text(c, r, cell, ha="center", va="center", fontsize=7.5, zorder=2,
                            color="white" if shade < 0.5 else "black")
            ax.set_xlim(-0.5, len(xs) - 0.5)
            ax.set_ylim(-0.5, len(ys) - 0.5)
            ax.set_xticks(range(len(xs)), [as_typed(_show_value(v)) for v in xs])
            ax.set_yticks(range(len(ys)), [as_typed(_show_value(v)) for v in ys])
            ax.set_xlabel(as_typed(kx))
            ax.set_ylabel(as_typed(ky))
            note = f"  ({int(bad.sum())} of {bad.size} cells inf/NaN)" if bad.any() else ""
            ax.set_title(f"{as_typed(label)}{note}", loc="left", fontsize=10)
        for ax in axes[len(labels):]:
            ax.set_axis_off()
        log = isinstance(norm, mcolors.LogNorm)
        fig.colorbar(mesh, ax=list(axes[:len(labels)]), label=SWEEP_LABELS.get(stat, stat)
                     + (" (log scale)" if log else ""), shrink=0.9)
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


# ---- the mean-field phase diagram (snn-lab theory --phase) -----------------------------------

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


def phase_diagram(diagram, overlay: dict | None = None) -> Figure:
    """chi_1 (left) and xi_c (right) over (sigma_w^2, sigma_b^2) with the critical line chi_1 = 1,
    the phases labelled; an overlay (phase_overlay) adds a sweep's statistic as markers on the left."""
    w, b = diagram.weight_var, diagram.bias_var
    with rc_context(STYLE):
        fig = _figure((12.5, 5.4))
        ax_chi, ax_xi = fig.subplots(1, 2, sharey=True)
        chi = _finite(diagram.chi1)
        lo, hi = (np.nanmin(chi), np.nanmax(chi)) if np.isfinite(chi).any() else (0.5, 2.0)
        # Diverging at 1: blue shrinks perturbations (ordered), red grows them (chaotic).
        norm = mcolors.TwoSlopeNorm(vcenter=1.0, vmin=min(lo, 0.99), vmax=max(hi, 1.01))
        mesh = ax_chi.pcolormesh(w, b, chi, shading="nearest", cmap="RdBu_r", norm=norm)
        fig.colorbar(mesh, ax=ax_chi, label=r"$\chi_1 = \sigma_w^2\,E[\phi'(z)^2]$ at $q^*$")
        xi = _finite(diagram.xi_c)
        xi = np.where(xi > 0, xi, np.nan)
        ax_xi.set_facecolor("0.88")  # cells without xi_c show through
        if np.isfinite(xi).any():
            xi_norm = mcolors.LogNorm(vmin=np.nanmin(xi), vmax=max(np.nanmax(xi), 1.01 * np.nanmin(xi)))
            xi_mesh = ax_xi.pcolormesh(w, b, xi, shading="nearest", cmap="viridis", norm=xi_norm)
            fig.colorbar(xi_mesh, ax=ax_xi, label=r"$\xi_c$ (layers, log scale)")
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
            ax.set_xlim(w[0], w[-1])
            ax.set_ylim(b[0], b[-1])
        ax_chi.set_ylabel(r"$\sigma_b^2$ (bias variance)")
        ax_chi.set_title(r"$\chi_1$: gradient growth per layer", loc="left")
        ax_xi.set_title(r"correlation depth $\xi_c = -1/\ln\chi_c$ at $c^* = 1$", loc="left")
        handles = [Line2D([], [], color="black", linewidth=2.0, label=r"critical line $\chi_1 = 1$")]
        if overlay is not None:
            v = _finite(overlay["value"])
            good = np.isfinite(v)
            if good.any():
                dots = ax_chi.scatter(overlay["weight_var"][good], overlay["bias_var"][good], c=v[good],
                                      cmap="viridis", s=45, edgecolors="black", linewidths=0.8, zorder=7)
                where = "last layer" if overlay["layer"] == "last" else f"layer {overlay['layer']}"
                fig.colorbar(dots, ax=ax_chi, label=f"sweep: {overlay['stat']} ({where}, {as_typed(overlay['series'])})")
            if (~good).any():
                ax_chi.scatter(overlay["weight_var"][~good], overlay["bias_var"][~good], marker="X",
                               s=60, color="black", zorder=7)
                handles.append(_overflow_handle("sweep point: inf/NaN"))
            handles.append(Line2D([], [], marker="o", markersize=7, markerfacecolor="white",
                                  markeredgecolor="black", linestyle="none", label="sweep point (simulated)"))
        ax_xi.legend(handles=handles, loc="lower right", framealpha=0.9)  # the chaotic corner: grey
        fig.supxlabel("grey: no xi_c (chaotic side: c* < 1 is not computed on a grid; at the critical "
                      "line and where q* = 0: no exponential depth scale)", x=0.01, ha="left",
                      fontsize=8, color="0.3")
        fig.suptitle(f"{diagram.activation}: mean-field phase diagram (Poole et al. 2016; "
                     "Schoenholz et al. 2017)")
    return fig


def save_phase_diagram(fig: Figure, path: str | Path) -> Path:
    """Write one figure to path, its format from the suffix (png, svg, pdf), as save_figures does."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise ValueError(f"unknown figure format {path.suffix or '(none)'!r} (expected a file ending "
                         f"in one of: {', '.join('.' + f for f in FORMATS)})")
    path.parent.mkdir(parents=True, exist_ok=True)  # the user's own choice of folder
    return _write(fig, [(path, fmt)])[0]
