"""The snn-lab command line: parse, call the library, render. Nothing imports this module."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click

from snn_lab import __version__

# Heavy imports (numpy, rich, matplotlib) happen inside commands: `snn-lab --help` stays fast.


class UsageProblem(click.ClickException):
    """A problem with what the user asked for: message, exit code 2, no traceback."""

    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


class _Group(click.Group):
    """Ctrl-C or SIGTERM in any command: one line, exit code 130, no traceback."""

    def invoke(self, ctx):
        from snn_lab import interrupts
        from snn_lab.errors import SnnLabError

        try:
            with interrupts.catching():
                return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException):
            raise  # the command's own answer (an interrupted sweep says how far it got)
        except SnnLabError as exc:  # every library error: its message, its exit status (errors.py)
            if not interrupts.received():
                click.echo(f"error: {exc}", err=True)
                raise click.exceptions.Exit(exc.exit_status) from None
        except Exception:
            if not interrupts.received():
                raise
            # Ctrl-C inside an import can surface as an ImportError: it is still Ctrl-C.
        except KeyboardInterrupt:
            pass
        click.echo("interrupted: nothing was written", err=True)
        raise click.exceptions.Exit(130) from None


def _version(ctx: click.Context, _param, value: bool) -> None:
    """--version: the version, and which backends this install has (and why one is missing)."""
    if not value or ctx.resilient_parsing:
        return
    from snn_lab.simulate import backends

    states = backends.describe()
    click.echo(f"snn-lab {__version__}")
    for name in ("numpy", "compiled"):
        click.echo(f"backend {name}: {states[name]}")
    click.echo(f"default backend: {states['default']} (choose with --backend or ${backends.ENV})")
    ctx.exit()


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_version,
              help="Show the version and the backends this install has, and exit.")
def main() -> None:
    """snn-lab: what depth does to the signal in random deep networks.

    \b
    Example:
      snn-lab run                      # the built-in SELU vs ReLU experiment
      snn-lab run selu_recovers --set depth=200
    """


def _stdin() -> str:
    """Standard input as the config's text: capped, and a closed or unreadable one is exit 2."""
    from snn_lab import config as cfg

    try:
        if sys.stdin is None:
            raise ValueError
        text = sys.stdin.read(cfg.MAX_BYTES + 1)
    except (OSError, ValueError) as exc:  # closed (None, or ValueError on read) or undecodable
        why = f": {exc}" if str(exc) else " (it is closed)"
        raise UsageProblem(f"cannot read the config from standard input{why}; name a config file "
                           "instead of '-'") from None
    if len(text) > cfg.MAX_BYTES:
        raise UsageProblem(f"<stdin>: {cfg.too_large()}")
    return text


def _target_problem(out: Path, exc: OSError) -> UsageProblem:
    """An --out the system refuses (a name too long, no permission) as one line."""
    return UsageProblem(f"cannot use --out {out}: {exc.strerror or exc}")


def _load(config: str | None, overrides: tuple[str, ...], check_resources: bool = True,
          text: str | None = None):
    """Load an experiment ('-': standard input; `text`: that YAML, named `config`), problems -> exit 2."""
    from snn_lab import config as cfg
    from snn_lab.simulate.memory import check_memory, memory_available
    from snn_lab.results import check_size

    if config == "-" and text is None:
        text = _stdin()
    if text is not None:
        exp = cfg.load("<stdin>" if config == "-" else config, text=text, overrides=overrides)
    else:
        exp = cfg.load(config, overrides=overrides)
    if check_resources:  # a ConfigError (exit 2, errors.py) when it would not fit
        available = memory_available()
        check_memory(exp, available)
        check_size(exp, available)
        if exp.train is not None:  # an .npz task's file, read and checked before the run
            from snn_lab.train.loop import load_task
            load_task(exp)
    return exp


@main.command()
@click.argument("config", required=False, metavar="[CONFIG]")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Results folder (default: results/<name>).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config key, dotted (depth=200, input.var=4, series.0.activation=tanh).")
@click.option("--sweep", "sweeps", multiple=True, metavar="KEY=V1,V2,...",
              help="Sweep a key over values (or linspace(A,B,N), logspace, geomspace, range); "
                   "repeat for a grid. Adds to (or replaces a key of) the config's sweep: block.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=1, show_default=True,
              help="Sweep points run at once, each in its own process (BLAS threads split between them).")
