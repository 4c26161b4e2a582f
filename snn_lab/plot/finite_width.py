"""The finite-width theory on a figure: the corrected prediction and its predicted band."""

from __future__ import annotations

import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

BAND = {"facecolor": "none", "hatch": "////", "linewidth": 0.0, "alpha": 0.55}


def present(summary: dict) -> bool:
    """Whether a summary has finite-width columns with a value somewhere (older folders: none)."""
    cols = ("fw_mean", "fw_var", "fw_mean_sd", "fw_var_sd")
    return all(c in summary for c in cols) and bool(np.isfinite(summary["fw_var"]).any())


def overlay(ax, rows: dict, stat: str, color, dark, geometric: bool) -> None:
    """One series' corrected line (dotted) and predicted +-1 sd across trials (hatched)."""
    x = rows["layer"]
    y, sd = rows.get(f"fw_{stat}"), rows.get(f"fw_{stat}_sd")
    if y is None or sd is None or not np.isfinite(y).any():
        return  # the theory does not reach this series (a norm, a skip): nothing to draw
    with np.errstate(all="ignore"):
        # As the measured band: y e^(+-sd/y) on a log axis, y +- sd otherwise.
        lo, hi = (y * np.exp(-sd / y), y * np.exp(sd / y)) if geometric else (y - sd, y + sd)
    ax.fill_between(x, lo, hi, edgecolor=color, zorder=2, **BAND)
    ax.plot(x, y, color=dark, linestyle=":", linewidth=1.6, zorder=4)


def handles() -> list:
    """Legend entries for what overlay draws."""
    return [Line2D([], [], color="0.2", linestyle=":", linewidth=1.6, label="finite-width theory (1/n)"),
            Patch(edgecolor="0.3", label="predicted ±1 sd across trials", **BAND)]
