"""Damaged or hand-edited sweep folders: `plot` answers with one line and exit 2, never a
traceback, and never touches a file outside the folder (fuzzed with hypothesis; counts printed)."""

from __future__ import annotations

import collections
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from conftest import cli_runner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
import test_damaged_folders as damaged
from test_damaged_folders import WRONG, _state

from snn_lab import results
from snn_lab import sweep as sw
from snn_lab.cli import main

BASE = """name: s
seed: 5
width: 4
batch: 4
depth: 3
trials: 2
measure: [gradients]
series:
  - {label: A, activation: selu}
  - {label: B, activation: tanh}
"""
TRIED: collections.Counter = collections.Counter()
FILES = (sw.MANIFEST, sw.TABLE)


def invoke(*args, input=None):
    return cli_runner().invoke(main, [str(a) for a in args], input=input, catch_exceptions=False)


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("good") / "s"
    done = invoke("run", "-", "--out", out, "-q", "--sweep", "gain=0.9,1.1", "--sweep", "bias_var=0,0.1",
                  input=BASE)
    assert done.exit_code == 0, done.output
    return out


@pytest.fixture(scope="module", autouse=True)
def report_counts():
    yield
    if TRIED:
        print("\ndamaged sweep folders tried: " + ", ".join(f"{k} {v}" for k, v in sorted(TRIED.items())))


def _rows(path: Path) -> list[list[str]]:
    return [line.split(",") for line in path.read_text("utf-8").splitlines()]


def _write(path: Path, rows) -> None:
    path.write_text("".join(",".join(r) + "\n" for r in rows), "utf-8")


# ---- damage: each returns (the file it names, strict: whether it must be refused) ------------

def truncate(folder, data):
    return damaged.truncate(folder, data, FILES)


def drop_column(folder, data):
    rows = _rows(folder / sw.TABLE)
    j = data.draw(st.integers(0, len(rows[0]) - 1), "column")
    header_only = data.draw(st.booleans(), "header only")
    _write(folder / sw.TABLE, [r[:j] + r[j + 1:] if i == 0 or not header_only else r for i, r in enumerate(rows)])
    return sw.TABLE, header_only or rows[0][j] not in results.OPTIONAL_COLUMNS  # as in a results folder


def extra_column(folder, data):
    rows = _rows(folder / sw.TABLE)
    head = data.draw(st.sampled_from(["extra", "mean", "point", ""]), "name")
    _write(folder / sw.TABLE, [rows[0] + [head]] + [r + ["1.0"] for r in rows[1:]])
    return sw.TABLE, True


def edit_cell(folder, data):
    rows = _rows(folder / sw.TABLE)
    i = data.draw(st.integers(1, len(rows) - 1), "row")
    j = data.draw(st.integers(0, len(rows[0]) - 1), "column")
    value = data.draw(st.sampled_from(["", "x", "nan", "inf", "-1", "1e999", "0", "7", "2.5", '"a,b"']), "value")
    before = rows[i][j]
    rows[i][j] = value
    _write(folder / sw.TABLE, rows)
    # Text where a number belongs, or a short/long row, must be refused; another number may pass.
    return sw.TABLE, "maybe" if value != before else False


def edit_rows(folder, data):
    rows = _rows(folder / sw.TABLE)
    how = data.draw(st.sampled_from(["delete", "duplicate", "ragged", "header only", "empty"]), "how")
    i = data.draw(st.integers(1, len(rows) - 1), "row")
    if how == "delete":
        del rows[i]
    elif how == "duplicate":
        rows.insert(i, rows[i])
    elif how == "ragged":
        rows[i] = rows[i][:-1]
    elif how == "header only":
        rows = rows[:1]
    else:
        rows = []
    _write(folder / sw.TABLE, rows)
    return sw.TABLE, True


def edit_manifest(folder, data):
    meta = json.loads((folder / sw.MANIFEST).read_text("utf-8"))
    how = data.draw(st.sampled_from(["type", "delete", "whole"]), "how")
    if how == "whole":
        meta = data.draw(WRONG, "manifest")
        strict = True
    else:
        key = data.draw(st.sampled_from(sorted(meta)), "key")
        if how == "delete":
            del meta[key]
            strict = key in ("complete", "keys", "axes", "sweep_version")
        else:
            meta[key] = data.draw(WRONG, "value")
            strict = key in ("complete", "keys", "axes", "sweep_version", "rows") or "maybe"
    (folder / sw.MANIFEST).write_text(json.dumps(meta), "utf-8")
    return sw.MANIFEST, strict


def missing(folder, data):
    return damaged.missing(folder, data, FILES)


def symlink(folder, data):
    """A file made a link to a copy outside (refused), or plots/ planted as a link."""
    outside = folder.parent / "outside"
    if data.draw(st.booleans(), "plots"):
        os.symlink(outside, folder / "plots", target_is_directory=True)
        return "plots", True
    return damaged.link_outside(folder, data, FILES), True


DAMAGE = {f.__name__: f for f in (truncate, drop_column, extra_column, edit_cell, edit_rows, edit_manifest,
                                   missing, symlink)}
PLOTS = (("plot",), ("plot", "--stat", "var"), ("plot", "--stat", "grad_ratio", "--layer", "1"))


def _one(good: Path, data, damage: str) -> None:
    root = Path(tempfile.mkdtemp(prefix="damaged-sweep-"))
    try:
        (root / "outside").mkdir()
        (root / "outside" / "precious.txt").write_text("keep")
        folder = root / "s"
        shutil.copytree(good, folder, ignore=shutil.ignore_patterns("plots"))
        name, strict = DAMAGE[damage](folder, data)
        command = data.draw(st.sampled_from(PLOTS), "command")
        TRIED[damage] += 1
        before = _state(root, folder)
        done = invoke(command[0], folder, *command[1:])  # catch_exceptions=False: a traceback fails here
        assert done.exception is None or isinstance(done.exception, SystemExit), done.output
        assert "Traceback" not in done.output
        if strict is True:
            assert done.exit_code == 2, (damage, name, done.output)
        else:
            assert done.exit_code in (0, 2), (damage, name, done.output)
        if done.exit_code == 2:
            error = done.stderr.strip()
            assert error.startswith("error: ") and error.count("\n") == 0, (damage, error)
            assert name in error or not strict, (damage, name, error)
        assert _state(root, folder) == before, "a file outside the sweep folder changed"
        assert (root / "outside" / "precious.txt").read_text() == "keep"
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("damage", sorted(DAMAGE))
@settings(max_examples=15, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_plot_on_a_damaged_sweep_folder_exits_2_with_one_line_and_writes_only_inside(good, data, damage):
    """plot on a damaged sweep folder: exit 2 naming the file (or figures drawn), never through a link."""
    _one(good, data, damage)
