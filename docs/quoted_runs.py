"""Quoted numbers from seeded runs of seconds and Monte Carlo of minutes (registered in
docs/quoted_numbers.py's table by importing this module)."""

from __future__ import annotations

import functools
import sys
import tempfile
from pathlib import Path

from quoted_base import ROOT, _s, at, numbers


@functools.cache
def finite_width_run():
    """The finite_width example's summary and `snn-lab check --mode theory` without and with
    --finite-width on it (seconds: shared by its two blocks)."""
    from snn_lab import api, compare, results

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "finite_width"
        summary = api.run("finite_width", out=out).summary
        current = compare.snapshot(results.read(out), str(out))
    return summary, compare.compare_theory(current), compare.compare_theory(current, finite_width=True)


@numbers("finite-width-silu", "docs/finite-width.md", slow=True)
def finite_width_silu() -> str:
    s = finite_width_run()[0]
    silu = {k: v[s["series"] == "silu (He)"] for k, v in s.items()}
    layer = 4
    var, sd, mf, fw, trials = (at(silu, c, layer) for c in ("var", "var_sd", "theory_var", "fw_var", "trials"))
    beyond = int(silu["layer"][silu["fw_log_q_var"] > 0.5].min())
    return (f"(layer {layer}: {var:.3f} measured, {mf:.3f} mean field, {fw:.3f} corrected; "
            f"{(var - mf) / (sd / trials ** 0.5):.1f} measured standard errors off\nthe mean-field value, "
            f"`fw_z_var` {at(silu, 'fw_z_var', layer):.1f}) until, from layer {beyond} on, its predicted "
            "Var(log q) passes\n0.5")


@numbers("finite-width-check", "docs/finite-width.md", slow=True)
def finite_width_check() -> str:
    _, plain, fw = finite_width_run()
    spreads = sum(v.stat.endswith("_sd") for v in fw.values)
    return (f"{plain.within} of {len(plain.values)} values within\ntolerance; `... --finite-width`: {fw.within} of "
            f"{len(fw.values)} ({len(fw.values) - spreads} means, {spreads} spreads)")


@numbers("finite-width-engine-spread", "docs/finite-width.md", slow=True)
def finite_width_engine_spread() -> str:
    sys.path.insert(0, str(ROOT / "docs"))
    import finite_width_table as fwt

    names = {("selu", ""): "SELU layer 1/4/8:", ("relu", "he_normal"): "ReLU-He", ("tanh", ""): "tanh",
             ("elu", ""): "ELU", ("selu", "dropout"): "SELU with alpha dropout 0.1:", ("selu", "normalize_weights"):
             "normalized SELU", ("relu", "lecun_uniform"): "ReLU with LeCun uniform"}
    parts = []
    for (name, init, kw), cells in zip(fwt.ENGINE_SERIES, fwt.engine_rows()):
        label = names.get((name, next(iter(kw), "")), names.get((name, init)))
        parts.append(f"{label} " + ", ".join(f"{m:.3g}/{p:.3g}" for _, m, p in cells))
    return ";\n".join(parts)


# ---- Monte Carlo of minutes (costly: rerun by hand) ---------------------------------------------

@numbers("finite-width-spread", "docs/finite-width.md", kind="costly",
         form=r"\n\| n Var\(log q\) \| n = 32, L = 4 / 8 / 16 \| n = 128, L = 16 / 32 / 64 \| n = 512, L = 64 / "
              r"128 / 256 \|\n\| --- \| --- \| --- \| --- \|\n(\| [\w-]+ (measured|predicted) \|"
              r"( [\d.]+ / [\d.]+ / [\d.]+( \(±[\d.]+\))? \|){3}\n){8}")
def finite_width_spread() -> str:
    sys.path.insert(0, str(ROOT / "docs"))
    import finite_width_table as fwt

    rows = []
    for label, cells in fwt.law_table():
        measured = " | ".join(" / ".join(_s(c[0]) for c in cell) + f" (±{_s(max(c[1] for c in cell))})"
                              for cell in cells)
        predicted = " | ".join(" / ".join(_s(c[2]) for c in cell) for cell in cells)
        rows += [f"| {label} measured | {measured} |", f"| {label} predicted | {predicted} |"]
    return ("\n| n Var(log q) | n = 32, L = 4 / 8 / 16 | n = 128, L = 16 / 32 / 64 | n = 512, L = 64 / 128 / 256 |\n"
            "| --- | --- | --- | --- |\n" + "\n".join(rows) + "\n")


