"""Histograms of the activations at a few layers."""

from __future__ import annotations

import numpy as np
from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from snn_lab.plot.base import STYLE, _figure, _title, as_typed, series_style
from snn_lab.results import Results


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
