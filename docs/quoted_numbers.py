"""The numbers the docs quote from runs, each written by the command that produces it.

    python docs/quoted_numbers.py NAME [NAME ...]   rewrite those blocks in their pages
    python docs/quoted_numbers.py --all             every block (the costly ones take minutes)
    python docs/quoted_numbers.py --check           exit 1 if a cheap block differs from a rerun
    python docs/quoted_numbers.py --list            the blocks: name, page, kind

A page marks each quoted number between `<!-- numbers: NAME -->` and `<!-- /numbers -->`
(inline or around whole lines). Kinds:
  rerun     seeded or exact, cheap: tests/test_docs_numbers.py reruns it and compares exactly
  measured  machine timings, rendered from the committed benchmark JSON with where it ran;
            the test re-renders the JSON (the timing itself is not reproducible)
  costly    minutes of Monte Carlo: the test checks the block's format and that it names this
            command; rerun it by hand after a change to what it measures
"""

from __future__ import annotations

import functools
import json
import re
import sys

import quoted_prose  # noqa: F401  (registers the blocks inside the prose of finite-width, normalization, results)
import quoted_runs  # noqa: F401  (registers the blocks of seeded runs and the costly ones)
import quoted_samples  # noqa: F401  (registers the per-sample blocks of normalization.md)
from quoted_base import (
    BLOCK,
    GENERATORS,
    ROOT,
    Unavailable,
    _s,
    at,
    e,
    f4,
    g,
    numbers,
    summary,
    theory_json,
)

# ---- theory (exact, cheap) ----------------------------------------------------------------------

@numbers("selu-fixed-point", "docs/theory.md")
def selu_fixed_point() -> str:
    s = theory_json("--activation", "selu", "--init", "lecun_normal")
    fp, (j0, j1) = s["fixed_point"], s["jacobian"]
    jac = ", ".join(f"[{f4(a)}, {f4(b)}]" for a, b in (j0, j1))
    return f"fixed point ({f4(fp['mean'])}, {f4(fp['var'])}), Jacobian [{jac}], spectral norm {f4(s['spectral_norm'])}"


@numbers("selu-chi1", "docs/theory.md")
def selu_chi1() -> str:
    return f4(theory_json("--activation", "selu", "--init", "lecun_normal")["chi1"])


@numbers("selu-xi-q", "docs/theory.md")
def selu_xi_q() -> str:
    return f"{theory_json('--activation', 'selu', '--init', 'lecun_normal')['xi_q']:.2f}"


@numbers("selu-recovers-jump", "docs/theory.md")
def selu_recovers_jump() -> str:
    from snn_lab import config, examples
    from snn_lab.theory import meanfield

    s = next(x for x in config.load(str(examples.path("selu_recovers"))).series if x.label == "mean 1")
    mean, var = meanfield.predict(s)[1, :2]
    return f"({mean:.2f}, {var:.2f})"


@numbers("tanh-critical-line", "docs/theory.md")
def tanh_critical_line() -> str:
    from snn_lab.theory import phase

    tanh, biases = phase.template("tanh"), (0, 0.05, 0.5, 1, 2)
    crit = [phase.critical_weight_var(tanh, b, 0.5, 8.0) for b in biases]
    return ("\n| sigma_b^2 | " + " | ".join(g(b) for b in biases) + " |\n| --- |" + " --- |" * len(biases)
            + "\n| critical sigma_w^2 | " + " | ".join(g(w) for w in crit) + " |\n")


@numbers("width-depth-scales", "docs/finite-width.md")
def width_depth_scales() -> str:
    parts = []
    for args, shown in ((("--activation", "relu", "--init", "he_normal"), "--activation relu --init he_normal"),
                        (("--activation", "tanh"), "--activation tanh"), (("--activation", "selu"), "--activation selu")):
        fw = theory_json(*args, "--width", "1024")["finite_width"]
        if fw["depth"] is not None:
            ratio = g(fw["depth_over_width"], 3)
            what = f"layer {fw['depth']} ({'depth / width ' if not parts else ''}{ratio})"
        else:
            what = f"never within {fw['cap']} layers, bounded at {g(fw['limit_sd'], 3)}"
        parts.append(f"`{shown} --width 1024`: {what}")
    parts[0] = "`snn-lab theory " + parts[0][1:]
    return "; ".join(parts)


