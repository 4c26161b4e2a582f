"""The training loop and its results files: a linear teacher learned, runs reproducible bit for
bit, training.csv and training_layers.csv written and checked on read as the README says."""

from __future__ import annotations

import numpy as np
import pytest

from snn_lab import config, results
from snn_lab.executors import simulate
from snn_lab.train import loop
from snn_lab.train import task as tasks

SMALL = """
name: small
trials: 2
width: 8
depth: 3
batch: 16
series:
  - {label: SELU, activation: selu, dropout: 0.1}
  - {label: ReLU-BN, activation: relu, init: he_normal, norm: batch, depth: 2}
  - {label: linear-BN, activation: linear, norm: batch, depth: 2}
train: {task: {kind: classify, dim: 5, classes: 3}, steps: 12, batch: 8, lr: 0.05, optimizer: adam,
        eval_every: 5, eval_size: 32}
"""


def test_a_linear_student_learns_a_linear_teacher_exactly():
    """A noise-free linear teacher y = (x A + c - center) / spread is in the class of a 2-layer
    linear student (x W1 + b1) W2 + b2 whose width (16) is at least the input's (8): the loss's
    global minimum is 0, reached where W1 W2 = A / spread. Gradient descent on fresh Gaussian
    batches of a realizable least-squares problem converges geometrically, so after 300 steps
    the held-out loss must be below 1e-12 (relative to the targets' unit variance; float64's
    rounding floor is near 1e-30), and the student's end-to-end matrix must be A / spread."""
    exp = config.load(text="""
trials: 1
dtype: float64
series: [{activation: linear, depth: 1, width: 16, label: lin}]
train: {task: {kind: regress, dim: 8, outputs: 2, teacher_depth: 0}, steps: 300, batch: 32, lr: 0.1,
        eval_every: 100, eval_size: 256}
""")
    task = loop.load_task(exp)
    from snn_lab.train import model
    net = model.Network.create(exp.series[0], task.dim, task.outputs, loop.seed_of(exp), 0)
    run = loop.train(exp.series[0], exp.train, task, loop.seed_of(exp), 0)
    assert run.curves[0, 1] > 0.1  # a student at init is far from the teacher
    assert run.curves[-1, 1] < 1e-12
    # the trained weights: train() keeps its own network, so train this one the same way
    opt = loop.Optimizer("sgd", net.params, 0.1)
    batches = task.batches(exp.train, loop.seed_of(exp), 0)
    for _ in range(300):
        x, y = next(batches)
        r = model.forward(net, x)
        _, d = model.loss(r.out, y, False)
        opt.step(net.params, model.backward(net, r, d))
    w_teacher = task.teacher[0][0] / task.spread
    np.testing.assert_allclose(net.params[0] @ net.params[2], w_teacher, rtol=0, atol=1e-6)


def test_a_training_run_is_reproducible_bit_for_bit_whatever_the_thread_count():
    exp = config.load(text=SMALL)
    one = loop.train_experiment(exp, threads=1)
    two = loop.train_experiment(exp, threads=2)
    again = loop.train_experiment(exp, threads=2)
    for label in one:
        for a, b, c in zip(one[label], two[label], again[label]):
            assert a.curves.tobytes() == b.curves.tobytes() == c.curves.tobytes()
            assert a.layers.tobytes() == b.layers.tobytes() == c.layers.tobytes()
    assert not np.array_equal(one["SELU"][0].curves, one["SELU"][1].curves)  # trials differ


def test_every_series_of_a_trial_sees_the_same_batches():
    exp = config.load(text=SMALL)
    task = loop.load_task(exp)
    a, b = task.batches(exp.train, 0, 1), task.batches(exp.train, 0, 1)
    for _ in range(3):
        (xa, ya), (xb, yb) = next(a), next(b)
        assert np.array_equal(xa, xb) and np.array_equal(ya, yb)
    # the labels are the teacher's argmax: recompute them from the teacher's layers
    x, y = next(task.batches(exp.train, 0, 0))
    assert np.array_equal(y, np.argmax(tasks.teacher_forward(task.spec, task.teacher, x) - task.center, axis=1))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    exp = config.load(text=SMALL)
    return results.write(simulate(exp), tmp_path_factory.mktemp("train") / "small")