@click.option("--executor", type=click.Choice(["local", "dask"]), default=None,
              help="Where sweep points run: local processes (default) or a Dask cluster (the dask extra).")
@click.option("--scheduler", metavar="ADDRESS",
              help="Dask scheduler address (tcp://host:8786); implies --executor dask. Without it, "
                   "--executor dask starts a local cluster of --jobs workers.")
@click.option("--force", is_flag=True, help="Replace an existing, non-empty results folder.")
@click.option("--backend", type=click.Choice(["auto", "numpy", "compiled"]), default=None,
              help="Which loops run the engine: compiled if it was built (auto, the default), or numpy; "
                   "also $SNN_LAB_BACKEND. The numbers agree to rounding (docs/engine.md).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON (and nothing else) on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no table.")
@click.option("--plot", "with_plot", is_flag=True, help="Also draw the figures (png) into <out>/plots, as `snn-lab plot` does.")
def run(config, out, overrides, sweeps, jobs, executor, scheduler, force, backend, as_json, quiet, with_plot):
    """Simulate an experiment (or a sweep of them) and write its results folder.

    CONFIG is a YAML experiment file, a shipped example's name (`snn-lab examples`), '-' for
    standard input, or omitted for the built-in default (SELU vs ReLU-LeCun vs ReLU-He). A config with a sweep: block, or
    --sweep on the command line, runs one experiment per grid point into OUT/points/ and
    aggregates them into OUT/sweep.csv; the same command resumes an interrupted sweep.

    \b
    Example:
      snn-lab run selu_recovers --set depth=200 --set series.0.activation=tanh
      snn-lab run sweep_width_gain --jobs 2
      snn-lab run --sweep width=64,256,1024 --sweep 'gain=linspace(0.8,1.2,5)' -j 2
    """
    import json

    from rich.console import Console
    from rich.markup import escape

    from snn_lab import results
    from snn_lab.executors import simulate

    from snn_lab.simulate import backends

    backend = backends.resolve(backend)
    text = _stdin() if config == "-" else None
    sweep = _load_sweep(config, overrides, sweeps, text, jobs)
    if sweep is not None:
        return _run_sweep(sweep, out, jobs, executor or ("dask" if scheduler else "local"), scheduler,
                          force, as_json, quiet, with_plot, backend)
    if jobs != 1 or executor or scheduler:
        raise UsageProblem("--jobs, --executor and --scheduler run the points of a sweep; this config "
                           "has no sweep: block (add one, or --sweep KEY=V1,V2,...)")
    exp = _load(config, overrides, text=text)
    out = out or Path("results") / exp.name
    try:
        results.check_target(out, force)
    except OSError as exc:
        raise _target_problem(out, exc) from None
    err = Console(stderr=True)
    try:
        with _progress(err, enabled=not (quiet or as_json), total=_work(exp)) as advance:
            res = simulate(exp, advance, backend=backend)
        results.write(res, out, force)
    except OSError as exc:
        raise UsageProblem(str(exc)) from None
    figures = []
    if with_plot:
        from snn_lab import plot as plots
        try:
            figures = plots.save_figures(res, out / "plots", ("png",))
        except OSError as exc:  # e.g. a full disk: the results are written; the figures are not
            raise UsageProblem(f"wrote {out}/, but not its figures: {exc.strerror or exc}; "
                               f"`snn-lab plot {out}` draws them") from None
    if as_json:
        click.echo(json.dumps(results.to_json(res), indent=2))
        return
    console = Console()
    if not quiet:
        from snn_lab.report import convergence_lines, jacobian_table, probes_table, summary_table
        console.print(summary_table(res))
        for line in convergence_lines(res):
            console.print(line, highlight=False, soft_wrap=True)
        for extra in (probes_table(res), jacobian_table(res)):
            if extra is not None:
                console.print(extra)
    for event in res.meta["overflow"]:
        err.print(f"[yellow]warning:[/] {escape(event['series'])}: trial {event['trial']} left the float "
                  f"range at layer {event['layer']}; later layers are inf/NaN", highlight=False, soft_wrap=True)
    for label, note in [*res.meta.get("theory_notes", {}).items(), *res.meta.get("training_notes", {}).items()]:
        err.print(f"note: {label}: {note}", markup=False, highlight=False, soft_wrap=True)
    console.print(f"wrote {out}/ ({res.meta['wall_seconds']:.2f} s)", markup=False, highlight=False, soft_wrap=True)
    if figures:
        console.print(f"drew {len(figures)} figure{'s' * (len(figures) != 1)} in {out / 'plots'}/", markup=False, highlight=False, soft_wrap=True)


