"""The terminal tables: numbers never cut, rounding noise shown as 0, titles only for what ran."""

from __future__ import annotations

import io

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
    assert report._theory(3e-17) == report._num(0.0)
    assert report._theory(2e-3) == report._num(2e-3)


def test_a_value_within_one_standard_error_of_zero_is_dim():
    assert report._measured(1e-3, se=1e-2).startswith("[dim]")
    assert not report._measured(1e-1, se=1e-2).startswith("[dim]")


def test_the_probes_title_names_only_what_was_measured(res):
    title = str(report.probes_table(res).title)
    assert "dead units" in title and "gradients" not in title and "cosine" not in title