def test_training_csvs_follow_the_contract(folder):
    res = results.read(folder)
    curve, layers = res.tables["training.csv"], res.tables["training_layers.csv"]
    assert list(curve) == ["series", "trial", "step", "train_loss", "eval_loss", "accuracy"]
    assert list(layers) == ["series", "trial", "step", "layer", "mean", "var", "dead", "grad_norm"]
    evals = [0, 5, 10, 12]
    assert len(curve["step"]) == 3 * 2 * len(evals)  # series x trials x evaluation steps
    assert len(layers["step"]) == 2 * len(evals) * (4 + 3 + 3)  # trials x steps x (depth + 1), all series
    assert sorted(set(curve["step"].tolist())) == evals
    assert np.all((curve["accuracy"] >= 0) & (curve["accuracy"] <= 1))
    assert np.all(np.isnan(layers["grad_norm"][layers["layer"] == 0]))
    assert np.all(layers["grad_norm"][layers["layer"] > 0] > 0)
    # batch norm (gain 1, shift 0) gives every unit mean 0 and variance v / (v + eps) on the batch it
    # sees, v its pre-norm variance: with a linear activation so does the layer's output, trained or not
    lin = (layers["series"] == "linear-BN") & (layers["layer"] > 0)
    np.testing.assert_allclose(layers["mean"][lin], 0.0, atol=1e-6)  # float32 rounding
    np.testing.assert_allclose(layers["var"][lin], 1.0, atol=1e-3)
    assert np.all(layers["var"][lin] < 1.0)