@functools.cache
def normalization_run(labels: tuple[str, ...], **settings) -> dict:
    """The summary of some of the normalization example's series run alone with these settings
    (seed 0; keyed streams make a series' numbers independent of the others run beside it)."""
    from snn_lab import api, config, examples

    settings = {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()}  # cached: tuples in
    # a series' dict repeats the shared keys (width, batch, dtype...): the settings' must win
    kept = [{k: v for k, v in s.items() if k not in settings}
            for s in config.load(str(examples.path("normalization"))).to_dict()["series"] if s["label"] in labels]
    return api.run("normalization", {**settings, "series": kept}).summary


def _series(table: dict, label: str) -> dict:
    return {k: v[table["series"] == label] for k, v in table.items()}


DEEP = {"trials": 32, "dtype": "float64", "measure": ()}  # width 512, batch 512, depth 64: the example's
NUM = r"[\d.]+"


@numbers("normalization-bn-deep", "docs/normalization.md", kind="costly",
         form=rf"the layer mean falls from the theory's {NUM} to {NUM} at layer 64, and the\n  variance rises from "
              rf"{NUM} to {NUM}")
def normalization_bn_deep() -> str:
    bn = _series(normalization_run(("ReLU+BN", "NF-ReLU"), **DEEP), "ReLU+BN")
    return (f"the layer mean falls from the theory's {at(bn, 'theory_mean', 64):.3f} to {at(bn, 'mean', 64):.3f} "
            f"at layer 64, and the\n  variance rises from {at(bn, 'theory_var', 64):.3f} to {at(bn, 'var', 64):.3f}")


@numbers("normalization-bn-wide", "docs/normalization.md", kind="costly",
         form=rf"At width 2048 \(batch 128, 2 trials\) the mean at layer 64 is\n  {NUM} \(theory {NUM}\)")
def normalization_bn_wide() -> str:
    bn = _series(normalization_run(("ReLU+BN",), width=2048, batch=128, trials=2, dtype="float64", measure=()),
                 "ReLU+BN")
    return (f"At width 2048 (batch 128, 2 trials) the mean at layer 64 is\n  {at(bn, 'mean', 64):.3f} "
            f"(theory {at(bn, 'theory_mean', 64):.3f})")


@numbers("normalization-nf-deep", "docs/normalization.md", kind="costly",
         form=rf"the pooled variance is {NUM} at layer 64 against var_0 \+ l alpha\^2 = {NUM}")
def normalization_nf_deep() -> str:
    nf = _series(normalization_run(("ReLU+BN", "NF-ReLU"), **DEEP), "NF-ReLU")
    return (f"the pooled variance is {at(nf, 'var', 64):.2f} at layer 64 against var_0 + l alpha^2 = "
            f"{at(nf, 'theory_var', 64):.2f}")


@numbers("normalization-dead", "docs/normalization.md", kind="costly",
         form=rf"lose {NUM}% \(layer norm\) and {NUM}% \(plain skip\) of their units by layer 64")
def normalization_dead() -> str:
    s = normalization_run(("ReLU+LN", "ResNet ReLU"), measure=("dead",))
    ln, skip = (100 * at(_series(s, label), "dead_fraction", 64) for label in ("ReLU+LN", "ResNet ReLU"))
    return f"lose {ln:.0f}% (layer norm) and {skip:.0f}% (plain skip) of their units by layer 64"


@numbers("normalization-resnet-grad", "docs/normalization.md", kind="costly",
         form=rf"\(widths 512 / 2048, batch 128, 2 trials: {NUM} / {NUM} over the top 10 layers,\n  {NUM} / {NUM} "
              r"over layers 2 to 12\)")
