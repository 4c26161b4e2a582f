"""snn-lab plot on a sweep folder: the statistic against the swept keys, checked against the
points' own summary.csv files, with standard-error bars, inf/NaN cells and exit-2 messages."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from matplotlib.collections import QuadMesh

from snn_lab import plot
from snn_lab import sweep as sw
from snn_lab.cli import main

# One key, two series; gain spans 12x (> 1 decade): a log x axis. (Gains near 1: the theory of
# the input correlation takes seconds per point for SELU at gain >= 2.)
ONE_KEY = """\
name: one-key
trials: 3
width: 16
depth: 5
batch: 16
series:
  - {label: SELU, activation: selu}
  - {label: ReLU, activation: relu}
sweep:
  gain: [0.1, 0.3, 1.2]
"""
# Two keys; SELU with gain 1e8 leaves the float range by layer 5 (as in test_plot's EXPLODING).
TWO_KEYS = """\
name: two-keys
trials: 2
width: 16
depth: 6
batch: 16
series:
  - {label: SELU, activation: selu}
sweep:
  gain: [1.0, 1.0e8]
  width: [8, 16]
"""
# Three keys, the first one text: categories across, one line per (gain, width).
THREE_KEYS = """\
name: three-keys
trials: 2
width: 8
depth: 3
batch: 8
series:
  - {label: SELU, activation: selu}
sweep:
  init: [lecun_normal, he_normal]
  gain: [0.5, 1.0]
  width: [8, 16]
