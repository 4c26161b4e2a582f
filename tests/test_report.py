"""The terminal tables: numbers never cut, rounding noise shown as 0, titles only for what ran."""

from __future__ import annotations

import io
import math

import pytest
from rich.console import Console
from rich.table import Table

from snn_lab import report
from snn_lab.executors import simulate

from conftest import experiment


def _text(renderable, width: int) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(renderable)
    return console.file.getvalue()


@pytest.fixture(scope="module")
def res():
    # ReLU with LeCun weights halves the variance at every layer: 2^-60 ~ 1e-18 at the top.
    return simulate(experiment("""name: t
trials: 3
width: 16
batch: 16
depth: 60
dtype: float64
measure: [dead]
series: [{label: SELU, activation: selu}, {label: ReLU-LeCun, activation: relu}]
"""))


@pytest.mark.parametrize("width", [50, 80, 200])
def test_numbers_keep_their_exponent_at_any_width(res, width):
    assert "…" not in _text(report.summary_table(res), width)  # rich's cut mark: never in a number
    # One row of folded cells: each column's pieces, read top to bottom, give the number whole.
    values = [1.234e-4, 1.234e-17, 5.678e+22, float(res.series_summary("ReLU-LeCun")["var"][60])]
    table = Table()
    for i in range(len(values)):
        table.add_column(f"c{i}", justify="right")
    table.add_row(*(report._num(v) for v in values))
    lines = [line for line in _text(report.fold(table), width).splitlines() if line.startswith("│")]
    cells = ["".join(parts).replace(" ", "") for parts in zip(*(line.strip("│").split("│") for line in lines))]
    assert cells == [report._num(v) for v in values]


def test_the_fixed_points_rounding_noise_prints_as_zero():
    assert report._theory(3e-17, scale=1.0) == report._num(0.0)
    assert report._theory(2e-3, scale=1.0) == report._num(2e-3)


def test_a_tiny_predicted_variance_is_a_prediction_not_noise(res):
    """ReLU with LeCun weights: q_l = q_(l-1) / 2, so the post-activation variance at layer 60
    is q_0 2^-60 (1/2 - 1/(2 pi)) ~ 3e-19, printed with its exponent, not as 0; its mean
    sqrt(q_l / (2 pi)) is far above 1e-12 of its sd, so it prints too."""
    expected = 2.0 ** -60 * (0.5 - 1 / (2 * math.pi))
    rows = res.series_summary("ReLU-LeCun")
    assert float(rows["theory_var"][60]) == pytest.approx(expected, rel=1e-6)
    table = report.summary_table(res)
    names = [c.header for c in table.columns]
    start = table.columns[0]._cells.index("ReLU-LeCun")
    at = start + [str(c) for c in table.columns[1]._cells[start:]].index("60")
    theory_var = table.columns[[i for i, n in enumerate(names) if n == "theory"][1]]._cells
    theory_mean = table.columns[names.index("theory")]._cells
    assert theory_var[at] == report._num(float(rows["theory_var"][60])) != report._num(0.0)
    assert theory_mean[at] == report._num(float(rows["theory_mean"][60])) != report._num(0.0)


def test_a_value_within_one_standard_error_of_zero_is_dim():
    assert report._measured(1e-3, se=1e-2).startswith("[dim]")
    assert not report._measured(1e-1, se=1e-2).startswith("[dim]")


def test_the_probes_title_names_only_what_was_measured(res):
    title = str(report.probes_table(res).title)
    assert "dead units" in title and "gradients" not in title and "cosine" not in title


def test_the_probes_table_prints_theory_noise_as_zero_and_dims_noise_in_the_simulation():
    """SELU from uncorrelated inputs at its fixed point (0, 1): E[phi] = 0, so the predicted
    cosine is exactly 0 at every layer (the quadrature leaves ~1e-33); the simulated cosines are
    noise of order 1/sqrt(width batch), and a cell is dim exactly when it is within one SE of 0."""
    run = simulate(experiment("""name: t
trials: 4
width: 32
batch: 32
depth: 5
measure: [correlation]
series: [{label: SELU, activation: selu}]
"""))
    table = report.probes_table(run)
    names = [c.header for c in table.columns]
    sim, theory = table.columns[names.index("cosine")]._cells, table.columns[names.index("theory")]._cells
    assert set(theory) == {report._short(0.0)}
    rows = run.series_summary("SELU")
    for cell, layer in zip(sim, [0, *report.display_layers(5)]):
        v, se = float(rows["correlation"][layer]), float(rows["correlation_sd"][layer]) / 2.0
        assert cell.startswith("[dim]") == (abs(v) < se), (layer, cell, v, se)
    assert "within one standard error" in str(table.caption)
