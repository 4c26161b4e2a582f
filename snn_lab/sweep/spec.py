"""A sweep's spec: a grid over config keys -> one validated experiment per point, seeded and named."""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from snn_lab import config as cfg
from snn_lab.config import Experiment
from snn_lab.errors import SnnLabError
from snn_lab.yamlio import ConfigError, Problem, parse

SWEEP_VERSION = 1
MANIFEST = "sweep.json"
TABLE = "sweep.csv"
POINTS = "points"  # one results folder per point, named by its values
MAX_POINTS = 10_000
SPECS = ("linspace", "logspace", "geomspace", "range")
SERIES_ONLY = ("activation", "init", "gain", "bias_var", "normalize_weights", "dropout")  # -> every series
TOP_ONLY = ("seed", "trials", "measure")
DERIVED = ("sigma_w2", "sigma_b2")  # each row's series: weight variance x fan-in, bias variance
_DIGITS = 15  # generated values are rounded to this many significant digits: 0.1 steps print as 0.1
_SAFE = re.compile(r"[^A-Za-z0-9._=,+-]")


class SweepError(SnnLabError):
    """A sweep folder that cannot be resumed or read."""


@dataclass(frozen=True)
class Axis:
    """One swept key, its values, and where they were given ('file:line' or '--sweep ...')."""

    key: str
    values: tuple
    where: str


@dataclass(frozen=True)
class Point:
    """One grid point: its folder name, its (key, value) pairs and its experiment."""

    name: str
    values: tuple[tuple[str, Any], ...]
    experiment: Experiment


@dataclass(frozen=True)
class Sweep:
    """A base experiment and the grid over it."""

    name: str
    source: str
    axes: tuple[Axis, ...]
    points: tuple[Point, ...]

    @property
    def keys(self) -> tuple[str, ...]:
        """The swept keys, in the order given (YAML block first, then --sweep)."""
        return tuple(a.key for a in self.axes)


# ---- the grid ------------------------------------------------------------------------------

def load(path: str | None = None, text: str | None = None, overrides: tuple[str, ...] = (),
         sweeps: tuple[str, ...] = ()) -> Sweep | None:
    """The sweep of a config (its sweep: block and --sweep KEY=SPEC), or None if it has none."""
    tree, lines, source = cfg.read(path, text)
    has_block = isinstance(tree, dict) and "sweep" in tree
    block = tree.pop("sweep") if has_block else None
    if not has_block and not sweeps:
        return None
    base = cfg.build(copy.deepcopy(tree), lines, source, overrides)  # the base must be valid alone
    problems: list[Problem] = []
    axes = _axes(has_block, block, lines, source, sweeps, problems)
    axes = [a for a in axes if _targets(a, tree, problems)]
    _override_conflicts(axes, tree, overrides, problems)
    _axis_conflicts(axes, tree, problems)
    if problems:
        raise ConfigError(problems)
    size = math.prod(len(a.values) for a in axes)
    if size > MAX_POINTS:
        raise ConfigError([Problem(axes[0].where, "sweep", f"the grid has {size:,} points, more than "
                                   f"{MAX_POINTS:,}; sweep fewer keys or values")])
    points, names = [], {}
    for combo in itertools.product(*(a.values for a in axes)):
        values = tuple((a.key, v) for a, v in zip(axes, combo))
        try:
            exp = _point_experiment(tree, lines, source, overrides, axes, values, base.seed)
        except ConfigError as exc:
            problems.extend(p for p in exc.problems if p not in problems)
            continue
        name = point_name(values)
        if name in names:
            problems.append(Problem(axes[0].where, "sweep", f"points {names[name]} and {dict(values)} "
                                    "have the same folder name; remove the repeated value"))
        names[name] = dict(values)
        points.append(Point(name, values, exp))
    if problems:
        raise ConfigError(problems)
    return Sweep(base.name, source, tuple(axes), tuple(points))


def _axes(has_block, block, lines, source, sweeps, problems) -> list[Axis]:
    """The swept keys and their values: the YAML block, then --sweep (which replaces a key)."""
    axes: dict[str, Axis] = {}
    if has_block:
        where = cfg.locate(source, lines, ("sweep",))
        if not isinstance(block, dict) or not block:
            problems.append(Problem(where, "sweep", "expected a mapping of KEY: VALUES, e.g. "
                                    "{gain: {linspace: [0.5, 1.5, 11]}, width: [64, 256]}"))
            return []
        for key, spec in block.items():
            at = cfg.locate(source, lines, ("sweep", key))
            values = _values(spec, at, f"sweep.{key}", problems)
            if values is not None:
                axes[str(key)] = Axis(str(key), values, at)
    for text in sweeps:
        at = f"--sweep {text}"
        key, sep, spec = text.partition("=")
        if not sep or not key.strip() or not spec.strip():
            problems.append(Problem(at, "", "expected KEY=V1,V2,... or KEY=linspace(START,STOP,N), "
                                    "e.g. --sweep width=64,256,1024"))
            continue
        key = key.strip()
        call = re.fullmatch(r"\s*([a-z]+)\s*\((.*)\)\s*", spec)
        try:
            if call:
                parsed = {call[1]: parse(f"[{call[2]}]", at)[0]}
            else:
                parsed = parse(f"[{spec}]", at)[0]
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        values = _values(parsed, at, key, problems)
        if values is not None:
            axes.pop(key, None)
            axes[key] = Axis(key, values, at)
    return list(axes.values())


