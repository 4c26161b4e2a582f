"""Rich renderables for the terminal (built here, printed only by the CLI)."""

from __future__ import annotations

import math

import numpy as np
from rich.markup import escape
from rich.table import Table

from snn_lab.statistics import SETTLE, deviation, settle_layer


def display_layers(depth: int) -> list[int]:
    """Layers 1, 2, 5, 10, 20, 50, ... up to depth, and the last one."""
    shown, step = [], 1
    while step <= depth:
        shown += [v for v in (step, 2 * step, 5 * step) if v <= depth]
        step *= 10
    if depth not in shown:
        shown.append(depth)
    return shown


def _num(v: float, digits: int = 4) -> str:
    if not math.isfinite(v):
        return f"[bold red]{v}[/]"
    # Fixed point where it reads well; scientific where ReLU's variance has fallen to 1e-19.
    return f"{v:.{digits}f}" if v == 0 or 1e-3 <= abs(v) < 1e4 else f"{v:.3e}"


NOISE = 1e-12  # a predicted mean this small against its sd is the rounding of an exact 0


def _theory(v: float, scale: float = 0.0) -> str:
    """A predicted value; 0 when below NOISE x scale (a mean's scale is its layer's sd; a variance
    has none: 2^-60 after 60 halvings is a real prediction, not noise)."""
    v, scale = float(v), float(scale)
    return _num(0.0 if math.isfinite(scale) and abs(v) < NOISE * scale else v)


def _sd(var: float) -> float:
    """The scale of a predicted mean: the layer's predicted sd (0 where it is not a number)."""
    var = float(var)
    return math.sqrt(var) if math.isfinite(var) and var > 0 else 0.0


def _measured(v: float, se: float, fmt=_num) -> str:
    """A simulated value; dim when it is within one standard error of 0 (noise, not a signal)."""
    text = fmt(v)
    return f"[dim]{text}[/]" if math.isfinite(v) and abs(v) < se else text


def fold(table: Table) -> Table:
    """Cells wrap instead of being cut: at 80 columns or piped, 1e-04 and 1e-17 stay distinct."""
    for column in table.columns:
        column.overflow = "fold"
    return table


def _z(v: float) -> str:
    if not math.isfinite(v):
        return "-"
    text = f"{v:+.1f}"
    return f"[red]{text}[/]" if abs(v) > 4 else text


def summary_table(res) -> Table:
    """Per series, a few layers: simulated mean and var beside theory, deviation in std errors."""
    has_theory = "theory_mean" in res.summary
    table = Table(title=f"{escape(str(res.config['name']))}: post-activation statistics across "
                        f"{res.config['trials']} trials", title_justify="left")
    table.add_column("series")
    table.add_column("layer", justify="right")
    table.add_column("mean", justify="right")
    if has_theory:
        table.add_column("theory", justify="right", style="cyan")
        table.add_column("z", justify="right")
    table.add_column("var", justify="right")
    if has_theory:
        table.add_column("theory", justify="right", style="cyan")
        table.add_column("z", justify="right")
    for label in res.labels:
        rows = res.series_summary(label)
        depth = int(rows["layer"].max())
        for n, layer in enumerate(display_layers(depth)):
            i = int(layer)
            cells = [escape(label) if n == 0 else "", str(layer)]
            trials = int(rows["trials"][i])
            for stat in ("mean", "var"):
                sim, sd = float(rows[stat][i]), float(rows[f"{stat}_sd"][i])
                cells.append(_measured(sim, sd / math.sqrt(trials) if trials > 1 else 0.0))
                if has_theory:
                    th = float(rows[f"theory_{stat}"][i])
                    scale = _sd(rows["theory_var"][i]) if stat == "mean" else 0.0
                    cells += [_theory(th, scale), _z(deviation(sim, sd, trials, th))]
            table.add_row(*cells, end_section=n == len(display_layers(depth)) - 1)
    table.caption = "dim: within one standard error of 0" + (
        "; z: (simulation - theory) in standard errors of the trial mean" if has_theory else "")
    return fold(table)


def convergence_lines(res) -> list[str]:
    """Per series, the answer users ask first: from which layer on it stays at its fixed point."""
    if "settled" not in res.summary:
        return []  # a folder written before the columns existed
    points = res.meta.get("fixed_points")
    points = points if isinstance(points, dict) else {}
    lines = [f"converged: from which layer on the mean and variance stay within {SETTLE:.0%} of the "
             "fixed point (simulation; theory)"]
    for label in res.labels:
        rows = res.series_summary(label)
        sim, th = settle_layer(rows["settled"]), settle_layer(rows["theory_settled"])
        fp = points.get(label) if isinstance(points.get(label), dict) else {}
        if not {"mean", "var"} <= set(fp):
            why = fp.get("note") if isinstance(fp.get("note"), str) else "none found"
            lines.append(f"  {escape(label)}: no fixed point to settle at ({escape(why)})")
            continue
        at = lambda layer: "not by the last layer" if layer is None else f"layer {layer}"  # noqa: E731
        lines.append(f"  {escape(label)}: {at(sim)}; theory: {at(th)} (fixed point: mean "
                     f"{_theory(fp['mean'], _sd(fp['var']))}, var {_theory(fp['var'])})")
    return lines