def _load_sweep(config, overrides, sweeps, text, jobs):
    """The config's sweep (None without one), every point validated and its memory checked."""
    from snn_lab import config as cfg
    from snn_lab import sweep as sw
    from snn_lab.simulate.memory import check_memory, memory_available
    from snn_lab.results import check_size

    try:
        sweep = sw.load("<stdin>" if config == "-" else config, text=text, overrides=overrides, sweeps=sweeps)
        if sweep is not None:
            available = memory_available() // jobs  # the points of --jobs N run side by side
            for p in sweep.points:
                check_memory(p.experiment, available)
                check_size(p.experiment, available)
                if p.experiment.train is not None and p.experiment.train.task.kind == "npz":
                    from snn_lab.train.loop import load_task
                    load_task(p.experiment)  # each point's .npz file, checked before any runs
    except cfg.ConfigError as exc:
        raise UsageProblem("\n".join(dict.fromkeys(map(str, exc.problems)))) from None
    return sweep


def _run_sweep(sweep, out, *args):
    """Take the sweep folder for this process alone (exit 2 if another sweep has it), then run."""
    from snn_lab import sweep as sw

    out = out or Path("results") / sweep.name
    try:
        held = sw.hold(out)
    except OSError as exc:
        raise _target_problem(out, exc) from None
    with held:
        return _sweep_held(sweep, out, *args)


def _sweep_held(sweep, out, jobs, executor, scheduler, force, as_json, quiet, with_plot, backend):
    """Run the points not yet complete, write each as it arrives, then sweep.csv."""
    import json

    from rich.console import Console
    from rich.markup import escape

    from snn_lab import executors, results
    from snn_lab import sweep as sw

    err, console = Console(stderr=True), Console()
    try:
        todo = sw.plan(sweep, out, force)
        sw.start(sweep, out, force)
    except OSError as exc:
        raise _target_problem(out, exc) from None
    skipped, failed, t0 = len(sweep.points) - len(todo), [], time.perf_counter()
    if skipped and not (quiet or as_json):
        err.print(f"resuming {out}/: {skipped} of {len(sweep.points)} points already complete",
                  markup=False, highlight=False, soft_wrap=True)
    done = skipped
    runner = executors.run(todo, jobs, executor, scheduler, backend)
    try:
        with _progress(err, enabled=not (quiet or as_json), total=len(todo), unit="points") as advance:
            for point, res in runner:
                if isinstance(res, BaseException):
                    failed.append((point.name, res))
                else:
                    results.write(res, out / sw.POINTS / point.name, force=True)
                    done += 1
                if advance:
                    advance(1)
    except KeyboardInterrupt:
        runner.close()  # ends the workers now (executors._stop), not whenever the generator is collected
        click.echo(f"interrupted: {done} of {len(sweep.points)} points complete in {out}/; "
                   "run the same command to resume", err=True)
        if jobs > 1 and executor == "local":
            # Every point is written whole or not at all, and the workers are ended; but the
            # pool's manager thread can stay blocked on a queue that dead workers held, and the
            # interpreter joins it at exit: a hang (1 in ~20 under load). Leave without joining.
            import multiprocessing

            for child in multiprocessing.active_children():  # whatever the pool left running
                child.kill()
                child.join(timeout=5)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)
        raise click.exceptions.Exit(130) from None
    except OSError as exc:
        raise UsageProblem(str(exc)) from None
    if failed:
        for name, exc in failed:
            err.print(f"[red]error:[/] point {escape(name)}: {type(exc).__name__}: {escape(str(exc))}",
                      highlight=False, soft_wrap=True)
        err.print(f"{len(failed)} of {len(sweep.points)} points failed; the others are in {out}/{sw.POINTS}/; "
                  "run the same command to retry them", markup=False, highlight=False, soft_wrap=True)
        raise click.exceptions.Exit(1)
    seconds = time.perf_counter() - t0
    figures = []
    try:
        table = sw.finish(sweep, out, {"executor": executor, "jobs": jobs})
        if with_plot:
            from snn_lab import plot as plots
            figures = plots.save_sweep_figures(sw.read(out), out / "plots", ("png",))
    except OSError as exc:  # a full disk: the points stay; the same command writes the rest
        raise UsageProblem(f"cannot finish {out}: {exc.strerror or exc}; its {len(sweep.points)} points "
                           "are complete, run the same command again to write sweep.csv") from None
    if as_json:
        click.echo(json.dumps({"name": sweep.name, "path": str(out), "table": str(table),
                               "keys": list(sweep.keys), "points": len(sweep.points), "ran": len(todo),
                               "resumed": skipped, "seconds": round(seconds, 3)}, indent=2))
        return
    if not quiet:
        from snn_lab.report import sweep_table
        console.print(sweep_table(sw.read(out)))
    console.print(f"wrote {table} ({len(sweep.points)} points, {len(todo)} run, {skipped} resumed, "
                  f"{seconds:.2f} s)", markup=False, highlight=False, soft_wrap=True)
    if figures:
        console.print(f"drew {len(figures)} figure{'s' * (len(figures) != 1)} in {out / 'plots'}/", markup=False, highlight=False,
                      soft_wrap=True)