def normalization_resnet_grad() -> str:
    top, low = [], []
    for width in (512, 2048):
        r = _series(normalization_run(("ResNet ReLU",), width=width, batch=128, trials=2, dtype="float64",
                                      measure=("gradients",)), "ResNet ReLU")
        # growth per layer of the gradient's mean square, geometric mean over 10 layers (downwards)
        top.append((at(r, "grad_sq", 54) / at(r, "grad_sq", 64)) ** 0.1)
        low.append((at(r, "grad_sq", 2) / at(r, "grad_sq", 12)) ** 0.1)
    return (f"(widths 512 / 2048, batch 128, 2 trials: {top[0]:.4f} / {top[1]:.4f} over the top 10 layers,\n  "
            f"{low[0]:.3f} / {low[1]:.3f} over layers 2 to 12)")


# ---- the learning example (3 minutes) ----------------------------------------------------------

@functools.cache
def learning_run() -> dict:
    """The learning example's training tables, as `snn-lab run learning` writes them."""
    from snn_lab import api

    run = api.run("learning")
    return {f"{name}.csv": run.table(name) for name in ("training", "training_layers")}


def _learning_table(column: str) -> str:
    import numpy as np

    from snn_lab.training_results import final

    done = final(learning_run(), column)
    kinds = list(dict.fromkeys(label.rsplit("-", 1)[0] for label in done))
    depths = list(dict.fromkeys(label.rsplit("-", 1)[1] for label in done))
    rows = [f"| {k} | " + " | ".join(f"{np.mean(v):.3f} ± {np.std(v, ddof=1) / len(v) ** 0.5:.3f}"
                                      for v in (done[f"{k}-{d}"] for d in depths)) + " |" for k in kinds]
    return ("\n| series | " + " | ".join(f"depth {d}" for d in depths) + " |\n| --- |" + " --- |" * len(depths)
            + "\n" + "\n".join(rows) + "\n")


LEARNING_TABLE = r"\n\| series \| depth 8 \| depth 16 \| depth 32 \|\n\| --- \| --- \| --- \| --- \|\n(\| [\w-]+ \|( [\d.]+ ± [\d.]+ \|){3}\n){4}"


@numbers("learning-loss", "docs/training.md", kind="costly", form=LEARNING_TABLE)
def learning_loss() -> str:
    return _learning_table("train_loss")


@numbers("learning-accuracy", "docs/training.md", kind="costly", form=LEARNING_TABLE)
def learning_accuracy() -> str:
    return _learning_table("accuracy")


@numbers("learning-init-loss", "docs/training.md", kind="costly", form=r"the held-out loss at init is [\d.]+ on\naverage")
def learning_init_loss() -> str:
    t = learning_run()["training.csv"]
    return f"the held-out loss at init is {t['eval_loss'][t['step'] == 0].mean():.2f} on\naverage"


@numbers("learning-bn-gradients", "docs/training.md", kind="costly",
         form=r"At init its weight gradients are \d+ times larger\nat layer 1 than at layer 32 \(`grad_norm`, trials' mean: "
              r"[\d.]+ against [\d.]+\)")
def learning_bn_gradients() -> str:
    t = learning_run()["training_layers.csv"]
    at_init = (t["series"] == "ReLU-BN-32") & (t["step"] == 0)
    first, last = (float(t["grad_norm"][at_init & (t["layer"] == k)].mean()) for k in (1, 32))
    return (f"At init its weight gradients are {first / last:.0f} times larger\nat layer 1 than at layer 32 "
            f"(`grad_norm`, trials' mean: {first:.1f} against {last:.2f})")


@numbers("learning-variance", "docs/training.md", kind="costly",
         form=r"\n\| series \| step \| var min\.\.max over layers 1\.\.L \| var at layer L \| max abs mean \| max dead \|\n"
              r"\| --- \| --- \| --- \| --- \| --- \| --- \|\n(\| [\w-]+ \| \d+ \| [\d.]+\.\.[\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \|\n){24}")
def learning_variance() -> str:
    import numpy as np

    t = learning_run()["training_layers.csv"]
    last, rows = int(t["step"].max()), []
    for label in dict.fromkeys(t["series"].tolist()):
        for step in (0, last):
            pick = (t["series"] == label) & (t["step"] == step) & (t["layer"] >= 1)
            layers = np.unique(t["layer"][pick])
            var, mean, dead = ([float(np.mean(t[c][pick & (t["layer"] == k)])) for k in layers]
                               for c in ("var", "mean", "dead"))
            rows.append(f"| {label} | {step} | {min(var):.2f}..{max(var):.2f} | {var[-1]:.2f} | "
                        f"{max(abs(m) for m in mean):.2f} | {max(dead):.3f} |")
    return ("\n| series | step | var min..max over layers 1..L | var at layer L | max abs mean | max dead |\n"
            "| --- | --- | --- | --- | --- | --- |\n" + "\n".join(rows) + "\n")


