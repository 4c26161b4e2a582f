"""The snn-lab command line: parse, call the library, render; one module per command family.

Nothing in the library imports this package. Shared here: the group, its error and interrupt
handling, config loading and the progress bar."""

from __future__ import annotations

import sys
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
    from snn_lab.executors import check_resources as fits

    if config == "-" and text is None:
        text = _stdin()
    if text is not None:
        exp = cfg.load("<stdin>" if config == "-" else config, text=text, overrides=overrides)
    else:
        exp = cfg.load(config, overrides=overrides)
    if check_resources:  # a ConfigError (exit 2, errors.py) when it would not fit
        fits(exp)
    return exp


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


# The commands register themselves on `main` when their modules load.
from snn_lab.cli import check, examples, figures, run, theory  # noqa: E402, F401