def _work(exp) -> int:
    from snn_lab.executors import work

    return work(exp)


class _progress:
    """A rich progress bar (over layers or points), only on a terminal; yields advance(n) or None."""

    def __init__(self, console, enabled: bool, total: int, unit: str = "layers"):
        self.enabled = enabled and console.is_terminal
        self.console, self.total, self.unit = console, total, unit

    def __enter__(self):
        if not self.enabled:
            return None
        from rich.progress import BarColumn, Progress, TimeRemainingColumn

        self.bar = Progress(self.unit, BarColumn(), "{task.completed}/{task.total}",
                            TimeRemainingColumn(), console=self.console, transient=True)
        self.bar.start()
        task = self.bar.add_task("run", total=self.total)
        return lambda n: self.bar.advance(task, n)

    def __exit__(self, *exc):
        if self.enabled:
            self.bar.stop()
        return False


# ---- snn-lab theory and selu-params ---------------------------------------------------------

_SERIES_OPTIONS = (("activation", str), ("init", str), ("gain", float), ("bias_var", float),
                   ("dropout", float))
# --phase grids: about 3 s for tanh on 2 cores (a grid point costs a few ms: a fixed point
# and a quadrature or two).
_PHASE_GRIDS = {"--weight-var": "0.5,4.5,41", "--bias-var-range": "0,2,21"}
_PHASE_MAX_N = 401  # per axis


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
        exp = _load("<options>", _series_sets(given, 1) + overrides, check_resources=False,
                    text="name: theory\nseries: [{activation: %s}]\n" % json.dumps(given["activation"]))
    else:
        text = _stdin() if config == "-" else None
        exp = _load(config, overrides, check_resources=False, text=text)
        if given:
            sets = _series_sets(given, len(exp.series))
            exp = _load(config, sets + overrides, check_resources=False, text=text)
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


