"""Reading a results folder's files with every check: one line naming the file, the line or key,
and what is wrong (ResultsError), never a traceback on a damaged or hand-edited folder."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import stat
from pathlib import Path

import numpy as np

from snn_lab.errors import SnnLabError

INT_COLUMNS = ("trial", "layer", "trials")
TEXT_COLUMNS = {"series", "activation", "init", "point"}
# meta.json keys that readers use, and the JSON types each may hold (None: null).
META_TYPES = {"complete": (bool,), "results_version": (int,), "overflow": (list,),
              "backend": (str, type(None)), "finished_utc": (str, type(None)), "rows": (dict,),
              "sha256": (dict,), "finite_width_notes": (dict,), "fixed_points": (dict,), "streams": (int,)}
MAX_BYTES = 2**31  # a results file larger than this is not one snn-lab wrote (and would not fit)


class ResultsError(SnnLabError):
    """A results folder that is missing, incomplete, damaged or not of this format."""


def read_text(path: Path) -> str:
    """A results file's text: a regular file in the folder (not a link), UTF-8."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise ResultsError(f"{path}: missing") from None
    except OSError as exc:
        raise ResultsError(f"{path}: cannot read: {exc.strerror}") from None
    if stat.S_ISLNK(st.st_mode):
        raise ResultsError(f"{path}: is a symbolic link; a results folder holds its own files")
    if not stat.S_ISREG(st.st_mode):
        raise ResultsError(f"{path}: not a regular file")
    if st.st_size > MAX_BYTES:
        raise ResultsError(f"{path}: {st.st_size:,} bytes, more than a results file can hold")
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ResultsError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ResultsError(f"{path}: cannot read: {exc.strerror}") from None


def _json_object(path: Path) -> dict:
    """A file holding one JSON object (meta.json, sweep.json)."""
    try:
        value = json.loads(read_text(path))
    except ValueError as exc:
        raise ResultsError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ResultsError(f"{path}: expected a JSON object, found {_json_type(value)}")
    return value


def int_column(path: Path, column: np.ndarray, name: str) -> np.ndarray:
    """A CSV column of whole numbers read as float64, as int64; a fraction names its line."""
    if column.size and not np.all(column == np.round(column)):
        i = int(np.flatnonzero(column != np.round(column))[0])
        raise ResultsError(f"{path}: line {i + 2}: column {name!r}: {column[i]!r} is not an integer")
    return column.astype(np.int64)


def read_meta(path: Path, version: int) -> dict:
    """meta.json: a JSON object marking a complete run of this results format, keys typed."""
    meta = _json_object(path)
    for key, types in META_TYPES.items():
        if key in meta and (not isinstance(meta[key], types) or
                            (isinstance(meta[key], bool) and bool not in types)):
            raise ResultsError(f"{path}: key {key!r}: expected "
                               f"{' or '.join(_json_type(t) for t in types)}, found {_json_type(meta[key])}")
    if meta.get("complete") is not True:
        raise ResultsError(f"{path}: does not mark the run complete (key 'complete')")
    if meta.get("results_version") != version:
        raise ResultsError(f"{path}: results format {meta.get('results_version')!r}, "
                           f"this snn-lab reads {version}")
    for i, event in enumerate(meta.get("overflow", [])):
        if not (isinstance(event, dict) and isinstance(event.get("series"), str)
                and all(_is_int(event.get(k)) for k in ("trial", "layer"))):
            raise ResultsError(f"{path}: key 'overflow', item {i}: expected "
                               "{series: text, trial: integer, layer: integer}")
    for name, count in meta.get("rows", {}).items():
        if not _is_int(count) or count < 0:
            raise ResultsError(f"{path}: key 'rows', {name!r}: expected a row count, found {count!r}")
    if not all(isinstance(v, str) for v in meta.get("sha256", {}).values()):
        raise ResultsError(f"{path}: key 'sha256': expected text digests")
    return meta


def read_config(path: Path, sha256: str | None = None):
    """config.yaml: (the mapping as written, the Experiment it validates to); sha256: meta.json's."""
    import yaml

    from snn_lab import config as cfg

    text = read_text(path)
    if sha256 is not None and hashlib.sha256(text.encode("utf-8")).hexdigest() != sha256:
        raise ResultsError(f"{path}: changed or truncated after the run (its sha256 differs from "
                           "meta.json's); the numbers were computed with another config")
    try:
        exp = cfg.load(str(path), text=text)
        raw = yaml.safe_load(text)
    except cfg.ConfigError as exc:
        raise ResultsError(f"{exc.problems[0]} (the resolved config of a results folder)") from None
    except yaml.YAMLError as exc:  # pragma: no cover - load() reports YAML errors first
        raise ResultsError(f"{path}: not valid YAML ({exc})") from None
    for key in ("name", "seed", "trials", "series"):
        if key not in raw:
            raise ResultsError(f"{path}: key {key!r} is missing (a resolved config names every key)")
    if len(raw["series"]) != len(exp.series) or any(
            not isinstance(s, dict) or s.get("label") != e.label for s, e in zip(raw["series"], exp.series)):
        raise ResultsError(f"{path}: key 'series': every series needs its 'label'")
    return raw, exp