@numbers("selu-width-64", "docs/finite-width.md")
def selu_width_64() -> str:
    narrow = theory_json("--activation", "selu", "--width", "64")["finite_width"]
    wide = theory_json("--activation", "selu", "--width", "1024")["finite_width"]
    return (f'"bounded: it tends to {g(narrow["limit_sd"], 3)} with depth"; at width 1024, '
            f'{g(wide["limit_sd"], 3)}')


@numbers("nf-gains", "docs/normalization.md")
def nf_gains() -> str:
    from snn_lab.activations import make_activation, nf_gain

    gains = {n: nf_gain(make_activation(n)) for n in ("relu", "leaky_relu", "elu", "tanh", "gelu", "silu",
                                                       "selu", "linear")}
    ones = [n for n, v in gains.items() if f"{v:.6f}" == "1.000000"]
    shown = [f"{n} {v:.6f}" + (" (= sqrt(2 pi/(pi - 1)))" if n == "relu" else "")
             for n, v in gains.items() if n not in ones]
    return ", ".join(shown) + f", {' and '.join(ones)} 1"


def isometry_series() -> dict:
    """The isometry example's series by label, and the linear network with orthogonal weights beside its Gaussian one."""
    from snn_lab import config, examples

    text = examples.path("isometry").read_text() + "  - {label: linear-orth, activation: linear, init: orthogonal}\n"
    return {s.label: s for s in config.load(text=text).series}


@numbers("isometry-theory", "docs/isometry.md")
def isometry_theory() -> str:
    from snn_lab.theory import meanfield, spectrum

    series, rows = isometry_series(), []
    for name in ("SELU", "tanh", "ReLU", "linear"):
        gauss, orth = series[name], series[f"{name}-orth"]
        q = meanfield.predict(gauss)[-1, 2]
        act = gauss.make_activation()

        def per_layer(s, q):
            mu2, mu4 = spectrum.derivative_moments(s, q)
            return mu4 / mu2 ** 2 - 1 + spectrum.weight_spread(s)
        # a positively homogeneous phi': the per-layer spread is the same at every q
        any_q = f4(per_layer(gauss, q)) == f4(per_layer(gauss, 3 * q + 1))
        (mean, var_g), var_o = spectrum.jacobian_moments(gauss)[0][-1], spectrum.jacobian_moments(orth)[0][-1, 1]
        label = name + ("" if name == "SELU" else f", sigma_w^2 = {g(gauss.weight_var, 5)}"
                        + (f", sigma_b^2 = {g(gauss.bias_var)}" if gauss.bias_var else ""))
        shown_mean = "" if g(mean) == "1" else f" (mean {g(mean)})"
        rows.append(f"| {label} | {'(any)' if any_q else g(q)} | {g(meanfield.chi1(gauss, q, act), 6)} | "
                    f"{f4(per_layer(gauss, q))} | {f4(per_layer(orth, q))} | {e(var_g)} / {e(var_o)}{shown_mean} |")
    depth = series["SELU"].depth
    return ("\n| series | q* | chi_1 | per layer: Gaussian W | orthogonal W | variance at L = "
            f"{depth} (Gaussian / orthogonal) |\n| --- | --- | --- | --- | --- | --- |\n" + "\n".join(rows) + "\n")


@numbers("isometry-orth-ratio", "docs/isometry.md")
def isometry_orth_ratio() -> str:
    from snn_lab.theory import spectrum

    series = isometry_series()
    ratio = {name: spectrum.jacobian_moments(series[name])[0][-1, 1] / spectrum.jacobian_moments(series[f"{name}-orth"])[0][-1, 1]
             for name in ("tanh", "SELU", "ReLU")}
    return ", ".join(f"{g(r, 2)} for {name}" for name, r in ratio.items())


@numbers("isometry-linear-width", "docs/isometry.md")
def isometry_linear_width() -> str:
    from snn_lab.theory import spectrum

    v, wide = spectrum.linear_gaussian_variance(256, 128), spectrum.linear_gaussian_variance(1024, 128)
    return (f"At width 256 that is {v[16]:.2f} at L = 16,\n{v[64]:.2f} at L = 64 and {v[128]:.2f} at L = 128 "
            f"against the infinite-width 16, 64, 128 (at width 1024:\n{wide[128]:.1f} at L = 128)")