# ---- check's false alarms and detections on the ci example (minutes) ---------------------------

@functools.cache
def ci_snapshot(overrides: tuple[str, ...]):
    """What `snn-lab check` reads of the ci example run with these overrides."""
    from snn_lab import api, compare, results

    with tempfile.TemporaryDirectory() as tmp:
        api.run("ci", overrides, out=Path(tmp) / "r")
        return compare.snapshot(results.read(Path(tmp) / "r"), "ci")


def ci_report(*overrides: str):
    """`snn-lab check RUN --baseline SEED0 --mode statistical` for the ci example run with overrides."""
    from snn_lab import compare

    return compare.compare(ci_snapshot(()), ci_snapshot(tuple(overrides)), "statistical")


@numbers("check-false-alarms", "docs/check.md", kind="costly",
         form=r"\d+ values; k = [\d.]+ to [\d.]+ standard errors; about a second per run\): seeds 1 to\n\d+ against the seed-0 baseline gave \d+ false alarms, the worst value at [\d.]+ of its threshold\n"
              r"\(median over runs [\d.]+\)")
def check_false_alarms() -> str:
    import numpy as np

    seeds, alarms, worst = 200, 0, []
    for seed in range(1, seeds + 1):
        rep = ci_report(f"seed={seed}")
        alarms += not rep.passed
        worst.append(max(abs(v.current - v.baseline) / v.threshold for v in rep.values if v.kind == "stat"))
    lo, hi = ci_report("seed=1").k_range()
    return (f"{len(rep.values)} values; k = {lo:.1f} to {hi:.1f} standard errors; about a second per run): seeds 1 to\n"
            f"{seeds} against the seed-0 baseline gave {alarms} false alarms, the worst value at "
            f"{max(worst):.2f} of its threshold\n(median over runs {np.median(worst):.2f})")


def value_count(snapshot) -> int:
    """M: how many values `snn-lab check` compares for a run (a run against itself)."""
    from snn_lab import compare

    return len(compare.compare(snapshot, snapshot, "statistical").values)


@numbers("check-value-counts", "docs/check.md", slow=True)
def check_value_counts() -> str:
    """The CI config's M and the default experiment's (a small run of it: M depends on the series,
    depths and statistics, not on width, batch or trials)."""
    from snn_lab import api, compare, examples, results

    with tempfile.TemporaryDirectory() as tmp:
        api.run(examples.DEFAULT, ("width=32", "batch=32", "trials=2"), out=Path(tmp) / "r")
        default = value_count(compare.snapshot(results.read(Path(tmp) / "r"), "default"))
    return f"{value_count(ci_snapshot(()))} for the CI config, {default} for the default\n  experiment"


@numbers("check-k", "docs/check.md", slow=True)
def check_k() -> str:
    """k for the ci example's M values: the normal quantile, then Student's t at 2 (n - 1) degrees of freedom."""
    from scipy import stats

    from snn_lab import compare

    values = value_count(ci_snapshot(()))
    half = compare.family_level(compare.FALSE_ALARM, values) / 2
    k = [stats.t.isf(half, 2 * (n - 1)) for n in (16, 8, 4)]
    return (f"M = {values}: k = {stats.norm.isf(half):.2f} with infinitely many trials, {k[0]:.2f}\n  with 16 + 16 trials "
            f"(30 degrees of freedom), {k[1]:.2f} with 8 + 8, {k[2]:.3g} with 4 + 4")


@numbers("check-width-bias", "docs/check.md", kind="costly",
         form=r"at layer 20, relative to the theory, ReLU \(He\)'s mean is\n([+-][\d.]+ ± [\d.]+% at (width )?\d+(, |; )){3}"
              r"tanh's variance\n([+-][\d.]+ ± [\d.]+%(, |; )){3}SELU's ([+-][\d.]+ ± [\d.]+%(, |)){3}")
