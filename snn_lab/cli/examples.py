"""`snn-lab examples`: the example configs that ship with snn-lab."""

from __future__ import annotations

import click

from snn_lab.cli import UsageProblem, main


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
