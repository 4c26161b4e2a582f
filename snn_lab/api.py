"""A small Python API for notebooks: run a config, or read a results folder, and get its tables
as columns (`pandas.DataFrame(tables.summary)` takes them; pandas itself stays optional)."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from snn_lab import config as cfg
from snn_lab import results
from snn_lab.errors import SnnLabError

BASE_TABLES = ("layers", "summary", "samples")


class ApiError(SnnLabError):
    """What the API was asked for cannot be done (failed sweep points, a table that is not there)."""


@dataclass(frozen=True)
class Tables:
    """One run's tables, as columns: {column: numpy array}, text columns as object arrays."""

    run: results.Results

    @property
    def layers(self) -> dict[str, np.ndarray]:
        """layers.csv: one row per (series, trial, layer)."""
        return self.run.layers

    @property
    def summary(self) -> dict[str, np.ndarray]:
        """summary.csv: one row per (series, layer), across-trial means, sds and theory."""
        return self.run.summary

    @property
    def samples(self) -> dict[str, np.ndarray]:
        """samples.csv: post-activation values of trial 0 at a few layers (the histograms)."""
        return self.run.samples

    @property
    def config(self) -> dict:
        """The resolved config, every default filled in (config.yaml)."""
        return self.run.config

    @property
    def meta(self) -> dict:
        """meta.json: versions, seed, timing, overflow events, notes."""
        return self.run.meta

    @property
    def path(self) -> Path | None:
        """The results folder, when one was written or read."""
        return self.run.path

    @property
    def names(self) -> tuple[str, ...]:
        """The tables this run has: layers, summary, samples, then optional ones (training, ...)."""
        return (*BASE_TABLES, *(Path(f).stem for f in self.run.tables))

    def table(self, name: str = "summary") -> dict[str, np.ndarray]:
        """One table by name (`names` lists them), as columns."""
        if name in BASE_TABLES:
            return getattr(self, name)
        found = self.run.tables.get(f"{name}.csv")
        if found is None:
            raise ApiError(f"no table {name!r} in this run (it has: {', '.join(self.names)})")
        return found

    def records(self, name: str = "summary") -> list[dict]:
        """One table as a list of rows ({column: Python value}), in file order."""
        return _records(self.table(name))

    def to_pandas(self, name: str = "summary"):
        """One table as a pandas DataFrame (needs pandas, which snn-lab does not require)."""
        return _pandas().DataFrame(self.table(name))


@dataclass(frozen=True)
class SweepTables:
    """A sweep folder's sweep.csv as columns: one row per (point, series, layer), keys first."""

    keys: tuple[str, ...]
    sweep: dict[str, np.ndarray]
    path: Path

    def records(self) -> list[dict]:
        """sweep.csv as a list of rows."""
        return _records(self.sweep)

    def to_pandas(self):
        """sweep.csv as a pandas DataFrame (needs pandas)."""
        return _pandas().DataFrame(self.sweep)

    def point(self, name: str) -> Tables:
        """One point's results folder (`sweep["point"]` names them)."""
        from snn_lab.sweep.spec import POINTS

        return read(self.path / POINTS / name)


def experiment(config=None, overrides: Mapping | tuple[str, ...] = ()) -> cfg.Experiment:
    """A validated Experiment from a path, a shipped example's name, a dict or None (the default).

    `overrides` are `--set`'s: {"depth": 16} or ("depth=16",). A bad key or value is a ConfigError
    whose lines name the file (or <dict>) and key, as on the command line.
    """
    sets = _overrides(overrides)
    if isinstance(config, cfg.Experiment):
        if sets:
            raise ApiError("overrides apply to a config path, name or dict, not to a built Experiment")
        return config
    if isinstance(config, Mapping):
        return cfg.build(copy.deepcopy(dict(config)), {}, "<dict>", sets)
    return cfg.load(None if config is None else str(config), overrides=sets)


def run(config=None, overrides: Mapping | tuple[str, ...] = (), out: str | Path | None = None,
        force: bool = False, backend: str | None = None, jobs: int = 1) -> Tables | SweepTables:
    """Simulate one experiment (as `snn-lab run` does) and return its tables; `out` also writes
    the results folder there (`force` replaces one). A config with a sweep: block runs its points
    (`jobs` at once) into `out` (default results/<name>), resuming a folder left unfinished, and
    returns the sweep's table."""
    from snn_lab import executors

    sweep = _sweep(config, overrides)
    if sweep is not None:
        return _run_sweep(sweep, out, force, backend, jobs)
    exp = experiment(config, overrides)
    executors.check_resources(exp)
    if out is not None:
        results.check_target(Path(out), force)
    res = executors.simulate(exp, backend=backend)
    if out is not None:
        results.write(res, Path(out), force)
        res.path = Path(out)
    return Tables(res)


def read(path: str | Path) -> Tables | SweepTables:
    """Read a results folder (Tables) or a sweep folder (SweepTables), every check made on read."""
    from snn_lab import sweep

    if sweep.is_sweep(path) and not (Path(path) / "summary.csv").exists():
        t = sweep.read(path)
        return SweepTables(t.keys, t.table, t.path)
    return Tables(results.read(path))


def _sweep(config, overrides):
    """The config's sweep (sweep.load, as `snn-lab run` loads it), or None without a sweep: block."""
    from snn_lab import sweep as sw

    if isinstance(config, cfg.Experiment) or isinstance(config, Mapping) and "sweep" not in config:
        return None
    if isinstance(config, Mapping):
        import yaml

        return sw.load("<dict>", text=yaml.safe_dump(dict(config), sort_keys=False),
                       overrides=_overrides(overrides))
    return sw.load(None if config is None else str(config), overrides=_overrides(overrides))


def _run_sweep(sweep, out, force: bool, backend: str | None, jobs: int) -> SweepTables:
    """Hold the folder, run the points not yet complete (sweep.runs, as the CLI does), write sweep.csv."""
    from snn_lab import executors
    from snn_lab import sweep as sw

    executors.check_points(sweep.points, jobs)  # the points of `jobs` run side by side
    out = Path(out) if out is not None else Path("results") / sweep.name
    with sw.hold(out):
        state = sw.run_points(sw.prepare(sweep, out, force), jobs, "local", None, backend)
        if state.failed:
            name, exc = state.failed[0]
            raise ApiError(f"{len(state.failed)} of {len(sweep.points)} points failed (first: {name}: "
                           f"{type(exc).__name__}: {exc}); the others are in {out}/{sw.POINTS}/; run again "
                           "to retry them")
        sw.finish(sweep, out, {"executor": "local", "jobs": jobs})
    return read(out)


def _overrides(overrides) -> tuple[str, ...]:
    if isinstance(overrides, Mapping):
        return tuple(f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in overrides.items())
    if isinstance(overrides, str):
        return (overrides,)
    return tuple(overrides)


def _records(table: dict[str, np.ndarray]) -> list[dict]:
    names = list(table)
    return [dict(zip(names, row)) for row in zip(*(table[c].tolist() for c in names))]


def _pandas():
    try:
        import pandas
    except ImportError:
        raise ImportError("to_pandas() needs pandas (pip install pandas); the tables themselves are "
                          "dicts of numpy columns that need nothing more") from None
    return pandas
