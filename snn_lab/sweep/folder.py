"""A sweep's folder: its manifest, one writer at a time, resumable points, sweep.csv, read back checked."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from snn_lab import safefs
from snn_lab.sweep.spec import DERIVED, MANIFEST, POINTS, SWEEP_VERSION, TABLE, Point, Sweep, SweepError, _show


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
    safefs.write_text(out / MANIFEST, json.dumps(manifest(sweep, extra), indent=2) + "\n")


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
    safefs.write_text(out / TABLE, buf.getvalue())
    rows = buf.getvalue().count("\n") - 1  # no cell holds a newline: labels refuse control characters
    names = {p.name for p in sweep.points}
    for folder in (out / POINTS).iterdir():
        if folder.name not in names and not folder.name.startswith("."):
            shutil.rmtree(folder, ignore_errors=True)  # a forced sweep's stale points
    safefs.write_text(out / MANIFEST, json.dumps(manifest(sweep, {**(extra or {}), "rows": rows, "complete": True}), indent=2) + "\n")
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
