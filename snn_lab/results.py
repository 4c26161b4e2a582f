"""The results folder, a documented contract: build its tables, write them atomically, read them."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from snn_lab import theory
from snn_lab.config import Experiment
from snn_lab.simulate.engine import SeriesRun
from snn_lab.simulate.streams import SCHEME
from snn_lab.simulate.threads import default_threads
from snn_lab import safefs, spectrum_results, training_results, validate
from snn_lab.statistics import (MEASURED, PROBES, SETTLED, SUMMARY_STATS, json_number, overflow, settle_layer,
                                settled, summarize)
from snn_lab.validate import ResultsError
from snn_lab.theory import width_correction

RESULTS_VERSION = 1
FILES = ("config.yaml", "layers.csv", "summary.csv", "samples.csv", "meta.json")
KEY_COLUMNS = ("series", "activation", "init")
# The finite-width theory beside it (docs/finite-width.md): corrected value, spread, z-score.
FINITE_WIDTH = (*width_correction.COLUMNS, *width_correction.FW_Z)
LAYER_COLUMNS = (*KEY_COLUMNS, "trial", "layer", *MEASURED, *theory.THEORY, *theory.PROBES, *FINITE_WIDTH)
SUMMARY_COLUMNS = (*KEY_COLUMNS, "layer", "trials", *SUMMARY_STATS, *theory.THEORY, *theory.PROBES,
                   *FINITE_WIDTH, *SETTLED)
SAMPLE_COLUMNS = ("series", "layer", "value")
# Columns a folder may lack (written before they existed): theory, and the probes with their sds.
OPTIONAL_COLUMNS = (*theory.THEORY, *theory.PROBES, *PROBES, *(f"{p}_sd" for p in PROBES), *FINITE_WIDTH,
                    *SETTLED)
TEXT_COLUMNS = set(KEY_COLUMNS)
TABLES = {"layers.csv": LAYER_COLUMNS, "summary.csv": SUMMARY_COLUMNS, "samples.csv": SAMPLE_COLUMNS}
# What --force may replace: a folder holding only what snn-lab writes there.
PLOTS, FIGURE_SUFFIXES = "plots", (".png", ".svg", ".pdf")
SWEEP_FILES = ("sweep.json", "sweep.csv")
SWEEP_POINTS = "points"
# Written only when asked for: measure: [jacobian], a train: block.
OPTIONAL_TABLES = {**spectrum_results.TABLES, **training_results.TABLES}
OPTIONAL_FILES = tuple(OPTIONAL_TABLES)

@dataclass
class Results:
    """A run's tables: per-trial layers, across-trial summary, the resolved config and meta."""

    config: dict
    layers: dict[str, np.ndarray]
    summary: dict[str, np.ndarray]
    meta: dict = field(default_factory=dict)
    path: Path | None = None
    samples: dict[str, np.ndarray] = field(default_factory=dict)
    tables: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # OPTIONAL_FILES written, by name

    @property
    def labels(self) -> list[str]:
        """Series labels in config order."""
        return [s["label"] for s in self.config["series"]]

    def series_summary(self, label: str) -> dict[str, np.ndarray]:
        """summary.csv's rows of one series, as columns."""
        keep = self.summary["series"] == label
        return {k: v[keep] for k, v in self.summary.items()}


