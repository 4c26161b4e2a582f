"""snn_lab.api: a config (path, example name, dict) in, pandas-ready columns out; a folder read back."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from snn_lab import api, config

SMALL = {"width": 128, "depth": 8, "batch": 64, "trials": 8}
CLOSE_TO_FIXED_POINT_SE = 5.0  # |sim - theory| / se; the trials' own spread gives the se


def test_a_dict_runs_and_selu_sits_at_its_fixed_point_within_its_standard_error():
    t = api.run({**SMALL, "series": [{"activation": "selu"}]})
    s = t.summary
    assert len(s["layer"]) == SMALL["depth"] + 1  # layer 0 (the input) to depth
    top = s["layer"] == SMALL["depth"]
    # SELU's fixed point (0, 1) is Klambauer et al.'s closed form; the se is the trials' spread.
    for stat, truth in (("mean", 0.0), ("var", 1.0)):
        se = s[f"{stat}_sd"][top][0] / math.sqrt(SMALL["trials"])
        assert abs(s[stat][top][0] - truth) < CLOSE_TO_FIXED_POINT_SE * se, stat


def test_every_table_is_columns_of_equal_length_that_pandas_takes_row_for_row():
    pd = pytest.importorskip("pandas")
    t = api.run("relu_he", {"depth": 4, "width": 32, "batch": 16, "trials": 2})
    for name in t.names:
        table = t.table(name)
        lengths = {len(v) for v in table.values()}
        assert len(lengths) == 1, name
        df = t.to_pandas(name)
        assert list(df.columns) == list(table) and len(df) == lengths.pop()
        rows = t.records(name)
        assert len(rows) == len(df) and list(rows[0]) == list(table)
        for c in table:
            assert [r[c] for r in rows] == table[c].tolist() or np.array_equal(
                np.array([r[c] for r in rows], float), table[c].astype(float), equal_nan=True), (name, c)
    rows = len(t.config["series"]) * 2 * 5  # series x trials x (depth + 1)
    assert pd.DataFrame(t.layers).shape == (rows, len(t.layers))


def test_a_written_folder_reads_back_to_the_same_numbers(tmp_path):
    ran = api.run(None, ("depth=3", "width=16", "batch=8", "trials=2"), out=tmp_path / "r")
    back = api.read(tmp_path / "r")
    assert back.path == tmp_path / "r" and ran.path == tmp_path / "r"
    for name in ("layers", "summary", "samples"):
        a, b = ran.table(name), back.table(name)
        assert list(a) == list(b)
        for c in a:
            assert np.array_equal(a[c], b[c], equal_nan=a[c].dtype.kind == "f"), (name, c)


def test_an_existing_folder_is_not_replaced_without_force(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "mine.txt").write_text("keep")
    with pytest.raises(Exception, match="r"):
        api.run({**SMALL, "series": [{"activation": "selu"}]}, out=tmp_path / "r")
    assert (tmp_path / "r" / "mine.txt").read_text() == "keep"


def test_a_bad_key_names_the_dict_and_the_nearest_choice():
    with pytest.raises(config.ConfigError, match=r"<dict>: series.0.activation: .* did you mean 'selu'"):
        api.run({"series": [{"activation": "sleu"}]})


def test_a_sweep_config_runs_its_points_and_each_point_equals_its_run_alone(tmp_path):
    base = {**SMALL, "trials": 2, "width": 16, "series": [{"activation": "selu"}]}
    s = api.run({**base, "sweep": {"depth": [2, 3]}}, out=tmp_path / "s")
    assert isinstance(s, api.SweepTables) and s.keys == ("depth",)
    assert sorted(set(s.sweep["depth"].tolist())) == [2.0, 3.0]
    for name in sorted(set(s.sweep["point"])):
        point = s.point(name)
        alone = api.run({**base, "depth": point.config["series"][0]["depth"], "seed": point.config["seed"]})
        assert np.array_equal(point.summary["var"], alone.summary["var"])
    stamps = {m: m.stat().st_mtime_ns for m in (tmp_path / "s" / "points").glob("*/meta.json")}
    again = api.run({**base, "sweep": {"depth": [2, 3]}}, out=tmp_path / "s")  # complete: a resume runs nothing
    assert np.array_equal(again.sweep["var"], s.sweep["var"])
    assert len(stamps) == 2 and all(m.stat().st_mtime_ns == t for m, t in stamps.items())


def test_an_absent_table_lists_those_that_exist():
    t = api.run({**SMALL, "series": [{"activation": "selu"}]})
    with pytest.raises(api.ApiError, match="no table 'training'.*layers, summary, samples"):
        t.table("training")


def test_to_pandas_without_pandas_says_what_to_install(monkeypatch):
    t = api.run({**SMALL, "series": [{"activation": "selu"}]})
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="pip install pandas"):
        t.to_pandas()
    assert len(t.records()) == SMALL["depth"] + 1  # the columns need nothing more


def test_a_sweep_folder_reads_as_its_table_and_its_points(tmp_path):
    from click.testing import CliRunner

    from snn_lab.cli import main

    out = tmp_path / "s"
    done = CliRunner().invoke(main, ["run", "--sweep", "depth=2,3", "--set", "width=8", "--set", "batch=8",
                                     "--set", "trials=2", "--set", "series.0.activation=selu",
                                     "--out", str(out), "-q"])
    assert done.exit_code == 0, done.output
    s = api.read(out)
    assert isinstance(s, api.SweepTables) and s.keys == ("depth",)
    names = sorted(set(s.sweep["point"]))
    assert len(names) == 2
    point = s.point(names[0])
    assert point.config["series"][0]["depth"] in (2, 3)
