"""``backtest report RESULTS``: re-render report.html from a saved results directory, without replaying."""

from __future__ import annotations

import click

from backtest.cli.options import quiet_option


@click.command("report")
@click.argument("results", type=click.Path())
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False),
    default=None,
    help="Directory for the re-rendered report.html.  [default: the RESULTS directory itself]",
)
@quiet_option
def report(results: str, out: str | None, quiet: bool) -> None:
    """Re-render the HTML report of a saved run from its results alone (no store, no replay).

    RESULTS is a directory written by `backtest run --out` or `backtest compare --out` (or its
    results.parquet): results.parquet, ticks.parquet, bars.parquet and run.json. The page is the one
    the run wrote, drawn by this version's report code; share the directory, re-render anywhere.

    \b
    Examples:
      backtest run --event may2021 --out rep/ && backtest report rep/
      backtest report rep/results.parquet --out shared/
    """
    from pathlib import Path

    from backtest.report.frames import read_data
    from backtest.report.html import REPORT_FILE, staged_output, write_page

    data = read_data(results)
    src = Path(results)
    target = out if out is not None else str(src.parent if src.is_file() else src)
    with staged_output(target) as stage:
        write_page(stage, data)
    if not quiet:
        click.echo(f"report: {Path(target) / REPORT_FILE}", err=True)
