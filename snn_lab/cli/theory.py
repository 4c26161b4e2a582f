"""`snn-lab theory` (and --phase) and `snn-lab selu-params`: the mean-field analysis alone."""

from __future__ import annotations

from pathlib import Path

import click

from snn_lab.cli import UsageProblem, _load, _stdin, main


_SERIES_OPTIONS = (("activation", str), ("init", str), ("gain", float), ("bias_var", float),
                   ("dropout", float))
# The --phase grids' defaults, START,STOP,N of sigma_w^2 and of sigma_b^2 (theory.phase.grid):
# seconds for tanh (docs/theory.md): an ordered point costs a few ms (a fixed point and a
# quadrature or two), a chaotic one ~20 ms (c* < 1: about four Newton steps, theory/phase_grid.py).
_PHASE_GRIDS = {"--weight-var": "0.5,4.5,41", "--bias-var-range": "0,2,21"}


@main.command()
@click.argument("config", required=False, metavar="[CONFIG]")
@click.option("--activation", help="Activation for every series (or, without CONFIG, the only series).")
@click.option("--init", help="Initializer, as in the config (lecun_normal, he_normal, ...).")
@click.option("--gain", type=float, help="Multiplies the weights' standard deviation.")
@click.option("--bias-var", "bias_var", type=float, help="Variance of the N(0, bias_var) biases.")
@click.option("--dropout", type=float, help="Alpha-dropout rate after the activation.")
@click.option("--normalize-weights", "normalize", is_flag=True, default=None,
              help="Each unit's weights: sum 0, sum of squares gain^2 (the map g).")
@click.option("--depth", type=int, help="Layers of the predicted table.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key, as in run.")
@click.option("--json", "as_json", is_flag=True, help="Print the analysis as JSON (and nothing else).")
@click.option("--phase", is_flag=True,
              help="Phase diagram of one activation over (sigma_w^2, sigma_b^2): chi_1, xi_c, the critical line.")
@click.option("--weight-var", "weight_grid", metavar="START,STOP,N",
              help=f"With --phase: the sigma_w^2 grid (default: {_PHASE_GRIDS['--weight-var']}).")