# ---- the backends' agreement (the default config on both: a minute) -----------------------------

@functools.cache
def backend_differences(dtype: str) -> tuple[float, float]:
    """Largest numpy-compiled difference over the default config's series, trials and layers: of a
    mean in units of the layer's root mean square, of a variance relative (as the engine test bounds them)."""
    import numpy as np

    from snn_lab import config, examples
    from snn_lab.simulate import backends, engine

    if (missing := backends.compiled_missing()) is not None:
        raise Unavailable(f"needs the compiled backend: {missing}")
    exp, means, variances = config.load(str(examples.path(examples.DEFAULT)), overrides=(f"dtype={dtype}",)), 0.0, 0.0
    for s in exp.series:
        a, b = (engine.run_series(s, exp.seed, exp.trials, backend=k).stats for k in ("numpy", "compiled"))
        mean, var = a[..., [0, 2]], a[..., [1, 3]]  # (mean, var) of the output, then of the pre-activation
        means = max(means, float(np.max(np.abs(mean - b[..., [0, 2]]) / np.sqrt(var + mean ** 2))))
        variances = max(variances, float(np.max(np.abs(var - b[..., [1, 3]]) / var)))
    return means, variances


def _sci(x: float) -> str:
    """Two significant digits in e-notation, zeros kept (differences of 1e-15 are the data here)."""
    return re.sub(r"e\+?(-?)0*(\d)", r"e\1\2", f"{x:.1e}")


BACKEND_FORM = r"\d\.\de-\d+, \d\.\de-\d+"


@numbers("backend-diff-float64", "docs/engine.md", kind="costly", form=BACKEND_FORM)
def backend_diff_float64() -> str:
    return ", ".join(_sci(x) for x in backend_differences("float64"))


@numbers("backend-diff-float32", "docs/engine.md", kind="costly", form=BACKEND_FORM)
def backend_diff_float32() -> str:
    return ", ".join(_sci(x) for x in backend_differences("float32"))


@numbers("plots-default-run", "docs/plots.md", kind="costly",
         form=r"falls to [\de.-]+ at layer 64\n\(theory [\de.-]+\) while SELU's stays within [\d.]+% of 1")
def plots_default_run() -> str:
    import numpy as np

    from snn_lab import api, examples

    s = api.run(examples.DEFAULT).summary
    relu, selu = (s["series"] == "ReLU"), (s["series"] == "SELU") & (s["layer"] >= 1)
    drift = 100 * float(np.max(np.abs(s["var"][selu] - 1)))
    relu = {k: v[relu] for k, v in s.items()}
    return (f"falls to {_sci(at(relu, 'var', 64))} at layer 64\n(theory {_sci(at(relu, 'theory_var', 64))}) while SELU's "
            f"stays within {drift:.2g}% of 1")


# ---- probes (seeded runs) ----------------------------------------------------------------------

@numbers("probe-dead-relu", "docs/probes.md")
def probe_dead_relu() -> str:
    s = summary(trials=4, width=128, depth=60, batch=64, measure=["dead"],
                series=[{"activation": "relu", "init": "he_normal"}])
    layers = ", ".join(f"{at(s, 'dead_fraction', k):.2g} at layer {k}" for k in (1, 10, 30, 60))
    return f"measured for He init, width 128, batch 64, 4 trials, seed 0: {layers}"


@numbers("relu-cosine-theory", "docs/probes.md")
def relu_cosine_theory() -> str:
    s = summary(trials=2, width=8, depth=2, batch=8, measure=["correlation"],
                series=[{"activation": "relu", "init": "he_normal"}])
    return (f"1/pi = {at(s, 'theory_correlation', 1):.4f} at layer 1, "
            f"{at(s, 'theory_correlation', 2):.4f} at layer 2")