def _grid(text: str | None, option: str):
    """START,STOP,N -> numpy.linspace(START, STOP, N), every problem a UsageProblem naming the option."""
    import math

    import numpy as np

    text = _PHASE_GRIDS[option] if text is None else text
    example = _PHASE_GRIDS[option]
    parts = text.split(",")
    try:
        start, stop, n = float(parts[0]), float(parts[1]), int(parts[2])
        if len(parts) != 3:
            raise ValueError
    except (ValueError, IndexError):
        raise UsageProblem(f"{option}: expected START,STOP,N (two numbers and a count), e.g. "
                           f"{example}; found {text!r}") from None
    low = 0.0 if option == "--bias-var-range" else None  # sigma_w^2 = 0 has no weights at all
    if not (math.isfinite(start) and math.isfinite(stop)):
        raise UsageProblem(f"{option}: START and STOP must be finite numbers; found {text!r} (e.g. {example})")
    if (low is None and start <= 0) or (low is not None and start < low):
        bound = "> 0" if low is None else ">= 0"
        nearest = f"{stop / max(n - 1, 1):g}" if low is None else "0"
        raise UsageProblem(f"{option}: START is a variance and must be {bound}; found {start:g} "
                           f"(nearest valid: {nearest}, e.g. {example})")
    if not stop > start:
        raise UsageProblem(f"{option}: STOP must be greater than START; found {start:g},{stop:g} "
                           f"(e.g. {start:g},{start + 4:g},{n})")
    if not 2 <= n <= _PHASE_MAX_N:
        raise UsageProblem(f"{option}: N must be an integer in [2, {_PHASE_MAX_N}]; found {n} "
                           f"(nearest valid: {min(max(n, 2), _PHASE_MAX_N)})")
    return np.array([float(f"{v:.15g}") for v in np.linspace(start, stop, n)])  # 1.2, not 1.2000000000000002


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
    weights, biases = _grid(weight_grid, "--weight-var"), _grid(bias_grid, "--bias-var-range")
    tmpl = exp.series[0]
    if tmpl.norm != "none" or tmpl.residual is not None:
        what = f"norm: {tmpl.norm}" if tmpl.norm != "none" else f"residual (alpha {tmpl.residual.alpha:g})"
        raise UsageProblem(f"--phase draws the order-to-chaos diagram of plain layers; {tmpl.label} has {what}, "
                           "which has no q-map fixed point to draw (a norm fixes each layer's pre-activation "
                           "law, a skip makes the stream grow). Drop --phase: snn-lab theory prints its "
                           "gradient growth per layer")
    if tmpl.normalize_weights:
        raise UsageProblem("--phase is for random i.i.d. weights; drop --normalize-weights "
                           "(normalized weights follow the map g, not the q-map)")
    path = out or Path("results") / f"phase-{tmpl.activation}.png"
    try:
        plots.figure_format(path)  # before the grid's seconds of work, not after
    except ValueError as exc:
        raise UsageProblem(f"--out: {exc}") from None
    marks = None
    if overlay is not None:
        if not overlay.is_dir():
            raise UsageProblem(f"--overlay: expected a sweep folder with a sweep.csv; {overlay} is not a folder")
        try:
            marks = plots.phase_overlay(overlay, stat or "var", layer, series_label)
        except plots.OverlayError as exc:
            raise UsageProblem(f"--{exc.option}: {exc}") from None
    diagram = ph.diagram(tmpl, weights, biases)
    try:
        plots.save_phase_diagram(plots.phase_diagram(diagram, marks), path)
    except ValueError as exc:
        raise UsageProblem(f"--out: {exc}") from None
    except OSError as exc:
        raise UsageProblem(f"--out: cannot write {path}: {exc.strerror or exc}") from None
    if as_json:
        click.echo(json.dumps({**diagram.to_json(), "figure": str(path)}, indent=2))
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


def _series_sets(given: dict, count: int) -> tuple[str, ...]:
    """Command-line series options as --set overrides of every series."""
    import json

    return tuple(f"series.{i}.{key}={json.dumps(value)}" for i in range(count) for key, value in given.items())


@main.command()
@click.argument("name", required=False, metavar="[NAME]")
def examples(name: str | None) -> None:
    """The example configs that ship with snn-lab: each name and what it shows; NAME prints its YAML.

    Run one by name, or copy it out to edit (a file of that name in the current folder wins).

    \b
    Example:
      snn-lab examples
      snn-lab run selu_recovers
      snn-lab examples selu_recovers > mine.yaml
    """
    from snn_lab import examples as ex

    if name is None:
        names = ex.names()
        width = max(map(len, names))
        for n in names:
            click.echo(f"{n:<{width}}  {ex.summary(n)}")
        return
    key = name[:-5] if name.endswith(".yaml") else name
    if key not in ex.names():
        near = ex.nearest(key)
        raise UsageProblem(f"no example {name!r}" + (f"; did you mean {near!r}?" if near else "")
                           + f" (examples: {', '.join(ex.names())})")
    click.echo(ex.text(key), nl=False)


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


# ---- snn-lab plot (the figures: snn_lab/plot/) ---------------------------------------------

@main.command()
@click.argument("results_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--format", "formats", multiple=True, type=click.Choice(["png", "svg", "pdf"]),
              help="Figure format; repeat for several (default: png).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the figures (default: RESULTS_DIR/plots).")
@click.option("--stat", metavar="NAME",
              help="Sweep folders only: the statistic drawn (default: distance = sqrt(mean^2 + "
                   "(var-1)^2), the distance from (0, 1); or mean, var, preact_var, grad_ratio, "
                   "dead_fraction, correlation, ...).")
@click.option("--layer", type=int, metavar="N",
              help="Sweep folders only: the layer drawn (default: each point's last).")
