"""The activations of a run and their derivatives."""

from __future__ import annotations

import numpy as np
from matplotlib import rc_context
from matplotlib.figure import Figure

from snn_lab.activations import Activation
from snn_lab.plot.base import (
    GREY,
    STYLE,
    _activation,
    _dark,
    _figure,
    _title,
    as_typed,
    series_style,
)
from snn_lab.results import Results


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
