"""Robustness: fuzzed configs, interrupted runs, concurrent runs, paths and resource guards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import FUZZ_COUNT, terminal_signals
from snn_lab import config, results
from snn_lab.cli import main
from snn_lab.config import SERIES_KEYS, TOP_KEYS, ConfigError

# ---- fuzz: every config either loads or fails with located one-line messages -------------

NAMES = st.sampled_from(["selu", "relu", "tanh", "gelu", "sleu", "", "linear", "elu", "leaky_relu",
                         "silu", "he_normal", "lecun_truncated", "!!python/object", "\u00e9\u00e8", "0"])
SCALARS = (st.none() | st.booleans() | st.integers(min_value=-10**400, max_value=10**400)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12) | NAMES)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=6) | NAMES, inner, max_size=3), max_leaves=10)
SERIES = st.dictionaries(st.sampled_from([*SERIES_KEYS, "activaton", "lambda"]), VALUES | NAMES, max_size=6)
TREES = st.dictionaries(st.sampled_from([*TOP_KEYS, "widht", "series"]),
                        VALUES | st.lists(SERIES, max_size=3), max_size=8)
VALID = """name: fuzz
seed: 3
trials: 1
width: 4
depth: 2
batch: 4
input: {mean: 0.0, var: 1.0}
series:
  - {label: A, activation: {name: selu, alpha: 1.5}, init: he_normal, gain: 1.0}
  - {label: B, activation: relu, dropout: 0.1, bias_var: 0.1, normalize_weights: true}