def plot(results_dir, formats, out, stat, layer):
    """Draw figures from a results folder: convergence, map, activations, histograms, probes.

    RESULTS_DIR is a folder written by `snn-lab run`; omitted: the most recent complete run
    under ./results/. Figures go to RESULTS_DIR/plots/ unless --out is given. Only the
    folder is read: nothing is simulated again.

    A sweep folder (written by `snn-lab run` with a sweep: block or --sweep) gets one figure,
    sweep-<stat>.png: the statistic at one layer against the swept key (lines, one per series,
    standard-error bars, theory dashed), a heatmap per series for two keys, and for more, lines
    against the first key, one per combination of the others.

    \b
    Example:
      snn-lab plot results/selu-vs-relu --format png --format svg
      snn-lab plot results/sweep-width-gain --stat var --layer 10
    """
    from rich.console import Console

    from snn_lab import plot as plots
    from snn_lab import results
    from snn_lab import sweep as sw

    console = Console()
    # A link the user names with --out is followed (their choice); plots/ inside a results
    # folder must be a real folder (a planted link is refused, never written through).
    out = out.resolve() if out is not None and out.is_symlink() else out
    if results_dir is not None and sw.is_sweep(results_dir):
        try:
            t0 = time.perf_counter()
            written = plots.save_sweep_figures(sw.read(results_dir), out or results_dir / "plots",
                                               formats or ("png",), stat=stat or plots.SWEEP_DEFAULT_STAT,
                                               layer=layer)
        except OSError as exc:
            raise UsageProblem(f"cannot write the figures: {exc}") from None
        for path in written:
            console.print(f"wrote {path}", highlight=False, soft_wrap=True)
        console.print(f"{len(written)} files in {time.perf_counter() - t0:.2f} s", highlight=False)
        return
    if stat is not None or layer is not None:
        given = " and ".join(o for o, v in (("--stat", stat), ("--layer", layer)) if v is not None)
        verb = "apply" if stat is not None and layer is not None else "applies"
        if results_dir is None:
            raise UsageProblem(f"{given} {verb} only to a sweep folder; name one: "
                               f"snn-lab plot SWEEP_DIR {given.split()[0]} ...")
        raise UsageProblem(f"{given} {verb} only to a sweep folder (one with {sw.MANIFEST}); "
                           f"{results_dir} is not one: plot it without {given}")
    if results_dir is None:
        results_dir = plots.find_latest(Path("results"))
        if results_dir is None:
            raise UsageProblem("no complete results folder under results/; run `snn-lab run` "
                               "first or name one: snn-lab plot RESULTS_DIR")
        console.print(f"plotting {results_dir} (the most recent complete run under results/)",
                      highlight=False, soft_wrap=True)
    try:
        res = results.read(results_dir)
        t0 = time.perf_counter()
        written = plots.save_figures(res, out or results_dir / "plots", formats or ("png",))
    except OSError as exc:
        raise UsageProblem(f"cannot write the figures: {exc}") from None
    for path in written:  # soft_wrap: a long path stays on one line, whole for copy and paste
        console.print(f"wrote {path}", highlight=False, soft_wrap=True)
    console.print(f"{len(written)} files in {time.perf_counter() - t0:.2f} s", highlight=False)


# ---- snn-lab check (owned by the check work; see snn_lab/compare.py) -------------------------

CANNOT_JUDGE = 4  # check's exit status when no value drifted but some have no finite spread


@main.command()
@click.argument("results_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--baseline", type=click.Path(path_type=Path),
              help="A results folder, or a baseline file written by --update (not with --mode theory).")
@click.option("--mode", type=click.Choice(["statistical", "exact", "theory"]), default="statistical",
              show_default=True,
              help="statistical: within the sampling error of both runs (another seed passes); "
                   "exact: same machine and seed, within --rtol/--atol; theory: the simulation "
                   "against its own mean-field columns.")
@click.option("--sigmas", type=click.FloatRange(min=0, min_open=True), metavar="K",
              help="Threshold in standard errors (default: from Student's t, for a 0.1% chance "
                   "of any false alarm).")
@click.option("--rtol", type=click.FloatRange(min=0), default=1e-9, show_default=True, metavar="R",
              help="Relative tolerance of exact mode; in the other modes a floor under the "
                   "threshold (--mode theory --rtol 0.05 accepts a 5% finite-width bias).")
@click.option("--atol", type=click.FloatRange(min=0), default=1e-12, show_default=True, metavar="A",
              help="Absolute tolerance of exact mode; in the other modes a floor under the threshold.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (and nothing else) on stdout.")