# ---- snn-lab check ------------------------------------------------------------------------

CHECK_ROWS = 50  # drifted values shown in a table; --json lists them all
CHECK_COLUMNS = ("series", "layer", "statistic", "baseline", "current", "difference", "threshold",
                 "in standard errors")


def _g(v: float, sign: bool = False) -> str:
    if not math.isfinite(v):
        return str(v)
    return f"{v:+.6g}" if sign else f"{v:.6g}"


def check_cells(v) -> list[str]:
    """One drifted value as plain text cells, in CHECK_COLUMNS order."""
    if v.kind == "nan":
        finite = math.isfinite(v.baseline) and math.isfinite(v.current)
        return [v.series, str(v.layer), v.stat, _g(v.baseline), _g(v.current), "-", "-",
                "no standard error" if finite else "non-finite"]
    z = f"{v.z:.1f} > {v.k:.2f}" if v.kind == "stat" else "- (exact)"
    return [v.series, str(v.layer), v.stat, _g(v.baseline), _g(v.current), _g(v.difference, True),
            _g(v.threshold), z]


def check_threshold(report) -> str:
    """One sentence: how the tolerance was chosen."""
    n = len(report.values)
    if report.mode == "exact":
        return (f"tolerance: |current - baseline| <= atol + rtol max(|baseline|, |current|) "
                f"(rtol {report.rtol:g}, atol {report.atol:g})")
    other = "theory" if report.mode == "theory" else "baseline"
    se = "of the trial mean" if report.mode == "theory" else "of the difference"
    ks, dfs = report.k_range(), report.df_range()
    if ks is None:
        return f"tolerance: every value compared exactly (rtol {report.rtol:g}, atol {report.atol:g})"
    if report.sigmas is not None:
        how = f"k = {report.sigmas:g} (--sigmas)"
    else:
        k = f"{ks[0]:.2f}" if ks[1] - ks[0] < 0.005 else f"{ks[0]:.2f}-{ks[1]:.2f}"
        df = f"{dfs[0]:.1f}" if dfs[1] - dfs[0] < 0.05 else f"{dfs[0]:.1f}-{dfs[1]:.1f}"
        how = (f"k = {k} from Student's t ({df} degrees of freedom), for a "
               f"{report.false_alarm:.1%} chance of any false alarm over {n} values")
    return f"threshold: |current - {other}| <= k standard errors {se}; {how}"


def check_verdict(report) -> str:
    """'N of M values within tolerance'."""
    return f"{report.within} of {len(report.values)} values within tolerance"


def check_table(report, limit: int = CHECK_ROWS) -> Table:
    """The drifted values, worst first (at most `limit` rows)."""
    drifted = report.drifted
    table = Table(title=f"drifted values ({report.mode}), worst first", title_justify="left")
    for name in CHECK_COLUMNS:
        table.add_column(name, justify="left" if name in ("series", "statistic") else "right")
    for v in drifted[:limit]:
        table.add_row(*map(escape, check_cells(v)))
    if len(drifted) > limit:
        table.caption = f"{limit} worst of {len(drifted)} shown; --json lists all"
    return fold(table)


def check_markdown(report, limit: int = CHECK_ROWS) -> str:
    """The report as GitHub-flavoured Markdown: a pull-request comment or a CI step summary."""
    state = "passed" if report.passed else report.verdict
    lines = [f"### snn-lab check ({report.mode}): {state}", "",
             f"`{report.results}` against `{report.baseline}`", ""]
    if report.changes:
        lines += ["Config differences (not errors): " + "; ".join(f"`{c}`" for c in report.changes), ""]
    drifted = report.drifted
    if drifted:
        lines += ["| " + " | ".join(CHECK_COLUMNS) + " |",
                  "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |"]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in check_cells(v)) + " |"
                  for v in drifted[:limit]]
        if len(drifted) > limit:
            lines.append(f"\n{limit} worst of {len(drifted)} shown; `--json` lists all.")
        lines.append("")
    lines += [f"**{check_verdict(report)}**", "", check_threshold(report)]
    if report.notes:
        lines += ["", *(f"- {n}" for n in report.notes)]
    return "\n".join(lines) + "\n"


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    return f"{v:.6g}"


