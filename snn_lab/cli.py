"""The snn-lab command line: parse, call the library, render. Nothing imports this module."""

from __future__ import annotations

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


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="snn-lab")
def main() -> None:
    """snn-lab: what depth does to the signal in random deep networks.

    \b
    Example:
      snn-lab run                      # the built-in SELU vs ReLU experiment
      snn-lab run configs/selu_recovers.yaml --set depth=200
    """


def _load(config: str | None, overrides: tuple[str, ...]):
    """Load an experiment, turning config problems into exit-2 messages."""
    from snn_lab import config as cfg
    from snn_lab.engine import check_memory

    try:
        if config == "-":
            exp = cfg.load("<stdin>", text=click.get_text_stream("stdin").read(), overrides=overrides)
        else:
            exp = cfg.load(config, overrides=overrides)
        check_memory(exp)
    except cfg.ConfigError as exc:
        raise UsageProblem("\n".join(map(str, exc.problems))) from None
    return exp


@main.command()
@click.argument("config", required=False, metavar="[CONFIG]")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Results folder (default: results/<name>).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config key, dotted (depth=200, input.var=4, series.0.activation=tanh).")
@click.option("--force", is_flag=True, help="Replace an existing, non-empty results folder.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON (and nothing else) on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no table.")
def run(config, out, overrides, force, as_json, quiet):
    """Simulate an experiment and write its results folder.

    CONFIG is a YAML experiment (see configs/), '-' for standard input, or omitted for the
    built-in default (SELU vs ReLU-LeCun vs ReLU-He).

    \b
    Example:
      snn-lab run configs/selu_recovers.yaml --set depth=200 --set series.0.activation=tanh
    """
    import json

    from rich.console import Console

    from snn_lab import engine, results

    exp = _load(config, overrides)
    out = out or Path("results") / exp.name
    try:
        results.check_target(out, force)
    except results.ResultsError as exc:
        raise UsageProblem(str(exc)) from None
    err = Console(stderr=True)
    started, t0 = time.time(), time.perf_counter()
    try:
        with _progress(err, enabled=not (quiet or as_json), total=_work(exp)) as advance:
            runs = engine.run_experiment(exp, advance)
        meta = {**results.environment(), "seed": exp.seed, "seed_entropy": str(exp.seed),
                "argv": sys.argv, "started_utc": _utc(started), "finished_utc": _utc(time.time()),
                "wall_seconds": round(time.perf_counter() - t0, 3)}
        res = results.collect(exp, runs, meta)
        results.write(res, out, force)
    except KeyboardInterrupt:
        err.print("interrupted: no results were written")
        sys.exit(130)
    except (results.ResultsError, OSError) as exc:
        raise UsageProblem(str(exc)) from None
    if as_json:
        click.echo(json.dumps(results.to_json(res), indent=2))
        return
    console = Console()
    if not quiet:
        from snn_lab.report import summary_table
        console.print(summary_table(res))
    for event in res.meta["overflow"]:
        err.print(f"[yellow]warning:[/] {event['series']}: trial {event['trial']} left the float "
                  f"range at layer {event['layer']}; later layers are inf/NaN", highlight=False)
    console.print(f"wrote {out}/ ({res.meta['wall_seconds']:.2f} s)", highlight=False)


def _work(exp) -> int:
    return sum(s.depth for s in exp.series) * exp.trials


def _utc(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


class _progress:
    """A rich progress bar over layers, only on a terminal; yields an advance(n) callback."""

    def __init__(self, console, enabled: bool, total: int):
        self.enabled = enabled and console.is_terminal
        self.console, self.total = console, total

    def __enter__(self):
        if not self.enabled:
            return None
        from rich.progress import BarColumn, Progress, TimeRemainingColumn

        self.bar = Progress("layers", BarColumn(), "{task.completed}/{task.total}",
                            TimeRemainingColumn(), console=self.console, transient=True)
        self.bar.start()
        task = self.bar.add_task("run", total=self.total)
        return lambda n: self.bar.advance(task, n)

    def __exit__(self, *exc):
        if self.enabled:
            self.bar.stop()
        return False


# ---- snn-lab plot (owned by the plot work; see snn_lab/plot.py) ------------------------------

@main.command()
@click.argument("results_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--format", "formats", multiple=True, type=click.Choice(["png", "svg", "pdf"]),
              help="Figure format; repeat for several (default: png).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the figures (default: RESULTS_DIR/plots).")
def plot(results_dir, formats, out):
    """Draw convergence figures from a results folder.

    \b
    Example:
      snn-lab plot results/selu-vs-relu --format png --format svg
    """
    raise UsageProblem("snn-lab plot is not built yet")


# ---- snn-lab check (owned by the check work; see snn_lab/compare.py) -------------------------

@main.command()
@click.argument("results_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--baseline", required=True, type=click.Path(path_type=Path),
              help="A results folder, or a baseline file written by --update.")
def check(results_dir, baseline):
    """Compare a run's statistics with a baseline (for CI).

    \b
    Example:
      snn-lab check results/ci --baseline configs/ci.baseline.json
    """
    raise UsageProblem("snn-lab check is not built yet")