def check_width_bias() -> str:
    """The ci example with 48 trials at widths 64, 128, 256: the last layer's distance from the
    mean-field value, relative, with its standard error."""
    from snn_lab import api

    cells: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for width in (64, 128, 256):
        s = api.run("ci", ("trials=48", f"width={width}")).summary
        for label, stat in (("ReLU (He)", "mean"), ("tanh", "var"), ("SELU", "var")):
            row = {k: v[s["series"] == label] for k, v in s.items()}
            theory = at(row, f"theory_{stat}", 20)
            cells.setdefault((label, stat), []).append((100 * (at(row, stat, 20) - theory) / theory,
                                                        100 * at(row, f"{stat}_sd", 20) / 48 ** 0.5 / abs(theory)))
    relu, tanh, selu = ([f"{d:+.2g} ± {se:.1g}%" for d, se in cells[k]]
                        for k in (("ReLU (He)", "mean"), ("tanh", "var"), ("SELU", "var")))
    return (f"at layer 20, relative to the theory, ReLU (He)'s mean is\n{relu[0]} at width 64, {relu[1]} at 128, "
            f"{relu[2]} at 256; tanh's variance\n{tanh[0]}, {tanh[1]}, {tanh[2]}; SELU's {selu[0]}, {selu[1]}, {selu[2]}")


CI_SERIES = ("SELU", "ReLU (He)", "tanh")


@numbers("check-gain-detection", "docs/check.md", kind="costly",
         form=r"One series' gain 1\.0 -> 1\.05 \(weight variance \+10%\), seeds 0 to 3,\nwas caught in \d+ of 12 runs: "
              r"SELU [\d to]+ values drifted \(worst [\d to]+ standard errors\),\ntanh [\d to]+ \([\d to]+\), ReLU \(He\) "
              r"[\d to]+ \([\d to]+\)[^<]*")
def check_gain_detection() -> str:
    def span(xs) -> str:
        lo, hi = round(min(xs)), round(max(xs))
        return f"{lo}" if lo == hi else f"{lo} to {hi}"

    caught, detail = {}, {}
    for gain in ("1.05", "1.03", "1.02", "1.01"):
        for i, label in enumerate(CI_SERIES):
            reps = [ci_report(f"series.{i}.gain={gain}", f"seed={seed}") for seed in range(4)]
            caught[gain, label] = sum(not r.passed for r in reps)
            if gain == "1.05":
                detail[label] = ([len(r.drifted) for r in reps],
                                 [max((abs(v.current - v.baseline) / v.se for v in r.drifted), default=0) for r in reps])
    per = {label: f"{span(detail[label][0])} values drifted (worst {span(detail[label][1])} standard errors)"
           if label == "SELU" else f"{span(detail[label][0])} ({span(detail[label][1])})" for label in CI_SERIES}
    smaller = "; ".join(f"gain {gain}: " + ", ".join(f"{label} {caught[gain, label]} of 4" for label in CI_SERIES)
                        for gain in ("1.03", "1.02", "1.01"))
    return ("One series' gain 1.0 -> 1.05 (weight variance +10%), seeds 0 to 3,\nwas caught in "
            f"{sum(caught['1.05', label] for label in CI_SERIES)} of 12 runs: "
            f"SELU {per['SELU']},\ntanh {per['tanh']}, ReLU (He) {per['ReLU (He)']}. Caught, out of 4 seeds: {smaller}")


# ---- the isometry example's spectra (a minute or more) ------------------------------------------

ISOMETRY_ROWS = (("SELU", 16), ("SELU", 128), ("SELU-orth", 16), ("SELU-orth", 128), ("tanh", 16), ("tanh", 128),
                 ("tanh-orth", 1), ("tanh-orth", 16), ("tanh-orth", 128), ("ReLU", 16), ("ReLU", 128),
                 ("ReLU-orth", 16), ("ReLU-orth", 128), ("linear", 16), ("linear", 128))


def _e3(x: float) -> str:
    from quoted_base import e

    return e(x, 3)


