"""`snn-lab check`: a run against a baseline or its own theory, for CI."""

from __future__ import annotations

from pathlib import Path

import click

from snn_lab.cli import UsageProblem, main


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
