"""Figures from a results or sweep folder; the only package that imports matplotlib.

Figures are matplotlib.figure.Figure objects on the Agg canvas (no pyplot, no global state, no
display needed). One module per figure family; writer.py writes them all, with their metadata
stripped, so plotting the same results twice gives byte-identical files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from snn_lab import safefs
from snn_lab.plot import spectrum, training
from snn_lab.plot.activations import activations
from snn_lab.plot.base import FORMATS, PALETTE, as_typed, last_finite, series_style
from snn_lab.plot.convergence import convergence
from snn_lab.plot.histograms import histograms
from snn_lab.plot.phase import (
    OverlayError,
    PhaseFigure,
    figure_format,
    phase_diagram,
    phase_overlay,
    save_phase_diagram,
    save_phase_figure,
)
from snn_lab.plot.probes import has_probes, probes
from snn_lab.plot.layer_map import g_fixed_point, layer_map
from snn_lab.plot.sweeps import (
    SWEEP_DEFAULT_STAT,
    SweepPlotError,
    save_sweep_figures,
    sweep_figures,
    sweep_layers,
    sweep_stats,
    sweep_values,
)
from snn_lab.plot.writer import find_latest, write_figure
from snn_lab.results import Results

__all__ = ["FIGURES", "FORMATS", "PALETTE", "SWEEP_DEFAULT_STAT", "OverlayError", "PhaseFigure", "SweepPlotError",
           "activations", "as_typed", "convergence", "figure_format", "find_latest", "g_fixed_point", "histograms",
           "last_finite", "phase_diagram", "phase_overlay", "probes", "save_figures",
           "save_phase_diagram", "save_phase_figure", "save_sweep_figures", "layer_map", "series_style", "sweep_figures",
           "sweep_layers", "sweep_stats", "sweep_values"]

# The figures of a results folder, by name (snn-lab plot writes <name>.<format>).
FIGURES: dict[str, Callable[[Results], Figure]] = {
    "convergence": convergence, "map": layer_map, "activations": activations,
    "histograms": histograms, "probes": probes,
    "jacobian_density": spectrum.density, "jacobian_moments": spectrum.moments,
    "training_loss": training.loss_curves, "training_variance": training.layer_variance}
# Drawn by default only when measured (a probe under measure:, or jacobian) or trained (a train: block).
OPTIONAL_FIGURES = {"probes": has_probes, "jacobian_density": spectrum.has_jacobian, "jacobian_moments": spectrum.has_jacobian,
                    "training_loss": training.has_training, "training_variance": training.has_training}


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
    # An overflowed run's axes reach past float64's exp: matplotlib's symlog and log scales then
    # overflow while autoscaling, with a RuntimeWarning of their own; the figure is right.
    with np.errstate(over="ignore"):
        for name in names:
            written += write_figure(FIGURES[name](results), [(out_dir / f"{name}.{fmt}", fmt) for fmt in formats])
    return written