"""


def invoke(*args, **kw):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False, **kw)


def run_sweep(out: Path, yaml_text: str, *extra) -> Path:
    done = invoke("run", "-", "--out", out, "-q", *extra, input=yaml_text)
    assert done.exit_code == 0, done.output
    return out


@pytest.fixture(scope="module")
def one_key(tmp_path_factory) -> Path:
    """Run with --plot, so `run --plot` draws the sweep figure too."""
    return run_sweep(tmp_path_factory.mktemp("sweep") / "one", ONE_KEY, "--plot")


@pytest.fixture(scope="module")
def two_keys(tmp_path_factory) -> Path:
    return run_sweep(tmp_path_factory.mktemp("sweep") / "two", TWO_KEYS)


@pytest.fixture(scope="module")
def three_keys(tmp_path_factory) -> Path:
    return run_sweep(tmp_path_factory.mktemp("sweep") / "three", THREE_KEYS)


# ---- the truth: each point's own summary.csv, read without snn_lab -------------------------

def point_rows(folder: Path) -> list[tuple[dict, dict]]:
    """(the point's swept values, its summary.csv rows as dicts of text) for every point."""
    manifest = json.loads((folder / "sweep.json").read_text("utf-8"))
    out = []
    for p in manifest["points"]:
        with open(folder / p["folder"] / "summary.csv", newline="", encoding="utf-8") as f:
            out.append((p["values"], list(csv.DictReader(f))))
    return out


def at_layer(rows: list[dict], series: str, layer: int | None) -> dict:
    """The series' row at a layer (None: its last), numbers as floats."""
    mine = [r for r in rows if r["series"] == series]
    layer = max(int(r["layer"]) for r in mine) if layer is None else layer
    row = next(r for r in mine if int(r["layer"]) == layer)
    return {k: (v if k in ("series", "activation", "init") else float(v)) for k, v in row.items()}


def distance(mean: float, var: float) -> float:
    return math.sqrt(mean ** 2 + (var - 1.0) ** 2)


def by_gid(ax, gid: str):
    found = [a for a in ax.get_children() if a.get_gid() == gid]
    assert len(found) == 1, (gid, [a.get_gid() for a in ax.get_children() if a.get_gid()])
    return found[0]


def error_halfwidths(ax, gid: str) -> np.ndarray:
    """Half the length of each error bar of the line with this gid."""
    for c in ax.containers:
        if c.lines[0].get_gid() == gid:
            return np.array([(s[1, 1] - s[0, 1]) / 2 for s in c.lines[2][0].get_segments()])
    raise AssertionError(f"no error bars for {gid}")


def only_figure(figures: dict):
    assert len(figures) == 1
    return next(iter(figures.values()))


# ---- one key: lines ------------------------------------------------------------------------

def test_run_plot_and_plot_write_the_sweep_figure(one_key, tmp_path):
    """`run --plot` draws plots/sweep-distance.png; `plot DIR --out` writes the same name."""
    assert (one_key / "plots" / "sweep-distance.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    done = invoke("plot", one_key, "--out", tmp_path / "figs")
    assert done.exit_code == 0, done.output
    assert (tmp_path / "figs" / "sweep-distance.png").is_file()
    assert f"wrote {tmp_path / 'figs' / 'sweep-distance.png'}" in done.output


def test_one_key_lines_are_the_distance_at_the_last_layer(one_key):
    """Each series' line: x the gains, y sqrt(mean^2 + (var - 1)^2) of each point's last layer;
    the dashed line the same formula on theory_mean and theory_var."""
    fig = only_figure(plot.sweep_figures(sw.read(one_key)))
    ax = fig.axes[0]
    points = sorted(point_rows(one_key), key=lambda p: p[0]["gain"])
    for series in ("SELU", "ReLU"):
        rows = [at_layer(r, series, None) for _, r in points]
        assert all(r["layer"] == 5 for r in rows)
        line = by_gid(ax, f"sweep:{series}")
        np.testing.assert_array_equal(line.get_xdata(), [p[0]["gain"] for p in points])
        np.testing.assert_allclose(line.get_ydata(), [distance(r["mean"], r["var"]) for r in rows],
                                   rtol=1e-12)
        theory = by_gid(ax, f"theory:{series}")
        np.testing.assert_allclose(theory.get_ydata(),
                                   [distance(r["theory_mean"], r["theory_var"]) for r in rows],
                                   rtol=1e-12, atol=1e-15)
    assert ax.get_xscale() == "log"  # 0.1 .. 1.2 spans more than a decade


def visible_labels(axis) -> list[str]:
    """The labels of the ticks inside an axis' view, once the figure is drawn."""
    lo, hi = sorted(axis.get_view_interval())
    return [t.label1.get_text() for t in axis.get_major_ticks()
            if lo * (1 - 1e-12) <= t.get_loc() <= hi * (1 + 1e-12) and t.label1.get_text()]


def test_a_log_axis_of_a_few_swept_values_is_labelled_with_those_values(one_key):
    """gain 0.1, 0.3, 1.2 on a log axis: ticks at exactly those, written 0.1, 0.3, 1.2 (not 10^-1);
    the y axis in plain numbers too, at most 8 of them."""
    fig = only_figure(plot.sweep_figures(sw.read(one_key)))
    fig.draw_without_rendering()
    ax = fig.axes[0]
    assert visible_labels(ax.xaxis) == ["0.1", "0.3", "1.2"]
    ys = visible_labels(ax.yaxis)
    assert 2 <= len(ys) <= 8 and all(y == f"{float(y):g}" for y in ys), ys


def synthetic_heatmap(distances: dict) -> sw.SweepTable:
    """A two-key sweep table (gain x width, last layer 3) whose distance is `distances[series]`
    (a 2 x 2 list, rows width) through mean 0 and var 1 + distance."""
    rows = [(g, wd, label, d[r][c]) for label, d in distances.items()
            for r, wd in enumerate((8, 16)) for c, g in enumerate((0.5, 2.0))]
    col = lambda f, dtype=np.float64: np.array([f(*row) for row in rows], dtype=dtype)
    table = {"point": col(lambda g, wd, *_: f"gain={g},width={wd}", object), "gain": col(lambda g, *_: g),
             "width": col(lambda g, wd, *_: wd), "series": col(lambda *r: r[2], object),
             "layer": col(lambda *_: 3, np.int64), "trials": col(lambda *_: 4, np.int64),
             "mean": col(lambda *_: 0.0), "var": col(lambda *r: 1.0 + r[3]),
             "mean_sd": col(lambda *_: 0.1), "var_sd": col(lambda *_: 0.1)}
    return sw.SweepTable(("gain", "width"), table, {"name": "synthetic"}, Path("synthetic"))


def test_heatmap_panels_share_one_colour_bar_and_one_normalization():
    """Two series, distances 0.01..0.1 and 1..10 (3 decades): one colour bar for both panels, one
    log normalization spanning both, its labels plain numbers (0.01 ... 10, no 10^x)."""
    fig = only_figure(plot.sweep_figures(synthetic_heatmap({"A": [[0.01, 0.02], [0.05, 0.1]],
                                                            "B": [[1.0, 2.0], [5.0, 10.0]]})))
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    meshes = [by_gid(ax, f"sweep:{label}") for ax, label in zip(fig.axes, "AB")]
    assert len(bars) == 1 and meshes[0].norm is meshes[1].norm
    assert (meshes[0].norm.vmin, meshes[0].norm.vmax) == pytest.approx((0.01, 10.0), rel=1e-12)
    fig.draw_without_rendering()
    labels = visible_labels(bars[0].yaxis)
    assert labels[0] == "0.01" and labels[-1] == "10" and len(labels) <= 8, labels
    assert [visible_labels(ax.xaxis) for ax in fig.axes[:2]] == [["0.5", "2"]] * 2


def test_a_log_axis_holds_every_error_bar_and_a_bar_reaching_zero_leaves_through_the_foot():
    """var 0.01, 1, 100 over gain (4 decades: log y); the last point's standard error is 1000
    (sd 2000, 4 trials): its bar's top, 1100, is inside the axis; its foot (below 0) does not
    stretch the axis down past the smallest value's own margin."""
    gains, var, sd = (0.5, 1.0, 2.0), (0.01, 1.0, 100.0), (0.001, 0.1, 2000.0)
    col = lambda v, dtype=np.float64: np.array(v, dtype=dtype)
    table = {"point": col([f"gain={g}" for g in gains], object), "gain": col(gains),
             "series": col(["A"] * 3, object), "layer": col([3] * 3, np.int64),
             "trials": col([4] * 3, np.int64), "mean": col([0.0] * 3), "var": col(var),
             "mean_sd": col([0.1] * 3), "var_sd": col(sd)}
    fig = only_figure(plot.sweep_figures(sw.SweepTable(("gain",), table, {"name": "s"}, Path("s")), stat="var"))
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    low, high = ax.get_ylim()
    assert high >= 100.0 + 2000.0 / math.sqrt(4) and 0.001 <= low < 0.01, (low, high)


def test_error_bars_are_standard_errors(one_key):
    """--stat var --layer 2: y is var at layer 2, each bar var_sd / sqrt(trials) either side."""
    fig = only_figure(plot.sweep_figures(sw.read(one_key), stat="var", layer=2))
    ax = fig.axes[0]
    points = sorted(point_rows(one_key), key=lambda p: p[0]["gain"])
    for series in ("SELU", "ReLU"):
        rows = [at_layer(r, series, 2) for _, r in points]
        np.testing.assert_allclose(by_gid(ax, f"sweep:{series}").get_ydata(), [r["var"] for r in rows],
                                   rtol=1e-12)
        expected = [r["var_sd"] / math.sqrt(r["trials"]) for r in rows]
        assert all(e > 0 for e in expected) and all(r["trials"] == 3 for r in rows)
        np.testing.assert_allclose(error_halfwidths(ax, f"sweep:{series}"), expected, rtol=1e-9, atol=1e-14)
        np.testing.assert_allclose(by_gid(ax, f"theory:{series}").get_ydata(),
                                   [r["theory_var"] for r in rows], rtol=1e-12)


def test_distance_error_bars_propagate_mean_and_variance(one_key):
    """The distance's bar: sqrt((mu se_mu)^2 + ((nu - 1) se_nu)^2) / d (first order)."""
    ax = only_figure(plot.sweep_figures(sw.read(one_key))).axes[0]
    points = sorted(point_rows(one_key), key=lambda p: p[0]["gain"])
    rows = [at_layer(r, "SELU", None) for _, r in points]
    expected = []
    for r in rows:
        n = math.sqrt(r["trials"])
        se_m, se_v = r["mean_sd"] / n, r["var_sd"] / n
        expected.append(math.hypot(r["mean"] * se_m, (r["var"] - 1) * se_v) / distance(r["mean"], r["var"]))
    # The bars are drawn from y - se to y + se: halving their length loses ~1e-16 of y.
    np.testing.assert_allclose(error_halfwidths(ax, "sweep:SELU"), expected, rtol=1e-9, atol=1e-14)


# ---- two keys: a heatmap -------------------------------------------------------------------

def test_two_keys_heatmap_cells_are_the_points_and_overflow_is_marked(two_keys, tmp_path):
    """A cell per (gain, width) with the point's distance; the overflowing points (gain 1e8)
    are masked over a hatched background and counted in the title and legend."""
    done = invoke("plot", two_keys, "--out", tmp_path)
    assert done.exit_code == 0, done.output
    assert (tmp_path / "sweep-distance.png").is_file()
    fig = only_figure(plot.sweep_figures(sw.read(two_keys)))
    ax = fig.axes[0]
    mesh = by_gid(ax, "sweep:SELU")
    assert isinstance(mesh, QuadMesh)
    z = np.ma.asarray(mesh.get_array()).reshape(2, 2)  # rows: width 8, 16; columns: gain 1, 1e8
    expected = np.full((2, 2), np.nan)
    for values, rows in point_rows(two_keys):
        r = at_layer(rows, "SELU", None)
        cell = [8, 16].index(values["width"]), [1.0, 1e8].index(values["gain"])
        expected[cell] = distance(r["mean"], r["var"])
    assert np.isfinite(expected[:, 0]).all() and not np.isfinite(expected[:, 1]).any()  # the premise
    np.testing.assert_allclose(z[:, 0].filled(np.nan), expected[:, 0], rtol=1e-12)
    assert z.mask[:, 1].all() and not np.ma.getmaskarray(z)[:, 0].any()
    assert "2 of 4 cells inf/NaN" in ax.get_title(loc="left")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "1e8"]  # readable: no "+" or leading 0 in the exponent
    assert [t.get_text() for t in ax.get_yticklabels()] == ["8", "16"]
    legend = fig.legends[0]
    assert any("inf/NaN" in t.get_text() for t in legend.get_texts())


def test_replotting_a_sweep_gives_identical_bytes(two_keys, tmp_path):
    """Plotted twice (formats in another order): the same bytes in png, svg and pdf."""
    for out, formats in ((tmp_path / "a", ("png", "svg", "pdf")), (tmp_path / "b", ("pdf", "svg", "png"))):
        args = [a for f in formats for a in ("--format", f)]
        assert invoke("plot", two_keys, "--out", out, "--stat", "mean", *args).exit_code == 0
    for path in sorted((tmp_path / "a").iterdir()):
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes(), path.name
    assert len(list((tmp_path / "a").iterdir())) == 3


# ---- more keys: lines per combination ------------------------------------------------------

def test_three_keys_one_line_per_combination_of_the_others(three_keys):
    """Text first key as categories across; one line per (gain, width), each the points' values."""
    fig = only_figure(plot.sweep_figures(sw.read(three_keys), stat="mean"))
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["lecun_normal", "he_normal"]
    points = point_rows(three_keys)
    for gain in (0.5, 1.0):
        for width in (8, 16):
            gid = f"sweep:SELU|gain={gain:g}|width={width}"
            expected = [at_layer(r, "SELU", None)["mean"] for init in ("lecun_normal", "he_normal")
                        for v, r in points if v == {"init": init, "gain": gain, "width": width}]
            line = by_gid(ax, gid)
            np.testing.assert_array_equal(line.get_xdata(), [0, 1])
            np.testing.assert_allclose(line.get_ydata(), expected, rtol=1e-12)
    assert ax.get_xscale() == "linear"
    legend = {t.get_text(): h.get_color() for t, h in zip(ax.get_legend().get_texts(),
                                                         ax.get_legend().legend_handles)}
    for gain in (0.5, 1.0):
        for width in (8, 16):
            drawn = by_gid(ax, f"sweep:SELU|gain={gain:g}|width={width}").get_color()
            assert legend[f"gain = {gain:g}, width = {width}"] == drawn


# ---- what the user asked for ---------------------------------------------------------------

def test_unknown_stat_is_exit_2_with_the_nearest_name(one_key):
    done = invoke("plot", one_key, "--stat", "vaar")
    assert done.exit_code == 2
    assert "unknown statistic 'vaar'; did you mean 'var'?" in done.output
    assert "distance, mean, var" in done.output


def test_layer_out_of_range_is_exit_2_naming_the_range(one_key):
    for layer in ("6", "-1"):
        done = invoke("plot", one_key, "--layer", layer)
        assert done.exit_code == 2
        assert f"layer {layer} is out of range: this sweep has layers 0..5" in done.output


def test_unmeasured_stat_is_exit_2(one_key):
    done = invoke("plot", one_key, "--stat", "grad_ratio")
    assert done.exit_code == 2
    assert "grad_ratio was not measured in this sweep (add 'gradients' to measure:)" in done.output


def test_stat_or_layer_on_a_plain_results_folder_is_exit_2(one_key):
    plain = one_key / "points" / "gain=1.2"
    done = invoke("plot", plain, "--stat", "var", "--out", plain / "x")
    assert done.exit_code == 2
    assert f"--stat applies only to a sweep folder (one with sweep.json); {plain} is not one" in done.output
    done = invoke("plot", plain, "--layer", "1", "--out", plain / "x")
    assert done.exit_code == 2 and "--layer applies only to a sweep folder" in done.output
    assert not (plain / "x").exists()


def test_incomplete_sweep_is_exit_2(two_keys, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(two_keys, copy)
    (copy / "sweep.csv").unlink()
    done = invoke("plot", copy)
    assert done.exit_code == 2
    assert done.output == f"error: {copy / 'sweep.csv'}: missing: the sweep is not complete; run the same command again to finish it\n"
    assert not (copy / "plots").exists()
