"""What `check` compares: a run's snapshot, and the baseline file that keeps one (its format)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from snn_lab import training_results
from snn_lab.errors import BaselineProblem
from snn_lab.results import Results, ResultsError, read
from snn_lab.statistics import SUMMARY_STATS

BASELINE_FORMAT, BASELINE_VERSION = "snn-lab baseline", 1
BASELINE_COLUMNS = ("layer", "trials", *SUMMARY_STATS)
# backend: exact mode refuses to compare bits across backends (see compare).
PROVENANCE = ("snn_lab", "numpy", "python", "platform", "git_commit", "finished_utc", "backend", "streams")


class BaselineError(BaselineProblem):
    """A baseline that is missing, unreadable, or not comparable with the results (exit 3)."""


class NotComparable(BaselineError):
    """Baseline and results do not describe the same values; `differences` says which."""

    def __init__(self, differences: list[str]):
        super().__init__("; ".join(differences))
        self.differences = list(differences)


@dataclass(frozen=True)
class Snapshot:
    """A run as the comparison sees it: resolved config and, per series, summary columns."""

    config: dict
    series: dict[str, dict[str, np.ndarray]]
    source: str
    meta: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)  # training_results.finals: {label: {column: [mean, sd, n]}}


def snapshot(res: Results, source: str | None = None) -> Snapshot:
    """A results folder's summary, per series (probe columns an older folder lacks: NaN, unmeasured)."""
    series = {}
    for label in res.labels:
        rows = res.series_summary(label)
        nan = np.full(len(rows["layer"]), math.nan)
        series[label] = {**{c: nan for c in SUMMARY_STATS}, **rows}
    return Snapshot(res.config, series, source or str(res.path), res.meta, training_results.finals(res.tables))


def load_baseline(path: str | Path) -> Snapshot:
    """A baseline: a results folder, or a file written by baseline_text; BaselineError if not."""
    path = Path(path)
    if path.is_dir():
        try:
            return snapshot(read(path), str(path))
        except ResultsError as exc:
            raise BaselineError(f"baseline {exc}") from None
    if not path.exists():
        raise BaselineError(f"{path}: no such baseline (a results folder or a baseline file); "
                            f"write it with: snn-lab check RESULTS_DIR --baseline {path} --update")
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BaselineError(f"{path}: unreadable baseline: {exc}") from None
    return _parse_baseline(data, str(path))


def _parse_baseline(data, source: str) -> Snapshot:
    def bad(why: str):
        return BaselineError(f"{source}: not an snn-lab baseline file: {why}")

    if not isinstance(data, dict) or data.get("format") != BASELINE_FORMAT:
        raise bad(f"expected \"format\": \"{BASELINE_FORMAT}\"")
    if data.get("version") != BASELINE_VERSION:
        raise BaselineError(f"{source}: baseline version {data.get('version')!r}, this snn-lab "
                            f"reads {BASELINE_VERSION}; rewrite it with --update")
    columns, config, table = data.get("columns"), data.get("config"), data.get("series")
    if not isinstance(columns, list) or not {"layer", "trials", *SUMMARY_STATS} <= set(columns):
        raise bad(f"'columns' must list {', '.join(BASELINE_COLUMNS)}")
    if not isinstance(config, dict) or not isinstance(config.get("series"), list):
        raise bad("'config' must hold the resolved config with its 'series'")
    if not isinstance(table, dict) or not table:
        raise bad("'series' must map each series' label to its rows")
    series = {}
    for label, rows in table.items():
        if not isinstance(rows, list) or not rows or any(
                not isinstance(r, list) or len(r) != len(columns) for r in rows):
            raise bad(f"series {label!r}: every row must hold {len(columns)} values")
        try:
            cols = {c: np.array([_number(r[i]) for r in rows]) for i, c in enumerate(columns)}
        except (TypeError, ValueError):
            raise bad(f"series {label!r}: values must be numbers or \"nan\", \"inf\", \"-inf\"") from None
        for count in ("layer", "trials"):
            cols[count] = cols[count].astype(np.int64)
        series[label] = cols
    training = training_results.parse_finals(data.get("training"), bad)
    return Snapshot(config, series, source, data.get("written_by", {}), training)


def _number(v) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        raise TypeError(v)
    if isinstance(v, str) and v not in ("nan", "inf", "-inf"):
        raise ValueError(v)
    return float(v)


def baseline_text(res: Results) -> str:
    """The baseline file of a run: JSON, one line per (series, layer), floats that round-trip.

    Non-finite values are written as the strings "nan", "inf", "-inf" (JSON has no NaN).
    """
    head = {"format": BASELINE_FORMAT, "version": BASELINE_VERSION,
            "written_by": {k: res.meta[k] for k in PROVENANCE if k in res.meta},
            "config": res.config, "columns": list(BASELINE_COLUMNS)}
    parts = []
    for key, value in head.items():
        text = json.dumps(value, indent=None if key == "columns" else 2)
        parts.append(f"  {json.dumps(key)}: " + text.replace("\n", "\n  "))
    blocks = []
    for label in res.labels:
        rows = res.series_summary(label)
        lines = [json.dumps([_jsonable(rows[c][i]) for c in BASELINE_COLUMNS])
                 for i in range(len(rows["layer"]))]
        blocks.append(f"    {json.dumps(label)}: [\n      " + ",\n      ".join(lines) + "\n    ]")
    parts.append('  "series": {\n' + ",\n".join(blocks) + "\n  }")
    finals = training_results.finals(res.tables)
    if finals:  # the final training values (a train: block), for check's final_* comparisons
        parts.append('  "training": ' + json.dumps({k: {c: [_jsonable(x) for x in v] for c, v in cols.items()}
                                                    for k, cols in finals.items()}))
    return "{\n" + ",\n".join(parts) + "\n}\n"


def _jsonable(v):
    v = v.item() if hasattr(v, "item") else v
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)  # 'nan', 'inf', '-inf'
    return v  # a float's JSON text is its repr: it reads back to the same double