def read_table(path: Path, columns=None, rows: int | None = None, optional=(), texts=()) -> dict[str, np.ndarray]:
    """A results CSV as columns (text as object arrays, counts int64, the rest float64).

    columns: the header expected (any order), of which `optional` may be absent; rows: the data
    rows expected (meta.json's count); texts: more columns read as text (a sweep's text keys).
    """
    text = read_text(path)
    if not text:
        raise ResultsError(f"{path}: empty (no header line)")
    if not text.endswith("\n"):
        raise ResultsError(f"{path}: truncated: the last line ends without a newline")
    try:
        lines = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise ResultsError(f"{path}: not CSV ({exc})") from None
    header, body = lines[0], lines[1:]
    if len(set(header)) != len(header):
        dup = next(c for c in header if header.count(c) > 1)
        raise ResultsError(f"{path}: line 1: column {dup!r} appears twice")
    if columns is not None:
        missing = [c for c in columns if c not in header and c not in optional]
        extra = [c for c in header if c not in columns]
        if missing:
            raise ResultsError(f"{path}: line 1: column {missing[0]!r} is missing"
                               + (f" ({len(missing)} missing)" if len(missing) > 1 else ""))
        if extra:
            raise ResultsError(f"{path}: line 1: unexpected column {extra[0]!r}")
    for i, row in enumerate(body):
        if len(row) != len(header):
            raise ResultsError(f"{path}: line {i + 2}: {len(row)} fields, expected {len(header)}"
                               + ("; truncated?" if len(row) < len(header) else ""))
    if rows is not None and len(body) != rows:
        raise ResultsError(f"{path}: {len(body)} rows, meta.json records {rows}; truncated or edited?")
    cols = list(zip(*body)) if body else [()] * len(header)
    out = {}
    for name, values in zip(header, cols):
        if name in TEXT_COLUMNS or name in texts:
            out[name] = np.array(values, dtype=object)
            continue
        kind = np.int64 if name in INT_COLUMNS else np.float64
        try:
            out[name] = np.array(values, dtype=kind)
        except (ValueError, OverflowError):
            i = next(i for i, v in enumerate(values) if not _parses(v, kind))
            what = "an integer" if kind is np.int64 else "a number"
            raise ResultsError(f"{path}: line {i + 2}: column {name!r}: {values[i]!r} is not {what}") from None
        if name.endswith("_sd") and (out[name] < 0).any():  # a spread (measured or predicted)
            i = int(np.argmax(out[name] < 0))
            raise ResultsError(f"{path}: line {i + 2}: column {name!r}: {values[i]!r} is negative; "
                               "a spread across trials is >= 0 (or nan)")
    return out


# sweep.json keys that readers use, and their JSON types; the first four are required.
MANIFEST_TYPES = {"sweep_version": (int,), "keys": (list,), "axes": (dict,), "points": (list,),
                  "complete": (bool,), "name": (str,), "rows": (int,), "pooled": (dict,),
                  "source": (str, type(None)), "executor": (str,), "jobs": (int,)}


def read_manifest(path: Path, version: int) -> dict:
    """sweep.json: a JSON object marking a complete sweep of this format, its keys typed."""
    meta = _json_object(path)
    for key, types in MANIFEST_TYPES.items():
        if key not in meta:
            if key in ("sweep_version", "keys", "axes", "points"):
                raise ResultsError(f"{path}: key {key!r} is missing")
            continue
        if not isinstance(meta[key], types) or isinstance(meta[key], bool) and bool not in types:
            raise ResultsError(f"{path}: key {key!r}: expected "
                               f"{' or '.join(_json_type(t) for t in types)}, found {_json_type(meta[key])}")
    if meta["sweep_version"] != version:
        raise ResultsError(f"{path}: sweep format {meta['sweep_version']!r}, this snn-lab reads {version}")
    if meta.get("complete") is not True:
        raise ResultsError(f"{path}: the sweep is not complete (key 'complete'); run the same command "
                           "again to finish it")
    keys, axes = meta["keys"], meta["axes"]
    if not keys or not all(isinstance(k, str) and isinstance(axes.get(k), list) and axes[k] for k in keys):
        raise ResultsError(f"{path}: keys 'keys' and 'axes': expected the swept names, each with its values")
    for i, point in enumerate(meta["points"]):
        values = point.get("values") if isinstance(point, dict) else None
        if not (isinstance(point, dict) and isinstance(point.get("name"), str) and isinstance(values, dict)
                and set(values) == set(keys)):
            raise ResultsError(f"{path}: key 'points', item {i}: expected {{name: text, values: "
                               "{one per swept key}}")
    if meta.get("rows", 0) < 0:
        raise ResultsError(f"{path}: key 'rows': expected a row count, found {meta['rows']!r}")
    return meta