@numbers("isometry-measured", "docs/isometry.md", kind="costly",
         form=r"\n\| series \| layer \| mean lambda \| theory \| var lambda \(s\.e\.\) \| theory \| median condition \| within x2 \|\n"
              r"\| --- \| --- \| --- \| --- \| --- \| --- \| --- \| --- \|\n(\| [\w-]+ \| \d+ \| [\de.]+ \| [\de.]+ \| "
              r"[\de.]+ \([\de.]+\) \| [\de.]+ \| ([\de.]+|inf) \| [\d.]+ \|\n){15}")
def isometry_measured() -> str:
    """`snn-lab run isometry`: lambda's moments averaged over the (trial, input) pairs of a layer."""
    return _isometry_table((), ISOMETRY_ROWS, condition=True)


@functools.cache
def isometry_run(overrides: tuple[str, ...]):
    """`snn-lab run isometry` with these overrides: (jacobian table, jacobian_values table, widths)."""
    from snn_lab import api

    run = api.run("isometry", overrides)
    return run.table("jacobian"), run.table("jacobian_values"), {s["label"]: s["width"] for s in run.config["series"]}


def _isometry_table(overrides: tuple[str, ...], rows_wanted, condition: bool) -> str:
    import numpy as np

    from snn_lab.theory import spectrum

    j, _, widths = isometry_run(overrides)
    rows = []
    for label, layer in rows_wanted:
        width = widths[label]
        pick = (j["series"] == label) & (j["layer"] == layer)
        var, n = j["var"][pick], int(pick.sum())
        theory = _e3(j["theory_var"][pick][0])
        if label == "linear" and not condition:  # beside the exact finite-width value (Wick)
            theory += f" ({spectrum.linear_gaussian_variance(width, layer)[layer]:.2f} at width {width})"
        rows.append(f"| {label} | {layer} | {_e3(np.mean(j['mean'][pick]))} | {_e3(j['theory_mean'][pick][0])} | "
                    f"{_e3(np.mean(var))} ({_e3(np.std(var, ddof=1) / n ** 0.5)}) | {theory} | "
                    + (f"{_e3(np.median(j['condition'][pick]))} | " if condition else "")
                    + f"{np.mean(j['within_2'][pick]):.3f} |")
    head = "| series | layer | mean lambda | theory | var lambda (s.e.) | theory |" + (" median condition |" * condition)
    return (("" if condition else f"{n} (trial, input) pairs per layer\n(`snn-lab run isometry --set trials=8`), "
             "excerpt:\n")
            + f"\n{head} within x2 |\n|" + " --- |" * (8 if condition else 7) + "\n" + "\n".join(rows) + "\n")


ISOMETRY_ROWS_8 = (("SELU", 16), ("SELU-orth", 16), ("SELU-orth", 64), ("tanh", 16), ("tanh-orth", 16),
                   ("tanh-orth", 64), ("ReLU", 16), ("ReLU-orth", 16), ("linear", 16), ("linear", 64))


@numbers("isometry-measured-8", "docs/isometry.md", kind="costly",
         form=r"\d+ \(trial, input\) pairs per layer\n\(`snn-lab run isometry --set trials=8`\), "
              r"excerpt:\n\n\| series \| layer \| mean lambda \| theory \| var lambda \(s\.e\.\) \| theory \| within x2 \|\n"
              r"\| --- \| --- \| --- \| --- \| --- \| --- \| --- \|\n(\| [\w-]+ \| \d+ \| [\de.]+ \| [\de.]+ \| "
              r"[\de.]+ \([\de.]+\) \| [\de.]+( \([\d.]+ at width \d+\))? \| [\d.]+ \|\n){10}")
def isometry_measured_8() -> str:
    """The same with 8 trials: the variance's standard error shrinks."""
    return _isometry_table(("trials=8",), ISOMETRY_ROWS_8, condition=False)


def _pick(table: dict, label: str, layer: int):
    return (table["series"] == label) & (table["layer"] == layer)


def _var_se(j: dict, label: str, layer: int) -> tuple[float, float, float]:
    """The (trial, input) pairs' mean of var lambda, its standard error, and the theory's value."""
    import numpy as np

    var = j["var"][_pick(j, label, layer)]
    return float(np.mean(var)), float(np.std(var, ddof=1) / len(var) ** 0.5), float(j["theory_var"][_pick(j, label, layer)][0])