def collect(exp: Experiment, runs: dict[str, SeriesRun], meta: dict | None = None,
            training: dict | None = None) -> Results:
    """Simulated statistics + theory (+ training runs, by label) -> the results tables (nothing written yet)."""
    layers: dict[str, list] = {c: [] for c in LAYER_COLUMNS}
    summary: dict[str, list] = {c: [] for c in SUMMARY_COLUMNS}
    samples: dict[str, list] = {c: [] for c in SAMPLE_COLUMNS}
    events, width_notes, fixed_points = [], {}, {}
    fw_stats = [MEASURED.index(c) for c in ("mean", "var", "preact_var")]
    for s in exp.series:
        trials = runs[s.label].stats
        for layer, values in sorted(runs[s.label].samples.items()):
            samples["series"].extend([s.label] * len(values))
            samples["layer"].extend([layer] * len(values))
            samples["value"].extend(values.tolist())
        pred = theory.predict(s)
        probes = theory.predict_probes(s, correlation="correlation" in exp.measure, prediction=pred)
        if "gradients" not in exp.measure:
            probes[:, 0] = np.nan
        fw, why = width_correction.predict(s)
        if why:
            width_notes[s.label] = why
        key = (s.label, s.make_activation().label, s.init)
        depth1 = trials.shape[1]
        for t in range(trials.shape[0]):
            _extend(layers, KEY_COLUMNS, key, depth1)
            layers["trial"].extend([t] * depth1)
            layers["layer"].extend(range(depth1))
            _columns(layers, MEASURED, trials[t])
            _columns(layers, theory.THEORY, pred)
            _columns(layers, theory.PROBES, probes)
            _columns(layers, FINITE_WIDTH, np.hstack([fw, _z(trials[t][:, fw_stats], fw, 1)]))
        _extend(summary, KEY_COLUMNS, key, depth1)
        summary["layer"].extend(range(depth1))
        summary["trials"].extend([trials.shape[0]] * depth1)
        _columns(summary, SUMMARY_STATS, summarize(trials))
        _columns(summary, theory.THEORY, pred)
        _columns(summary, theory.PROBES, probes)
        mean = summarize(trials)[:, [2 * i for i in fw_stats]]
        _columns(summary, FINITE_WIDTH, np.hstack([fw, _z(mean, fw, trials.shape[0])]))
        fixed, why = theory.fixed_output(s)  # where the series should settle, if anywhere
        fixed_points[s.label] = {"mean": fixed[0], "var": fixed[1]} if fixed else {"note": why}
        _columns(summary, SETTLED, np.column_stack([settled(mean[:, 0], mean[:, 1], fixed),
                                                    settled(pred[:, 0], pred[:, 1], fixed)]))
        events += [{"series": s.label, "trial": t, "layer": layer} for t, layer in overflow(trials)]
    meta = {**(meta or {}), "results_version": RESULTS_VERSION, "overflow": events,
            "finite_width_notes": width_notes, "fixed_points": fixed_points}
    extra, notes = spectrum_results.build(exp, runs)
    if notes:
        meta["jacobian_notes"] = notes
    trained, notes = training_results.build(exp, training)
    extra.update(trained)
    if notes:
        meta["training_notes"] = notes
    return Results(exp.to_dict(), _arrays(layers), _arrays(summary), meta, samples=_arrays(samples), tables=extra)


def _z(values: np.ndarray, fw: np.ndarray, trials: int) -> np.ndarray:
    """(simulation - corrected prediction) in predicted standard errors of a mean of `trials`."""
    with np.errstate(all="ignore"):
        z = (values - fw[:, :3]) / (fw[:, 3:6] / np.sqrt(trials))
    return np.where(np.isfinite(z), z, np.nan)


def _extend(table, columns, values, n):
    for c, v in zip(columns, values):
        table[c].extend([v] * n)


def _columns(table, names, block):
    for i, c in enumerate(names):
        table[c].extend(block[:, i].tolist())


def _arrays(table: dict[str, list]) -> dict[str, np.ndarray]:
    return {c: np.array(v, dtype=object if c in TEXT_COLUMNS else None) for c, v in table.items()}


ROW_BYTES = 1024  # memory per layers.csv row while the tables are built and written (generous)


def check_size(exp: Experiment, available: int) -> None:
    """Refuse, before the run, results tables that would not fit in memory (depth x trials)."""
    from snn_lab.yamlio import ConfigError, Problem

    rows = sum(exp.trials * (s.depth + 1) for s in exp.series)
    if rows * ROW_BYTES > available // 2:
        raise ConfigError([Problem(exp.where(("trials",)), "trials",
                                   f"the results would hold {rows:,} rows (about {rows * ROW_BYTES / 2**30:.3g} "
                                   f"GiB in memory), more than half the {available / 2**30:.3g} GiB available; "
                                   "lower 'trials' or 'depth'")])


# ---- writing -------------------------------------------------------------------------------

def check_target(out: Path, force: bool) -> None:
    """Refuse an existing non-empty folder unless forced, and with force anything snn-lab did not
    write (checked before a run starts and again just before the folder is replaced)."""
    if os.path.islink(out):
        if not force:
            raise ResultsError(f"{out} is a symbolic link; use --force to replace the link (its "
                               "target is left untouched) or --out DIR to write elsewhere")
        return
    if out.exists() and not out.is_dir():
        raise ResultsError(f"{out} exists and is not a folder; choose another --out")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise ResultsError(f"{out} already exists and is not empty; use --force to replace it "
                               "or --out DIR to write elsewhere")
        check_replaceable(out)


