"""`snn-lab plot`: the figures of a results or sweep folder."""

from __future__ import annotations

import time
from pathlib import Path

import click

from snn_lab.cli import UsageProblem, main


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
