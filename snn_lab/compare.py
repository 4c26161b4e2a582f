"""Baseline comparison for `snn-lab check`: statistical, exact, or simulation against theory.

The snapshot a comparison reads and the baseline file's format are baseline.py's (re-exported here)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import t as student_t

from snn_lab import training_results
from snn_lab.baseline import (  # noqa: F401 (re-exported: check's API is compare's)
    BASELINE_COLUMNS,
    BASELINE_FORMAT,
    BASELINE_VERSION,
    PROVENANCE,
    BaselineError,
    NotComparable,
    Snapshot,
    baseline_text,
    load_baseline,
    snapshot,
)
from snn_lab.errors import SnnLabError
from snn_lab.statistics import MEASURED as STATS
from snn_lab.statistics import STATS as FORWARD
from snn_lab.statistics import SUMMARY_STATS, json_number

FALSE_ALARM = 1e-3  # family-wise chance that a run differing only by its seed is flagged
RTOL, ATOL = 1e-9, 1e-12


class WrongMode(SnnLabError):
    """The chosen mode cannot answer for these two runs: a usage problem (exit 2), not drift."""


# ---- thresholds ------------------------------------------------------------------------

def family_level(false_alarm: float, size: int) -> float:
    """Per-value two-sided level: `size` independent tests false-alarm with prob false_alarm (Sidak)."""
    return -math.expm1(math.log1p(-false_alarm) / max(size, 1))


def welch_df(var_a: float, n_a: float, var_b: float, n_b: float) -> float:
    """Welch-Satterthwaite degrees of freedom of sd_a^2/n_a + sd_b^2/n_b (inf n: a known value)."""
    se = [math.sqrt(v / n) if math.isfinite(n) else 0.0 for v, n in ((var_a, n_a), (var_b, n_b))]
    return _welch(se[0], n_a, se[1], n_b)


def _welch(se_a: float, n_a: float, se_b: float, n_b: float) -> float:
    """Welch's degrees of freedom from the two standard errors: inf with no spread, NaN where
    undefined (an infinite spread, or a spread from a single trial).

    Scaled by the larger standard error, so that spreads of 1e-200 or 1e200 neither underflow
    to a division by zero nor overflow (ReLU with LeCun init at depth 300 has both).
    """
    scale = max(se_a, se_b)
    if scale == 0:
        return math.inf
    if not math.isfinite(scale) or any(se > 0 and n <= 1 for se, n in ((se_a, n_a), (se_b, n_b))):
        return math.nan
    parts = [(se / scale, n) for se, n in ((se_a, n_a), (se_b, n_b)) if se > 0 and math.isfinite(n)]
    terms = sum(r**4 / (n - 1) for r, n in parts)
    return (sum(r * r for r, _ in parts)) ** 2 / terms if terms > 0 else math.inf


# ---- config differences and comparability -------------------------------------------------

@dataclass(frozen=True)
class Change:
    """A config setting that differs between baseline and results (not an error)."""

    key: str
    baseline: object
    current: object

    def __str__(self) -> str:
        return f"{self.key} {_show(self.baseline)} -> {_show(self.current)}"


def _show(v) -> str:
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_show(x)}" for k, x in v.items()) + "}"
    return "(none)" if v is None else str(v)


def config_changes(base: dict, cur: dict) -> list[Change]:
    """Settings that differ, top level first, then per series (by label): 'SELU gain 1.0 -> 1.05'."""
    changes = _diff(base, cur, "", skip={"series"})
    cur_series = {s.get("label"): s for s in cur.get("series", [])}
    for s in base.get("series", []):
        if s.get("label") in cur_series:
            changes += _diff({**SERIES_ADDED, **s}, {**SERIES_ADDED, **cur_series[s["label"]]},
                             f"{s['label']} ", skip={"label"})
    return changes


# Series keys added after results format 1, as an earlier resolved config means them.
SERIES_ADDED = {"norm": "none", "residual": None}


def _diff(a: dict, b: dict, prefix: str, skip=()) -> list[Change]:
    out = []
    for k in [*a, *(k for k in b if k not in a)]:
        if k in skip or _plain(a.get(k)) == _plain(b.get(k)):
            continue
        if isinstance(a.get(k), dict) and isinstance(b.get(k), dict) and set(a[k]) == set(b[k]):
            out += _diff(a[k], b[k], f"{prefix}{k}.")  # 'input.var 1.0 -> 4.0'; else the whole value
        else:
            out.append(Change(f"{prefix}{k}", a.get(k), b.get(k)))
    return out


def _plain(v):
    # {name: selu} with no parameters is the same activation as 'selu'.
    return v["name"] if isinstance(v, dict) and list(v) == ["name"] else v


def differences(base: Snapshot, cur: Snapshot) -> list[str]:
    """Why baseline and results cannot be compared value by value (empty if they can)."""
    out = []
    only_base = [s for s in base.series if s not in cur.series]
    only_cur = [s for s in cur.series if s not in base.series]
    if only_base:
        out.append("series only in the baseline: " + ", ".join(map(repr, only_base)))
    if only_cur:
        out.append("series only in the results: " + ", ".join(map(repr, only_cur)))
    for label in (s for s in base.series if s in cur.series):
        a, b = base.series[label]["layer"], cur.series[label]["layer"]
        if not np.array_equal(a, b):
            out.append(f"{label!r}: layers {_span(a)} in the baseline, {_span(b)} in the results "
                       f"(depth {_depth(a)} -> {_depth(b)})")
    return out


def _span(layers) -> str:
    return f"{layers.min()}..{layers.max()}" if len(layers) else "none"


def _depth(layers) -> int:
    return int(layers.max()) if len(layers) else 0


def too_few_trials(snap: Snapshot, where: str) -> list[str]:
    """Series whose spread across trials is unknown (one trial): no standard error."""
    return [f"{label!r} has {int(cols['trials'][0])} trial in the {where}; statistical "
            "comparisons need at least 2 (use --mode exact, or more trials)"
            for label, cols in snap.series.items() if len(cols["trials"]) and cols["trials"].min() < 2]


# ---- judging values -----------------------------------------------------------------------

@dataclass(frozen=True)
class Value:
    """One compared value: baseline (or theory) vs current, and the tolerance it had."""

    series: str
    layer: int
    stat: str
    baseline: float
    current: float
    threshold: float  # the largest |current - baseline| accepted
    se: float = math.nan  # standard error of the difference (NaN when not statistical)
    k: float = math.nan  # threshold in standard errors (NaN when not statistical)
    df: float = math.nan  # degrees of freedom behind k (Welch)
    ok: bool = True
    # 'stat' | 'exact' (tolerance rtol/atol) | 'nan' (non-finite on a side) | 'unjudged' (no
    # finite standard error: an infinite or undefined spread; neither within tolerance nor drift)
    kind: str = "stat"

    @property
    def difference(self) -> float:
        return self.current - self.baseline

    @property
    def z(self) -> float:
        """|difference| in standard errors (NaN if there is no standard error)."""
        return abs(self.difference) / self.se if self.se > 0 else math.nan

    @property
    def severity(self) -> float:
        """|difference| / threshold: > 1 is drift; a non-finite mismatch ranks first."""
        if self.kind == "nan":
            return 0.0 if self.ok else math.inf
        d = abs(self.difference)
        return d / self.threshold if self.threshold > 0 else (math.inf if d > 0 else 0.0)


@dataclass(frozen=True)
class Report:
    """The outcome of a check: every compared value, config changes and notes."""

    mode: str
    values: tuple[Value, ...]
    changes: tuple[Change, ...] = ()
    notes: tuple[str, ...] = ()
    baseline: str = ""
    results: str = ""
    false_alarm: float = FALSE_ALARM
    sigmas: float | None = None
    rtol: float = RTOL
    atol: float = ATOL

    @property
    def drifted(self) -> list[Value]:
        """Values beyond tolerance, worst first."""
        return sorted((v for v in self.values if not v.ok), key=lambda v: -v.severity)

    @property
    def unjudged(self) -> list[Value]:
        """Values with no finite standard error: the check cannot say whether they drifted."""
        return [v for v in self.values if v.kind == "unjudged"]

    @property
    def within(self) -> int:
        return sum(v.ok and v.kind != "unjudged" for v in self.values)

    @property
    def passed(self) -> bool:
        return self.within == len(self.values)

    @property
    def verdict(self) -> str:
        """'passed', 'drift' (any value beyond tolerance), or 'cannot judge' (no drift, but some
        values have no finite standard error)."""
        return "drift" if self.drifted else "cannot judge" if self.unjudged else "passed"

    def k_range(self) -> tuple[float, float] | None:
        """Smallest and largest threshold in standard errors among statistical values."""
        ks = [v.k for v in self.values if v.kind == "stat"]
        return (min(ks), max(ks)) if ks else None

    def df_range(self) -> tuple[float, float] | None:
        dfs = [v.df for v in self.values if v.kind == "stat"]
        return (min(dfs), max(dfs)) if dfs else None

    def to_json(self) -> dict:
        """Machine-readable report; non-finite numbers become null (see each value's 'kind')."""
        return {"mode": self.mode, "passed": self.passed, "verdict": self.verdict, "within": self.within,
                "unjudged": len(self.unjudged),
                "compared": len(self.values), "baseline": self.baseline, "results": self.results,
                "false_alarm": self.false_alarm, "sigmas": self.sigmas, "rtol": self.rtol,
                "atol": self.atol,
                "k_range": _nullable(self.k_range()), "df_range": _nullable(self.df_range()),
                "config_changes": [{"key": c.key, "baseline": c.baseline, "current": c.current}
                                   for c in self.changes],
                "notes": list(self.notes),
                "drifted": [{"series": v.series, "layer": v.layer, "stat": v.stat,
                             "baseline": json_number(v.baseline), "current": json_number(v.current),
                             "difference": json_number(v.difference), "threshold": json_number(v.threshold),
                             "z": json_number(v.z), "k": json_number(v.k), "df": json_number(v.df),
                             "kind": v.kind} for v in self.drifted]}


def _nullable(pair):
    return None if pair is None else [json_number(x) for x in pair]


def _judge(pairs, *, statistical: bool, sigmas, rtol, atol, false_alarm) -> list[Value]:
    """pairs: (series, layer, stat, a, sd_a, n_a, b, sd_b, n_b); sd is the across-trial spread."""
    level = family_level(false_alarm, len(pairs))
    out = []
    k_of = {}  # Welch df -> k, the two-sided Student t quantile at the per-value level
    for series, layer, stat, a, sd_a, n_a, b, sd_b, n_b in pairs:
        a, b, sd_a, sd_b, n_a, n_b = map(float, (a, b, sd_a, sd_b, n_a, n_b))
        key = (series, int(layer), stat, a, b)
        if not (math.isfinite(a) and math.isfinite(b)):
            same = a == b or (math.isnan(a) and math.isnan(b))  # NaN vs NaN, inf vs inf: equal
            out.append(Value(*key, math.nan, ok=same, kind="nan"))
            continue
        with np.errstate(all="ignore"):
            tol = atol + rtol * max(abs(a), abs(b))
            se_a = abs(sd_a) / math.sqrt(n_a) if math.isfinite(n_a) and n_a > 0 else 0.0
            se_b = abs(sd_b) / math.sqrt(n_b) if n_b > 0 else math.nan
            se = math.hypot(se_a, se_b)  # never squares a tiny or huge sd (no underflow, no overflow)
        if not statistical or se == 0:
            out.append(Value(*key, tol, ok=abs(b - a) <= tol, kind="exact"))
            continue
        df = _welch(se_a, n_a, se_b, n_b)
        if not (math.isfinite(se) and df > 0):
            # An infinite or undefined spread: no threshold exists, so neither pass nor drift.
            out.append(Value(*key, math.nan, se, ok=True, kind="unjudged"))
            continue
        if sigmas is None and df not in k_of:
            k_of[df] = float(student_t.isf(level / 2.0, df))
        k = sigmas if sigmas is not None else k_of[df]
        # The rtol/atol floor keeps a near-deterministic value from failing on rounding alone.
        threshold = max(k * se, tol)
        out.append(Value(*key, threshold, se, k, df, ok=abs(b - a) <= threshold, kind="stat"))
    return out


def _compared_stats(layer: int, stats) -> list[str]:
    # Layer 0's pre-activation columns repeat the input's: compare them once; the input has
    # no activation, so no dead units either.
    return [s for s in stats if not (layer == 0 and s.startswith(("preact_", "dead_fraction")))]


def compare(base: Snapshot, cur: Snapshot, mode: str = "statistical", sigmas: float | None = None,
            rtol: float = RTOL, atol: float = ATOL, false_alarm: float = FALSE_ALARM) -> Report:
    """Compare the results with a baseline, value by value; NotComparable if they do not match.

    statistical: each per-layer statistic (mean across trials) against the baseline's, within
    k standard errors of the difference, k from Welch's t so that all values together
    false-alarm with probability <= false_alarm; exact: every summary column within rtol/atol,
    WrongMode if both sides record their backend (meta "backend") and the two differ, or if they
    drew their weights from different random streams (meta "streams"; a side without it, 1).
    """
    if mode not in ("statistical", "exact"):
        raise ValueError(f"mode must be 'statistical' or 'exact', not {mode!r}")
    backends = base.meta.get("backend"), cur.meta.get("backend")
    if mode == "exact" and None not in backends and backends[0] != backends[1]:
        raise WrongMode(f"the baseline and the results come from different backends "
                        f"({backends[0]} vs {backends[1]}); exact mode compares bits, which differ "
                        "between backends in the last digits: use --mode statistical (or --mode theory)")
    schemes = base.meta.get("streams", 1), cur.meta.get("streams", 1)  # folders before the key: scheme 1
    if mode == "exact" and schemes[0] != schemes[1]:
        raise WrongMode(f"the baseline and the results draw their weights from different random streams "
                        f"({schemes[0]} vs {schemes[1]}: meta.json's streams, changed when snn-lab changed how it "
                        "seeds them); exact mode compares bits: use --mode statistical (or --mode theory), or "
                        "rewrite the baseline with --update")
    problems = differences(base, cur)
    if not problems and mode == "statistical":
        problems = too_few_trials(base, "baseline") + too_few_trials(cur, "results")
    if problems:
        raise NotComparable(problems)
    stats = STATS if mode == "statistical" else SUMMARY_STATS
    pairs = []
    for label in cur.series:
        a, b = base.series[label], cur.series[label]
        # A probe measured by neither run (all NaN on both sides) is not a value to compare.
        measured = [s for s in stats if not (np.isnan(a[s]).all() and np.isnan(b[s]).all())]
        for i, layer in enumerate(b["layer"]):
            for stat in _compared_stats(int(layer), measured):
                sd_a = a[f"{stat}_sd"][i] if mode == "statistical" else 0.0
                sd_b = b[f"{stat}_sd"][i] if mode == "statistical" else 0.0
                pairs.append((label, layer, stat, a[stat][i], sd_a, a["trials"][i],
                              b[stat][i], sd_b, b["trials"][i]))
    depths = {label: int(cur.series[label]["layer"].max()) for label in cur.series}
    trained, training_notes = training_results.final_pairs(base.training, cur.training, depths,
                                                           mode == "statistical")
    values = _judge(pairs + trained, statistical=mode == "statistical", sigmas=sigmas, rtol=rtol, atol=atol,
                    false_alarm=false_alarm)
    changes = config_changes(base.config, cur.config)
    notes = _notes(values, mode, changes) + training_notes
    return Report(mode, tuple(values), tuple(changes), tuple(notes), base.source, cur.source,
                  false_alarm, sigmas, rtol, atol)


def compare_theory(cur: Snapshot, sigmas: float | None = None, rtol: float = RTOL,
                   atol: float = ATOL, false_alarm: float = FALSE_ALARM,
                   finite_width: bool = False) -> Report:
    """The simulation against its own mean-field columns, where the theory gives a finite value.

    The theory value is taken as exact: the threshold is k standard errors of the trial mean,
    k from Student's t with trials - 1 degrees of freedom over the family of compared values.
    Only the forward statistics are compared: the probes' predictions (gradient ratio,
    correlation) carry finite-width biases that grow with depth (docs/probes.md).
    finite_width: against the finite-width band where a series has it (compare_width).
    """
    from snn_lab import compare_width

    problems = too_few_trials(cur, "results")
    if problems:
        raise NotComparable(problems)
    if finite_width and not compare_width.has_columns(cur.series):
        raise WrongMode(f"{cur.source} has no finite-width columns (fw_*): written by an older "
                        "snn-lab, or every series has a norm or a skip; rerun it, or drop --finite-width")
    pairs, corrected = [], 0
    for label, b in cur.series.items():
        for i, layer in enumerate(b["layer"]):
            for stat in _compared_stats(int(layer), FORWARD):
                theory = b.get(f"theory_{stat}")
                ref = theory[i] if theory is not None else math.nan
                if finite_width:
                    ref, used = compare_width.reference(b, stat, i)
                    corrected += used
                if not math.isfinite(ref):
                    continue  # the theory does not apply here (or has no column for this statistic)
                pairs.append((label, layer, stat, ref, 0.0, math.inf,
                              b[stat][i], b[f"{stat}_sd"][i], b["trials"][i]))
    if not pairs:
        raise NotComparable([f"{cur.source}: no finite theory_* values to compare with"])
    spreads = [(label, int(layer), *c) for label, b in cur.series.items() for i, layer in enumerate(b["layer"])
               for c in compare_width.spread_checks(b, i, int(layer))] if finite_width else []
    level = family_level(false_alarm, len(pairs) + len(spreads))  # one family: means and spreads
    values = _judge(pairs, statistical=True, sigmas=sigmas, rtol=rtol, atol=atol,
                    false_alarm=-math.expm1(len(pairs) * math.log1p(-level)))
    for label, layer, stat, pred, sd, trials in spreads:
        ok, threshold, se = compare_width.judge_spread(pred, sd, trials, level)
        values.append(Value(label, layer, f"{stat}_sd", pred, sd, threshold, se, threshold / se,
                            trials - 1.0, ok, "spread"))
    notes = _notes(values, "theory", ())
    if finite_width:
        notes.append(f"finite width: {corrected} trial means judged against the corrected prediction "
                     f"(fw_*), {len(spreads)} spreads across trials against the predicted ones (chi^2)")
    return Report("theory", tuple(values), (), tuple(notes), "theory",
                  cur.source, false_alarm, sigmas, rtol, atol)


def _notes(values: list[Value], mode: str, changes) -> list[str]:
    notes = []
    both = sum(v.kind == "nan" and v.ok for v in values)
    if both:
        notes.append(f"{both} value{'s are' if both > 1 else ' is'} non-finite (NaN or inf) on both "
                     "sides: counted as within tolerance")
    one = sum(v.kind == "nan" and not v.ok for v in values)
    if one:
        notes.append(f"{one} value{'s are' if one > 1 else ' is'} non-finite on one side only: "
                     "counted as drift")
    unjudged = [v for v in values if v.kind == "unjudged"]
    if unjudged:
        v = unjudged[0]
        notes.append(f"cannot judge {len(unjudged)} value{'s' if len(unjudged) > 1 else ''} (e.g. "
                     f"{v.series!r} layer {v.layer} {v.stat}): the spread across trials is infinite "
                     "or undefined, so there is no standard error to judge a difference by")
    dfs = [v.df for v in values if v.kind == "stat"]
    if dfs and min(dfs) < 5:
        notes.append(f"few trials: as few as {min(dfs):.1f} degrees of freedom, so thresholds are "
                     "wide; more trials make the check sharper")
    if mode == "exact" and any(c.key == "seed" for c in changes):
        notes.append("exact mode with a different seed: every random value differs; "
                     "use --mode statistical")
    return notes
