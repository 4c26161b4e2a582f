"""Damaged or hand-edited results folders: `check` and `plot` answer with one line and the
documented exit status (2: the results folder, 3: the baseline), never a traceback, and never
touch a file outside the folder (fuzzed with hypothesis; the cases tried are printed)."""

from __future__ import annotations

import collections
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from conftest import cli_runner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snn_lab import results
from snn_lab.cli import main

SMALL = ["--set", "width=8", "--set", "batch=8", "--set", "depth=4", "--set", "trials=3",
         "--set", "measure=[gradients, dead, correlation]"]
CSVS = ("layers.csv", "summary.csv", "samples.csv")
TRIED: collections.Counter = collections.Counter()


def invoke(*args):
    return cli_runner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("good")
    done = invoke("run", "--out", root / "r", "-q", *SMALL)
    assert done.exit_code == 0, done.output
    return root / "r"


@pytest.fixture(scope="module", autouse=True)
def report_counts():
    yield
    if TRIED:
        print("\ndamaged folders tried: " + ", ".join(f"{k} {v}" for k, v in sorted(TRIED.items())))


# ---- damage: each returns (the file it names, strict: whether it must be refused) ------------

def _lines(path: Path) -> list[str]:
    return path.read_text("utf-8").splitlines(keepends=True)


def truncate(folder, data, files=results.FILES):
    name = data.draw(st.sampled_from(files), "file")
    text = (folder / name).read_bytes()
    # Keep at most all but the last two bytes: meta.json without its closing "}\n" is not JSON.
    (folder / name).write_bytes(text[:data.draw(st.integers(0, len(text) - 2), "cut")])
    return name, True


def drop_column(folder, data):
    name = data.draw(st.sampled_from(CSVS), "file")
    lines = [line.rstrip("\n").split(",") for line in _lines(folder / name)]
    j = data.draw(st.integers(0, len(lines[0]) - 1), "column")
    strict = lines[0][j] not in results.OPTIONAL_COLUMNS
    header_only = data.draw(st.booleans(), "header only")
    rows = [r[:j] + r[j + 1:] if (i == 0 or not header_only) else r for i, r in enumerate(lines)]
    (folder / name).write_text("".join(",".join(r) + "\n" for r in rows), "utf-8")
    return name, strict or header_only


def extra_column(folder, data):
    name = data.draw(st.sampled_from(CSVS), "file")
    head = data.draw(st.sampled_from(["extra", "mean", "series", ""]), "name")
    lines = [line.rstrip("\n") for line in _lines(folder / name)]
    rows = [lines[0] + "," + head] + [line + ",1.0" for line in lines[1:]]
    (folder / name).write_text("\n".join(rows) + "\n", "utf-8")
    return name, True


CELLS = st.one_of(st.sampled_from(["abc", "", " ", "1,5", "0x10", "--1", "[1]", "SELU", "\x00", "é"]),
                  st.text(max_size=6))
NUMBERS = st.sampled_from(["nan", "inf", "-inf", "1e999", "-0", "1e-320", "7", "3.5"])


def edit_cell(folder, data):
    """A cell replaced by text (refused) or by another number (may pass, drift or be unjudged)."""
    name = data.draw(st.sampled_from(CSVS), "file")
    lines = [line.rstrip("\n").split(",") for line in _lines(folder / name)]
    i = data.draw(st.integers(1, len(lines) - 1), "row")
    j = data.draw(st.integers(0, len(lines[0]) - 1), "column")
    numeric = data.draw(st.booleans(), "numeric")
    value = data.draw(NUMBERS if numeric else CELLS, "value")
    value = value.replace("\n", " ").replace("\r", " ").replace('"', "'")
    if "," in value:
        value = f'"{value}"'
    old = lines[i][j]
    lines[i][j] = value
    (folder / name).write_text("".join(",".join(r) + "\n" for r in lines), "utf-8")
    strict = not numeric and value not in (old, " ") and not _number(value)
    if lines[0][j] in ("series", "activation", "init"):
        strict = value != old
    return name, strict


def _number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def edit_rows(folder, data):
    """A row deleted, duplicated, or two rows swapped (samples.csv's order carries no meaning)."""
    name = data.draw(st.sampled_from(CSVS), "file")
    lines = _lines(folder / name)
    i = data.draw(st.integers(1, len(lines) - 1), "row")
    how = data.draw(st.sampled_from(["delete", "duplicate", "swap"]), "how")
    if how == "delete":
        del lines[i]
    elif how == "duplicate":
        lines.insert(i, lines[i])
    else:
        k = data.draw(st.integers(1, len(lines) - 1), "other row")
        lines[i], lines[k] = lines[k], lines[i]
    (folder / name).write_text("".join(lines), "utf-8")
    strict = how != "swap" or (name != "samples.csv" and lines[i] != lines[k])
    return name, strict


WRONG = st.sampled_from([None, "text", 1, 1.5, True, [], {}, [1], [{}], {"a": 1}])
TYPED = {"complete": bool, "results_version": int, "overflow": list, "rows": dict, "sha256": dict,
         "backend": (str, type(None)), "finished_utc": (str, type(None))}


