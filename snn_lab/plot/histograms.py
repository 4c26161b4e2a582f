"""Histograms of the activations at a few layers, with the theory's density over them."""

from __future__ import annotations

import math

import numpy as np
from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from snn_lab import theory
from snn_lab.plot.base import (
    STYLE,
    _dark,
    _figure,
    _title,
    as_typed,
    series_objects,
    series_style,
)
from snn_lab.results import Results

ATOM = 0.05  # a value holding more than this share of the sample is a point mass, not a bin


def histogram_panels(results: Results) -> dict[str, list[dict]]:
    """Per series, per sampled layer (from 1): the sample, the theory's pre-activation variance q
    there, the sampled point mass (value, share) if any, the theory's point masses and, where the
    theory applies, a callable density (else a note saying why not)."""
    samples = results.samples or {"series": np.array([], dtype=object), "layer": np.array([]),
                                  "value": np.array([])}
    built = series_objects(results)
    out = {}
    for label in results.labels:
        mine = samples["series"] == label
        rows = results.series_summary(label)
        series = built.get(label)
        note = theory.density_note(series) if series is not None else "no theory for this series"
        if note is None and "theory_preact_var" not in rows:
            note = "no theory columns in this results folder"
        panels = []
        for layer in sorted({int(v) for v in samples["layer"][mine]} - {0}):
            values = samples["value"][mine & (samples["layer"] == layer)]
            at = np.flatnonzero(rows["layer"] == layer)
            q = float(rows["theory_preact_var"][at[0]]) if note is None and at.size else math.nan
            panel = {"layer": layer, "values": values, "q": q, "sampled_atom": _sampled_atom(values),
                     "atoms": (), "density": None, "note": note}
            if note is None and math.isfinite(q) and q > 0:
                panel["atoms"] = theory.layer_density(series, q, [])[1]
                panel["density"] = (lambda y, s=series, q=q: theory.layer_density(s, q, y)[0])
            elif note is None:
                panel["note"] = f"no theory density: q = {q:.3g} at this layer"
            panels.append(panel)
        out[label] = panels
    return out


def _sampled_atom(values: np.ndarray) -> tuple[float, float] | None:
    """(value, share of the sample) of the most repeated finite value, when it is a point mass."""
    v = values[np.isfinite(values)]
    if not v.size:
        return None
    atoms, counts = np.unique(v, return_counts=True)
    top = int(np.argmax(counts))
    return (float(atoms[top]), counts[top] / v.size) if counts[top] > ATOM * v.size and counts[top] > 1 else None


def histograms(results: Results, bins: int = 30) -> Figure:
    """Per series, trial 0's activations at layers 1, depth/4, depth/2 and depth (samples.csv),
    with the theory's density of phi(N(0, q)) and its point masses."""
    data = histogram_panels(results)
    labels = [label for label in results.labels if data[label]]
    ncols = max([len(data[label]) for label in labels] + [1])
    with rc_context(STYLE):
        fig = _figure((2.7 * ncols + 1.9, 1.9 * max(len(labels), 1) + 0.9))
        if not labels:
            fig.text(0.5, 0.5, "no samples stored in this results folder", ha="center", va="center")
        axes = np.atleast_2d(fig.subplots(len(labels), ncols, squeeze=False)) if labels else np.empty((0, 0))
        drawn = set()
        for r, label in enumerate(labels):
            color = series_style(results.labels.index(label))["color"]
            panels = data[label]
            span = _row_span([p["values"] for p in panels])
            for c in range(ncols):
                ax = axes[r, c]
                if c >= len(panels):
                    ax.remove()  # a series sampled at fewer layers: no empty panel
                    continue
                drawn |= _histogram(ax, panels[c], color, bins, span, note=c == 0)
                if c == 0:
                    ax.set_ylabel(f"{as_typed(label)}\ndensity")
        for c in range(ncols):
            bottom = [axes[r, c] for r in range(len(labels)) if c < len(data[labels[r]])]
            if bottom:
                bottom[-1].set_xlabel("activation value")
        handles = [Patch(color="0.6", alpha=0.5, label="sample (continuous part)")]
        if "density" in drawn:
            handles.append(Line2D([], [], color="0.2", linestyle="--", linewidth=1.4,
                                  label="theory: density of\n$\\phi(h)$, $h \\sim N(0, q)$"))
        if "atom" in drawn:
            handles.append(Line2D([], [], color="0.2", marker="^", linewidth=1.4,
                                  label="point mass (arrow;\nits probability written)"))
        if labels:
            fig.legend(handles=handles, loc="outside right upper", frameon=False)
        fig.suptitle(_title(results, "distribution of the activations (trial 0, 1000 entries per layer)",
                            trials=False))
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


