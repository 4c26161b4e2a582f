"""Config loading: defaults, overrides, and every error located with file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from snn_lab import config
from snn_lab.activations import ACTIVATIONS, suggest
from snn_lab.config import ConfigError

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted((ROOT / "snn_lab" / "configs").glob("*.yaml"))


def problems(text: str, *overrides: str) -> list[str]:
    with pytest.raises(ConfigError) as err:
        config.load("exp.yaml", text=text, overrides=overrides)
    return [str(p) for p in err.value.problems]


def test_the_default_experiment_is_the_selu_vs_relu_example():
    same = [config.load(*a).to_dict() for a in ((), ("selu_vs_relu",), (str(ROOT / "snn_lab" / "configs" / "selu_vs_relu.yaml"),))]
    assert same[0] == same[1] == same[2]
    exp = config.load()
    assert [s.label for s in exp.series] == ["SELU", "ReLU", "ReLU (He)"]
    assert [(s.activation, s.init) for s in exp.series] == [
        ("selu", "lecun_normal"), ("relu", "lecun_normal"), ("relu", "he_normal")]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_example_config_loads_and_says_what_it_shows(path):
    from snn_lab import sweep

    grid = sweep.load(str(path))  # a sweep config: every point must load
    exps = [p.experiment for p in grid.points] if grid is not None else [config.load(str(path))]
    assert all(exp.series for exp in exps)
    assert path.read_text().startswith("#"), "each example starts with a comment saying what it shows"


def test_defaults_are_filled_in_and_the_resolved_config_reloads_to_the_same_experiment():
    exp = config.load("e.yaml", text="series: [{activation: {name: selu, alpha: 1.5}}]")
    s = exp.series[0]
    assert (exp.name, exp.seed, exp.trials) == ("e", 0, 4)
    assert (s.width, s.depth, s.batch, s.dtype, s.init, s.gain) == (512, 64, 1024, "float32", "lecun_normal", 1.0)
    again = config.load("r.yaml", text=yaml.safe_dump(exp.to_dict()))
    assert again.series == exp.series and again.seed == exp.seed and again.name == exp.name


def test_series_override_shared_keys_and_merge_input():
    exp = config.load("e.yaml", text="width: 64\ninput: {mean: 1.0, var: 2.0}\n"
                                     "series: [{activation: relu, width: 32, input: {var: 4}}, {activation: tanh}]")
    a, b = exp.series
    assert (a.width, a.input.mean, a.input.var) == (32, 1.0, 4.0)
    assert (b.width, b.input.mean, b.input.var) == (64, 1.0, 2.0)


def test_exponent_floats_are_floats_not_text():
    """PyYAML (YAML 1.1) reads 1e-3 as the text '1e-3'; we read it as 0.001."""
    exp = config.load("e.yaml", text="series: [{activation: selu, bias_var: 1e-3, gain: 2E+0}]")
    assert exp.series[0].bias_var == 0.001 and exp.series[0].gain == 2.0


def test_unknown_key_names_file_line_and_the_nearest_key():
    assert problems("seed: 1\nwidht: 5\nseries: [{activation: selu}]") == [
        "exp.yaml:2: widht: unknown key (expected one of: name, seed, trials, measure, width, depth, batch, "
        "dtype, input, series, jacobian, train); did you mean 'width'?"]


def test_wrong_type_names_what_was_expected_and_found():
    assert problems("depth: ten\nseries: [{activation: selu}]") == [
        "exp.yaml:1: depth: expected an integer in [1, 100000], found 'ten' (a text)"]
    assert problems("series: [{activation: selu, normalize_weights: 1}]") == [
        "exp.yaml:1: series.0.normalize_weights: expected true or false, found 1"]


def test_duplicate_key_is_an_error_not_a_silent_overwrite():
    assert problems("depth: 3\nseries: [{activation: selu}]\ndepth: 4") == [
        "exp.yaml:3: depth: duplicate key (first given at line 1); each key may appear once"]


def test_out_of_range_values():
    assert problems("depth: 0\nseries: [{activation: selu}]") == [
        "exp.yaml:1: depth: expected an integer in [1, 100000], found 0"]
    assert problems("input: {var: -1}\nseries: [{activation: selu, dropout: 1.0}]") == [
        "exp.yaml:1: input.var: expected a finite number >= 0, found -1",
        "exp.yaml:2: series.0.dropout: expected a finite number in [0, 1), found 1.0"]


def test_unknown_activation_suggests_the_nearest_name():
    [msg] = problems("series:\n  - {activation: sleu}")
    assert msg.startswith("exp.yaml:2: series.0.activation: expected an activation (one of: selu, relu,")
    assert msg.endswith("found 'sleu' (a text); did you mean 'selu'?")


def test_every_problem_is_reported_at_once_in_line_order():
    found = problems("trials: 0\nseries:\n  - {activation: relu, init: he}\n  - {activation: selu, gain: -1}")
    assert [m.split(": ")[0:2] for m in found] == [
        ["exp.yaml:1", "trials"], ["exp.yaml:3", "series.0.init"], ["exp.yaml:4", "series.1.gain"]]
    assert found[1].endswith("did you mean 'he_normal'?")


@pytest.mark.parametrize("text, message", [
    ("", "exp.yaml: the config is empty; expected a mapping with at least a 'series' list, "
         "e.g. series: [{activation: selu}]"),
    ("- 1\n- 2", "exp.yaml:1: expected a mapping of experiment keys (name, seed, series, ...), found a list [1, 2]"),
    ("series: [", "exp.yaml:1: not valid YAML: expected the node content, but found '<stream end>'"),
    ("x: !!python/object:os.system {}\nseries: []",
     "exp.yaml:1: x: tag 'tag:yaml.org,2002:python/object:os.system' is not allowed (plain YAML values only)"),
    ("a: &a [*a]", "exp.yaml:1: a.0: recursive alias"),
    ("name: ../../etc\nseries: [{activation: selu}]",
     "exp.yaml:1: name: expected a folder name of letters, digits, '.', '_' or '-' (at most 100, "
     "not starting with '.' or '-'), found '../../etc' (a text)"),
])
def test_hostile_yaml_is_refused_with_a_located_message(text, message):
    assert problems(text) == [message]


def test_alias_bomb_is_refused():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}]"
              for i in range(1, 9)]
    found = problems("\n".join(lines))
    assert any("document expands to more than 100000 values" in m for m in found)


def test_overrides_are_read_as_yaml_and_checked_like_the_file():
    exp = config.load("e.yaml", text="series: [{activation: selu}]",
                      overrides=("depth=200", "input.var=4", "series.0.activation=tanh", "dtype=float64"))
    s = exp.series[0]
    assert (s.depth, s.input.var, s.activation, s.dtype) == (200, 4.0, "tanh", "float64")
    assert problems("series: [{activation: selu}]", "depth=0") == [
        "--set depth=0: depth: expected an integer in [1, 100000], found 0"]
    assert problems("series: [{activation: selu}]", "series.3.init=he_normal") == [
        "--set series.3.init=he_normal: series.3: no such series: the config has 1 (indices 0..0)"]
    assert problems("series: [{activation: selu}]", "depth") == [
        "--set depth: expected KEY=VALUE, e.g. depth=200 or series.0.activation=tanh"]


def test_a_set_that_every_series_overrides_is_refused_and_one_that_some_inherit_applies():
    """--set width=32 where each series sets its own width would change nothing: exit-2 problem
    naming series 0's line; where one series inherits, the --set reaches exactly that one."""
    both = "series:\n- {activation: selu, width: 16}\n- {activation: relu, width: 8}\n"
    assert problems(both, "width=32") == [
        "--set width=32: width: changes no series: each series sets its own width (series 0 at "
        "exp.yaml:2), which wins over the top-level value; set series.0.width and so on for each "
        "series, or remove the series' own width from the file"]
    inputs = "series:\n- {activation: selu, input: {var: 4}}\n"
    assert problems(inputs, "input.var=2")[0].startswith("--set input.var=2: input.var: changes no series")
    assert problems(inputs, "input={var: 2}")[0].startswith("--set input={var: 2}: input: changes no series")
    exp = config.load("exp.yaml", text=inputs, overrides=("input={mean: 0.5}",))  # var stays the series'
    assert (exp.series[0].input.mean, exp.series[0].input.var) == (0.5, 4.0)
    one = config.load("exp.yaml", text="series:\n- {activation: selu, width: 16}\n- {activation: relu}\n",
                      overrides=("width=32",))
    assert [s.width for s in one.series] == [16, 32]


