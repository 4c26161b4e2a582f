"""Sweeps: a grid over config keys -> one experiment per point -> a folder of runs + sweep.csv."""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import itertools
import json
import math
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from snn_lab import config as cfg
from snn_lab import safefs
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

def manifest(sweep: Sweep, extra: dict | None = None) -> dict:
    """sweep.json: what the grid is, which folder holds which point, with which seed."""
    return {"sweep_version": SWEEP_VERSION, "name": sweep.name, "source": sweep.source,
            "keys": list(sweep.keys), "axes": {a.key: list(a.values) for a in sweep.axes},
            "points": [{"name": p.name, "folder": f"{POINTS}/{p.name}", "values": dict(p.values),
                        "seed": str(p.experiment.seed)} for p in sweep.points],
            **(extra or {})}


def plan(sweep: Sweep, out: Path, force: bool) -> list[Point]:
    """The points still to run in `out`: all if new or forced; else those not yet complete.

    A point counts as complete when its folder is a complete results folder written with
    exactly the point's resolved config: a changed base config is a conflict, not a resume.
    """
    from snn_lab import results

    if out.exists() and not out.is_dir():
        raise SweepError(f"{out} exists and is not a folder; choose another --out")
    if force and out.is_dir() and any(out.iterdir()):
        try:
            results.check_replaceable(out)  # --force replaces only what snn-lab wrote
        except results.ResultsError as exc:
            raise SweepError(str(exc)) from None
    if force or not out.is_dir() or not any(out.iterdir()):
        return list(sweep.points)
    if not (out / MANIFEST).is_file():
        raise SweepError(f"{out} already exists and is not a sweep folder; use --force to replace it "
                         "or --out DIR to write elsewhere")
    names = {p.name for p in sweep.points}
    stale = sorted(f.name for f in (out / POINTS).iterdir()
                   if f.name not in names and not f.name.startswith(".")) if (out / POINTS).is_dir() else []
    if stale:
        raise SweepError(f"{out} holds {len(stale)} point(s) that are not in this grid (e.g. {POINTS}/{stale[0]}); "
                         "use --force to replace that sweep, or --out DIR for a new one")
    todo, conflicts = [], []
    for p in sweep.points:
        folder = out / POINTS / p.name
        if not folder.exists():
            todo.append(p)
            continue
        try:
            done = results.read(folder).config
        except results.ResultsError:
            todo.append(p)  # an unreadable leftover: run it again (written atomically over it)
            continue
        if done != _roundtrip(p.experiment.to_dict()):
            conflicts.append(p.name)
    if conflicts:
        raise SweepError(f"{out}: {len(conflicts)} complete point(s) were run with another config "
                         f"(e.g. {POINTS}/{conflicts[0]}); use --force to run every point again, or "
                         "--out DIR for a new sweep")
    return todo


def _roundtrip(d: dict) -> dict:
    import yaml

    return yaml.safe_load(yaml.safe_dump(d, sort_keys=False))


def hold(out: Path) -> safefs.FolderLock:
    """The sweep folder `out`, created if missing, locked for this process: one writer at a time."""
    if os.path.lexists(out) and not os.path.isdir(out):
        raise SweepError(f"{out} exists and is not a folder; choose another --out")
    try:
        return safefs.FolderLock(safefs.real_dir(out), wait=False)
    except safefs.Busy:
        raise SweepError(f"{out} is being written by another snn-lab sweep (it holds the folder's "
                         "lock); wait for that one to end, or choose another --out") from None


def start(sweep: Sweep, out: Path, force: bool, extra: dict | None = None) -> None:
    """Make (or, forced, empty) the held sweep folder and write its manifest."""
    if force and not (out / MANIFEST).is_file():
        # A results folder of snn-lab's (plan checked every entry): emptied in place, since the
        # lock is on this folder; a rename would leave the lock behind on the old one.
        with os.scandir(out) as entries:
            for e in entries:
                if e.is_dir(follow_symlinks=False):
                    shutil.rmtree(e.path)  # never follows links
                else:
                    os.unlink(e.path)
    safefs.real_dir(out / POINTS)
    _atomic(out / MANIFEST, json.dumps(manifest(sweep, extra), indent=2) + "\n")


def _atomic(path: Path, text: str) -> None:
    """Whole or not at all, never through a link; a failed write (a full disk) leaves no temporary."""
    safefs.write_text(path, text)


