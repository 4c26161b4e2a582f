"""The command line through click's CliRunner: exit codes, files written, exact messages."""

from __future__ import annotations

import csv
import json
import os
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import cli_runner

from snn_lab import __version__, config, results
from snn_lab.simulate import engine
from snn_lab.cli import main

SMALL = ["--set", "width=32", "--set", "batch=32", "--set", "depth=6", "--set", "trials=3"]


def invoke(*args, input=None):
    return cli_runner().invoke(main, [str(a) for a in args], input=input, catch_exceptions=False)


def test_version():
    out = invoke("--version")
    assert out.exit_code == 0 and out.output.splitlines()[0] == f"snn-lab {__version__}"
    assert "backend numpy: available" in out.output


def test_every_command_has_help_with_an_example():
    for name, command in main.commands.items():
        out = invoke(name, "--help")
        assert out.exit_code == 0, name
        assert "Example" in out.output, f"{name} --help has no example"


def test_run_default_writes_the_results_folder(tmp_path):
    out = invoke("run", "--out", tmp_path / "r", *SMALL)
    assert out.exit_code == 0, out.output
    assert f"wrote {tmp_path / 'r'}/" in out.output
    assert "SELU" in out.output and "ReLU (He)" in out.output
    folder = tmp_path / "r"
    assert sorted(p.name for p in folder.iterdir()) == sorted(results.FILES)
    with open(folder / "layers.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 * 3 * 7  # series x trials x (depth + 1)
    assert list(rows[0])[:9] == ["series", "activation", "init", "trial", "layer",
                                 "mean", "var", "preact_mean", "preact_var"]
    meta = json.loads((folder / "meta.json").read_text())
    for key in ("snn_lab", "numpy", "python", "blas", "seed_entropy", "argv", "started_utc",
                "finished_utc", "wall_seconds", "host", "git_commit", "complete"):
        assert key in meta, key


def test_layers_csv_reads_back_bit_for_bit(tmp_path):
    """The file holds exactly the doubles the engine computed (repr round-trips)."""
    invoke("run", "--out", tmp_path / "r", *SMALL)
    exp = config.load(str(tmp_path / "r" / "config.yaml"))
    stats = engine.run_experiment(exp)
    table = results.read(tmp_path / "r").layers
    for s in exp.series:
        keep = table["series"] == s.label
        written = np.stack([table[c][keep] for c in engine.STATS], axis=1)
        assert np.array_equal(written, stats[s.label].stats[..., :len(engine.STATS)].reshape(-1, len(engine.STATS)))


def test_resolved_config_reproduces_the_numbers(tmp_path):
    invoke("run", "--out", tmp_path / "a", *SMALL, "--set", "seed=7")
    invoke("run", tmp_path / "a" / "config.yaml", "--out", tmp_path / "b")
    a = (tmp_path / "a" / "layers.csv").read_text()
    assert a == (tmp_path / "b" / "layers.csv").read_text()


def test_json_prints_only_json(tmp_path):
    out = cli_runner().invoke(main, ["run", "--out", str(tmp_path / "r"), "--json", *SMALL])
    data = json.loads(out.stdout)
    assert [s["label"] for s in data["series"]] == ["SELU", "ReLU", "ReLU (He)"]
    layer1 = data["series"][0]["layers"][1]
    assert {"layer", "mean", "mean_sd", "var", "var_sd", "theory_mean", "theory_var"} <= set(layer1)


def test_existing_folder_is_refused_without_force(tmp_path):
    target = tmp_path / "r"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    out = invoke("run", "--out", target, *SMALL)
    assert out.exit_code == 2
    assert out.output == (f"error: {target} already exists and is not empty; use --force to replace it "
                          "or --out DIR to write elsewhere\n")
    assert (target / "keep.txt").read_text() == "mine"
    # --force replaces only a folder snn-lab wrote: the user's file is named, and kept.
    out = invoke("run", "--out", target, "--force", *SMALL)
    assert out.exit_code == 2 and (target / "keep.txt").read_text() == "mine"
    assert out.output.startswith(f"error: {target / 'keep.txt'} was not written by snn-lab; ")
    os.remove(target / "keep.txt")
    assert invoke("run", "--out", target, *SMALL).exit_code == 0
    assert invoke("run", "--out", target, "--force", *SMALL).exit_code == 0


def test_config_from_stdin(tmp_path):
    text = "name: piped\nwidth: 16\nbatch: 8\ndepth: 3\ntrials: 2\nseries: [{activation: tanh}]\n"
    out = invoke("run", "-", "--out", tmp_path / "p", input=text)
    assert out.exit_code == 0, out.output
    assert results.read(tmp_path / "p").config["name"] == "piped"


def test_bad_config_exits_2_with_located_messages_and_no_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("depth: 0\nseries:\n  - {activation: sleu}\n")
    out = invoke("run", bad, "--out", tmp_path / "r")
    assert out.exit_code == 2
    lines = out.output.splitlines()
    assert lines[0] == f"error: {bad}:1: depth: expected an integer in [1, 100000], found 0"
    assert lines[1].startswith(f"{bad}:3: series.0.activation: expected an activation")
    assert "Traceback" not in out.output and not (tmp_path / "r").exists()


def test_bad_override_exits_2():
    out = invoke("run", "--set", "series.0.init=he")
    assert out.exit_code == 2
    assert out.output.startswith("error: --set series.0.init=he: series.0.init: expected an initializer")
    assert out.output.rstrip().endswith("did you mean 'he_normal'?")


def test_oversize_request_is_refused_before_anything_is_allocated():
    out = invoke("run", "--set", "width=10000000")
    assert out.exit_code == 2
    assert "GiB for one trial" in out.output and "lower 'width' or 'batch'" in out.output


def test_overflow_is_reported_not_crashed(tmp_path):
    text = "width: 16\nbatch: 8\ndepth: 50\ntrials: 1\nseries: [{label: L, activation: linear, gain: 10.0}]\n"
    out = cli_runner().invoke(main, ["run", "-", "--out", str(tmp_path / "o")], input=text)
    assert out.exit_code == 0
    assert "warning: L: trial 0 left the float range at layer" in " ".join(out.stderr.split())
    summary = results.read(tmp_path / "o").summary
    assert not math.isfinite(summary["var"][-1])


def test_a_fresh_clone_can_run_the_quick_start():
    """No tracked file may sit in the default experiment's folder (a fresh clone's run would refuse it)."""
    import shutil
    import subprocess

    root = Path(__file__).resolve().parent.parent
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(["git", "-C", str(root), "ls-files", f"results/{config.load().name}"],
                             capture_output=True, text=True, check=True).stdout
    assert tracked == ""


def test_run_with_plot_draws_the_figures(tmp_path):
    out = invoke("run", "--out", tmp_path / "r", "--plot", "-q", *SMALL)
    assert out.exit_code == 0, out.output
    assert sorted(p.name for p in (tmp_path / "r" / "plots").iterdir()) == [
        "activations.png", "convergence.png", "histograms.png", "map.png", "probes.png"]


def test_theory_json_has_the_documented_keys_and_the_paper_numbers():
    out = invoke("theory", "--activation", "selu", "--init", "lecun_normal", "--depth", "12", "--json")
    assert out.exit_code == 0, out.output
    [rep] = json.loads(out.output)["series"]
    assert {"fixed_point", "jacobian", "spectral_norm", "chi1", "xi_q", "xi_c", "layers"} <= set(rep)
    assert rep["fixed_point"]["q"] == pytest.approx(1.0, abs=1e-12)
    # Klambauer et al. (2017): the Jacobian of g at (0, 1), spectral norm 0.7877 < 1.
    np.testing.assert_allclose(rep["jacobian"], [[0, 0.0888347551], [0, 0.7826478832]], atol=1e-8)
    assert rep["spectral_norm"] == pytest.approx(0.78767, abs=1e-5)
    assert len(rep["layers"]) == 13


def test_theory_says_when_there_is_no_fixed_point():
    out = invoke("theory", "--activation", "selu", "--init", "he_normal", "--json")
    [rep] = json.loads(out.output)["series"]
    assert rep["fixed_point"] is None and "grows without bound" in rep["note"]
    text = invoke("theory", "--activation", "selu", "--init", "he_normal").output
    assert "fixed point" in text and "grows without bound" in text


def test_theory_options_apply_to_every_series_of_a_config():
    out = invoke("theory", "--gain", "0.75", "--json")
    reps = json.loads(out.output)["series"]
    assert [r["label"] for r in reps] == ["SELU", "ReLU", "ReLU (He)"]
    # ReLU with gain 3/4 and LeCun init: q_{l+1} = 0.5625 q_l / 2.
    relu = reps[1]["layers"]
    assert relu[3]["theory_preact_var"] / relu[2]["theory_preact_var"] == pytest.approx(0.5625 / 2, rel=1e-12)


def test_theory_bad_option_exits_2():
    out = invoke("theory", "--activation", "sleu")
    assert out.exit_code == 2 and "did you mean 'selu'?" in out.output


def test_theory_option_errors_name_the_option_as_typed_once():
    """An option applied to the default config's three series: one problem, naming the option as
    typed, not the --set of series.N it becomes inside."""
    out = invoke("theory", "--init", "lecun", "--gain", "-1")
    lines = out.output.splitlines()
    assert out.exit_code == 2 and len(lines) == 2 and "--set" not in out.output, out.output
    assert lines[0].startswith("error: --init lecun: init: expected an initializer")
    assert "did you mean 'lecun_normal'?" in lines[0]
    assert lines[1].startswith("--gain -1.0: gain: expected a finite number > 0")


def test_selu_params_returns_the_published_constants():
    out = invoke("selu-params", "--mean", "0", "--var", "1", "--json")
    params = json.loads(out.output)
    assert params["lambda"] == pytest.approx(1.0507009873554804934, rel=1e-12)
    assert params["alpha"] == pytest.approx(1.6732632423543772848, rel=1e-12)
    # Keras' AlphaDropout for rate 0.1: a = ((1-p)(1 + p alpha'^2))^-1/2, b = -a alpha' p.
    out = invoke("selu-params", "--mean", "0", "--var", "1", "--dropout-rate", "0.1", "--json")
    params = json.loads(out.output)
    ap = -1.0507009873554804934 * 1.6732632423543772848
    a = (0.9 * (1 + 0.1 * ap * ap)) ** -0.5
    assert params["a"] == pytest.approx(a, rel=1e-12) and params["b"] == pytest.approx(-a * ap * 0.1, rel=1e-12)
    assert invoke("selu-params", "--mean", "0", "--var", "-1").exit_code == 2


@pytest.mark.parametrize("options", [["--normalize-weights"], ["--dropout", "0.1"]])
def test_theory_selu_keeps_zero_one_with_normalized_weights_or_alpha_dropout(options):
    """g with omega = 0, tau = 1 has its fixed point at (0, 1) (Theorem 1); alpha dropout's a, b
    are chosen to keep (0, 1) (Klambauer et al. 2017), so q* = 1 either way."""
    out = invoke("theory", "--activation", "selu", *options, "--json")
    assert out.exit_code == 0, out.output
    fp = json.loads(out.output)["series"][0]["fixed_point"]
    assert fp["q"] == pytest.approx(1.0, abs=1e-9)
    assert fp["mean"] == pytest.approx(0.0, abs=1e-9) and fp["var"] == pytest.approx(1.0, abs=1e-9)


def test_theory_bias_variance_makes_a_linear_net_grow():
    """Linear, LeCun: q_{l+1} = q_l + sigma_b^2, no fixed point; layer l's preact var is l/2 + 1."""
    out = invoke("theory", "--activation", "linear", "--bias-var", "0.5", "--depth", "4", "--json")
    rep = json.loads(out.output)["series"][0]
    assert rep["status"] == "grows"
    assert [row["theory_preact_var"] for row in rep["layers"][1:]] == pytest.approx([1.5, 2.0, 2.5, 3.0])


def test_every_library_error_maps_to_its_exit_status_in_one_place(tmp_path):
    """errors.py: one base; the CLI turns any SnnLabError into `error: ...` and its status."""
    from snn_lab import compare, config, errors, executors, sweep, validate
    from snn_lab.plot import OverlayError, SweepPlotError
    from snn_lab.simulate.backends import BackendError

    for cls in (config.ConfigError, validate.ResultsError, sweep.SweepError, executors.ExecutorError,
                BackendError, SweepPlotError, OverlayError, compare.WrongMode):
        assert issubclass(cls, errors.SnnLabError) and cls.exit_status == 2, cls
    for cls in (compare.BaselineError, compare.NotComparable):
        assert issubclass(cls, errors.BaselineProblem) and cls.exit_status == 3, cls
    done = invoke("check", tmp_path, "--mode", "theory")  # an empty folder: a ResultsError
    assert done.exit_code == 2 and done.output.startswith(f"error: {tmp_path}") and "Traceback" not in done.output