def _values(spec, where: str, key: str, problems) -> tuple | None:
    """A list, one value, or {linspace|logspace|geomspace|range: [...]} -> the values."""
    if isinstance(spec, list):
        if not spec:
            problems.append(Problem(where, key, "expected at least one value, found an empty list"))
            return None
        return tuple(spec)
    if not isinstance(spec, dict):
        return (spec,)
    if len(spec) != 1 or next(iter(spec)) not in SPECS:
        hint = cfg.suggest(str(next(iter(spec), "")), SPECS)
        problems.append(Problem(where, key, "expected a list of values or one of "
                                + ", ".join(f"{{{s}: [...]}}" for s in SPECS)
                                + (f"; did you mean {hint!r}?" if hint else "")))
        return None
    kind, args = next(iter(spec.items()))
    return _generate(kind, args, where, f"{key}.{kind}", problems)


def _generate(kind: str, args, where: str, key: str, problems) -> tuple | None:
    import numpy as np

    numbers = isinstance(args, list) and all(type(a) in (int, float) and math.isfinite(a) for a in args)
    if kind == "range":
        if not (isinstance(args, list) and len(args) in (2, 3) and all(type(a) is int for a in args)
                and (len(args) == 2 or args[2] != 0)):
            problems.append(Problem(where, key, "expected [START, STOP] or [START, STOP, STEP] of "
                                    f"integers (STOP excluded, as in Python), found {args!r}"))
            return None
        start, stop, step = (*args, 1) if len(args) == 2 else args
        count = max(0, (stop - start + step - (1 if step > 0 else -1)) // step)  # counted, not built
        if count > MAX_POINTS:
            problems.append(Problem(where, key, f"the range {args!r} has {count:,} values, more than "
                                    f"{MAX_POINTS:,}; use a larger step or a smaller span"))
            return None
        values = tuple(range(*args))
    else:
        if not (numbers and len(args) == 3 and type(args[2]) is int and 1 <= args[2] <= MAX_POINTS):
            problems.append(Problem(where, key, f"expected [START, STOP, N] (N an integer in "
                                    f"[1, {MAX_POINTS}]), found {args!r}"))
            return None
        start, stop, n = args
        if kind == "geomspace" and (start <= 0 or stop <= 0):
            problems.append(Problem(where, key, f"expected START and STOP > 0 for geomspace, found {args!r}"))
            return None
        grid = {"linspace": np.linspace, "geomspace": np.geomspace}.get(kind)
        raw = grid(start, stop, n) if grid else 10.0 ** np.linspace(start, stop, n)
        values = tuple(float(f"{v:.{_DIGITS}g}") for v in raw.tolist())
    if not values:
        problems.append(Problem(where, key, f"the range {args!r} is empty"))
        return None
    return values


def _targets(axis: Axis, tree: dict, problems) -> list[tuple]:
    """The config paths a swept key sets: a series-only key sets it in every series."""
    paths = targets(axis.key, tree)
    if isinstance(paths, str):
        problems.append(Problem(axis.where, axis.key, paths))
        return []
    return paths


def targets(key: str, tree: dict) -> list[tuple] | str:
    """Paths set by a swept key, or why the key cannot be swept (with the nearest valid key)."""
    parts = tuple(int(p) if p.isdigit() else p for p in key.split("."))
    series = tree.get("series") if isinstance(tree.get("series"), list) else []
    shared = [k for k in cfg.SHARED_KEYS if k != "input"] + [f"input.{k}" for k in cfg.INPUT_KEYS]
    allowed = [*TOP_ONLY, *shared, *SERIES_ONLY, "series.N.KEY"]
    if parts[0] == "series":
        if len(parts) < 3 or not isinstance(parts[1], int):
            return "expected series.N.KEY, e.g. series.0.gain (or plain 'gain' for every series)"
        if parts[1] >= len(series):
            return f"no such series: the config has {len(series)} (indices 0..{len(series) - 1})"
        return [parts]
    if len(parts) == 1 and parts[0] in SERIES_ONLY:
        return [("series", i, parts[0]) for i in range(len(series))]
    if len(parts) == 1 and parts[0] in TOP_ONLY:
        return [parts]
    if key in shared or key == "input":
        # The top-level value, and every series that sets its own: the sweep must win everywhere.
        own = [("series", i, *parts) for i, s in enumerate(series) if _has(s, parts)]
        return [parts, *own]
    hint = cfg.suggest(key, [*TOP_ONLY, *shared, *SERIES_ONLY])
    return (f"cannot sweep this key (expected one of: {', '.join(allowed)})"
            + (f"; did you mean {hint!r}?" if hint else ""))


def _override_conflicts(axes, tree: dict, overrides, problems) -> None:
    """Refuse a --set of a swept key or of seed: the point names, columns and seeds would lie."""
    for text in overrides:
        key = text.partition("=")[0].strip()
        if not key:
            continue  # reported by config.build
        where = f"--set {text}"
        path = tuple(int(p) if p.isdigit() else p for p in key.split("."))
        if path[0] == "seed":
            problems.append(Problem(where, "seed", "a sweep derives each point's seed from the config's "
                                    "seed and the point's values, and a --set would replace them all; "
                                    "change 'seed:' in the config file, or sweep replicate seeds "
                                    "with --sweep seed=0,1,2"))
            continue
        for axis in axes:
            if _clash(path, axis, tree):
                problems.append(Problem(where, key, f"the sweep varies {axis.key!r} ({axis.where}), and "
                                        "a --set would replace every point's value while the folder "
                                        "names and sweep.csv still show the swept ones; drop this "
                                        f"--set, or sweep one value: --sweep {axis.key}=VALUE"))
                break


def _clash(path: tuple, axis: Axis, tree: dict) -> bool:
    """Whether setting `path` would change what the swept key sets (or override it)."""
    paths = targets(axis.key, tree)
    if isinstance(paths, str):
        return False
    # A shared key (width, input.var) swept at the top also loses to a series' own value.
    shared = paths[0][0] != "series" and axis.key.split(".")[0] in cfg.SHARED_KEYS
    own = path[2:] if len(path) > 2 and path[0] == "series" and shared else None
    return any(_overlap(path, t) for t in paths) or bool(own and _overlap(own, paths[0]))


def _axis_conflicts(axes, tree: dict, problems) -> None:
    """Refuse two swept keys that set the same value (gain and series.0.gain): one would win."""
    for i, a in enumerate(axes):
        for b in axes[i + 1:]:
            path = tuple(int(p) if p.isdigit() else p for p in b.key.split("."))
            other = tuple(int(p) if p.isdigit() else p for p in a.key.split("."))
            if _clash(path, a, tree) or _clash(other, b, tree):
                problems.append(Problem(b.where, b.key, f"this key and {a.key!r} ({a.where}) set the same "
                                        "value, and only one can win while both name the points; sweep one of them"))


def _overlap(a: tuple, b: tuple) -> bool:
    """Whether one key path contains the other (input and input.var; series and series.0.gain)."""
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def _has(node, parts) -> bool:
    for p in parts:
        if not isinstance(node, dict) or p not in node:
            return False
        node = node[p]
    return True


def _point_experiment(tree, lines, source, overrides, axes, values, seed) -> Experiment:
    """The base tree with one point's values set (each located at its sweep line), validated."""
    tree, lines = copy.deepcopy(tree), dict(lines)
    for axis, (key, value) in zip(axes, values):
        where = f"{axis.where} ({key}={_show(value)})"
        for path in targets(key, tree):
            node = tree
            for part in path[:-1]:
                node = node[part] if isinstance(node, list) else node.setdefault(part, {})
                if not isinstance(node, (dict, list)):
                    break  # a plain value where a mapping belongs: the checker reports it
            else:
                node[path[-1]] = copy.deepcopy(value)
            for p in [p for p in lines if p[:len(path)] == path]:
                del lines[p]
            lines[path] = where
    if "seed" not in dict(values):
        tree["seed"] = point_seed(seed, values)
        lines[("seed",)] = f"{cfg.locate(source, lines, ('seed',))} (derived for this point)"
    return cfg.build(tree, lines, source, overrides)


def point_seed(seed: int, values) -> int:
    """A point's own seed: the config's seed and the point's values through SeedSequence.

    It depends on nothing else (not on the order of the points, nor on the rest of the grid), so
    a point gives the same numbers whenever, wherever and in whatever company it runs.
    """
    import numpy as np

    digest = hashlib.sha256(_canonical(values).encode()).digest()
    words = [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)]
    hi, lo = np.random.SeedSequence(seed, spawn_key=words).generate_state(2, np.uint64).tolist()
    return (hi << 64) | lo


def _canonical(values) -> str:
    return ",".join(f"{k}={json.dumps(v, sort_keys=True)}" for k, v in sorted(values))


def _show(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))


def point_name(values) -> str:
    """The point's folder name, 'gain=0.5,width=64'; a hash suffix when characters were replaced."""
    text = ",".join(f"{k}={_show(v)}" for k, v in values) or "base"
    safe = _SAFE.sub("_", text)
    if safe != text or len(safe) > 120:
        safe = safe[:110] + "-" + hashlib.sha256(text.encode()).hexdigest()[:8]
    return safe


# ---- the folder ----------------------------------------------------------------------------
