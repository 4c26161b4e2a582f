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
NAMES = ("convergence", "map", "activations", "histograms", "probes")

# SELU with its weights' sd scaled by 1e8: the activations grow ~1e8 per layer and leave
# float32's range (3.4e38) at layer 5, so later layers are inf/NaN.
EXPLODING = """\
name: exploding
trials: 2
width: 16
depth: 6
batch: 16
measure: [gradients, dead, correlation]
series:
  - {label: SELU, activation: selu}
  - {label: SELU x 1e8, activation: selu, gain: 1.0e8}
"""
# Every probe measured, on the tiny sizes of TINY.
PROBED = """\
name: probed
trials: 2
width: 16
depth: 6
batch: 16
measure: [gradients, dead, correlation]
series:
  - {label: SELU, activation: selu}
  - {label: ReLU, activation: relu}
  - {label: ReLU (He), activation: relu, init: he_normal}
"""
PROBE_COLUMNS = ("grad_", "dead_", "correlation", "theory_grad_ratio", "theory_correlation")


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


def run_stdin(out: Path, yaml_text: str) -> Path:
    """`snn-lab run - --out DIR -q` with the config on standard input."""
    done = CliRunner().invoke(main, ["run", "-", "--out", str(out), "-q"], input=yaml_text,
                              catch_exceptions=False)
    assert done.exit_code == 0, done.output
    return out


@pytest.fixture(scope="module")
def probed(tmp_path_factory) -> Path:
    """A tiny run with measure: [gradients, dead, correlation]."""
    return run_stdin(tmp_path_factory.mktemp("probed") / "p", PROBED)


@pytest.fixture(scope="module")
def exploding(tmp_path_factory) -> Path:
    """EXPLODING run: SELU x 1e8 leaves float32's range forward at layer 5, backward at 1."""
    return run_stdin(tmp_path_factory.mktemp("exploding") / "x", EXPLODING)


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
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]
    return [t.get_text() for legend in legends for t in legend.get_texts()]


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


def test_folder_with_inf_and_nan_plots_and_marks_the_overflow(exploding):
    folder = exploding
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