@numbers("isometry-selu-mean", "docs/isometry.md", kind="costly",
         form=r"theory \d+ at layer 128; measured \d+ ± [\d.e+]+ from 4 \(trial, input\) pairs, \d+ ± [\d.e+]+ from 16")
def isometry_selu_mean() -> str:
    import numpy as np

    (four, _, _), (sixteen, _, _) = isometry_run(()), isometry_run(("trials=8",))
    cells = []
    for j in (four, sixteen):
        means = j["mean"][_pick(j, "SELU", 128)]  # one per (trial, input) pair
        cells.append(f"{np.mean(means):.0f} ± {np.std(means, ddof=1) / len(means) ** 0.5:.2g}")
    return (f"theory {four['theory_mean'][_pick(four, 'SELU', 128)][0]:.0f} at layer 128; measured {cells[0]} "
            f"from 4 (trial, input) pairs, {cells[1]} from 16")


@numbers("isometry-variance-fit", "docs/isometry.md", kind="costly",
         form=r"within [\d.]+ standard errors at layer 16 for every\n  series \(16 pairs\), and for the linear "
              r"network within [\d.]+ of the exact width-256 value at layers 16 and\n  64\. From layer 64 on, the "
              r"measured variance runs above the infinite-width value \(tanh at 128:\n  [\de.]+ \+- [\de.]+ against [\de.]+\)")
def isometry_variance_fit() -> str:
    from snn_lab.theory import spectrum

    j, _, widths = isometry_run(("trials=8",))
    z16 = max(abs(v - th) / se for v, se, th in (_var_se(j, label, 16) for label in widths))
    exact = spectrum.linear_gaussian_variance(widths["linear"], 64)
    z_lin = max(abs(v - exact[k]) / se for k in (16, 64) for v, se, _ in [_var_se(j, "linear", k)])
    tanh = _var_se(j, "tanh", 128)
    return (f"within {z16:.1f} standard errors at layer 16 for every\n  series (16 pairs), and for the linear network "
            f"within {z_lin:.1f} of the exact width-256 value at layers 16 and\n  64. From layer 64 on, the measured "
            f"variance runs above the infinite-width value (tanh at 128:\n  {_e3(tanh[0])} +- {_e3(tanh[1])} against "
            f"{_e3(tanh[2])})")


@numbers("isometry-within-2", "docs/isometry.md", kind="costly",
         form=r"\([\d.]+% of lambda within a factor 2 of 1 \(orthogonal SELU [\d.]+%\), against [\d.]+% to [\d.]+% for "
              r"every\n  Gaussian series and for orthogonal ReLU\), and none keeps one after 128 \([\d.]+% at best\)")
def isometry_within_2() -> str:
    import numpy as np

    j, _, widths = isometry_run(())

    def share(label: str, layer: int) -> float:
        return 100 * float(np.mean(j["within_2"][_pick(j, label, layer)]))
    rest = [share(label, 16) for label in widths if not label.endswith("-orth") or label == "ReLU-orth"]
    return (f"({share('tanh-orth', 16):.2g}% of lambda within a factor 2 of 1 (orthogonal SELU "
            f"{share('SELU-orth', 16):.2g}%), against {min(rest):.2g}% to {max(rest):.2g}% for every\n  Gaussian series "
            f"and for orthogonal ReLU), and none keeps one after 128 ({max(share(s, 128) for s in widths):.2g}% at best)")


@numbers("isometry-small-lambda", "docs/isometry.md", kind="costly",
         form=r"\([\d.]+% below 1e-8 at L = 16, 4 pairs\), and ReLU at layer 1 has [\d.]+% of its lambda at 0 \(below\n  1e-8\)")
def isometry_small_lambda() -> str:
    import numpy as np

    _, values, _ = isometry_run(())
    linear, relu = (values["value"][_pick(values, label, layer)] for label, layer in (("linear", 16), ("ReLU", 1)))
    return (f"({100 * np.mean(linear < 1e-8):.2g}% below 1e-8 at L = 16, 4 pairs), and ReLU at layer 1 has "
            f"{100 * np.mean(relu < 1e-8):.2g}% of its lambda at 0 (below\n  1e-8)")
