"""check with zero, tiny, huge or infinite spreads across trials: a defined answer, and
'cannot judge' (exit 4) rather than the drift status where no standard error exists."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import pytest
from conftest import cli_runner

from snn_lab import compare
from snn_lab.cli import main


def invoke(*args):
    return cli_runner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.parametrize("scale", [1e-160, 1e-100, 1.0, 1e100, 1e150])
def test_welch_df_is_scale_free(scale):
    """Welch's df depends on the spreads' ratio alone: the same at 1e-160 as at 1 (no underflow
    to a division by zero, no overflow), and equal to the textbook formula at scale 1."""
    for (sa, na), (sb, nb) in [((0.3, 8), (0.3, 8)), ((0.2, 5), (0.4, 9)), ((0.0, 8), (0.3, 4))]:
        va, vb = sa * sa, sb * sb
        textbook = (va / na + vb / nb) ** 2 / sum((v / n) ** 2 / (n - 1) for v, n in ((va, na), (vb, nb)) if v)
        se = (sa * scale / math.sqrt(na), sb * scale / math.sqrt(nb))
        assert compare._welch(se[0], na, se[1], nb) == pytest.approx(textbook, rel=1e-12)


def test_relu_lecun_at_depth_300_is_judged_not_a_traceback(tmp_path):
    """The variance halves per layer (2^-300 at the top): the spreads' squares underflow, which
    raised ZeroDivisionError and exited 1. Now a verdict, exit 0 on itself."""
    out = tmp_path / "deep"
    args = ["--set", "width=16", "--set", "depth=300", "--set", "batch=8", "--set", "trials=3",
            "--set", "dtype=float64", "--set", "series=[{activation: relu, init: lecun_normal}]"]
    assert invoke("run", "--out", out, "-q", *args).exit_code == 0
    done = invoke("check", out, "--baseline", out, "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["verdict"] == "passed"
    theory = invoke("check", out, "--mode", "theory", "--json")
    assert theory.exit_code in (0, 1) and json.loads(theory.stdout)["verdict"] in ("passed", "drift")


def _with_sd(src: Path, dst: Path, value: str, row: int = 3, stat: str = "var") -> Path:
    shutil.copytree(src, dst)
    with open(dst / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    rows[row][f"{stat}_sd"] = value
    with open(dst / "summary.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    return dst


@pytest.mark.parametrize("sd", ["inf", "nan"])
def test_an_infinite_or_undefined_spread_cannot_be_judged(tmp_path, sd):
    """No standard error: neither within tolerance nor drift; exit 4 with a line that says so."""
    good = tmp_path / "good"
    assert invoke("run", "--out", good, "-q", "--set", "width=8", "--set", "depth=4",
                  "--set", "batch=8", "--set", "trials=3").exit_code == 0
    wide = _with_sd(good, tmp_path / "wide", sd)
    done = invoke("check", wide, "--baseline", good)
    assert done.exit_code == 4, done.output
    assert "cannot judge 1 value (e.g. 'SELU' layer 3 var)" in done.stdout
    assert "cannot judge: 1 value has no finite standard error, and none drifted" in done.stdout
    report = json.loads(invoke("check", wide, "--baseline", good, "--json").stdout)
    assert report["verdict"] == "cannot judge" and report["unjudged"] == 1 and not report["passed"]
    assert invoke("check", wide, "--mode", "theory").exit_code in (1, 4)
    # Drift elsewhere wins: against another seed, with a hair-trigger threshold, the status is 1.
    other = tmp_path / "other"
    assert invoke("run", "--out", other, "-q", "--set", "width=8", "--set", "depth=4", "--set", "batch=8",
                  "--set", "trials=3", "--set", "seed=1").exit_code == 0
    assert invoke("check", wide, "--baseline", other, "--sigmas", "1e-9").exit_code == 1