def _histogram(ax, panel: dict, color, bins: int, span, note: bool) -> set:
    """One panel: a density histogram of the continuous part, the theory's density over it, and
    point masses as arrows with their probabilities; returns what it drew. note: say here why
    the theory has no density (once per series, in its first panel)."""
    values, drawn = panel["values"], set()
    ok = np.isfinite(values)
    v = values[ok]
    notes = []
    if (~ok).any():
        notes.append(f"{(~ok).sum()} of {values.size} inf/NaN")
    if not v.size:
        ax.set_title(f"layer {panel['layer']}", fontsize=9, loc="left")
        ax.text(0.5, 0.5, "no finite values:\nleft the float range", transform=ax.transAxes, ha="center",
                va="center", fontsize=8, color="0.25")
        ax.set_yticks([])
        return drawn
    atom = panel["sampled_atom"]
    rest = v[v != atom[0]] if atom else v
    if rest.size:
        weights = np.full(rest.size, 1.0 / v.size)  # drawn area: the continuous part's mass
        edges = np.linspace(*span, bins + 1) if span else np.histogram_bin_edges(rest, bins)
        ax.hist(rest, bins=edges, weights=weights / (edges[1] - edges[0]),
                histtype="stepfilled", color=color, alpha=0.35, edgecolor=color, linewidth=1.0)
    if span:
        ax.set_xlim(*span)
    if panel["density"] is not None:
        lo, hi = ax.get_xlim()
        x = np.union1d(np.linspace(lo, hi, 400), [a for a, _ in panel["atoms"] if lo < a < hi])
        ax.plot(x, panel["density"](x), color=_dark(color), linestyle="--", linewidth=1.4, zorder=4)
        drawn.add("density")
    drawn |= _atoms(ax, panel, atom, color)
    ax.xaxis.set_major_locator(MaxNLocator(5))
    ax.ticklabel_format(style="sci", scilimits=(-2, 4))
    mu, nu = float(v.mean()), float(v.var())
    # Plain-text Greek: mathtext in a dozen panel titles costs more than the whole drawing.
    ax.set_title(f"layer {panel['layer']}: \u03bc = {mu:.3g}, \u03bd = {nu:.3g}", fontsize=9, loc="left")
    if panel["note"] and note:
        notes.append(panel["note"].replace(" (", "\n("))
    if notes:
        ax.text(0.98, 0.95, "\n".join(notes), transform=ax.transAxes, ha="right", va="top",
                fontsize=7.5, color="0.25")
    return drawn


def _atoms(ax, panel: dict, sampled, color) -> set:
    """Each point mass as an arrow up from its value (a Dirac delta), its probabilities beside it:
    sampled, and the theory's."""
    theory_atoms = list(panel["atoms"])
    where = {a for a, _ in theory_atoms} | ({sampled[0]} if sampled else set())
    if not where:
        return set()
    trans = ax.get_xaxis_transform()
    for k, a in enumerate(sorted(where)):
        share = sampled[1] if sampled and sampled[0] == a else 0.0
        predicted = [p for value, p in theory_atoms if value == a]
        ax.annotate("", xy=(a, 0.8), xytext=(a, 0.0), xycoords=trans, textcoords=trans,
                    arrowprops={"arrowstyle": "-|>", "color": _dark(color), "linewidth": 1.4}, zorder=5)
        text = f"P(x = {a:.3g}) = {share:.2f}" + (f"\ntheory {predicted[0]:.2f}" if predicted else "")
        ax.text(0.98, 0.6 - 0.25 * k, text, transform=ax.transAxes, ha="right", va="top", fontsize=7.5,
                color="0.2")
    return {"atom"}