@numbers("probe-cosine-bias", "docs/probes.md", slow=True)
def probe_cosine_bias() -> str:
    trials, cells, slopes = 128, [], []
    for width in (64, 256, 512):
        s = summary(trials=trials, width=width, depth=1, batch=64, dtype="float64", measure=["correlation"],
                    series=[{"activation": "relu", "init": "he_normal"}])
        bias = at(s, "correlation", 1) - at(s, "theory_correlation", 1)
        se = at(s, "correlation_sd", 1) / trials ** 0.5
        cells.append(f"{bias:+.4f} ± {se:.4f} at {'width ' if not cells else ''}{width}")
        slopes.append(bias * width)
    selu = summary(trials=16, width=256, depth=30, batch=64, dtype="float64", measure=["correlation"],
                   series=[{"activation": "selu"}])
    return (f"ReLU-He at layer 1, batch 64, {trials} trials: {', '.join(cells)}, about "
            f"{sum(slopes) / len(slopes):.2f}/width; SELU's grows to about {at(selu, 'correlation', 30):+.3f} "
            "by layer 30 at width 256 (16 trials)")


# ---- benchmarks (machine timings, rendered from the committed JSON) -----------------------------

def bench_json(name: str) -> dict:
    """A committed benchmark record, benchmarks/NAME."""
    return json.loads((ROOT / "benchmarks" / name).read_text())


@numbers("bench-sweep", "docs/performance.md", kind="measured")
def bench_sweep() -> str:
    d = bench_json("bench_sweep.json")
    med, base = d["median"], d["median"]["jobs 1"]
    names = {"jobs 1": "`--jobs 1`", "jobs 2": "`--jobs 2`", "dask, jobs 2": "`--executor dask --jobs 2`"}
    notes = {"dask, jobs 2": " (a local cluster takes about a second to start)"}
    rows = [f"| {names[k]} | {v:.2f} | {base / v:.2f}x{notes.get(k, '')} |" for k, v in med.items()]
    return (f"\nMedians of {d['repeats']} on {d['cpus']} cores (load {d['load']:.1f}): a machine timing, "
            "not reproduced by the tests, from `benchmarks/bench_sweep.json` at the commit that last wrote it "
            "(`git log -1 -- benchmarks/bench_sweep.json`); the command above measures it again:\n\n"
            "| case | median s | vs `--jobs 1` |\n| --- | --- | --- |\n" + "\n".join(rows) + "\n")


ENGINE_ROWS = (  # (JSON file, case name, label on the page)
    ("bench_engine.json", "whole run float32 1024x128, batch 2048",
     "whole `snn-lab run`, default config, 1024 x 128, batch 2048, float32"),
    ("bench_engine.json", "whole run float64 1024x128, batch 2048", "the same, float64"),
    ("bench_engine_cases.json", "engine selu float32 1024x64, batch 2048", "engine, SELU float32, 1024 x 64, batch 2048"),
    ("bench_engine_cases.json", "engine relu float32 1024x64, batch 2048", "engine, ReLU float32"),
    ("bench_engine_cases.json", "engine selu float64 1024x64, batch 2048", "engine, SELU float64"),
    ("bench_engine_cases.json", "engine relu float64 1024x64, batch 2048", "engine, ReLU float64"),
    ("bench_engine_cases.json", "small selu float32 128x64, batch 256, 32 trials",
     "small, SELU float32, 128 x 64, batch 256, 32 trials"),
    ("bench_engine_cases.json", "small selu float64 128x64, batch 256, 32 trials", "small, SELU float64"),
)


def _engine_row(label: str, case: dict, floor: str) -> str:
    """One benchmark case as a table row: floor, each backend's time (ratio), the targets."""
    m, r, t = case["median"], case["ratio"], case["target"]
    return (f"| {label} | {_s(m[floor])} | {_s(m['numpy'])} ({r['numpy']:.2f}) | "
            f"{_s(m['compiled'])} ({r['compiled']:.2f}) | {g(t['numpy'])} / {g(t['compiled'])} |")


@numbers("bench-engine", "docs/engine.md", kind="measured")
def bench_engine() -> str:
    files = {f: bench_json(f) for f in {r[0] for r in ENGINE_ROWS}}
    rows = [_engine_row(label, next(c for c in files[file]["cases"] if c["name"] == name), "floor")
            for file, name, label in ENGINE_ROWS]
    return ("\n| case | floor s | numpy s (ratio) | compiled s (ratio) | target numpy / compiled |\n"
            "| --- | --- | --- | --- | --- |\n" + "\n".join(rows) + "\n")


