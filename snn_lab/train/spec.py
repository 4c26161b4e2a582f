"""The config's `train:` block: task, optimizer and schedule of the training probe, validated."""

from __future__ import annotations

from dataclasses import asdict, dataclass

TASKS = ("classify", "regress", "npz")  # a random teacher's argmax, its outputs, a file's X and y
OPTIMIZERS = ("sgd", "momentum", "adam")
TRAIN_KEYS = ("task", "steps", "batch", "lr", "optimizer", "momentum", "eval_every", "eval_size", "seed")
TASK_KEYS = {
    "classify": ("kind", "dim", "classes", "teacher_depth", "teacher_width", "teacher_activation"),
    "regress": ("kind", "dim", "outputs", "teacher_depth", "teacher_width", "teacher_activation", "noise"),
    "npz": ("kind", "path"),
}
MAX_STEPS = 10_000_000


@dataclass(frozen=True)
class TaskSpec:
    """Where the examples come from: a random teacher network (classify, regress) or an .npz file."""

    kind: str = "classify"
    dim: int = 32  # inputs per example (teacher tasks; an npz file's X sets its own)
    outputs: int = 10  # classes (classify) or regression outputs
    teacher_depth: int = 2  # hidden layers of the teacher; 0: a linear teacher
    teacher_width: int = 64
    teacher_activation: str = "tanh"
    noise: float = 0.0  # regress: standard deviation of Gaussian noise added to the targets
    path: str | None = None  # npz: the file holding X (examples, features) and y


@dataclass(frozen=True)
class TrainSpec:
    """The training probe's options (one schedule for every series of the experiment)."""

    task: TaskSpec
    steps: int = 500
    batch: int = 128
    lr: float = 0.01
    optimizer: str = "sgd"
    momentum: float = 0.9  # the momentum optimizer's coefficient
    eval_every: int = 50
    eval_size: int = 1024
    seed: int | None = None  # None: the experiment's seed

    def eval_steps(self) -> list[int]:
        """Steps after which the model is evaluated: 0 (at init), every eval_every, and the last."""
        return sorted({0, *range(self.eval_every, self.steps + 1, self.eval_every), self.steps})

    def to_dict(self) -> dict:
        """The resolved options, as config.yaml writes them."""
        d = asdict(self)
        task = d.pop("task")
        task["classes"] = task["outputs"]
        return {"task": {k: task[k] for k in TASK_KEYS[self.task.kind]}, **d}


def check_train(checker, raw, max_seed: int) -> TrainSpec | None:
    """The top-level `train:` block (checker: config._Checker), or None without one."""
    if raw is None:
        return None
    path = ("train",)
    raw = checker.mapping(raw, path, "a mapping {task: ..., steps: N, batch: N, lr: X, ...}")
    checker.keys(raw, TRAIN_KEYS, path)
    task = check_task(checker, raw.get("task", {"kind": "classify"}), path + ("task",))
    steps = checker.integer(raw.get("steps", 500), path + ("steps",), 1, MAX_STEPS)
    batch = checker.integer(raw.get("batch", 128), path + ("batch",), 1)
    lr = checker.number(raw.get("lr", 0.01), path + ("lr",), low=0.0, low_open=True)
    optimizer = checker.choice(raw.get("optimizer", "sgd"), path + ("optimizer",), OPTIMIZERS, "an optimizer")
    momentum = checker.number(raw.get("momentum", 0.9), path + ("momentum",), low=0.0, high=1.0, high_open=True)
    eval_every = checker.integer(raw.get("eval_every", max(1, steps // 10)), path + ("eval_every",), 1)
    eval_size = checker.integer(raw.get("eval_size", 1024), path + ("eval_size",), 1)
    seed = raw.get("seed")
    if seed is not None:
        seed = checker.integer(seed, path + ("seed",), 0, max_seed)
    return TrainSpec(task, steps, batch, lr, optimizer, momentum, eval_every, eval_size, seed)


def check_task(checker, raw, path) -> TaskSpec:
    """A task: {kind: classify | regress | npz, ...} (a bare kind name is taken as {kind: ...})."""
    from snn_lab.activations import ACTIVATIONS

    if isinstance(raw, str):
        raw = {"kind": raw}
    raw = checker.mapping(raw, path, "a mapping {kind: classify | regress | npz, ...}")
    kind = checker.choice(raw.get("kind", "classify"), path + ("kind",), TASKS, "a task kind")
    checker.keys(raw, TASK_KEYS[kind], path)
    base = TaskSpec()
    dim = checker.integer(raw.get("dim", base.dim), path + ("dim",), 1)
    outputs = checker.integer(raw.get("classes" if kind == "classify" else "outputs", base.outputs),
                              path + ("classes" if kind == "classify" else "outputs",), 2 if kind == "classify" else 1)
    depth = checker.integer(raw.get("teacher_depth", base.teacher_depth), path + ("teacher_depth",), 0, 1000)
    width = checker.integer(raw.get("teacher_width", base.teacher_width), path + ("teacher_width",), 1)
    act = checker.choice(raw.get("teacher_activation", base.teacher_activation), path + ("teacher_activation",),
                         ACTIVATIONS, "an activation")
    noise = checker.number(raw.get("noise", 0.0), path + ("noise",), low=0.0)
    file = None
    if kind == "npz":
        file = raw.get("path")
        if not isinstance(file, str) or not file:  # read (and checked) when the run starts: task.load
            checker.fail(path + ("path",), "expected the path of an .npz file holding X (examples, features) "
                         f"and y (examples,), found {file!r}")
            file = None
        dim, outputs = 0, 0  # set by the file
    return TaskSpec(kind, dim, outputs, depth, width, act, noise, file)
