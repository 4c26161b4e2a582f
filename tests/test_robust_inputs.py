"""Robustness of what a user types: --set beside a sweep, extreme theory, labels, streams, paths."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import FUZZ_COUNT
from snn_lab import config, executors, results
from snn_lab import sweep as sw
from snn_lab.cli import main
from snn_lab.theory import meanfield, safe

SMALL = ["--set", "width=4", "--set", "batch=4", "--set", "trials=2", "-q"]
BASE = """name: base
seed: 7
width: 4
batch: 4
depth: 2
trials: 1
series:
  - {label: A, activation: selu}
  - {label: B, activation: tanh, width: 6}
"""


@pytest.fixture(autouse=True)
def _fresh_theory():
    """safe keeps the last predictions; a monkeypatched map must not meet a kept one."""
    safe._CACHE.clear()
    yield
    safe._CACHE.clear()


def invoke(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


# ---- --set beside a sweep: keys have one meaning --------------------------------------------

SWEPT = ["gain", "width", "depth", "input.var", "series.0.gain", "seed", "activation", "bias_var"]
VALUES = {"gain": "0.9,1.1", "width": "4,8", "depth": "2,3", "input.var": "1,2", "series.0.gain": "0.9,1.1",
          "seed": "1,2", "activation": "selu,elu", "bias_var": "0,0.1"}
SETS = ["depth=3", "width=8", "input.var=3", "input={var: 3}", "series.0.gain=1.2", "series.1.gain=1.2",
        "series.1.width=8", "series.0.activation=elu", "series.1.bias_var=0.2", "trials=2", "seed=5",
        "series.0.input.var=2", "name=other", "dtype=float64"]


def _get(tree: dict, key: str):
    node = tree
    for part in key.split("."):
        node = node[int(part)] if part.isdigit() else node[part]
    return node


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(SWEPT), min_size=1, max_size=2, unique=True),
       st.lists(st.sampled_from(SETS), max_size=2, unique=True))
def test_a_sweep_either_refuses_a_set_or_every_point_is_what_its_name_says(swept, sets):
    """Property: exit 2 naming the conflict, or every point's config holds its swept values and
    its seed is the one derived from the config's seed and the point's values."""
    FUZZ_COUNT["configs"] += 1
    sweeps = tuple(f"{k}={VALUES[k]}" for k in swept)
    try:
        sweep = sw.load("base.yaml", text=BASE, overrides=tuple(sets), sweeps=sweeps)
    except config.ConfigError as exc:
        text = "\n".join(map(str, exc.problems))
        assert "the sweep varies" in text or "derives each point's seed" in text or "set the same value" in text, text
        return
    for p in sweep.points:
        d = p.experiment.to_dict()
        for key, value in p.values:
            if key == "seed":
                assert d["seed"] == value
            elif key in sw.SERIES_ONLY:
                assert all(_name(s[key]) == value for s in d["series"]), (key, value, sets)
            elif key.startswith("series."):
                assert _name(_get(d, key)) == value, (key, value, sets)
            else:  # a shared key: every series has the swept value
                assert all(_get(s, key) == value for s in d["series"]), (key, value, sets)
        if "seed" not in swept:
            assert d["seed"] == sw.point_seed(7, p.values)


def _name(v):
    return v["name"] if isinstance(v, dict) else v


@pytest.mark.parametrize("sweep_arg, set_arg", [("gain=0.9,1.1", "series.0.gain=1.2"),
                                                 ("width=4,8", "series.1.width=8"),
                                                 ("input.var=1,2", "input={var: 3}"),
                                                 ("depth=2,3", "seed=5")])
def test_run_refuses_a_set_of_a_swept_key_with_exit_2_and_writes_nothing(tmp_path, sweep_arg, set_arg):
    run = invoke("run", "-", "--out", tmp_path / "s", "--sweep", sweep_arg, "--set", set_arg, "-q", input=BASE)
    assert run.exit_code == 2, run.output
    assert run.output.startswith(f"error: --set {set_arg}"), run.output
    assert "--sweep" in run.output or "seed:" in run.output  # says what to do instead
    assert not (tmp_path / "s").exists()


def test_a_range_is_counted_before_it_is_built():
    start = time.perf_counter()
    run = invoke("run", "-", "--sweep", "depth=range(1,1000000000001)", input=BASE)
    assert run.exit_code == 2 and "has 1,000,000,000,000 values, more than 10,000" in run.output, run.output
    assert time.perf_counter() - start < 2.0


# ---- the simulation's numbers are always written --------------------------------------------

EXTREMES = st.sampled_from([0.0, 1e-300, 1e-30, 1e-5, 1.0, 30.0, 1e30, 1e200, 1e300])


@st.composite
def hostile_series(draw):
    from snn_lab.activations import ACTIVATIONS

    s = {"activation": draw(st.sampled_from(sorted(ACTIVATIONS))),
         "gain": draw(st.sampled_from([1e-300, 1e-30, 0.5, 1.0, 3.0, 30.0, 1e30, 1e200])),
         "bias_var": draw(st.sampled_from([0.0, 1e-300, 0.1, 1e100])),
         "init": draw(st.sampled_from(["lecun_normal", "he_normal"]))}
    if draw(st.booleans()):
        s["norm"] = draw(st.sampled_from(["batch", "layer"]))
    if draw(st.booleans()):
        s["residual"] = {"alpha": draw(st.sampled_from([1e-300, 0.5, 1e100])),
                         "beta": draw(st.sampled_from(["none", "expected"]))}
    if draw(st.booleans()):
        s["normalize_weights"] = True
    if draw(st.booleans()):
        s["activation"] = {"name": s["activation"], "scale": draw(st.sampled_from(["nf", 1e-300, 1e100]))}
    return {"name": "hostile", "trials": 2, "depth": draw(st.integers(1, 4)),
            "width": draw(st.sampled_from([1, 2, 4])), "batch": draw(st.sampled_from([1, 2, 4])),
            "dtype": draw(st.sampled_from(["float32", "float64"])),
            "input": {"var": draw(EXTREMES), "mean": draw(st.sampled_from([0.0, 1.0, 1e300])),
                      "correlation": draw(st.sampled_from([0.0, 0.5, 1.0]))},
            "measure": ["gradients", "dead", "correlation"], "series": [s]}


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(hostile_series())
def test_extreme_series_exit_0_or_2_and_the_simulation_is_always_written(tmp_path_factory, tree):
    FUZZ_COUNT["configs"] += 1
    out = tmp_path_factory.mktemp("hostile") / "r"
    run = invoke("run", "-", "--out", out, "-q", input=yaml.safe_dump(tree))
    assert run.exit_code in (0, 2), (run.exit_code, run.output, run.exception)
    assert "Traceback" not in run.output
    if run.exit_code == 2:
        assert run.output.startswith("error: "), run.output
        return
    res = results.read(out)
    assert res.summary["layer"].size == tree["depth"] + 1
    notes = res.meta["theory_notes"]
    assert isinstance(notes, dict) and all(isinstance(v, str) and "NaN" in v for v in notes.values())


def test_a_theory_that_raises_leaves_nan_and_a_note_and_the_simulation_written(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("float division by zero")

    monkeypatch.setattr(meanfield, "predict_probes", broken)
    run = invoke("run", "-", "--out", tmp_path / "r", *SMALL, "--set", "depth=3", input=BASE)
    assert run.exit_code == 0, run.output
    res = results.read(tmp_path / "r")
    assert set(res.meta["theory_notes"]) == {"A", "B"}
    assert "ZeroDivisionError" in res.meta["theory_notes"]["A"]
    for label in ("A", "B"):
        rows = res.series_summary(label)
        assert all(math.isnan(v) for v in rows["theory_grad_ratio"])
        assert all(math.isfinite(v) for v in rows["var"]) and all(math.isfinite(v) for v in rows["theory_var"])
    assert "note: A: the gradient and correlation prediction cannot be computed" in run.output


@pytest.mark.parametrize("sets", [["input.var=0"], ["series.0.gain=1e-300"],
                                  ["series.0.activation=gelu", "series.0.gain=1e200"],
                                  ["series.0.activation=silu", "series.0.gain=1e200"],
                                  ["series.0.activation=tanh", "series.0.gain=1e200"]])
def test_issue_16_reproductions_write_their_results(tmp_path, sets):
    """Items 7 and 8: these died in the theory after the simulation, and nothing was written."""
    run = invoke("run", "-", "--out", tmp_path / "r", *SMALL, *[a for s in sets for a in ("--set", s)], input=BASE)
    assert run.exit_code == 0, run.output
    assert results.read(tmp_path / "r").summary["var"].size == 2 * 3


def test_theory_json_is_strict_json_for_an_exploding_series():
    run = invoke("theory", "--activation", "tanh", "--gain", "1e200", "--json")
    assert run.exit_code == 0, run.output

    def refuse(name):
        raise AssertionError(f"{name} is not JSON")

    data = json.loads(run.output, parse_constant=refuse)
    assert data["series"][0]["status"] == "grows"


def test_theory_progress_counts_the_theory_layers_too():
    exp = config.load("<t>", text=BASE)
    seen = []
    executors.simulate(exp, seen.append)
    assert sum(seen) == executors.work(exp) == 2 * 1 * 2 + 2 * 2


# ---- labels, names and control characters ---------------------------------------------------

def test_a_numeric_looking_label_and_name_round_trip_through_config_yaml(tmp_path):
    text = 'name: "1e3"\nwidth: 4\nbatch: 4\ndepth: 2\ntrials: 2\nseries: [{label: "1e3", activation: selu}, {label: "2E-5", activation: relu}]\n'
    assert invoke("run", "-", "--out", tmp_path / "r", "-q", input=text).exit_code == 0
    res = results.read(tmp_path / "r")
    assert res.config["name"] == "1e3" and [s["label"] for s in res.config["series"]] == ["1e3", "2E-5"]
    again = invoke("run", tmp_path / "r" / "config.yaml", "--out", tmp_path / "again", "-q")
    assert again.exit_code == 0, again.output


@pytest.mark.parametrize("text, where", [('name: "abc\\n"\nseries: [{activation: selu}]', "name"),
                                         ('series: [{activation: selu, label: "a\\e[31mred"}]', "series.0.label"),
                                         ('series: [{activation: selu, label: "x\\u202egpj"}]', "series.0.label"),
                                         ('series: [{activation: selu, "lab\\x07el": x}]', "series.0")])
def test_control_characters_are_refused_with_a_located_message_and_never_echoed(text, where):
    run = invoke("run", "-", input=text)
    assert run.exit_code == 2, run.output
    assert run.output.startswith(f"error: <stdin>:1: {where}: "), run.output
    assert "control character" in run.output
    assert not any(c in run.output for c in "\x1b\x07\u202e") and run.output.count("\n") == 1


def test_a_set_key_with_an_escape_sequence_is_shown_escaped():
    run = invoke("run", "--set", "dep\x1b[2Jth=3")
    assert run.exit_code == 2 and "\x1b" not in run.output and "\\x1b" in run.output, run.output


LABELS = ["[red]x[/]", "[bold", "$x_$", "[/]", "a]b[", "\\[x]"]


def test_rich_markup_in_labels_is_printed_literally(tmp_path):
    series = ", ".join(f"{{label: {json.dumps(l)}, activation: selu}}" for l in LABELS)
    text = f"width: 4\nbatch: 4\ndepth: 2\ntrials: 2\nseries: [{series}]\n"
    run = invoke("run", "-", "--out", tmp_path / "r[/]", input=text)
    assert run.exit_code == 0, run.output
    for label in LABELS:
        assert label in run.output, label
    theory = invoke("theory", "-", input=text)
    assert theory.exit_code == 0 and all(f"{l}: mean-field analysis" in theory.output for l in LABELS)
    swept = invoke("run", "-", "--out", tmp_path / "s", "--sweep", "depth=2,3", input=text)
    assert swept.exit_code == 0 and all(l in swept.output for l in LABELS), swept.output


def _shown(text) -> str:
    """What matplotlib draws for a text: mathtext parsed or the characters, '\\$' shown as '$'."""
    s, math = text._preprocess_math(text.get_text())
    return "<math>" if math else s


def test_labels_with_dollars_are_drawn_as_typed(tmp_path):
    """'$x_$' once crashed the figures (mathtext); 'a$b$c' would be drawn as math, unasked."""
    from snn_lab import plot

    labels = ["$x_$", "a$b$c", "cost $5", "\\$"]
    series = ", ".join(f"{{label: {json.dumps(l)}, activation: {a}}}" for l, a in zip(labels, ["selu", "elu"] * 2))
    text = f"width: 4\nbatch: 4\ndepth: 2\ntrials: 2\nseries: [{series}]\n"
    run = invoke("run", "-", "--out", tmp_path / "r", "-q", input=text)
    assert run.exit_code == 0, run.output
    res = results.read(tmp_path / "r")
    for make in (plot.convergence, plot.probes, plot.activations, plot.histograms):
        fig = make(res)
        fig.canvas.draw()  # where mathtext would raise
        drawn = {_shown(t) for t in fig.findobj(lambda a: hasattr(a, "_preprocess_math"))}
        assert all(any(label in d for d in drawn) for label in labels), (make.__name__, drawn)
    swept = invoke("run", "-", "--out", tmp_path / "s", "--sweep", "activation=selu,elu", "-q", input=text)
    assert swept.exit_code == 0, swept.output
    figs = plot.sweep_figures(sw.read(tmp_path / "s"))
    for fig in (figs.values() if isinstance(figs, dict) else figs):
        fig.canvas.draw()
        drawn = " ".join(_shown(t) for t in fig.findobj(lambda a: hasattr(a, "_preprocess_math")))
        assert all(label in drawn for label in labels), drawn


# ---- streams and paths ----------------------------------------------------------------------

def test_float32_input_variance_1e38_is_not_an_overflow(tmp_path):
    run = invoke("run", "--out", tmp_path / "r", "--set", "input.var=1e38", "--set", "width=16",
                 "--set", "batch=16", "--set", "depth=2", "--set", "trials=2", "-q")
    assert run.exit_code == 0 and "left the float range" not in run.output, run.output
    res = results.read(tmp_path / "r")
    assert res.meta["overflow"] == []
    # 256 N(0, 1e38) entries a trial: the sample variance is within 50% of 1e38 (sd about 9%).
    var0 = [v for v, layer in zip(res.layers["var"], res.layers["layer"]) if layer == 0]
    assert all(0.5e38 < v < 1.5e38 for v in var0), var0


def test_an_out_path_too_long_is_exit_2(tmp_path):
    for extra in ([], ["--sweep", "depth=2,3"]):
        run = invoke("run", "-", "--out", tmp_path / ("x" * 300), "-q", *extra, input=BASE)
        assert run.exit_code == 2 and run.output.startswith("error: cannot use --out"), run.output


def test_an_endless_config_is_refused_after_4_mib():
    run = invoke("run", "/dev/zero")
    assert run.exit_code == 2 and "larger than 4 MiB" in run.output, run.output
    run = invoke("run", "-", input="#" * (5 * 2**20))
    assert run.exit_code == 2 and run.output.startswith("error: <stdin>: larger than 4 MiB"), run.output


def test_a_closed_standard_input_is_exit_2():
    proc = subprocess.run([sys.executable, "-m", "snn_lab", "run", "-"], preexec_fn=lambda: os.close(0),
                          capture_output=False, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: cannot read the config from standard input"), proc.stderr


def test_resuming_a_sweep_redoes_a_damaged_point_only(tmp_path):
    out = tmp_path / "s"
    args = ("run", "-", "--out", out, "--sweep", "depth=2,3", "-q")
    assert invoke(*args, input=BASE).exit_code == 0
    kept = (out / "points" / "depth=3" / "layers.csv").stat().st_mtime_ns
    (out / "points" / "depth=2" / "summary.csv").write_text("series,layer\nA,0,1\n")
    again = CliRunner().invoke(main, [str(a) for a in args[:-1]], input=BASE)
    assert again.exit_code == 0 and "2 points, 1 run, 1 resumed" in again.output, again.output
    assert (out / "points" / "depth=3" / "layers.csv").stat().st_mtime_ns == kept
    assert results.read(out / "points" / "depth=2").summary["layer"].size == 2 * 3


OVERFLOWING = """\
seed: 0
trials: 3
width: 16
depth: 6
batch: 8
dtype: float32
input: {mean: 1.0e+300, var: 1.0e+300}
series:
  - {label: a, activation: selu, normalize_weights: true}
  - {label: b, activation: relu, residual: 1.0, gain: 1.0e+20}
  - {label: c, activation: tanh, norm: batch, dropout: 0.1}
  - {label: d, activation: gelu, init: lecun_uniform, gain: 1.0e+30, bias_var: 1.0e+30}
  - {label: e, activation: relu, init: lecun_truncated, gain: 1.0e+30, norm: layer}
"""


@pytest.mark.parametrize("threads", ["1", "2"])
def test_an_overflowing_run_says_so_in_its_own_words_not_numpys(tmp_path, threads):
    """Inputs and weights beyond float32 in every kind of series: the run's `warning:` lines say
    which trial left the float range; numpy's RuntimeWarnings (with our source lines) do not
    reach the user, from the main thread or the engine's pool (before: 8 of them)."""
    proc = subprocess.run([sys.executable, "-m", "snn_lab", "run", "-", "--out", str(tmp_path / "r"), "-q"],
                          input=OVERFLOWING, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "SNN_LAB_THREADS": threads})
    assert proc.returncode == 0, proc.stderr
    assert "left the float range" in proc.stderr
    assert "Warning" not in proc.stderr and ".py:" not in proc.stderr, proc.stderr
