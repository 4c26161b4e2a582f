"""Gradients, dead units and input correlations against depth."""

from __future__ import annotations

import numpy as np
from matplotlib import rc_context
from matplotlib.figure import Figure

from snn_lab.plot.base import (
    GREY,
    STYLE,
    _figure,
    _finite,
    _overflow_handle,
    _title,
    as_typed,
    legend_head,
    series_style,
)
from snn_lab.plot.convergence import _curve
from snn_lab.results import Results

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


def measured_panels(results: Results) -> list[tuple[str, str, str, str]]:
    """The PROBE_PANELS whose column was measured in this run (the figure draws only these)."""
    return [p for p in PROBE_PANELS if _probe_measured(results, p[0], p[1])]


def has_probes(results: Results) -> bool:
    """Whether any probe was measured: the figure is drawn by default only then."""
    return bool(measured_panels(results))


def probes(results: Results) -> Figure:
    """Gradient ratio, dead units and input correlation against layer (the `measure:` probes):
    a panel per measured probe, and none for the others (the title names them)."""
    depth = int(results.summary["layer"].max()) if len(results.summary["layer"]) else 1
    panels = measured_panels(results)
    skipped = [measure for column, measure, _, _ in PROBE_PANELS if (column, measure) not in
               [(p[0], p[1]) for p in panels]]
    with rc_context(STYLE):
        # The gradient panel spans many decades (ReLU with LeCun init: 2^-depth): more height.
        heights = [1.4 if column == "grad_ratio" else 1.0 for column, _, _, _ in panels]
        fig = _figure((9.5, 0.9 + 2.75 * sum(heights) if panels else 2.0))
        axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False, height_ratios=heights)[:, 0] \
            if panels else []
        overflowed, theory_shown = False, False
        for ax, (column, measure, title, ylabel) in zip(axes, panels):
            ax.set_title(title, loc="left")
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
        if panels:
            axes[-1].set_xlabel(r"layer $l$ (0: the input)")
            axes[-1].set_xlim(0, max(depth, 1))
            band = "±1 sd across trials"
            if panels[0][0] == "grad_ratio":
                band += "\n(gradient: $r\\,e^{\\pm \\mathrm{sd}/r}$)"
            handles = legend_head(results.labels, band, theory_shown)
            if overflowed:
                handles.append(_overflow_handle("last finite layer\n(then inf/NaN or 0)"))
            fig.legend(handles=handles, loc="outside right upper", frameon=False)
        else:
            fig.text(0.5, 0.5, "no probe measured in this run (measure: gradients, dead, correlation)",
                     ha="center", va="center", color="0.3")
        what = {"gradients": "gradients", "dead": "dead units", "correlation": "input correlations"}
        fig.suptitle(_title(results, ", ".join(what[p[1]] for p in panels) if panels else "probes: none measured"))
        if panels and skipped:
            fig.supxlabel("not measured, so not drawn: " + ", ".join(skipped) + " (add to measure: to see them)",
                          x=0.01, ha="left", fontsize=8, color="0.3")
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