def check_sweep_rows(path: Path, table: dict, meta: dict) -> None:
    """sweep.csv holds each point of sweep.json with its values, each series' layers 0, 1, ... once."""
    points = {p["name"]: p["values"] for p in meta["points"]}
    seen: dict[tuple, int] = {}
    for i, (point, series, layer, trials) in enumerate(zip(table["point"], table["series"], table["layer"],
                                                           table["trials"])):
        where = f"{path}: line {i + 2}"
        if point not in points:
            raise ResultsError(f"{where}: point {point!r} is not in sweep.json")
        for key, value in points[point].items():
            if key in table and not _same(table[key][i], value):
                raise ResultsError(f"{where}: column {key!r}: {table[key][i]!r}, sweep.json has {value!r} "
                                   f"for point {point!r}")
        if layer != seen.get((point, series), 0) or trials < 1:
            raise ResultsError(f"{where}: point {point!r} series {series!r}: layer {layer} with {trials} "
                               "trials out of order (rows missing, repeated or edited?)")
        seen[(point, series)] = layer + 1
    lacking = sorted(set(points) - {p for p, _ in seen})
    if lacking:
        raise ResultsError(f"{path}: point {lacking[0]!r} of sweep.json has no rows; truncated or edited?")


def _same(cell, value) -> bool:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return isinstance(cell, (float, np.floating)) and (cell == value or cell != cell and value != value)
    return cell == str(value)


def check_tables(folder: Path, exp, summary: dict, layers: dict, samples: dict) -> None:
    """The tables hold exactly the rows config.yaml describes: every series, trial and layer."""
    def per_row(value, repeat):
        return np.array([value(s) for s in exp.series for _ in range(repeat(s))], dtype=object)

    t = exp.trials
    for name, table, repeat in (("summary.csv", summary, lambda s: s.depth + 1),
                                ("layers.csv", layers, lambda s: t * (s.depth + 1))):
        expected = {"series": per_row(lambda s: s.label, repeat),
                    "activation": per_row(lambda s: s.make_activation().label, repeat),
                    "init": per_row(lambda s: s.init, repeat)}
        if name == "summary.csv":
            expected["layer"] = np.concatenate([np.arange(s.depth + 1) for s in exp.series])
            expected["trials"] = np.full(len(expected["layer"]), t)
        else:
            expected["trial"] = np.concatenate([np.repeat(np.arange(t), s.depth + 1) for s in exp.series])
            expected["layer"] = np.concatenate([np.tile(np.arange(s.depth + 1), t) for s in exp.series])
        _rows(folder / name, table, expected)
    depths = {s.label: s.depth for s in exp.series}
    for i, (label, layer) in enumerate(zip(samples["series"], samples["layer"])):
        if label not in depths or not 0 <= layer <= depths[label]:
            raise ResultsError(f"{folder / 'samples.csv'}: line {i + 2}: series {label!r} layer {layer} "
                               "is not in config.yaml")


def _rows(path: Path, table: dict, expected: dict) -> None:
    n = len(next(iter(expected.values())))
    found = len(table[next(iter(expected))])
    m = min(n, found)
    for name, want in expected.items():
        have = table[name]
        bad = np.flatnonzero(have[:m] != want[:m])
        if len(bad):
            i = int(bad[0])
            raise ResultsError(f"{path}: line {i + 2}: column {name!r}: {have[i]!r}, config.yaml "
                               f"implies {want[i]!r}")
    if found != n:
        raise ResultsError(f"{path}: {found} rows, config.yaml implies {n} (series x trials x "
                           "layers); truncated or edited?")


def _parses(v: str, kind) -> bool:
    try:
        np.array([v], dtype=kind)
        return True
    except (ValueError, OverflowError):
        return False


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _json_type(v) -> str:
    t = v if isinstance(v, type) else type(v)
    return {dict: "an object", list: "an array", str: "text", bool: "true/false", int: "an integer",
            float: "a number", type(None): "null"}.get(t, t.__name__)