def _texts(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def _strip_probe_columns(folder: Path, to: Path) -> Path:
    """A copy of the folder as an older snn-lab wrote it: no probe columns in the CSVs."""
    shutil.copytree(folder, to, ignore=shutil.ignore_patterns("plots"))
    for name in ("layers.csv", "summary.csv"):
        with open(to / name, newline="") as f:
            rows = list(csv.reader(f))
        keep = [i for i, c in enumerate(rows[0]) if not c.startswith(PROBE_COLUMNS)]
        assert len(keep) < len(rows[0])
        with open(to / name, "w", newline="") as f:
            csv.writer(f, lineterminator="\n").writerows([[r[i] for i in keep] for r in rows])
    return to


def test_probes_in_every_format_identical_on_replot(probed, tmp_path):
    """Every probe measured: png, svg and pdf written, and the same bytes when plotted again."""
    res = results.read(probed)
    first = plot.save_figures(res, tmp_path / "a", plot.FORMATS, names=["probes"])
    again = plot.save_figures(results.read(probed), tmp_path / "b", ["pdf", "png", "svg"],
                              names=["probes"])
    assert sorted(p.name for p in first) == sorted(p.name for p in again) == [
        "probes.pdf", "probes.png", "probes.svg"]
    for path in first:
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes(), path.name
    assert (tmp_path / "a" / "probes.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert b"<svg" in (tmp_path / "a" / "probes.svg").read_bytes()[:1000]
    assert (tmp_path / "a" / "probes.pdf").read_bytes().startswith(b"%PDF-")


def test_probes_draw_the_summary_columns(probed):
    """Each panel draws its summary.csv column (read here with csv) per series, theory dashed;
    the gradient axis is logarithmic and no panel says 'not measured'."""
    with open(probed / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    fig = plot.probes(results.read(probed))
    grad, dead, corr = fig.axes[:3]
    assert grad.get_yscale() == "log" and dead.get_yscale() == "linear"
    assert "mean-field theory" in _legend_labels(fig)
    for ax, column, first in ((grad, "grad_ratio", 0), (dead, "dead_fraction", 1),
                              (corr, "correlation", 0)):
        drawn = [ln for ln in ax.get_lines() if ln.get_zorder() == 3]  # simulated (theory: 4)
        assert len(drawn) == 3, column
        for line, label in zip(drawn, ["SELU", "ReLU", "ReLU (He)"]):
            want = [float(r[column]) for r in rows if r["series"] == label][first:]
            np.testing.assert_array_equal(line.get_ydata(), want)
    for ax, theories in ((grad, 3), (dead, 0), (corr, 3)):
        dashed = [ln for ln in ax.get_lines() if ln.get_zorder() == 4]
        assert len(dashed) == theories and all(ln.get_linestyle() == "--" for ln in dashed)
    assert dead.get_ylim()[0] < 0 < 1 < dead.get_ylim()[1]


def test_probes_not_measured_are_not_drawn(probed, folder, tmp_path):
    """Older results (no probe columns): no probes figure by default; asked for by name, a note
    and no panel. The default measure (dead, correlation): two panels, gradients named below."""
    old = results.read(_strip_probe_columns(probed, tmp_path / "old"))
    assert "grad_ratio" not in old.summary and "correlation" not in old.summary
    fig = plot.probes(old)
    assert fig.axes == [] and any("no probe measured" in t.get_text() for t in fig.texts)
    assert "probes.png" not in [p.name for p in plot.save_figures(old, tmp_path / "all", ["png"])]
    written = plot.save_figures(old, tmp_path / "plots", ["png"], names=["probes"])
    assert [p.name for p in written] == ["probes.png"]
    default = plot.probes(results.read(folder))
    assert [ax.get_title(loc="left").split(":")[0] for ax in default.axes] == ["dead units", "correlation"]
    assert "not measured, so not drawn: gradients" in default._supxlabel.get_text()


def test_probes_mark_inf_nan_and_underflow(exploding, probed):
    """The gradient is followed from the top down: its X sits at the lowest finite layer;
    dead units and correlation are marked where the forward pass left the float range."""
    res = results.read(exploding)
    rows = res.series_summary("SELU x 1e8")
    lowest = int(rows["layer"][np.isfinite(rows["grad_ratio"])].min())
    first_bad = int(rows["layer"][~np.isfinite(rows["preact_var"])].min())
    assert 0 < lowest and first_bad < 6
    notes = _texts(plot.probes(res))
    assert f"inf/NaN below layer {lowest}" in notes
    assert notes.count(f"inf/NaN after layer {first_bad - 1}") == 2  # dead units, correlation
    # A gradient that underflowed to 0 below layer 3 vanishes from a log axis: marked too.
    res = results.read(probed)
    keep = res.summary["series"] == "ReLU"
    res.summary["grad_ratio"] = np.where(keep & (res.summary["layer"] < 3), 0.0,
                                         res.summary["grad_ratio"])
    assert "0 (underflow) below layer 3" in _texts(plot.probes(res))


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


def test_an_overflowed_run_plots_without_numpys_warnings(tmp_path):
    """Statistics past float32 (inf, NaN, 1e38 beside 1): matplotlib's scales overflow while
    autoscaling; the figures are drawn and no RuntimeWarning escapes (before: two, from
    matplotlib's scale.py, on the command line)."""
    import warnings

    from snn_lab import api

    run = api.run({"seed": 0, "trials": 2, "width": 16, "depth": 6, "batch": 8, "dtype": "float32",
                   "input": {"mean": 1e300, "var": 1e300},
                   "series": [{"label": "a", "activation": "selu"},
                              {"label": "b", "activation": "relu", "residual": 1.0, "gain": 1e20},
                              {"label": "c", "activation": "tanh", "gain": 1e30, "bias_var": 1e30}]})
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        written = plot.save_figures(run.run, tmp_path)
    assert written and all(p.stat().st_size > 0 for p in written)