@click.option("--bias-var-range", "bias_grid", metavar="START,STOP,N",
              help=f"With --phase: the sigma_b^2 grid (default: {_PHASE_GRIDS['--bias-var-range']}).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="With --phase: the figure (.png, .svg or .pdf; default: results/phase-<activation>.png).")
@click.option("--overlay", type=click.Path(path_type=Path), metavar="SWEEP_DIR",
              help="With --phase: mark a sweep's points (its sweep.csv) coloured by --stat.")
@click.option("--stat", metavar="NAME", help="With --overlay: the sweep.csv column drawn (default: var).")
@click.option("--layer", type=int, metavar="N", help="With --overlay: the layer drawn (default: each point's last).")
@click.option("--width", "fw_width", type=click.IntRange(min=2), metavar="N",
              help="Also the finite-width spread at width N: the depth where one sample's log q "
                   "spreads by --spread, and its limit where bounded (docs/finite-width.md).")
@click.option("--spread", "fw_spread", type=click.FloatRange(min=0, min_open=True), default=0.5,
              show_default=True, metavar="S", help="With --width: the sd of log q to reach.")
@click.option("--series", "overlay_series", metavar="LABEL",
              help="With --overlay: the sweep's series (default: its only one).")
def theory(config, activation, init, gain, bias_var, dropout, normalize, depth, overrides, as_json,
           phase, weight_grid, bias_grid, out, overlay, stat, layer, fw_width, fw_spread, overlay_series):
    """Mean-field analysis: fixed point, stability, chi_1, depth scales, per-layer prediction.

    A series with a norm or a residual has no fixed point: its gradient growth per layer (and
    its large-batch or large-width limit) and, with a residual, its variance growth per block.

    Without CONFIG and options: the default experiment's series. With --activation (and
    friends) but no CONFIG: that one series. With CONFIG: the options apply to every series.

    With --phase: the phase diagram of one activation (chi_1 and xi_c over a grid of
    sigma_w^2 and sigma_b^2, the critical line chi_1 = 1), written as a figure.

    \b
    Example:
      snn-lab theory --activation selu --init lecun_normal
      snn-lab theory --activation tanh --gain 1.2 --bias-var 0.05 --depth 30 --json
      snn-lab theory init_pitfalls
      snn-lab theory --phase --activation tanh --weight-var 0.5,4.5,41 --bias-var-range 0,2,21
    """
    import json

    from rich.console import Console

    from snn_lab import theory as th
    from snn_lab.report import theory_tables

    phase_only = {"--weight-var": weight_grid, "--bias-var-range": bias_grid, "--out": out,
                  "--overlay": overlay, "--stat": stat, "--layer": layer, "--series": overlay_series}
    if not phase and any(v is not None for v in phase_only.values()):
        first = next(k for k, v in phase_only.items() if v is not None)
        raise UsageProblem(f"{first} applies only with --phase; add --phase (or drop {first})")
    if phase and fw_width is not None:
        raise UsageProblem("--width applies to the per-series analysis, not to --phase; drop one of them")
    if phase:
        for name, value in (("--gain", gain), ("--bias-var", bias_var), ("--depth", depth)):
            if value is not None:
                raise UsageProblem(f"{name} has no effect with --phase (the grid sets sigma_w^2 and "
                                   "sigma_b^2); use --weight-var START,STOP,N and --bias-var-range "
                                   f"START,STOP,N instead of {name}")
        if overlay is None and any(v is not None for v in (stat, layer, overlay_series)):
            raise UsageProblem("--stat, --layer and --series choose what --overlay draws; add --overlay SWEEP_DIR")
    given = {key: value for (key, _), value in zip(_SERIES_OPTIONS, (activation, init, gain, bias_var, dropout))
             if value is not None}
    if normalize:
        given["normalize_weights"] = True
    if depth is not None:
        given["depth"] = depth
    if config is None and "activation" in given:
        exp = _load_options("<options>", given, 1, overrides,
                            text="name: theory\nseries: [{activation: %s}]\n" % json.dumps(given["activation"]))
    else:
        text = _stdin() if config == "-" else None
        exp = _load(config, overrides, check_resources=False, text=text)
        if given:
            exp = _load_options(config, given, len(exp.series), overrides, text)
    if phase:
        return _theory_phase(exp, config is None and "activation" not in given, weight_grid, bias_grid,
                             out, overlay, stat, layer, overlay_series, as_json)
    import numpy as np

    with np.errstate(all="ignore"):  # overflow in the maps is reported as null, not warned about
        reports = [th.report(s) for s in exp.series]
    if fw_width is not None:
        from snn_lab.theory import width_correction

        for rep, s in zip(reports, exp.series):
            rep["finite_width"] = width_correction.depth_scale(s, fw_width, fw_spread)
    if as_json:
        click.echo(json.dumps({"name": exp.name, "series": reports}, indent=2, allow_nan=False))
        return
    console = Console()
    for renderable in theory_tables(reports):
        console.print(renderable)
    if fw_width is not None:
        from snn_lab.report import finite_width_lines

        for line in finite_width_lines(reports):
            console.print(line, markup=False, soft_wrap=True)


def _theory_phase(exp, defaulted, weight_grid, bias_grid, out, overlay, stat, layer, series_label,
                  as_json) -> None:
    """snn-lab theory --phase: compute the diagram, draw it, print a summary or JSON."""
    import json

    import numpy as np

    from snn_lab.theory import phase as ph
    from snn_lab import plot as plots
    from snn_lab.activations import ACTIVATIONS

    kinds = list(dict.fromkeys(s.make_activation().label for s in exp.series))
    if defaulted or len(kinds) > 1:
        found = f"the default experiment has {', '.join(kinds)}" if defaulted else \
            f"{exp.name} has {len(kinds)}: {', '.join(kinds)}"
        raise UsageProblem(f"--phase draws one activation; {found}. Name one with --activation "
                           f"(one of: {', '.join(ACTIVATIONS)})")
    weights, biases = (ph.grid(text or _PHASE_GRIDS[option], option, _PHASE_GRIDS[option])
                       for text, option in ((weight_grid, "--weight-var"), (bias_grid, "--bias-var-range")))
    tmpl = ph.plain(exp.series[0])
    path = out or Path("results") / f"phase-{tmpl.activation}.png"
    try:
        made = plots.save_phase_figure(tmpl, weights, biases, path, overlay, stat or "var", layer, series_label)
    except plots.OverlayError as exc:
        raise UsageProblem(f"--{exc.option}: {exc}") from None
    diagram, marks, weights, biases = made.diagram, made.overlay, made.diagram.weight_var, made.diagram.bias_var
    for warning in made.warnings:
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        click.echo(json.dumps({**diagram.to_json(), "figure": str(path), "warnings": list(made.warnings)}, indent=2))
        return
    click.echo(f"{diagram.activation}: mean-field phase diagram, sigma_w^2 in [{weights[0]:g}, "
               f"{weights[-1]:g}] ({weights.size}), sigma_b^2 in [{biases[0]:g}, {biases[-1]:g}] ({biases.size})")
    counts = {r: int((diagram.region == r).sum()) for r in ("ordered", "critical", "chaotic")}
    click.echo("grid points: " + ", ".join(f"{n} {r}" for r, n in counts.items() if n))
    click.echo("critical line chi_1 = 1:")
    for i in sorted(set(np.linspace(0, biases.size - 1, min(5, biases.size)).round().astype(int))):
        w = diagram.critical[i]
        where = f"sigma_w^2 = {w:.4f}" if np.isfinite(w) else "not in the sigma_w^2 grid"
        click.echo(f"  sigma_b^2 = {biases[i]:<8g} {where}")
    if marks is not None:
        click.echo(f"overlay: {len(marks['point'])} sweep points, {marks['stat']} of {marks['series']}")
    click.echo(f"wrote {path}")


def _series_sets(given: dict, count: int) -> dict[str, str]:
    """Command-line series options as --set overrides of every series -> the option as typed."""
    import json

    return {f"series.{i}.{key}={json.dumps(value)}": _typed(key, value)
            for i in range(count) for key, value in given.items()}


def _typed(key: str, value) -> str:
    """An option as the user typed it: ('bias_var', 0.1) -> '--bias-var 0.1'."""
    name = key.replace("_", "-")
    return f"--{name}" if value is True else f"--{name} {value}"


def _load_options(config: str, given: dict, count: int, overrides: tuple[str, ...], text: str | None):
    """The experiment with the series options applied; their problems name the option as typed
    (--activation sleu, not the --set it became), once, not once per series."""
    from dataclasses import replace

    from snn_lab.config import ConfigError

    sets = _series_sets(given, count)
    try:
        return _load(config, tuple(sets) + overrides, check_resources=False, text=text)
    except ConfigError as err:
        problems = []
        for p in err.problems:
            typed = sets.get(p.where.removeprefix("--set "))
            p = replace(p, where=typed, key=p.key.split(".", 2)[-1]) if typed else p
            if p not in problems:
                problems.append(p)
        raise ConfigError(problems) from None




@main.command("selu-params")
@click.option("--mean", type=float, required=True, help="The fixed point's mean.")
@click.option("--var", type=float, required=True, help="The fixed point's variance (> 0).")
@click.option("--dropout-rate", type=float, help="Also alpha dropout's a, b and alpha' for this rate.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: lambda, alpha (and a, b, alpha_prime).")
def selu_params(mean, var, dropout_rate, as_json):
    """The SELU lambda and alpha whose fixed point is (MEAN, VAR), as the paper's authors compute them.

    \b
    Example:
      snn-lab selu-params --mean 0 --var 1                    # lambda01, alpha01
      snn-lab selu-params --mean 0 --var 1 --dropout-rate 0.1 --json
    """
    import json

    from snn_lab import theory as th

    try:
        params = th.selu_params(mean, var, dropout_rate)
    except ValueError as exc:
        raise UsageProblem(str(exc)) from None
    if as_json:
        click.echo(json.dumps(params, indent=2))
        return
    for key, value in params.items():
        click.echo(f"{key:>11} = {value!r}")