def check_replaceable(out: Path) -> None:
    """ResultsError unless out is a results or sweep folder of snn-lab's own (what --force may
    delete): never the current folder, never one holding a file snn-lab did not write."""
    here = Path.cwd().resolve()
    if out.resolve() == here or out.resolve() in here.parents:
        raise ResultsError(f"{out} is the current folder or holds it; --force never replaces it: "
                           "choose another --out")
    stranger = foreign(out)
    if stranger is not None:
        raise ResultsError(f"{stranger} was not written by snn-lab; --force replaces only a results "
                           f"or sweep folder of snn-lab's own, so {out} is left as it is: move that "
                           "file away, or choose another --out")


def foreign(folder: Path) -> Path | None:
    """The first entry of folder that snn-lab did not write (None: all of it is snn-lab's).

    A results folder holds FILES (meta.json at least) and plots/; a sweep folder sweep.json,
    sweep.csv, points/ (results folders) and plots/. Symbolic links are never snn-lab's; hidden
    temporaries and locks are.
    """
    entries = _entries(folder)
    names = {e.name for e in entries}
    if "sweep.json" in names:
        allowed = {*SWEEP_FILES, SWEEP_POINTS, PLOTS}
    elif "meta.json" in names:
        allowed = {*FILES, *OPTIONAL_FILES, PLOTS}
    else:
        return folder / min(names) if names else None
    for e in entries:
        if _ours_hidden(e.name):
            continue
        if e.name not in allowed or e.is_symlink():
            return folder / e.name
        is_folder = e.name in (PLOTS, SWEEP_POINTS)
        if not (e.is_dir(follow_symlinks=False) if is_folder else e.is_file(follow_symlinks=False)):
            return folder / e.name
        if e.name == PLOTS:
            for f in _entries(folder / PLOTS):
                if not (_ours_hidden(f.name) or f.name.endswith(FIGURE_SUFFIXES)
                        and f.is_file(follow_symlinks=False)):
                    return folder / PLOTS / f.name
        if e.name == SWEEP_POINTS:
            for p in _entries(folder / SWEEP_POINTS):
                if _ours_hidden(p.name):
                    continue
                if p.is_symlink() or not p.is_dir(follow_symlinks=False):
                    return folder / SWEEP_POINTS / p.name
                inner = foreign(folder / SWEEP_POINTS / p.name)
                if inner is not None or not (folder / SWEEP_POINTS / p.name / "meta.json").is_file():
                    return inner or folder / SWEEP_POINTS / p.name
    return None


def _entries(folder: Path) -> list[os.DirEntry]:
    with os.scandir(folder) as it:
        return sorted(it, key=lambda e: e.name)


def _ours_hidden(name: str) -> bool:
    """A temporary, set-aside or lock file of snn-lab's ('.NAME.tmp-*', '.NAME.old-*', '*.lock')."""
    return name.startswith(".") and (".tmp-" in name or ".old-" in name or name.endswith(".lock"))