@pytest.mark.parametrize("name", ["training.csv", "training_layers.csv"])
def test_a_damaged_training_table_is_refused_in_one_line_naming_it(folder, tmp_path, name):
    import json
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    lines = (copy / name).read_text().splitlines(keepends=True)
    fields = lines[3].split(",")
    fields[2] = "6"  # a step the schedule does not have
    lines[3] = ",".join(fields)
    (copy / name).write_text("".join(lines))
    with pytest.raises(results.ResultsError) as err:
        results.read(copy)
    assert str(err.value).startswith(str(copy / name)) and "\n" not in str(err.value)
    (copy / name).write_text("".join(lines[:-1]))  # a row short: meta.json's count
    with pytest.raises(results.ResultsError, match=name):
        results.read(copy)
    meta = json.loads((copy / "meta.json").read_text())
    meta["rows"][name] = len(lines) - 2
    (copy / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(results.ResultsError, match=rf"{name}: line {len(lines)}: .* no more rows|{name}: line"):
        results.read(copy)


def test_an_npz_task_trains_and_a_bad_file_is_a_located_config_error(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((100, 6))
    np.savez(tmp_path / "good.npz", X=x, y=(x[:, 0] > 0).astype(np.int64))
    np.savez(tmp_path / "bad.npz", X=x)
    text = SMALL.replace("task: {kind: classify, dim: 5, classes: 3}", "task: {kind: npz, path: %s}")
    exp = config.load(text=text % (tmp_path / "good.npz"))
    runs = loop.train_experiment(exp, threads=1)
    assert runs["SELU"][0].curves.shape == (4, 3)
    assert np.isfinite(runs["SELU"][0].curves).all()
    bad = config.load("cfg.yaml", text=text % (tmp_path / "bad.npz"))
    with pytest.raises(config.ConfigError) as err:
        loop.load_task(bad)
    message = str(err.value)
    assert message.startswith("cfg.yaml:") and "train.task.path" in message and "no array 'y'" in message


def test_the_training_figures_are_drawn_for_a_trained_folder_only(folder, tmp_path):
    from snn_lab import plot

    res = results.read(folder)
    assert all(plot.OPTIONAL_FIGURES[n](res) for n in ("training_loss", "training_variance"))
    written = plot.save_figures(res, tmp_path, ("png",), ["training_loss", "training_variance"])
    assert [p.name for p in written] == ["training_loss.png", "training_variance.png"]
    assert all(p.stat().st_size > 10_000 for p in written)
    res.tables = {}
    assert not any(plot.OPTIONAL_FIGURES[n](res) for n in ("training_loss", "training_variance"))


def test_check_regresses_the_final_losses_across_trials(folder, tmp_path):
    """The final train loss, held-out loss and accuracy per series are compared like the layer
    statistics: the same run is within tolerance; a final loss moved by 0.9 of its threshold
    (k standard errors, k from Welch's t: 2 trials make k large) is not drift, by 1.1 it is;
    the baseline file carries the final values."""
    import dataclasses

    from snn_lab import compare

    snap = compare.snapshot(results.read(folder))
    report = compare.compare(snap, snap)
    finals = [v for v in report.values if v.stat.startswith("final_")]
    assert {v.stat for v in finals} == {"final_train_loss", "final_eval_loss", "final_accuracy"}
    assert len(finals) == 3 * 3 and report.passed
    (tmp_path / "base.json").write_text(compare.baseline_text(results.read(folder)))
    assert compare.load_baseline(tmp_path / "base.json").training == snap.training
    mean, sd, n = snap.training["SELU"]["train_loss"]
    value = next(v for v in finals if (v.series, v.stat) == ("SELU", "final_train_loss"))
    assert value.se == pytest.approx(sd * (2 / n) ** 0.5)  # two runs' standard errors combined
    for factor, drift in ((0.9, []), (1.1, [("SELU", "final_train_loss")])):
        moved = {**snap.training["SELU"], "train_loss": [mean + factor * value.threshold, sd, n]}
        report = compare.compare(snap, dataclasses.replace(snap, training={**snap.training, "SELU": moved}))
        assert [(v.series, v.stat) for v in report.drifted] == drift


def test_a_diverged_run_leaves_nan_rows_and_a_note():
    """A learning rate of 1e6 sends the loss past the float range within a few updates: the run
    stops there, its later rows are NaN, and the note names the trial and the step."""
    from snn_lab import training_results

    exp = config.load(text="""
trials: 1
width: 8
depth: 2
series: [{activation: relu, init: he_normal, label: r}]
train: {task: {kind: regress, dim: 4, outputs: 2}, steps: 20, batch: 8, lr: 1.0e+6, eval_every: 5, eval_size: 16}
""")
    runs = loop.train_experiment(exp, threads=1)
    run = runs["r"][0]
    assert run.diverged is not None and run.diverged <= 5
    assert np.isfinite(run.curves[0, :2]).all() and np.isnan(run.curves[1:]).all()
    _, notes = training_results.build(exp, runs)
    assert notes == {"r": f"training diverged (loss not finite) in trial 0 at step {run.diverged}; later rows are NaN"}


@pytest.mark.parametrize("sweep", ["", "sweep: {width: [8, 16]}\n"])
def test_snn_lab_run_refuses_a_bad_npz_before_running_one_point(tmp_path, sweep):
    from conftest import cli_runner

    from snn_lab.cli import main

    np.savez(tmp_path / "bad.npz", X=np.ones((10, 3)))
    cfg = tmp_path / "exp.yaml"
    cfg.write_text("trials: 2\nwidth: 8\ndepth: 2\nbatch: 8\nseries: [{activation: selu}]\n"
                   f"train: {{task: {{kind: npz, path: {tmp_path / 'bad.npz'}}}, steps: 4}}\n" + sweep)
    done = cli_runner().invoke(main, ["run", str(cfg), "--out", str(tmp_path / "out"), "-q"])
    assert done.exit_code == 2
    assert f"{cfg}:6: train.task.path: " in done.stderr and "no array 'y'" in done.stderr
    assert not (tmp_path / "out").exists()