def theory_tables(reports: list[dict]) -> list:
    """Per series: the fixed-point analysis (or a block's growth factors), then the predicted layers."""
    out = []
    for rep in reports:
        label = escape(str(rep["label"]))
        table = Table(title=f"{label}: mean-field analysis", title_justify="left", show_header=False)
        table.add_column("quantity", style="bold")
        table.add_column("value")
        if rep["status"] in ("normalized", "residual"):
            _block_rows(table, rep)
        else:
            _fixed_point_rows(table, rep)
        out.append(table)
        layers = rep["layers"]
        pred = Table(title=f"{label}: predicted layers", title_justify="left")
        columns = {"theory_mean": "mean", "theory_var": "var", "theory_preact_var": "preact var",
                   "theory_grad_ratio": "grad ratio", "gradient_growth": "grad growth"}
        columns = {k: v for k, v in columns.items() if k in layers[0]}
        for col in ("layer", *columns.values()):
            pred.add_column(col, justify="right")
        for layer in [0, *display_layers(len(layers) - 1)]:
            row = layers[layer]
            pred.add_row(str(layer), *(_fmt(_denoised(row, k)) for k in columns))
        out.append(fold(pred))
    return out


def _denoised(row: dict, key: str):
    """row[key], with a mean below NOISE x its sd (row's var or theory_var) shown as the exact 0."""
    v, var = row[key], row.get("var", row.get("theory_var"))
    if key not in ("mean", "theory_mean") or not isinstance(v, float) or not isinstance(var, float):
        return v
    return 0.0 if abs(v) < NOISE * _sd(var) else v


def _value(rep: dict, key: str) -> str:
    """A report value, or '-' with its reason."""
    value, why = rep.get(key), rep.get("reasons", {}).get(key)
    return _fmt(value) if value is not None or not why else f"- ({escape(why)})"


def _fixed_point_rows(table: Table, rep: dict) -> None:
    fp = rep["fixed_point"]
    table.add_row("fixed point", "none: " + escape(str(rep["note"])) if fp is None else
                  f"q* = {_fmt(fp['q'])}, mean* = {_fmt(_denoised(fp, 'mean'))}, var* = {_fmt(fp['var'])}")
    jac = rep.get("jacobian")
    table.add_row("Jacobian of g", "-" if jac is None else
                  "[[" + ", ".join(map(_fmt, jac[0])) + "], [" + ", ".join(map(_fmt, jac[1])) + "]]")
    for key, name in (("spectral_norm", "spectral norm"), ("q_slope", "slope of the q-map at q*"),
                      ("chi1", "chi_1 (gradient growth per layer)"), ("phase", "phase"),
                      ("c_star", "correlation fixed point c*"), ("chi_c", "chi_c at c*"),
                      ("xi_q", "depth scale xi_q"), ("xi_c", "depth scale xi_c")):
        table.add_row(name, _value(rep, key))


def _block_rows(table: Table, rep: dict) -> None:
    """A normalized or residual series: no fixed point; its growth factors per layer."""
    block = rep["block"]
    table.add_row("block", escape(str(rep["note"])))
    if block["activation_gain"] != 1.0:
        table.add_row("activation gain", _fmt(block["activation_gain"]))
    limit = {"batch": "deep, large batch, eps -> 0", "layer": "deep, large width, eps -> 0"}.get(block["norm"], "deep")
    rows = [("gradient_growth", "gradient growth per layer, deep (E delta_(l-1)^2 / E delta_l^2)"),
            ("gradient_growth_limit", f"gradient growth limit ({limit})"),
            ("gradient_ratio_input", "gradient ratio input / top")]
    if rep["status"] == "residual":
        rows += [("variance_growth", "variance growth, last block (var_L / var_(L-1))"),
                 ("variance_increment", "variance increment, last block (var_L - var_(L-1))")]
    for key, name in rows:
        table.add_row(name, _value(rep, key))


def _short(v: float) -> str:
    """Three significant digits; '-' where nothing was measured or predicted."""
    return f"{v:.3g}" if math.isfinite(v) else "-"


