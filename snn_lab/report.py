"""Rich renderables for the terminal (built here, printed only by the CLI)."""

from __future__ import annotations

import math

from rich.table import Table

from snn_lab.statistics import deviation


def display_layers(depth: int) -> list[int]:
    """Layers 1, 2, 5, 10, 20, 50, ... up to depth, and the last one."""
    shown, step = [], 1
    while step <= depth:
        shown += [v for v in (step, 2 * step, 5 * step) if v <= depth]
        step *= 10
    if depth not in shown:
        shown.append(depth)
    return shown


def _num(v: float, digits: int = 4) -> str:
    if not math.isfinite(v):
        return f"[bold red]{v}[/]"
    # Fixed point where it reads well; scientific where ReLU's variance has fallen to 1e-19.
    return f"{v:.{digits}f}" if v == 0 or 1e-3 <= abs(v) < 1e4 else f"{v:.3e}"


def _z(v: float) -> str:
    if not math.isfinite(v):
        return "-"
    text = f"{v:+.1f}"
    return f"[red]{text}[/]" if abs(v) > 4 else text


def summary_table(res) -> Table:
    """Per series, a few layers: simulated mean and var beside theory, deviation in std errors."""
    has_theory = "theory_mean" in res.summary
    table = Table(title=f"{res.config['name']}: post-activation statistics across "
                        f"{res.config['trials']} trials", title_justify="left")
    table.add_column("series")
    table.add_column("layer", justify="right")
    table.add_column("mean", justify="right")
    if has_theory:
        table.add_column("theory", justify="right", style="cyan")
        table.add_column("z", justify="right")
    table.add_column("var", justify="right")
    if has_theory:
        table.add_column("theory", justify="right", style="cyan")
        table.add_column("z", justify="right")
    for label in res.labels:
        rows = res.series_summary(label)
        depth = int(rows["layer"].max())
        for n, layer in enumerate(display_layers(depth)):
            i = int(layer)
            cells = [label if n == 0 else "", str(layer)]
            trials = int(rows["trials"][i])
            for stat in ("mean", "var"):
                sim, sd = float(rows[stat][i]), float(rows[f"{stat}_sd"][i])
                cells.append(_num(sim))
                if has_theory:
                    th = float(rows[f"theory_{stat}"][i])
                    cells += [_num(th), _z(deviation(sim, sd, trials, th))]
            table.add_row(*cells, end_section=n == len(display_layers(depth)) - 1)
    if has_theory:
        table.caption = "z: (simulation - theory) in standard errors of the trial mean"
    return table