@numbers("bench-torch", "docs/engine.md", kind="measured")
def bench_torch() -> str:
    d = bench_json("bench_engine_cases.json")

    def span(kind: str, *backends: str) -> str:
        r = [c["vs_torch"][b] for c in d["cases"] if c["kind"] == kind for b in backends]
        return f"{min(r):.2f} to {max(r):.2f}"
    version = ".".join(d["environment"]["torch"].split("+")[0].split(".")[:2])
    return (f"Against PyTorch {version} on the CPU (a plain forward loop, same shapes), snn-lab took "
            f"{span('engine', 'compiled')}\nof torch's time with the compiled backend and {span('engine', 'numpy')} "
            f"with numpy on the engine cases, and\n{span('small', 'numpy', 'compiled')} on the small ones")


@numbers("bench-split-floor", "docs/engine.md", kind="measured")
def bench_split_floor() -> str:
    d = bench_json("bench_engine_cases.json")
    ratio = {c["dtype"]: c["median"]["floor_split"] / c["median"]["floor"] for c in d["cases"] if c["kind"] == "small"}
    return (" and ".join(f"{r:.2f} ({dtype})" for dtype, r in ratio.items()) + " times as long on their own "
            "(`floor_split` against\n`floor` in `benchmarks/bench_engine_cases.json`)")


@numbers("bench-engine-small", "docs/engine.md", kind="measured")
def bench_engine_small() -> str:
    d = bench_json("bench_engine_small.json")
    labels = {"float32": "small, SELU float32", "float64": "small, SELU float64"}
    rows = [_engine_row(labels[c["dtype"]], c, c["floor_used"]) for c in d["cases"]]
    return ("\n| case | floor s | numpy s (ratio) | compiled s (ratio) | target |\n"
            "| --- | --- | --- | --- | --- |\n" + "\n".join(rows) + "\n")


@numbers("bench-small-breakdown", "docs/engine.md", kind="measured")
def bench_small_breakdown() -> str:
    """benchmarks/bench_small_breakdown.py's record: each backend's parts per trial-layer."""
    d = bench_json("bench_small_breakdown.json")
    rows = []
    for c in d["cases"]:
        n, med = c["trial_layers"], c["median"]

        def ns(seconds: float, per: int) -> str:
            return f"{seconds / n / per * 1e9:.2f}"
        rows.append(f"| {c['dtype']} | floor | 1 | {ns(med['floor'], c['outputs'])} | | | | | | |")
        for b, ratio in c["ratio"].items():
            p = c["parts"][b]
            shown = ("products", "normals", "activation + sums", "streams", "finish")
            rest = p["total"] - sum(p[k] for k in shown)
            rows.append(f"| {c['dtype']} | {b} | {ratio:.2f} | {ns(p['products'], c['outputs'])} | "
                        f"{ns(p['normals'], c['weights'])} | {ns(p['activation + sums'], c['outputs'])} | "
                        f"{p['streams'] / n * 1e6:.1f} | {p['finish'] / n * 1e6:.1f} | {rest / n * 1e6:.1f} | "
                        f"{(p['total'] - p['products']) / p['products']:.2f} |")
    return ("\n| dtype | run | time / floor | products, ns an output | normals, ns a weight | activation + "
            "sums, ns an output | streams, us | finish, us | the rest, us | all but the products / the "
            "products |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n" + "\n".join(rows) + "\n")


@numbers("bench-numpy-bound", "docs/engine.md", kind="measured")
def bench_numpy_bound() -> str:
    """benchmarks/bench_numpy_bound.py's record: the numpy backend's small case bounded from below."""
    d = bench_json("bench_numpy_bound.json")
    rows = []
    for c in d["cases"]:
        ns = c["ns"]
        rows.append(f"| {c['dtype']} | {ns['floor (the product)']:.2f} | {ns['exp']:.2f} | "
                    f"{ns['float64 sums']:.2f} | {c['box_muller_ns_a_normal']:.2f} | {c['bound']:.2f} | "
                    f"{c['bound_ziggurat']:.2f} |")
    return ("\n| dtype | product, ns an output | exp, ns | float64 sums, ns | Box-Muller's four passes, ns a "
            "normal | at least (x the floor) | with numpy's ziggurat |\n| --- | --- | --- | --- | --- | --- | --- |\n"
            + "\n".join(rows) + "\n")