def edit_meta(folder, data):
    meta = json.loads((folder / "meta.json").read_text("utf-8"))
    how = data.draw(st.sampled_from(["type", "delete", "whole"]), "how")
    if how == "whole":
        meta = data.draw(WRONG, "meta")
        strict = True
    else:
        key = data.draw(st.sampled_from(sorted(meta)), "key")
        if how == "delete":
            del meta[key]
            strict = key in ("complete", "results_version")
        else:
            meta[key] = v = data.draw(WRONG, "value")
            # The documented types (README, The results folder); {} for rows or sha256 reads as a
            # folder written before they existed.
            strict = key in TYPED and (not isinstance(v, TYPED[key]) or isinstance(v, bool) != (key == "complete"))
            strict |= (key == "complete" and v is not True) or (key == "results_version" and v != 1)
            strict |= key == "overflow" and v not in ([], [{}]) and isinstance(v, list)
            strict |= key == "overflow" and v == [{}] or key == "sha256" and v == {"a": 1}
    (folder / "meta.json").write_text(json.dumps(meta), "utf-8")
    return "meta.json", strict


def edit_config(folder, data):
    """config.yaml edited: a key dropped, or a value replaced (meta.json's sha256 refuses both)."""
    lines = _lines(folder / "config.yaml")
    before = "".join(lines)
    i = data.draw(st.integers(0, len(lines) - 1), "line")
    if data.draw(st.booleans(), "delete"):
        del lines[i]
    else:
        key = lines[i].split(":")[0]
        lines[i] = f"{key}: {data.draw(st.sampled_from(['x', '-1', '[]', '{}', '1e999', 'null']), 'value')}\n"
    (folder / "config.yaml").write_text("".join(lines), "utf-8")
    return "config.yaml", "".join(lines) != before


def missing(folder, data, files=results.FILES):
    name = data.draw(st.sampled_from(files), "file")
    os.remove(folder / name)
    if data.draw(st.booleans(), "folder in its place"):
        (folder / name).mkdir()
    return name, True


def link_outside(folder, data, files) -> str:
    """One of `files` replaced by a link to its copy outside the folder; its name."""
    name = data.draw(st.sampled_from(files), "file")
    outside = folder.parent / "outside"
    shutil.copy(folder / name, outside / name)
    os.remove(folder / name)
    os.symlink(outside / name, folder / name)
    return name


def symlink(folder, data):
    """A file made a link to a copy outside (refused), or plots/ or a figure planted as a link."""
    outside = folder.parent / "outside"
    how = data.draw(st.sampled_from(["file", "plots", "figure"]), "how")
    if how == "file":
        return link_outside(folder, data, results.FILES), True
    if how == "plots":
        os.symlink(outside, folder / "plots", target_is_directory=True)
        return "plots", "plot"  # only plot writes there
    (folder / "plots").mkdir()
    os.symlink(outside / "precious.txt", folder / "plots" / "map.png")
    return "map.png", False


DAMAGE = {f.__name__: f for f in (truncate, drop_column, extra_column, edit_cell, edit_rows, edit_meta,
                                   edit_config, missing, symlink)}
COMMANDS = ("check-theory", "check-statistical", "check-as-baseline", "plot")


def _state(root: Path, skip: Path) -> dict:
    """Every file and link under root except inside `skip`: path -> content digest or link target."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if here == skip or skip in here.parents:
            continue
        for name in filenames + dirnames:
            p = here / name
            if p == skip:
                continue
            if p.is_symlink():
                out[p] = "-> " + os.readlink(p)
            elif p.is_file():
                out[p] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _one(good: Path, data, damage: str, command: str) -> None:
    root = Path(tempfile.mkdtemp(prefix="damaged-"))
    try:
        (root / "outside").mkdir()
        (root / "outside" / "precious.txt").write_text("keep")
        folder = root / "r"
        shutil.copytree(good, folder, ignore=shutil.ignore_patterns("plots"))
        name, strict = DAMAGE[damage](folder, data)
        strict = strict is True or (strict == "plot" and command == "plot")
        TRIED[f"{damage}/{command}"] += 1
        before = _state(root, folder)
        if command == "check-theory":
            args, status = ("check", folder, "--mode", "theory"), 2
        elif command == "check-statistical":
            args, status = ("check", folder, "--baseline", good), 2
        elif command == "check-as-baseline":
            args, status = ("check", good, "--baseline", folder), 3
        else:
            args, status = ("plot", folder), 2
        done = invoke(*args)  # catch_exceptions=False: a traceback fails the test here
        assert done.exception is None or isinstance(done.exception, SystemExit), done.output
        assert "Traceback" not in done.output
        if strict:
            assert done.exit_code == status, (damage, name, done.output)
            error = done.stderr.strip()
            assert error.startswith("error: ") and name in error, (damage, name, error)
            assert error.count("\n") == 0 or damage == "edit_config", error
        else:
            allowed = {0, 1, 4, status} if command.startswith("check") else {0, status}
            assert done.exit_code in allowed, (damage, name, done.output)
        assert _state(root, folder) == before, "a file outside the results folder changed"
        assert (root / "outside" / "precious.txt").read_text() == "keep"
    finally:
        shutil.rmtree(root, ignore_errors=True)


FUZZ = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))


@FUZZ
@given(data=st.data(), damage=st.sampled_from(sorted(DAMAGE)),
       command=st.sampled_from(COMMANDS[:3]))
def test_check_on_a_damaged_folder_exits_2_or_3_with_one_line(good, data, damage, command):
    """check on a damaged folder (as results: exit 2, as baseline: exit 3), one line naming the file."""
    _one(good, data, damage, command)


@pytest.mark.parametrize("damage", sorted(DAMAGE))
@settings(FUZZ, max_examples=2)  # an undamaged-enough folder draws five figures (~2 s)
@given(data=st.data())
def test_plot_on_a_damaged_folder_exits_2_with_one_line_and_writes_only_inside(good, data, damage):
    """plot on a damaged folder: exit 2 naming the file (or figures drawn), never through a link."""
    _one(good, data, damage, "plot")