def finish(sweep: Sweep, out: Path, extra: dict | None = None) -> Path:
    """Write sweep.csv from every point's summary.csv; drop folders of points not in the grid."""
    from snn_lab import results

    # A swept `trials` is already a summary column (same values): written once.
    keys = [k for k in sweep.keys if k not in results.SUMMARY_COLUMNS]
    columns = ("point", *keys, *DERIVED, *results.SUMMARY_COLUMNS)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for p in sweep.points:
        table = results.read_table(out / POINTS / p.name / "summary.csv")
        by_label = {s.label: (s.weight_var, s.bias_var) for s in p.experiment.series}
        cols = [table[c].tolist() for c in results.SUMMARY_COLUMNS]
        for row in zip(*cols):
            w.writerow((p.name, *(_cell(v) for k, v in p.values if k in keys), *by_label[row[0]], *row))
    _atomic(out / TABLE, buf.getvalue())
    rows = buf.getvalue().count("\n") - 1  # no cell holds a newline: labels refuse control characters
    names = {p.name for p in sweep.points}
    for folder in (out / POINTS).iterdir():
        if folder.name not in names and not folder.name.startswith("."):
            shutil.rmtree(folder, ignore_errors=True)  # a forced sweep's stale points
    _atomic(out / MANIFEST, json.dumps(manifest(sweep, {**(extra or {}), "rows": rows, "complete": True}), indent=2) + "\n")
    return out / TABLE


def _cell(v):
    return v if isinstance(v, (int, float, str)) and not isinstance(v, bool) else _show(v)


# ---- reading -------------------------------------------------------------------------------

@dataclass
class SweepTable:
    """sweep.csv as columns, with the swept keys and the manifest."""

    keys: tuple[str, ...]
    table: dict
    manifest: dict
    path: Path


def is_sweep(path: str | Path) -> bool:
    """Whether a folder is (or was) a sweep folder: a manifest, a sweep.csv or points/ of its own."""
    return any(os.path.lexists(Path(path) / name) for name in (MANIFEST, TABLE, POINTS))


def read(path: str | Path) -> SweepTable:
    """Read a complete sweep folder's sweep.csv, every check made (validate.py): numeric key columns
    as float64, others as text. A damaged folder is a SweepError naming the file and line or key."""
    from snn_lab import results, validate

    path = Path(path)
    try:
        meta = validate.read_manifest(path / MANIFEST, SWEEP_VERSION)
        if not os.path.lexists(path / TABLE):
            raise SweepError(f"{path / TABLE}: missing: the sweep is not complete; run the same command "
                             "again to finish it")
        keys = tuple(meta["keys"])
        text = {k for k in keys if not all(_number(v) for v in meta["axes"][k])}
        summary = [c for c in results.SUMMARY_COLUMNS if c not in keys]
        columns = ("point", *keys, *DERIVED, *summary)
        table = validate.read_table(path / TABLE, columns, meta.get("rows"), results.OPTIONAL_COLUMNS, text)
        validate.check_sweep_rows(path / TABLE, table, meta)
    except validate.ResultsError as exc:
        raise SweepError(str(exc)) from None
    return SweepTable(keys, table, meta, path)


def _number(v) -> bool:
    return type(v) in (int, float)


def pooled(sweep: SweepTable, key: str = "seed") -> SweepTable:
    """The table with `key` (replicate seeds) pooled away: one row per (other keys, series, layer).

    Each pooled row is what one run with all the points' trials would give: `trials` summed,
    every statistic the mean over all trials, its `_sd` the spread of all trials together
    (within-point spreads plus the spread of the point means); theory and derived columns,
    equal across seeds, are kept.
    """
    import numpy as np

    t = sweep.table
    keys = tuple(k for k in sweep.keys if k != key)
    group_by = [*keys, "series", "layer"]
    groups: dict[tuple, list[int]] = {}
    for i, values in enumerate(zip(*(t[c].tolist() for c in group_by))):
        groups.setdefault(values, []).append(i)
    stats = [c[:-3] for c in t if c.endswith("_sd") and c[:-3] in t]
    out = {c: [] for c in t if c != key}
    for rows in groups.values():
        n = t["trials"][rows].astype(np.float64)
        first = rows[0]
        for c in out:
            if c == "trials":
                out[c].append(int(n.sum()))
            elif c == "point":
                out[c].append(",".join(f"{k}={_show(t[k][first])}" for k in keys) or "pooled")
            elif c not in stats and not c.endswith("_sd"):
                out[c].append(t[c][first])
        with np.errstate(all="ignore"):
            for c in stats:
                m, sd = t[c][rows], t[f"{c}_sd"][rows]
                mean = float((n * m).sum() / n.sum())
                within = ((n - 1.0) * np.where(n > 1, sd, 0.0) ** 2).sum()
                between = (n * (m - mean) ** 2).sum()
                out[c].append(mean)
                out[f"{c}_sd"].append(float(np.sqrt((within + between) / (n.sum() - 1.0))) if n.sum() > 1 else np.nan)
    table = {c: np.array(v, dtype=t[c].dtype) for c, v in out.items()}
    manifest = {**sweep.manifest, "keys": list(keys), "pooled": {key: sorted(set(t[key].tolist()))}}
    return SweepTable(keys, table, manifest, sweep.path)