@numbers("bench-training", "docs/training.md", kind="measured")
def bench_training() -> str:
    d = bench_json("bench_training.json")
    rows = [f"| {name} | {c['width']} | {c['batch']} | {c['depth']} | {c['floor_s'] * 1e3:.2f} | "
            f"{c['step_s'] * 1e3:.2f} | {c['ratio']:.2f} | {c['cpu_ratio']:.2f} |"
            for name, c in d.items() if name != "breakdown_cpu_s"]
    return ("\n| case | width | batch | depth | floor (ms) | step (ms) | step / floor | CPU: step / floor |\n"
            "| --- | --- | --- | --- | --- | --- | --- | --- |\n" + "\n".join(rows) + "\n")


@numbers("bench-training-breakdown", "docs/training.md", kind="measured")
def bench_training_breakdown() -> str:
    b = bench_json("bench_training.json")["breakdown_cpu_s"]
    ms = {k: v * 1e3 for k, v in b.items()}
    x = {k: f" ({v / ms['floor']:.2f}x)" for k, v in ms.items()}
    return (f"floor\n{ms['floor']:.2f} ms, forward {ms['forward']:.2f}{x['forward']}, backward {ms['backward']:.2f}"
            f"{x['backward']}, of which its products alone {ms['backward products']:.2f}\n{x['backward products'][1:]}, "
            f"loss {ms['loss']:.2f}, update {ms['update']:.2f}")


@numbers("bench-normalization", "benchmarks/README.md", kind="measured")
def bench_normalization() -> str:
    d = bench_json("bench_normalization.json")
    return (f"median {d['median']:.1f} s over {d['runs']} runs ({', '.join(f'{s:.1f}' for s in d['seconds'])}) on "
            f"{d['cpus']} cores, load average {d['load']:.1f} after: a machine timing from the commit that last\nwrote "
            "the JSON (`git log -1 -- benchmarks/bench_normalization.json`), not reproduced by the tests")


# ---- the pages ----------------------------------------------------------------------------------

def blocks(text: str) -> list[tuple[str, str]]:
    """(name, text) of every numbers block on a page, in order."""
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(text)]


def rewrite(name: str) -> bool:
    """Regenerate one block in its page; True if the page changed (Unavailable: it cannot run here)."""
    gen = GENERATORS[name]
    page = ROOT / gen.page
    text = page.read_text()
    made = gen.make()
    new = BLOCK.sub(lambda m: m.group(0) if m.group(1) != name else
                            f"<!-- numbers: {name} -->{made}<!-- /numbers -->", text)
    if not any(n == name for n, _ in blocks(text)):
        raise SystemExit(f"{gen.page}: no <!-- numbers: {name} --> block")
    if new != text:
        page.write_text(new)
    return new != text


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    if argv[0] == "--list":
        for name, gen in GENERATORS.items():
            print(f"{name:22} {gen.page:22} {gen.kind}")
        return 0
    if argv[0] == "--check":
        stale = []
        for n, gen in GENERATORS.items():
            if gen.kind != "costly":
                try:
                    stale += [n] if dict(blocks((ROOT / gen.page).read_text())).get(n) != gen.make() else []
                except Unavailable as why:
                    print(f"skipped: {gen.page}: {n}: {why}")
        for n in stale:
            print(f"stale: {GENERATORS[n].page}: {n} (python docs/quoted_numbers.py {n})")
        return 1 if stale else 0
    names = list(GENERATORS) if argv[0] == "--all" else argv
    for name in names:
        if name not in GENERATORS:
            raise SystemExit(f"no numbers block {name!r} (python docs/quoted_numbers.py --list)")
        try:
            print(f"{'rewrote' if rewrite(name) else 'unchanged'}: {GENERATORS[name].page}: {name}")
        except Unavailable as why:
            print(f"skipped: {GENERATORS[name].page}: {name}: {why} (its block is left as it was)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
