"""`check --mode theory --finite-width`: as sharp at width 64 as the infinite-width check is at
width 4096, and still able to fail (a perturbed network, a wrong width)."""

from __future__ import annotations

import dataclasses

import pytest
from click.testing import CliRunner

from snn_lab import compare, config, executors, results
from snn_lab.cli import main

CONFIG = """name: ci-64
seed: 11
trials: 300
width: {width}
depth: 5
batch: 64
measure: []
series:
  - {{label: SELU, activation: selu, init: lecun_normal, gain: {gain}}}
  - {{label: silu-He, activation: silu, init: he_normal, gain: {gain}}}
"""


def _run(width: int = 64, gain: float = 1.0) -> results.Results:
    return executors.simulate(config.load(text=CONFIG.format(width=width, gain=gain)))


@pytest.fixture(scope="module")
def width64() -> results.Results:
    return _run()


def _measured_from(base: results.Results, other: results.Results) -> compare.Snapshot:
    """base's theory columns with other's measured ones: a network that is not the one described."""
    snap = compare.snapshot(base, "perturbed")
    theirs = compare.snapshot(other, "other")
    for label, cols in snap.series.items():
        for c in ("mean", "var", "preact_mean", "preact_var"):
            cols[c], cols[f"{c}_sd"] = theirs.series[label][c], theirs.series[label][f"{c}_sd"]
    return snap


def test_width_64_passes_against_the_band_where_the_infinite_width_check_drifts(width64):
    """300 trials at width 64: the 1/width bias is many standard errors (infinite-width check
    drifts); judged against the corrected prediction and the predicted spread, every value passes."""
    snap = compare.snapshot(width64, "w64")
    infinite = compare.compare_theory(snap)
    assert infinite.verdict == "drift" and len(infinite.drifted) >= 3
    assert compare.compare_theory(snap, rtol=0.03).verdict == "drift"  # a 3% floor is not enough
    band = compare.compare_theory(snap, finite_width=True)
    assert band.passed, [(v.series, v.layer, v.stat, v.z) for v in band.drifted]
    assert sum(v.kind == "spread" for v in band.values) >= 10


def test_a_two_percent_weight_scale_change_fails_the_band(width64):
    """The same network with weights 2% larger: its means leave the band."""
    rep = compare.compare_theory(_measured_from(width64, _run(gain=1.02)), finite_width=True)
    assert rep.verdict == "drift"
    assert any(v.stat in ("var", "preact_var") for v in rep.drifted)


def test_the_wrong_width_fails_on_its_spread(width64):
    """Width 128's statistics against width 64's band: spreads sqrt(2) too narrow are flagged."""
    rep = compare.compare_theory(_measured_from(width64, _run(width=128)), finite_width=True)
    assert any(v.kind == "spread" and v.current < v.baseline for v in rep.drifted)


def test_cli_finite_width_flag_needs_theory_mode_and_columns(width64, tmp_path):
    """--finite-width without --mode theory, or on a folder without fw_* columns: exit 2, told why."""
    out = results.write(width64, tmp_path / "r")
    runner = CliRunner()
    done = runner.invoke(main, ["check", str(out), "--mode", "theory", "--finite-width"])
    assert done.exit_code == 0, done.output
    assert "finite width:" in done.output
    done = runner.invoke(main, ["check", str(out), "--baseline", str(out), "--finite-width"])
    assert done.exit_code == 2 and "--finite-width applies to --mode theory only" in done.output
    bare = dataclasses.replace(width64, summary={k: v for k, v in width64.summary.items()
                                                 if not k.startswith("fw_")})
    with pytest.raises(compare.WrongMode, match="no finite-width columns"):
        compare.compare_theory(compare.snapshot(bare, "old"), finite_width=True)


def _rewrite(path, change) -> None:
    """Rewrite a results CSV through change(header, rows) -> (header, rows)."""
    import csv

    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header, body = change(rows[0], rows[1:])
    with open(path, "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows([header, *body])


def test_a_negative_predicted_spread_is_refused_and_a_folder_without_the_columns_is_read(width64, tmp_path):
    """Readers reject fw_var_sd < 0 (file, line, column); an older folder without fw_* still reads."""
    bad = results.write(width64, tmp_path / "bad")
    col = list(results.SUMMARY_COLUMNS).index("fw_var_sd")

    def negative(header, body):
        body[2][col] = "-0.5"
        return header, body

    _rewrite(bad / "summary.csv", negative)
    with pytest.raises(results.ResultsError, match=r"summary.csv: line 4: column 'fw_var_sd': '-0.5' is negative"):
        results.read(bad)

    def drop(header, body):
        keep = [i for i, c in enumerate(header) if not c.startswith("fw_")]
        return [header[i] for i in keep], [[r[i] for i in keep] for r in body]

    old = results.write(width64, tmp_path / "old")
    for name in ("summary.csv", "layers.csv"):
        _rewrite(old / name, drop)
    read = results.read(old)
    assert "fw_var" not in read.summary and len(read.summary["var"]) == len(width64.summary["var"])
