"""`snn-lab run`: one experiment, or a sweep of them, into a results folder."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from snn_lab.cli import UsageProblem, _load, _progress, _stdin, _target_problem, _work, main


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
    from snn_lab.executors import check_points

    try:
        sweep = sw.load("<stdin>" if config == "-" else config, text=text, overrides=overrides, sweeps=sweeps)
        if sweep is not None:
            check_points(sweep.points, jobs)  # the points of --jobs N run side by side
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
    """Run the points not yet complete (the library writes each as it arrives), then sweep.csv."""
    import json

    from rich.console import Console
    from rich.markup import escape

    from snn_lab import sweep as sw

    err, console = Console(stderr=True), Console()
    try:
        state = sw.prepare(sweep, out, force)
    except OSError as exc:
        raise _target_problem(out, exc) from None
    skipped, todo = state.skipped, state.todo
    if skipped and not (quiet or as_json):
        err.print(f"resuming {out}/: {skipped} of {len(sweep.points)} points already complete",
                  markup=False, highlight=False, soft_wrap=True)
    try:
        with _progress(err, enabled=not (quiet or as_json), total=len(todo), unit="points") as advance:
            sw.run_points(state, jobs, executor, scheduler, backend, advance)
    except sw.Interrupted as exc:
        click.echo(f"interrupted: {exc.done} of {exc.total} points complete in {out}/; "
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
    failed, seconds = state.failed, state.seconds
    if failed:
        for name, exc in failed:
            err.print(f"[red]error:[/] point {escape(name)}: {type(exc).__name__}: {escape(str(exc))}",
                      highlight=False, soft_wrap=True)
        err.print(f"{len(failed)} of {len(sweep.points)} points failed; the others are in {out}/{sw.POINTS}/; "
                  "run the same command to retry them", markup=False, highlight=False, soft_wrap=True)
        raise click.exceptions.Exit(1)
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
