"""snn-lab plot: every figure in every format, readable, reproducible byte for byte, robust."""

from __future__ import annotations

import csv
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from matplotlib.image import imread

from snn_lab import plot, results
from snn_lab.cli import main

TINY = ["--set", "width=16", "--set", "depth=6", "--set", "batch=16", "--set", "trials=2"]
NAMES = ("convergence", "map", "activations", "histograms")

# SELU with its weights' sd scaled by 1e8: the activations grow ~1e8 per layer and leave
# float32's range (3.4e38) at layer 5, so later layers are inf/NaN.
EXPLODING = """\
name: exploding
trials: 2
width: 16
depth: 6
batch: 16
series:
  - {label: SELU, activation: selu}
  - {label: SELU x 1e8, activation: selu, gain: 1.0e8}
"""


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def run_tiny(out: Path, *extra) -> Path:
    done = invoke("run", "--out", out, "--quiet", *TINY, *extra)
    assert done.exit_code == 0, done.output
    return out


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A tiny run of the default experiment (SELU, ReLU, ReLU (He))."""
    return run_tiny(tmp_path_factory.mktemp("run") / "r")


@pytest.fixture(scope="module")
def plotted(folder, tmp_path_factory) -> Path:
    """The folder plotted in every format into a separate --out folder."""
    out = tmp_path_factory.mktemp("plots") / "a"
    formats = [arg for fmt in plot.FORMATS for arg in ("--format", fmt)]
    done = invoke("plot", folder, *formats, "--out", out)
    assert done.exit_code == 0, done.output
    return out


def test_every_figure_is_written_in_every_format(plotted):
    expected = {f"{n}.{fmt}" for n in NAMES for fmt in plot.FORMATS}
    assert {p.name for p in plotted.iterdir()} == expected
    for name in NAMES:
        assert (plotted / f"{name}.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        assert b"<svg" in (plotted / f"{name}.svg").read_bytes()[:1000]
        assert (plotted / f"{name}.pdf").read_bytes().startswith(b"%PDF-")


@pytest.mark.parametrize("name", NAMES)
def test_png_is_not_blank(plotted, name):
    """Decoded, the image has many distinct colours and a fair share of non-white pixels."""
    pixels = imread(plotted / f"{name}.png")[..., :3]
    assert pixels.shape[0] > 300 and pixels.shape[1] > 500
    rgb = (pixels * 255).round().astype(np.int64)
    assert len(np.unique(rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2])) > 50
    assert (pixels.min(axis=2) < 0.9).mean() > 0.02


def test_replotting_gives_identical_bytes(folder, plotted, tmp_path):
    """Plotted again (formats in another order): the same bytes in png, svg and pdf.

    Two of the four figures, to keep the suite fast: the map (quiver, many paths) and
    convergence (bands, log axis); dates, versions and svg ids are per format, not per figure.
    """
    again = plot.save_figures(results.read(folder), tmp_path, ["pdf", "svg", "png"],
                              names=["map", "convergence"])
    assert len(again) == 6
    for path in again:
        assert path.read_bytes() == (plotted / path.name).read_bytes(), path.name


def test_no_pyplot_and_figures_are_returned(folder):
    """The library builds Figures on the Agg canvas; pyplot (global state) is never imported."""
    res = results.read(folder)
    for build in plot.FIGURES.values():
        fig = build(res)
        assert type(fig.canvas).__name__ == "FigureCanvasAgg"
    assert "matplotlib.pyplot" not in sys.modules


def _legend_labels(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]


def test_folder_without_theory_columns_still_plots(folder, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(folder, old, ignore=shutil.ignore_patterns("plots"))
    for name in ("layers.csv", "summary.csv"):
        with open(old / name, newline="") as f:
            rows = list(csv.reader(f))
        keep = [i for i, c in enumerate(rows[0]) if not c.startswith("theory_")]
        assert len(keep) < len(rows[0])
        with open(old / name, "w", newline="") as f:
            csv.writer(f, lineterminator="\n").writerows([[r[i] for i in keep] for r in rows])
    res = results.read(old)
    assert "theory_mean" not in res.summary
    assert "mean-field theory" not in _legend_labels(plot.convergence(res))
    assert "mean-field theory" in _legend_labels(plot.convergence(results.read(folder)))
    # Only these two figures read the theory columns.
    written = plot.save_figures(res, old / "plots", ["png"], names=["convergence", "map"])
    assert [p.name for p in written] == ["convergence.png", "map.png"]


def test_folder_with_inf_and_nan_plots_and_marks_the_overflow(tmp_path):
    (tmp_path / "x.yaml").write_text(EXPLODING)
    folder = tmp_path / "x"
    assert invoke("run", tmp_path / "x.yaml", "--out", folder, "--quiet").exit_code == 0
    meta = json.loads((folder / "meta.json").read_text())
    first_bad = min(e["layer"] for e in meta["overflow"] if e["series"] == "SELU x 1e8")
    summary = results.read(folder).summary
    assert not np.isfinite(summary["var"]).all() and np.isnan(summary["mean"]).any()
    done = invoke("plot", folder)  # default: RESULTS_DIR/plots, png
    assert done.exit_code == 0, done.output
    assert sorted(p.name for p in (folder / "plots").iterdir()) == sorted(f"{n}.png" for n in NAMES)
    assert f"wrote {folder / 'plots' / 'convergence.png'}" in done.output
    fig = plot.convergence(results.read(folder))
    notes = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert f"inf/NaN after layer {first_bad - 1}" in notes
    assert any(label.startswith("last finite layer") for label in _legend_labels(fig))


def test_no_argument_plots_the_newest_complete_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, finished in (("newer", "2021-01-01T00:00:00Z"), ("older", "2020-01-01T00:00:00Z")):
        run_tiny(Path("results") / name)
        meta_path = Path("results") / name / "meta.json"
        meta = json.loads(meta_path.read_text())
        meta_path.write_text(json.dumps({**meta, "finished_utc": finished}))
    # Newest by modification time, but not complete / hidden: both must be passed over.
    shutil.copytree("results/older", "results/broken")
    os.remove("results/broken/summary.csv")
    shutil.copytree("results/older", "results/.newest.tmp-1")
    assert plot.find_latest("results") == Path("results/newer")
    calls = []
    monkeypatch.setattr(plot, "save_figures",
                        lambda res, out, formats: calls.append((res.path, out, formats)) or [])
    done = invoke("plot")
    assert done.exit_code == 0, done.output
    assert "plotting results/newer (the most recent complete run under results/)" in done.output
    assert calls == [(Path("results/newer"), Path("results/newer/plots"), ("png",))]


def test_no_argument_and_no_results_is_an_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    done = invoke("plot")
    assert done.exit_code == 2
    assert done.output == ("error: no complete results folder under results/; run `snn-lab run` "
                           "first or name one: snn-lab plot RESULTS_DIR\n")


def test_missing_folder_is_a_one_line_error(tmp_path):
    done = invoke("plot", tmp_path / "nope")
    assert done.exit_code == 2
    assert done.output == f"error: {tmp_path / 'nope'}: no such results folder\n"


def test_incomplete_folder_is_a_one_line_error(folder, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    os.remove(broken / "meta.json")
    done = invoke("plot", broken)
    assert done.exit_code == 2
    assert done.output.startswith(f"error: {broken}: not a complete results folder "
                                  "(missing meta.json)")
    assert done.output.count("\n") == 1


def test_last_finite():
    assert plot.last_finite([1.0, 2.0, 3.0]) is None
    assert plot.last_finite([1.0, 2.0, np.inf, np.nan]) == 1
    assert plot.last_finite([np.nan, 1.0]) is None  # nothing finite before it: nothing to mark