def write(results: Results, out: Path, force: bool = False) -> Path:
    """Write the folder atomically: build it beside the target, then rename it into place.

    An interrupted run leaves at most a hidden '.name.tmp-*' folder, never a partial 'name'.
    """
    out = Path(out)
    check_target(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Never write through a symlink named like the target: build a fresh folder, then rename.
    tmp = safefs.fresh_dir(out.parent, f".{out.name}.tmp-")
    try:
        config_text = yaml.safe_dump(results.config, sort_keys=False)
        safefs.write_text(tmp / "config.yaml", config_text)
        tables = {"layers.csv": results.layers, "summary.csv": results.summary, "samples.csv": results.samples}
        for name, table in tables.items():
            safefs.write_text(tmp / name, _csv(table, TABLES[name]))
        for name, table in results.tables.items():
            safefs.write_text(tmp / name, _csv(table, OPTIONAL_TABLES[name]))
        tables.update(results.tables)
        # meta.json last: its 'complete' flag is what readers require; 'rows' detects truncation.
        rows = {name: len(next(iter(table.values()))) for name, table in tables.items()}
        digest = {"config.yaml": hashlib.sha256(config_text.encode("utf-8")).hexdigest()}
        meta = {**results.meta, "rows": rows, "sha256": digest, "complete": True}
        safefs.write_text(tmp / "meta.json", json.dumps(meta, indent=2, allow_nan=False, default=str) + "\n")
        with safefs.FolderLock(out.parent, follow=True):  # the user's folder, a link or not
            # Another run may have finished the same target while this one computed.
            if out.is_dir() and any(out.iterdir()) and not force:
                raise ResultsError(f"{out} was written by another run while this one computed; "
                                   "not overwritten (use --force to replace it or --out DIR)")
            check_target(out, force)
            _swap_into_place(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    results.path = out
    return out


def _swap_into_place(tmp: Path, out: Path) -> None:
    """Rename tmp to out; an old folder (allowed by force) is moved aside first, then removed."""
    old = None
    if os.path.lexists(out):
        old = safefs.fresh_dir(out.parent, f".{out.name}.old-")
        os.rename(out, old / out.name)  # a link is moved, not followed
    try:
        os.rename(tmp, out)  # atomic; fails if another run put a non-empty folder there first
    except OSError:
        if old is not None:
            os.rename(old / out.name, out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)  # rmtree never follows links


def _csv(table: dict[str, np.ndarray], columns) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    cols = [table[c].tolist() for c in columns]
    # repr of a Python float reads back to the same double: the tables round-trip exactly.
    w.writerows(zip(*cols))
    return buf.getvalue()


# ---- reading -------------------------------------------------------------------------------

def read(path: str | Path) -> Results:
    """Read a complete results folder; ResultsError names the file, line or key that is wrong."""
    path = Path(path)
    if not path.is_dir():
        raise ResultsError(f"{path}: no such results folder")
    missing = [f for f in FILES if not os.path.lexists(path / f)]
    if missing:
        raise ResultsError(f"{path}: not a complete results folder (missing {', '.join(missing)}); "
                           "was the run interrupted?")
    meta = validate.read_meta(path / "meta.json", RESULTS_VERSION)
    config, exp = validate.read_config(path / "config.yaml", meta.get("sha256", {}).get("config.yaml"))
    counts = meta.get("rows", {})  # folders written before 'rows' existed: checked against config
    tables = {name: validate.read_table(path / name, columns, counts.get(name), OPTIONAL_COLUMNS)
              for name, columns in TABLES.items()}
    validate.check_tables(path, exp, tables["summary.csv"], tables["layers.csv"], tables["samples.csv"])
    extra = {**spectrum_results.read(path, exp, counts), **training_results.read(path, exp, counts)}
    return Results(config, tables["layers.csv"], tables["summary.csv"], meta, path, tables["samples.csv"], extra)


def read_table(path: Path, columns=None) -> dict[str, np.ndarray]:
    """A results CSV as columns: text columns as object arrays, the rest float64 (int for counts)."""
    return validate.read_table(Path(path), columns)


def environment(backend: str = "numpy") -> dict:
    """Versions, BLAS, backend, host and git commit: what meta.json records about where a run ran."""
    import platform
    import socket
    import subprocess
    import sys

    from snn_lab import __version__

    try:
        blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
    except (TypeError, AttributeError):  # numpy < 1.26 has no mode="dicts"
        blas = {}
    commit = None
    try:
        here = Path(__file__).resolve().parent
        done = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=5, check=False)
        commit = done.stdout.strip() or None if done.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        pass
    kernels = None
    if backend == "compiled":  # which instruction-set copy of the C loops ran (all give the same bits)
        from snn_lab.simulate.backends import _kernels
        kernels = _kernels.current()
    return {"snn_lab": __version__, "numpy": np.__version__, "python": sys.version.split()[0],
            "platform": platform.platform(), "host": socket.gethostname(), "blas": blas,
            "threads": {"engine": default_threads()}, "backend": backend, "kernels": kernels,
            "streams": SCHEME, "git_commit": commit}


def to_json(results: Results) -> dict:
    """The summary as JSON-ready data; non-finite values become null (listed under overflow)."""
    series = []
    for label in results.labels:
        rows = results.series_summary(label)
        cols = [c for c in SUMMARY_COLUMNS if c not in KEY_COLUMNS and c in rows]
        layers = [{c: json_number(rows[c][i]) for c in cols} for i in range(len(rows["layer"]))]
        settles = {"simulation": settle_layer(rows["settled"]), "theory": settle_layer(rows["theory_settled"])} \
            if "settled" in rows else None
        series.append({"label": label, "activation": str(rows["activation"][0]),
                       "init": str(rows["init"][0]), "settles_at": settles, "layers": layers})
    return {"name": results.config["name"], "path": str(results.path) if results.path else None,
            "seed": results.config["seed"], "trials": results.config["trials"],
            "series": series, "overflow": results.meta.get("overflow", [])}

