"""The results folder's training tables (a train: block): build them, and check them on read.

training.csv: one row per (series, trial, step) at each evaluation step, with the train loss,
the held-out loss and accuracy (NaN for regression). training_layers.csv: one row per (series,
trial, step, layer), layer 0 the input, with the held-out set's mean, variance, dead fraction
and the held-out loss's gradient norm with respect to the layer's weights (NaN at layer 0).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from snn_lab.config import Experiment
from snn_lab.train.loop import CURVE, LAYER
from snn_lab.validate import ResultsError, int_column, read_table

KEYS = ("series", "trial", "step")
LAYER_KEYS = (*KEYS, "layer")
TRAINING_COLUMNS = (*KEYS, *CURVE)
LAYERS_COLUMNS = (*LAYER_KEYS, *LAYER)
TABLES = {"training.csv": TRAINING_COLUMNS, "training_layers.csv": LAYERS_COLUMNS}
INTS = ("trial", "step", "layer")


def expected_keys(exp: Experiment) -> dict[str, list[tuple]]:
    """The key columns of every row of each table, in the order written."""
    if exp.train is None:
        return {}
    steps = exp.train.eval_steps()
    curve = [(s.label, t, step) for s in exp.series for t in range(exp.trials) for step in steps]
    layers = [(s.label, t, step, layer) for s in exp.series for t in range(exp.trials) for step in steps
              for layer in range(s.depth + 1)]
    return {"training.csv": curve, "training_layers.csv": layers}


def build(exp: Experiment, training: dict | None) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, str]]:
    """(the two tables by file name, notes by series label: trials whose loss diverged)."""
    if exp.train is None or training is None:
        return {}, {}
    keys = expected_keys(exp)
    curve = np.concatenate([r.curves for s in exp.series for r in training[s.label]])
    layers = np.concatenate([r.layers.reshape(-1, len(LAYER)) for s in exp.series for r in training[s.label]])
    notes = {}
    for s in exp.series:
        bad = [(t, r.diverged) for t, r in enumerate(training[s.label]) if r.diverged is not None]
        if bad:
            notes[s.label] = "training diverged (loss not finite) in " + ", ".join(
                f"trial {t} at step {step}" for t, step in bad) + "; later rows are NaN"
    return {"training.csv": _table(keys["training.csv"], KEYS, curve, CURVE),
            "training_layers.csv": _table(keys["training_layers.csv"], LAYER_KEYS, layers, LAYER)}, notes


def _table(keys: list[tuple], names, values: np.ndarray, columns) -> dict[str, np.ndarray]:
    out = {c: np.array([k[i] for k in keys], dtype=object if c == "series" else np.int64)
           for i, c in enumerate(names)}
    out.update({c: values[:, i].astype(np.float64) for i, c in enumerate(columns)})
    return out


def read(folder: Path, exp: Experiment, counts: dict) -> dict[str, dict[str, np.ndarray]]:
    """The training tables the config implies (none without a train: block), every row checked."""
    if exp.train is None:
        return {}
    expected = expected_keys(exp)
    tables = {}
    for name, columns in TABLES.items():
        path = folder / name
        table = read_table(path, columns, counts.get(name))
        for c in INTS:  # counts read as float by read_table, which knows no 'step'
            if c in table:
                table[c] = int_column(path, table[c], c)
        keys = [c for c in columns if c in (*LAYER_KEYS,)]
        found = list(zip(*(table[c].tolist() for c in keys)))
        want = expected[name]
        if found != want:
            i = next((i for i, (a, b) in enumerate(zip(found, want)) if a != b), min(len(found), len(want)))
            what = f"{found[i]}" if i < len(found) else "nothing"
            raise ResultsError(f"{path}: line {i + 2}: ({', '.join(keys)}) {what}, config.yaml implies "
                               f"{want[i] if i < len(want) else 'no more rows'}")
        tables[name] = table
    return tables


def final(tables: dict[str, dict[str, np.ndarray]], column: str = "train_loss") -> dict[str, np.ndarray]:
    """Each series' value of a training.csv column at the last step, one per trial (by label)."""
    t = tables["training.csv"]
    last = t["step"] == t["step"].max()
    return {label: t[column][last & (t["series"] == label)] for label in dict.fromkeys(t["series"][last].tolist())}


def finals(tables: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, list[float]]]:
    """`check`'s view of training: per series and CURVE column, [mean, sd (ddof 1), trials] of the
    final step's values across trials ({} for an untrained folder)."""
    if "training.csv" not in tables:
        return {}
    out: dict[str, dict[str, list[float]]] = {}
    for column in CURVE:
        for label, v in final(tables, column).items():
            with np.errstate(all="ignore"):
                sd = float(np.std(v, ddof=1)) if v.size > 1 else float("nan")
            out.setdefault(label, {})[column] = [float(np.mean(v)), sd, float(v.size)]
    return out


def parse_finals(raw, bad) -> dict[str, dict[str, list[float]]]:
    """A baseline file's 'training' entry checked ({label: {column: [mean, sd, trials]}}); bad(why)
    makes the caller's error."""
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(
            isinstance(cols, dict) and set(cols) <= set(CURVE) and all(
                isinstance(v, list) and len(v) == 3 and all(
                    isinstance(x, (int, float)) and not isinstance(x, bool) or x in ("nan", "inf", "-inf")
                    for x in v) for v in cols.values()) for cols in raw.values()):
        raise bad("'training' must map each series' label to {column: [mean, sd, trials]} for "
                  + ", ".join(CURVE))
    return {label: {c: [float(x) for x in v] for c, v in cols.items()} for label, cols in raw.items()}


def final_pairs(base: dict, cur: dict, depths: dict[str, int], statistical: bool) -> tuple[list[tuple], list[str]]:
    """compare._judge's pairs for the final training values that both sides have (stat
    'final_<column>', at the series' top layer), and a note where only one side trained."""
    pairs, notes = [], []
    if bool(base) != bool(cur):
        notes.append(f"training curves only in the {'baseline' if base else 'results'}: not compared")
    for label in (s for s in cur if s in base):
        for column in CURVE:
            a, b = base[label].get(column), cur[label].get(column)
            if a is None or b is None or (np.isnan(a[0]) and np.isnan(b[0])):
                continue  # accuracy of a regression: not a value on either side
            sd_a, sd_b = (a[1], b[1]) if statistical else (0.0, 0.0)
            pairs.append((label, depths.get(label, 0), f"final_{column}", a[0], sd_a, a[2], b[0], sd_b, b[2]))
    return pairs, notes
