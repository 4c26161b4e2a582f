"""Shared pieces of every figure: the style, colours, formats, and small drawing helpers."""

from __future__ import annotations

import copy

import numpy as np
from matplotlib import colors as mcolors
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from snn_lab import config, theory
from snn_lab.activations import Activation, make_activation
from snn_lab.config import Series
from snn_lab.results import Results

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


def series_objects(results: Results) -> dict[str, Series]:
    """The run's Series by label, rebuilt from its resolved config ({} if that no longer loads)."""
    try:
        exp = config.build(copy.deepcopy(results.config), {}, "config.yaml")
    except (config.ConfigError, KeyError, TypeError, ValueError):
        return {}
    return {s.label: s for s in exp.series}


def fixed_points(results: Results) -> dict[str, tuple[tuple[float, float] | None, str]]:
    """label -> ((mean, var) of its fixed point or None, why none): meta.json's fixed_points,
    or the theory's for a folder written before them."""
    stored = results.meta.get("fixed_points")
    stored = stored if isinstance(stored, dict) else {}
    built = None
    out = {}
    for label in results.labels:
        fp = stored.get(label)
        if isinstance(fp, dict) and {"mean", "var"} <= set(fp):
            out[label] = ((float(fp["mean"]), float(fp["var"])), "")
        elif isinstance(fp, dict) and isinstance(fp.get("note"), str):
            out[label] = (None, fp["note"])
        else:
            built = series_objects(results) if built is None else built
            point, why = theory.fixed_output(built[label]) if label in built else (None, "no theory")
            out[label] = (point, why or "")
    return out


def as_typed(text) -> str:
    """User text (a label, a name, a value) shown as typed: its '$' never starts mathtext."""
    return str(text).replace("$", r"\$")


def _title(results: Results, what: str, trials: bool = True) -> str:
    trials = results.config.get("trials") if trials else None
    name = as_typed(results.config.get("name", "results"))
    return f"{name}: {what}" + (f" ({trials} trials)" if trials else "")


def legend_head(labels, band: str | None, theory: bool) -> list:
    """A figure legend's first entries: each series, the band across trials, the theory line."""
    handles = [Line2D([], [], label=as_typed(label), markersize=5, linewidth=1.8, **series_style(i))
               for i, label in enumerate(labels)]
    if band is not None:
        handles.append(Patch(color=GREY, alpha=0.3, label=band))
    if theory:
        handles.append(Line2D([], [], color="0.2", linestyle="--", linewidth=1.3, label="mean-field theory"))
    return handles


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



def _overflow_handle(label: str = "last finite layer\n(then inf/NaN)") -> Line2D:
    return Line2D([], [], marker="X", markersize=9, color="white", markeredgecolor="black",
                  linestyle="none", label=label)
