"""The examples a training run sees: a random teacher's outputs or argmax, or an .npz file's X and y.

Every draw comes from the config seed through keyed streams (simulate/streams.py): the task
(teacher, held-out set, file split) from the seed alone, a trial's batches from (seed, trial).
So every series of an experiment trains on the same examples in the same order, trial by trial.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from snn_lab.activations import make_activation
from snn_lab.simulate.streams import rng_for
from snn_lab.train.spec import TaskSpec, TrainSpec

TEACHER, EVAL, DATA, SPLIT = "train:teacher", "train:eval", "train:data", "train:split"  # stream labels
MAX_NPZ_BYTES = 2**31  # an .npz larger than this is refused before it is read


class TaskError(ValueError):
    """A task that cannot be built: an .npz file that is missing or not X and y of the right kind."""


@dataclass
class Task:
    """A built task: its sizes, loss kind, held-out set, and (npz) the training examples."""

    spec: TaskSpec
    classification: bool
    dim: int
    outputs: int
    eval_x: np.ndarray  # (eval_size, dim) float64
    eval_y: np.ndarray  # (eval_size,) int64 classes, or (eval_size, outputs) float64 targets
    teacher: list | None = None  # [(W, b)] per layer, the last one the readout
    center: np.ndarray | None = None  # the teacher's mean output and std (targets are standardized)
    spread: float = 1.0
    train_x: np.ndarray | None = None  # npz: the examples not held out
    train_y: np.ndarray | None = None

    def targets(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """The teacher's label of each row of x: its standardized outputs (plus noise), or their argmax."""
        out = (teacher_forward(self.spec, self.teacher, x) - self.center) / self.spread
        if self.classification:
            return np.argmax(out, axis=1).astype(np.int64)
        if self.spec.noise and rng is not None:
            out += self.spec.noise * rng.standard_normal(out.shape)
        return out

    def batches(self, spec: TrainSpec, seed: int, trial: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The trial's training batches, steps 1, 2, ...: fresh teacher examples, or npz epochs
        (a new permutation of the training examples each epoch)."""
        rng = rng_for(seed, DATA, trial, 0)
        if self.train_x is None:
            while True:
                x = rng.standard_normal((spec.batch, self.dim))
                yield x, self.targets(x, rng)
        n, order, at = len(self.train_x), np.empty(0, np.int64), 0
        while True:
            if at + spec.batch > len(order):  # the rest of this epoch, then the next one's start
                order, at = np.concatenate([order[at:], rng.permutation(n)]), 0
            idx = order[at:at + spec.batch]
            at += spec.batch
            yield self.train_x[idx], self.train_y[idx]


def teacher_forward(spec: TaskSpec, layers: list, x: np.ndarray) -> np.ndarray:
    """The teacher network's outputs: dense layers of teacher_activation, then a linear readout."""
    act = make_activation(spec.teacher_activation)
    for w, b in layers[:-1]:
        x = act.fn(x @ w + b)
    w, b = layers[-1]
    return x @ w + b


def build(spec: TrainSpec, seed: int) -> Task:
    """The task of a train: block, built from the seed (TaskError for a bad .npz)."""
    t = spec.task
    if t.kind == "npz":
        return _npz(spec, seed)
    rng = rng_for(seed, TEACHER, 0, 0)
    sizes = [t.dim] + [t.teacher_width] * t.teacher_depth + [t.outputs]
    # N(0, 1/fan_in) weights and N(0, 0.1) biases: a tanh teacher stays in its curved range.
    layers = [(rng.standard_normal((a, b)) / math.sqrt(a), math.sqrt(0.1) * rng.standard_normal(b))
              for a, b in pairwise(sizes)]
    eval_x = rng_for(seed, EVAL, 0, 0).standard_normal((spec.eval_size, t.dim))
    raw = teacher_forward(t, layers, eval_x)
    center, spread = raw.mean(axis=0), float(raw.std()) or 1.0
    task = Task(t, t.kind == "classify", t.dim, t.outputs, eval_x, np.empty(0), layers, center, spread)
    task.eval_y = task.targets(eval_x, rng_for(seed, EVAL, 0, 1))
    return task


def _npz(spec: TrainSpec, seed: int) -> Task:
    """X (examples, features) floats and y (examples,) integer classes or float targets; the
    held-out set is eval_size examples drawn from the seed, the rest are trained on."""
    path = spec.task.path
    try:
        if os.path.getsize(path) > MAX_NPZ_BYTES:
            raise TaskError(f"{path}: larger than {MAX_NPZ_BYTES // 2**30} GiB")
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in ("X", "y") if k not in data.files]
            if missing:
                raise TaskError(f"{path}: no array {missing[0]!r} (found: {', '.join(data.files) or 'none'}); "
                                "expected X (examples, features) and y (examples,)")
            x, y = data["X"], data["y"]
    except TaskError:
        raise
    except (OSError, ValueError, EOFError) as exc:
        raise TaskError(f"{path}: cannot read as .npz ({exc})") from None
    if x.ndim != 2 or x.dtype.kind not in "fiu":
        raise TaskError(f"{path}: X must be a 2-D array of numbers (examples, features), found {x.dtype} {x.shape}")
    if y.ndim not in (1, 2) or len(y) != len(x) or y.dtype.kind not in "fiu":
        raise TaskError(f"{path}: y must be numbers, one per example of X ({len(x)}), found {y.dtype} {y.shape}")
    x = x.astype(np.float64)
    if not np.isfinite(x).all():
        raise TaskError(f"{path}: X holds NaN or infinite values")
    classification = y.dtype.kind in "iu"
    if classification:
        if y.ndim != 1 or y.min() < 0:
            raise TaskError(f"{path}: integer y must be 1-D class indices >= 0, found {y.shape}, min {y.min()}")
        outputs = int(y.max()) + 1
        if outputs < 2:
            raise TaskError(f"{path}: y holds one class only; classification needs 2 or more")
        y = y.astype(np.int64)
    else:
        y = y.astype(np.float64).reshape(len(y), -1)
        if not np.isfinite(y).all():
            raise TaskError(f"{path}: y holds NaN or infinite values")
        outputs = y.shape[1]
    if len(x) <= spec.eval_size:
        raise TaskError(f"{path}: {len(x)} examples, but eval_size holds out {spec.eval_size}: "
                        "lower train.eval_size")
    order = rng_for(seed, SPLIT, 0, 0).permutation(len(x))
    held, kept = order[:spec.eval_size], np.sort(order[spec.eval_size:])
    return Task(spec.task, classification, x.shape[1], outputs, x[held], y[held],
                train_x=x[kept], train_y=y[kept])