def probes_table(res) -> Table | None:
    """Per series, a few layers: gradient ratio, dead units and input cosine, beside theory."""
    cols = [c for c in ("grad_ratio", "dead_fraction", "correlation") if c in res.summary
            and not np.all(np.isnan(res.summary[c].astype(float)))]
    if not cols:
        return None
    names = {"grad_ratio": "grad ratio", "dead_fraction": "dead units", "correlation": "cosine"}
    what = {"grad_ratio": "gradients (E\\[delta^2] / top)", "dead_fraction": "dead units",
            "correlation": "input cosine"}
    table = Table(title=f"{escape(str(res.config['name']))}: {', '.join(what[c] for c in cols)}",
                  title_justify="left")
    table.add_column("series")
    table.add_column("layer", justify="right")
    for c in cols:
        table.add_column(names[c], justify="right")
        if f"theory_{c}" in res.summary:
            table.add_column("theory", justify="right", style="cyan")
    for label in res.labels:
        rows = res.series_summary(label)
        shown = [0, *display_layers(int(rows["layer"].max()))]
        for n, i in enumerate(shown):
            cells = [escape(label) if n == 0 else "", str(i)]
            trials = int(rows["trials"][i])
            for c in cols:
                v, sd = float(rows[c][i]), float(rows[f"{c}_sd"][i]) if f"{c}_sd" in rows else math.nan
                se = sd / math.sqrt(trials) if trials > 1 and math.isfinite(sd) else 0.0
                cells.append(_measured(v, se, _short))
                if f"theory_{c}" in rows:
                    th = float(rows[f"theory_{c}"][i])
                    cells.append(_short(0.0 if abs(th) < NOISE else th))
            table.add_row(*cells, end_section=n == len(shown) - 1)
    table.caption = "dim: within one standard error of 0"
    return fold(table)


SWEEP_ROWS = 60  # a terminal table; sweep.csv has every row


def sweep_table(sweep, limit: int = SWEEP_ROWS) -> Table:
    """The last layer of every point and series: swept values, mean and var beside theory."""
    t = sweep.table
    last = np.zeros(len(t["layer"]), dtype=bool)
    for point in dict.fromkeys(t["point"]):
        rows = t["point"] == point
        last |= rows & (t["layer"] == t["layer"][rows].max())
    index = np.flatnonzero(last)
    table = Table(title=f"{escape(str(sweep.manifest.get('name', '')))}: last layer of each point "
                  f"({len(dict.fromkeys(t['point']))} points)", title_justify="left")
    for key in sweep.keys:
        table.add_column(escape(key), justify="right")
    for name in ("series", "layer", "mean", "theory", "var", "theory"):
        table.add_column(name, justify="left" if name == "series" else "right")
    for i in index[:limit]:
        cells = [escape(str(t[k][i])) if t[k].dtype == object else f"{t[k][i]:g}" for k in sweep.keys]
        table.add_row(*cells, escape(str(t["series"][i])), str(t["layer"][i]), _num(t["mean"][i]),
                      _theory(t["theory_mean"][i], _sd(t["theory_var"][i])), _num(t["var"][i]),
                      _theory(t["theory_var"][i]))
    if len(index) > limit:
        table.caption = f"first {limit} of {len(index)} rows; every row and layer is in {sweep.path}/sweep.csv"
    return fold(table)


def jacobian_table(res) -> Table | None:
    """Per series and measured layer: the Jacobian's squared singular values (mean over trials
    and inputs) beside free probability's mean and variance; None without the measurement."""
    from snn_lab import spectrum_results

    if "jacobian.csv" not in res.tables:
        return None
    table = Table(title=f"{escape(str(res.config['name']))}: input-output Jacobian, lambda = squared "
                  "singular values (mean over trials and inputs)", title_justify="left")
    for name in ("series", "layer", "mean", "theory", "var", "(s.e.)", "theory", "cond. (median)", "within x2"):
        table.add_column(name, justify="left" if name == "series" else "right",
                         style="cyan" if name == "theory" else None)
    for label in res.labels:
        rows = spectrum_results.by_layer(res.tables, label)
        for n, r in enumerate(rows):
            table.add_row(escape(label) if n == 0 else "", str(r["layer"]), _short(r["mean"]), _short(r["theory_mean"]),
                          _short(r["var"]), _short(r["var_se"]), _short(r["theory_var"]),
                          "inf" if r["condition"] == math.inf else _short(r["condition"]),
                          f"{r['within_2']:.3f}", end_section=n == len(rows) - 1)
    return table


def finite_width_lines(reports: list[dict]) -> list[str]:
    """One line per series: where the finite-width spread reaches its size, and its limit."""
    out = []
    for rep in reports:
        fw = rep.get("finite_width")
        if fw is None:
            continue
        head = f"{rep['label']}, width {fw['width']}: "
        if fw["depth"] is not None:
            reach = (f"the sd of log q reaches {fw['spread']:g} at layer {fw['depth']} "
                     f"(depth / width {fw['depth_over_width']:.3g})")
        else:
            reach = fw["reasons"].get("depth", "not reached")
        limit = (f"; bounded: it tends to {fw['limit_sd']:.3g} with depth (fixed point)"
                 if fw["limit_sd"] is not None else f"; {fw['reasons'].get('limit_sd', '')}")
        out.append(head + reach + limit)
    return out
