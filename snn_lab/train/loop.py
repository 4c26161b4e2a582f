"""The training loop: every (series, trial) trained on the same batches, its curves and per-layer
statistics recorded at each evaluation step (the held-out set as one batch, no dropout)."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from snn_lab.config import Experiment, Series
from snn_lab.simulate import blas
from snn_lab.simulate.streams import rng_for
from snn_lab.simulate.threads import default_threads, parallel
from snn_lab.train import model
from snn_lab.train import task as tasks
from snn_lab.train.optim import Optimizer
from snn_lab.train.spec import TrainSpec
from snn_lab.yamlio import ConfigError, Problem

CURVE = ("train_loss", "eval_loss", "accuracy")  # training.csv's measured columns
LAYER = ("mean", "var", "dead", "grad_norm")  # training_layers.csv's


@dataclass
class TrainRun:
    """One (series, trial): curves (evals, CURVE), layers (evals, depth + 1, LAYER), and the step
    at which its loss left the float range (None: it never did)."""

    curves: np.ndarray
    layers: np.ndarray
    diverged: int | None = None


def seed_of(exp: Experiment) -> int:
    """The training's seed: train.seed, else the experiment's."""
    return exp.seed if exp.train.seed is None else exp.train.seed


def load_task(exp: Experiment) -> tasks.Task:
    """The experiment's task; a bad .npz file is a ConfigError located at train.task.path."""
    try:
        return tasks.build(exp.train, seed_of(exp))
    except tasks.TaskError as exc:
        key = ("train", "task", "path")
        raise ConfigError([Problem(exp.where(key), "train.task.path", str(exc))]) from None


def evaluate(net: model.Network, task: tasks.Task) -> tuple[float, float, np.ndarray]:
    """(held-out loss, accuracy (NaN for regression), (depth + 1, LAYER) statistics), the gradient
    norms those of the held-out loss with respect to each layer's weights."""
    run = model.forward(net, task.eval_x)
    value, d_out = model.loss(run.out, task.eval_y, task.classification)
    grads = model.backward(net, run, d_out)
    stats = np.full((net.depth + 1, len(LAYER)), math.nan)
    stats[:, :3] = model.layer_stats(net, run)
    with np.errstate(all="ignore"):
        stats[1:, 3] = [math.sqrt(float(np.sum(np.square(grads[2 * i], dtype=np.float64))))
                        for i in range(net.depth)]
        acc = float(np.mean(np.argmax(run.out, axis=1) == task.eval_y)) if task.classification else math.nan
    return value, acc, stats


def train(series: Series, spec: TrainSpec, task: tasks.Task, seed: int, trial: int,
          progress: Callable[[int], None] | None = None, stop: threading.Event | None = None,
          backend: str | None = None) -> TrainRun:
    """Train one series' network of one trial for spec.steps updates (see TrainRun).

    train_loss at an evaluation step s is the mean of the batch losses of updates (previous
    evaluation, s], each measured before its update (with dropout); at step 0 it is update 1's.
    """
    evals = spec.eval_steps()
    net = model.Network.create(series, task.dim, task.outputs, seed, trial, backend)
    opt = Optimizer(spec.optimizer, net.params, spec.lr, spec.momentum)
    batches = task.batches(spec, seed, trial)
    drops = rng_for(seed, series.label + "/dropout", trial, 0) if series.dropout else None
    curves = np.full((len(evals), len(CURVE)), math.nan)
    layers = np.full((len(evals), series.depth + 1, len(LAYER)), math.nan)
    losses = np.full(spec.steps + 1, math.nan)
    diverged, done = None, 0
    e_loss, acc, layers[0] = evaluate(net, task)
    curves[0, 1:] = e_loss, acc
    for step in range(1, spec.steps + 1):
        if stop is not None and stop.is_set():
            break
        x, y = next(batches)
        run = model.forward(net, x, drops)
        losses[step], d_out = model.loss(run.out, y, task.classification)
        if not math.isfinite(losses[step]):
            diverged = step
            break
        opt.step(net.params, model.backward(net, run, d_out))
        if step in evals:
            i = evals.index(step)
            e_loss, acc, layers[i] = evaluate(net, task)
            curves[i, 1:] = e_loss, acc
            if progress:
                progress(step - done)
            done = step
    curves[0, 0] = losses[1]
    for i in range(1, len(evals)):
        if diverged is None or evals[i] < diverged:
            curves[i, 0] = float(np.mean(losses[evals[i - 1] + 1:evals[i] + 1]))
    if progress and spec.steps > done:
        progress(spec.steps - done)
    return TrainRun(curves, layers, diverged)


def train_experiment(exp: Experiment, progress: Callable[[int], None] | None = None,
                     threads: int | None = None, backend: str | None = None) -> dict[str, list[TrainRun]]:
    """Every series' trials, by label. The (series, trial) runs share out over threads, BLAS on one
    thread each: a run's numbers are its own, whatever the thread count or order."""
    task = load_task(exp)
    seed = seed_of(exp)
    jobs = [(s, t) for s in exp.series for t in range(exp.trials)]
    out: dict[tuple[str, int], TrainRun] = {}
    stop, lock = threading.Event(), threading.Lock()

    def report(n: int) -> None:
        with lock:
            if progress:
                progress(n)

    def one(i: int) -> None:
        s, t = jobs[i]
        out[s.label, t] = train(s, exp.train, task, seed, t, report, stop, backend)

    workers = max(1, int(threads)) if threads is not None else default_threads()
    with blas.single_threaded():
        parallel(len(jobs), one, workers, stop)
    return {s.label: [out[s.label, t] for t in range(exp.trials)] for s in exp.series}


def work(exp: Experiment) -> int:
    """Progress units train_experiment reports: one per update of each (series, trial)."""
    return 0 if exp.train is None else len(exp.series) * exp.trials * exp.train.steps