@click.option("--md", "as_md", is_flag=True, help="Print the report as Markdown (a PR comment, a CI step summary).")
@click.option("--update", is_flag=True, help="Write RESULTS_DIR's baseline file to BASELINE instead of checking.")
@click.option("--finite-width", "finite_width", is_flag=True,
              help="With --mode theory: judge against the 1/width-corrected prediction and the "
                   "predicted spread across trials (docs/finite-width.md).")
def check(results_dir, baseline, mode, sigmas, rtol, atol, as_json, as_md, update, finite_width):
    """Compare a run's statistics with a baseline (for CI).

    Exit codes: 0 within tolerance; 1 drift; 2 usage or config error, or a missing or damaged
    results folder; 3 baseline missing, damaged or not comparable (series or layers differ);
    4 cannot judge (no drift, but some values have an infinite or undefined spread).

    \b
    Example:
      snn-lab run ci --out results/ci --force --quiet
      snn-lab check results/ci --baseline ci.baseline.json
      snn-lab check results/ci --baseline ci.baseline.json --md >> "$GITHUB_STEP_SUMMARY"
      snn-lab check results/ci --mode theory
    """
    import json

    from rich.console import Console

    from snn_lab import compare, errors, report, results, safefs

    if as_json and as_md:
        raise UsageProblem("--json and --md exclude each other; choose one")
    if mode == "theory" and (baseline or update):
        raise UsageProblem("--mode theory compares the results with their own theory columns; "
                           "drop --baseline/--update")
    if mode != "theory" and baseline is None:
        raise UsageProblem(f"--baseline is required with --mode {mode} (a results folder or a "
                           "baseline file; write one with --update)")
    if finite_width and mode != "theory":
        raise UsageProblem("--finite-width applies to --mode theory only")
    if sigmas is not None and mode == "exact":
        raise UsageProblem("--sigmas applies to --mode statistical or theory, not exact (use --rtol/--atol)")
    res = results.read(results_dir)
    if update:
        if baseline.is_dir():
            raise UsageProblem(f"{baseline} is a folder; --update writes a baseline file "
                               "(e.g. ci.baseline.json)")
        try:
            baseline.parent.mkdir(parents=True, exist_ok=True)
            # Atomic (never a half-written baseline); a link named like the baseline is replaced.
            safefs.write_text(baseline, compare.baseline_text(res), folder_link_ok=True)
        except OSError as exc:
            raise UsageProblem(f"cannot write {baseline}: {exc.strerror or exc}") from None
        if as_json:
            click.echo(json.dumps({"updated": str(baseline)}))
        else:
            click.echo(f"wrote {baseline} ({len(res.labels)} series, {res.config['trials']} trials, "
                       f"seed {res.config['seed']})")
        return
    try:
        current = compare.snapshot(res, str(results_dir))
        if mode == "theory":
            rep = compare.compare_theory(current, sigmas, rtol, atol, finite_width=finite_width)
        else:
            rep = compare.compare(compare.load_baseline(baseline), current, mode, sigmas, rtol, atol)
    except compare.NotComparable as exc:
        where = f"baseline {baseline} and " if baseline else ""
        raise errors.BaselineProblem(f"{where}results {results_dir} are not comparable:\n  "
                              + "\n  ".join(exc.differences)) from None
    if as_json:
        click.echo(json.dumps(rep.to_json(), indent=2))
    elif as_md:
        click.echo(report.check_markdown(rep), nl=False)
    else:
        console = Console(highlight=False)
        if not console.is_terminal:  # a CI log: room for the whole table rather than 80 columns
            console.width = max(console.width, 160)
        if rep.changes:
            console.print("config differences (not errors): " + "; ".join(map(str, rep.changes)),
                          markup=False, soft_wrap=True)
        if rep.drifted:
            console.print(report.check_table(rep))
        for line in (*rep.notes, report.check_threshold(rep)):
            console.print(line, markup=False, soft_wrap=True)
        console.print(report.check_verdict(rep), style="green" if rep.passed else "bold red")
        if rep.verdict == "cannot judge":
            n = len(rep.unjudged)
            console.print(f"cannot judge: {n} value{' has' if n == 1 else 's have'} no finite standard "
                          "error, and none drifted", style="bold yellow")
    if not rep.passed:
        raise click.exceptions.Exit(CANNOT_JUDGE if rep.verdict == "cannot judge" else 1)
