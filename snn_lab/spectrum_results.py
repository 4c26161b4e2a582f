"""The results folder's Jacobian tables (measure: [jacobian]): build them, and check them on read.

jacobian.csv: one row per (series, trial, layer, input) with the SPECTRUM columns of the
squared singular values and the theory's mean and variance at that layer. jacobian_values.csv:
the squared singular values themselves (ascending), where the exact SVD ran.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from snn_lab.config import Experiment
from snn_lab.simulate.jacobian import EXACT_MAX, SPECTRUM
from snn_lab.theory.spectrum import JACOBIAN_THEORY, jacobian_moments
from snn_lab.validate import ResultsError, int_column, read_table

KEYS = ("series", "trial", "layer", "input")
JACOBIAN_COLUMNS = (*KEYS, *SPECTRUM, *JACOBIAN_THEORY)
VALUE_COLUMNS = (*KEYS, "value")
TABLES = {"jacobian.csv": JACOBIAN_COLUMNS, "jacobian_values.csv": VALUE_COLUMNS}


def expected_keys(exp: Experiment) -> list[tuple]:
    """(series, trial, layer, input) of every jacobian.csv row, in the order written."""
    if exp.jacobian is None:
        return []
    return [(s.label, t, layer, i) for s in exp.series for t in range(exp.trials)
            for layer in exp.jacobian.layers_for(s.depth) for i in range(exp.jacobian.inputs)]


def build(exp: Experiment, runs: dict) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, str]]:
    """(the two tables by file name, theory notes by series label); nothing without the measurement."""
    if exp.jacobian is None:
        return {}, {}
    table: dict[str, list] = {c: [] for c in JACOBIAN_COLUMNS}
    values: dict[str, list] = {c: [] for c in VALUE_COLUMNS}
    notes = {}
    for s in exp.series:
        theory, note = jacobian_moments(s)
        if note:
            notes[s.label] = note
        for sp in runs[s.label].spectra:
            for c, v in zip(KEYS, (s.label, sp.trial, sp.layer, sp.input)):
                table[c].append(v)
            for c, v in zip(SPECTRUM, sp.summary):
                table[c].append(float(v))
            for c, v in zip(JACOBIAN_THEORY, theory[sp.layer]):
                table[c].append(float(v))
            if sp.values is not None:
                for c, v in zip(KEYS, (s.label, sp.trial, sp.layer, sp.input)):
                    values[c].extend([v] * len(sp.values))
                values["value"].extend(sp.values.tolist())
    return {"jacobian.csv": _arrays(table), "jacobian_values.csv": _arrays(values)}, notes


def _arrays(table: dict[str, list]) -> dict[str, np.ndarray]:
    return {c: np.array(v, dtype=object if c == "series" else np.int64 if c in KEYS else np.float64)
            for c, v in table.items()}


def read(folder: Path, exp: Experiment, counts: dict) -> dict[str, dict[str, np.ndarray]]:
    """The Jacobian tables the config implies (none without the measurement), every row checked."""
    if exp.jacobian is None:
        return {}
    tables = {name: read_table(folder / name, columns, counts.get(name)) for name, columns in TABLES.items()}
    for name in TABLES:  # input is a count: read as float by read_table, which knows no such column
        tables[name]["input"] = int_column(folder / name, tables[name]["input"], "input")
    keys = expected_keys(exp)
    rows = tables["jacobian.csv"]
    found = list(zip(*(rows[c].tolist() for c in KEYS)))
    if found != keys:
        i = next((i for i, (a, b) in enumerate(zip(found, keys)) if a != b), min(len(found), len(keys)))
        what = f"{found[i]}" if i < len(found) else "nothing"
        raise ResultsError(f"{folder / 'jacobian.csv'}: line {i + 2}: (series, trial, layer, input) {what}, "
                           f"config.yaml implies {keys[i] if i < len(keys) else 'no more rows'}")
    widths = {s.label: s.width for s in exp.series}
    known = set(keys)
    vals = tables["jacobian_values.csv"]
    count: dict[tuple, int] = {}
    for i, key in enumerate(zip(*(vals[c].tolist() for c in KEYS))):
        if key not in known:
            raise ResultsError(f"{folder / 'jacobian_values.csv'}: line {i + 2}: {key} is not a measured "
                               "(series, trial, layer, input) of config.yaml")
        count[key] = count.get(key, 0) + 1
    for key in keys:
        n = widths[key[0]]
        want = n if n <= EXACT_MAX else 0
        if count.get(key, 0) != want:
            raise ResultsError(f"{folder / 'jacobian_values.csv'}: {key} has {count.get(key, 0)} values, "
                               f"config.yaml implies {want} (the width, up to {EXACT_MAX})")
    return tables


def by_layer(tables: dict[str, dict[str, np.ndarray]], label: str) -> list[dict]:
    """One series' jacobian.csv averaged over trials and inputs, a dict per measured layer: the
    mean of mean, var and within_2 with the standard error of var, the median condition, theory."""
    t = tables["jacobian.csv"]
    mine = t["series"] == label
    out = []
    for layer in sorted(set(t["layer"][mine].tolist())):
        rows = mine & (t["layer"] == layer)
        var = t["var"][rows]
        se = float(var.std(ddof=1) / np.sqrt(var.size)) if var.size > 1 else float("nan")
        with np.errstate(all="ignore"):
            out.append({"layer": layer, "mean": float(t["mean"][rows].mean()), "var": float(var.mean()),
                        "var_se": se, "condition": float(np.median(t["condition"][rows])),
                        "within_2": float(t["within_2"][rows].mean()),
                        "theory_mean": float(t["theory_mean"][rows][0]), "theory_var": float(t["theory_var"][rows][0])})
    return out