"""
JUNK = ["!!python/object:os.system {}", "&a [*a]", "*x", "{", "[", "]", "}", ":", "- ", "\t", "\x00",
        "\ufeff", "'", '"', "%YAML 1.1", "---", "...", "<<: *a", "? ", "!!binary", "1e999", "-.inf",
        ".nan", "0x1F", "0o17", "1_000", "~", "\u202e", "\U0001F600", "[[[[[[[[[[", "1:30"]


def _mutate(data) -> str:
    text = VALID
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(text)))
        cut = data.draw(st.integers(0, 8))
        insert = data.draw(st.sampled_from(JUNK) | st.text(max_size=6))
        text = text[:pos] + insert + text[pos + cut:]
    return text


def _assert_loads_or_located(text: str, overrides=()) -> None:
    FUZZ_COUNT["configs"] += 1
    try:
        config.load("fuzz.yaml", text=text, overrides=overrides)
    except ConfigError as exc:
        assert exc.problems
        for p in exc.problems:
            line = str(p)
            assert "\n" not in line, line
            assert line.startswith(("fuzz.yaml", "--set")), line


FUZZ = settings(max_examples=500, deadline=2000, suppress_health_check=[HealthCheck.too_slow],
                derandomize=True, database=None)


@FUZZ
@given(TREES)
def test_fuzzed_trees_load_or_fail_with_located_messages(tree):
    _assert_loads_or_located(yaml.safe_dump(tree, allow_unicode=True))


@FUZZ
@given(st.data())
def test_mutated_yaml_loads_or_fails_with_located_messages(data):
    _assert_loads_or_located(_mutate(data))


@FUZZ
@given(st.binary(max_size=200))
def test_binary_garbage_fails_with_a_message(blob):
    _assert_loads_or_located(blob.decode("utf-8", errors="replace"))


@settings(max_examples=200, deadline=5000, suppress_health_check=[HealthCheck.too_slow],
          derandomize=True, database=None)
@given(data=st.data())
def test_fuzzed_cli_runs_exit_0_or_2_never_a_traceback(data, tmp_path_factory):
    text = _mutate(data) if data.draw(st.booleans()) else yaml.safe_dump(data.draw(TREES))
    out = tmp_path_factory.mktemp("fuzz") / "r"
    sets = ["--set", "width=4", "--set", "depth=2", "--set", "batch=4", "--set", "trials=1"]
    FUZZ_COUNT["configs"] += 1
    result = CliRunner().invoke(main, ["run", "-", "--out", str(out), "-q", *sets], input=text)
    assert result.exit_code in (0, 2), (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        assert result.output.startswith("error: "), result.output
    else:
        results.read(out)


def test_regression_huge_integer_is_not_a_crash():
    """Found while writing the fuzz strategies: math.isfinite(10**400) raises OverflowError."""
    with pytest.raises(ConfigError, match="series.0.gain: expected a finite number > 0"):
        config.load("x.yaml", text="series: [{activation: selu, gain: " + "9" * 400 + "}]")


def test_regression_deep_nesting_is_not_a_crash():
    with pytest.raises(ConfigError, match="nesting too deep|not valid YAML"):
        config.load("x.yaml", text="[" * 5000 + "]" * 5000)


# ---- paths ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../../x", "/etc/x", "a/b", ".hidden", "a\\b", "x" * 101, ""])
def test_name_cannot_leave_the_results_folder(name):
    with pytest.raises(ConfigError, match="name: expected a folder name"):
        config.load("x.yaml", text=yaml.safe_dump({"name": name, "series": [{"activation": "selu"}]}))


def test_force_replaces_a_symlink_without_touching_its_target(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep")
    link = tmp_path / "results" / "r"
    link.parent.mkdir()
    link.symlink_to(outside, target_is_directory=True)
    run = CliRunner().invoke(main, ["run", "--out", str(link), "--force", "-q", "--set", "width=4",
                                    "--set", "depth=2", "--set", "batch=4", "--set", "trials=1"])
    assert run.exit_code == 0, run.output
    assert (outside / "precious.txt").read_text() == "keep" and len(list(outside.iterdir())) == 1
    assert not link.is_symlink() and results.read(link).config["trials"] == 1


# ---- resource guard ---------------------------------------------------------------------

@pytest.mark.parametrize("sets", [["width=1000000000"], ["batch=1000000000", "width=100000"],
                                  ["trials=10000", "depth=100000"]])
def test_resource_guard_refuses_within_a_second(sets):
    start = time.perf_counter()
    run = CliRunner().invoke(main, ["run", *[a for s in sets for a in ("--set", s)]])
    elapsed = time.perf_counter() - start
    assert run.exit_code == 2, run.output
    assert "GiB" in run.output and ("lower 'width' or 'batch'" in run.output
                                    or "lower 'trials' or 'depth'" in run.output)
    assert elapsed < 1.0, f"guard took {elapsed:.2f} s"


# ---- interruption and concurrency (real processes) ---------------------------------------

SLOW = ["--set", "width=256", "--set", "batch=256", "--set", "depth=400", "--set", "trials=2"]


def _spawn(out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "snn_lab", "run", "--out", str(out), "-q", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=terminal_signals)


def _complete_or_absent(out: Path) -> bool:
    """A folder named like the target is either absent or a complete, readable run."""
    if not out.exists():
        return False
    results.read(out)  # raises if incomplete
    return True


# SIGKILL at any moment; Ctrl-C and SIGTERM at random moments are test_signals.py's.
KILLS = [(signal.SIGKILL, delay) for delay in (0.3, 1.0, 2.0)]


@pytest.mark.parametrize("sig, delay", KILLS)
def test_a_killed_run_never_leaves_a_folder_that_looks_complete(tmp_path, sig, delay):
    out = tmp_path / "r"
    proc = _spawn(out, *SLOW)
    time.sleep(delay)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    finished = _complete_or_absent(out)
    if proc.returncode == 0:
        assert finished  # it completed before the signal arrived
    else:
        assert not finished
        if sig != signal.SIGKILL:
            assert proc.returncode == 130, stderr
            assert stderr.strip() == "interrupted: nothing was written"
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".r.tmp-")]
    assert sig == signal.SIGKILL or not leftovers, leftovers


def test_two_runs_with_the_same_name_never_mix(tmp_path):
    out = tmp_path / "same"
    small = ["--set", "width=64", "--set", "batch=64", "--set", "depth=50", "--set", "trials=2"]
    a, b = _spawn(out, *small, "--set", "seed=1"), _spawn(out, *small, "--set", "seed=2")
    codes = sorted([a.wait(timeout=120), b.wait(timeout=120)])
    assert codes == [0, 2], (codes, a.stderr.read(), b.stderr.read())
    res = results.read(out)
    argv_seed = [x for x in res.meta["argv"] if x.startswith("seed=")][0]
    assert argv_seed == f"seed={res.config['seed']}"


def test_two_forced_runs_leave_one_consistent_folder(tmp_path):
    out = tmp_path / "same"
    small = ["--set", "width=64", "--set", "batch=64", "--set", "depth=50", "--set", "trials=2", "--force"]
    procs = [_spawn(out, *small, "--set", f"seed={k}") for k in (1, 2, 3)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    res = results.read(out)
    argv_seed = [x for x in res.meta["argv"] if x.startswith("seed=")][0]
    assert argv_seed == f"seed={res.config['seed']}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["same"]


def test_an_interrupt_while_writing_leaves_no_folder_and_no_temporary(tmp_path, monkeypatch):
    """Ctrl-C between two files of the results: nothing named like the target, no leftovers."""
    real = results._csv
    calls = []

    def interrupted_csv(table, columns):
        calls.append(columns)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(table, columns)

    monkeypatch.setattr(results, "_csv", interrupted_csv)
    run = CliRunner().invoke(main, ["run", "--out", str(tmp_path / "r"), "-q", "--set", "width=4",
                                    "--set", "depth=2", "--set", "batch=4", "--set", "trials=1"])
    assert run.exit_code == 130 and run.output.strip() == "interrupted: nothing was written"
    assert list(tmp_path.iterdir()) == []


def test_regression_huge_parameters_overflow_to_inf_not_to_a_crash(tmp_path):
    """Found while writing the fuzz strategies: Python's float ** raises OverflowError (1e300 ** 2)."""
    text = ("trials: 2\nwidth: 8\ndepth: 3\nbatch: 8\n"
            "series: [{activation: {name: elu, alpha: 1.0e300}, dropout: 0.1, gain: 1.0e200}]\n")
    run = CliRunner().invoke(main, ["run", "-", "--out", str(tmp_path / "r"), "-q"], input=text)
    assert run.exit_code == 0, run.output
    assert "left the float range" in run.output