def test_missing_file_and_non_utf8_file(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml: cannot read config: No such file or directory"):
        config.load(str(tmp_path / "nope.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: not UTF-8 text \(byte 6\)"):
        config.load(str(bad))


@pytest.mark.parametrize("typo, meant", [("sleu", "selu"), ("rleu", "relu"), ("tan", "tanh"),
                                         ("leaky-relu", "leaky_relu"), ("GELU", "gelu")])
def test_suggestions_catch_swaps_prefixes_and_case(typo, meant):
    assert suggest(typo, ACTIVATIONS) == meant


def test_suggestion_is_silent_for_unrelated_words():
    assert suggest("transformer", ACTIVATIONS) is None


def test_norm_residual_and_scale_keys_are_checked_with_the_nearest_choice():
    found = problems("series:\n"
                     "- {activation: relu, norm: batchnorm}\n"
                     "- {activation: relu, residual: {alpha: -1}}\n"
                     "- {activation: relu, residual: {beta: expected}}\n"
                     "- {activation: relu, residual: {alpha: 0.2, beta: expectd, gamma: 1}}\n"
                     "- {activation: {name: relu, scale: nff}}\n"
                     "- {activation: {name: relu, scale: -2}}\n"
                     "- {activation: relu, residual: big}\n"
                     "- {activation: {}}\n")
    expected = [
        ("exp.yaml:2: series.0.norm", "one of: none, batch, layer", "did you mean 'batch'?"),
        ("exp.yaml:3: series.1.residual.alpha", "> 0", "-1"),
        ("exp.yaml:4: series.2.residual", "missing key 'alpha'"),
        ("exp.yaml:5: series.3.residual.gamma", "unknown key (expected one of: alpha, beta)"),
        ("exp.yaml:5: series.3.residual.beta", "one of: none, expected", "did you mean 'expected'?"),
        ("exp.yaml:6: series.4.activation.scale", "one of: nf", "did you mean 'nf'?"),
        ("exp.yaml:7: series.5.activation.scale", "> 0", "-2"),
        ("exp.yaml:8: series.6.residual", "expected a mapping {alpha: ..., beta: none | expected} or a number"),
        ("exp.yaml:9: series.7.activation", "missing key 'name'", "selu"),
    ]
    assert len(found) == len(expected), found
    for message, parts in zip(found, expected):
        for part in parts:
            assert part in message, (part, message)


def test_norm_residual_and_scale_round_trip_through_the_resolved_config():
    exp = config.load(text="series:\n- {activation: {name: relu, scale: nf}, norm: layer, "
                           "residual: {alpha: 0.2, beta: expected}}\n- {activation: selu, residual: 0.5}\n")
    assert exp.series[0].residual == config.Residual(0.2, "expected")
    assert exp.series[1].residual == config.Residual(0.5, "none")
    assert exp.series[0].norm == "layer" and exp.series[0].activation_scale == "nf"
    again = config.load(text=yaml.safe_dump(exp.to_dict()))
    assert again.series == exp.series


def test_a_set_activation_or_init_renames_a_series_its_file_named():
    """'SELU' on a ReLU would lie: a series changed by --set takes the default label, unless
    --set names it too; the other series keep theirs."""
    labels = lambda *o: [s.label for s in config.load(overrides=o).series]  # noqa: E731
    assert labels("series.0.activation=relu") == ["relu-lecun_normal", "ReLU", "ReLU (He)"]
    assert labels("series.2.init=lecun_normal", "series.1.activation=elu") == ["SELU", "elu-lecun_normal", "relu-lecun_normal"]
    assert labels("series.0.activation=tanh", "series.0.label=T") == ["T", "ReLU", "ReLU (He)"]
    assert labels("series.0.gain=1.1", "depth=3") == ["SELU", "ReLU", "ReLU (He)"]
