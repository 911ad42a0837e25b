"""``backtest compare``: every design on several crash windows, as a designs × events matrix."""

from __future__ import annotations

from typing import Any

import click

from backtest.cli.run_cmd import command_line, design_options


@click.command("compare")
@click.option(
    "--events",
    "events",
    default="all",
    show_default=True,
    help="Comma-separated crash window ids, or 'all' (every window in the catalog).",
)
@click.option("--verbose", "-v", is_flag=True,
              help="Also print each window's full comparison table (after the matrix).")
@design_options
@click.pass_context
def compare(
    ctx: click.Context,
    events: str,
    verbose: bool,
    designs: str | None,
    config: str | None,
    venue: str,
    price_path: str | None,
    sets: tuple[str, ...],
    risk_free: float,
    out: str | None,
    events_file: str | None,
    db: str | None,
    archive: str | None,
    offline: bool,
    fmt: str,
    quiet: bool,
) -> None:
    """Run the fund designs on several crash windows and show the designs × events matrix.

    Each cell: survived without ADL? · lowest fund value as % of its start · ADL notional. Each
    window uses its own symbols; a window without the venue is an error (pick --events).

    \b
    Examples:
      backtest compare --events may2021,oct2025
      backtest compare --events all --designs static,dynamic,reinsured --out report/
    """
    import contextlib

    from backtest.cli.run_cmd import check_symbols, parse_setup, print_tables, run_one_event
    from backtest.events import load_catalog

    catalog = load_catalog(events_file)
    chosen = catalog.select(events)
    setup = parse_setup(designs, config, sets, venue, price_path, risk_free)
    symbols = {e.id: check_symbols(e, venue, None) for e in chosen}
    progress = not quiet  # rich bars on a terminal, plain lines on a pipe (backtest.progress_lines)
    by_event: dict[str, list[Any]] = {}
    warnings: list[str] = []
    sections = []
    with contextlib.ExitStack() as stack:
        stage = None
        if out is not None:
            from backtest.report.html import staged_output

            stage = stack.enter_context(staged_output(out))
        for ev in chosen:
            inputs, results = run_one_event(
                ev, setup, symbols[ev.id], db=db, archive=archive, progress=progress, offline=offline,
                catalog=catalog,
            )
            by_event[ev.id] = results
            from backtest.calibration_check import window_warnings

            mine = window_warnings(ev, results, inputs, setup.params)
            warnings += mine
            if stage is not None:
                from backtest.report.html import EventSection
                from backtest.report.plots import window_prices

                prices = window_prices(inputs)
                sections.append(EventSection(ev, results, prices, venue, setup.params, risk_free,
                                             notes=list(mine)))

        if stage is not None:
            from backtest.report.html import write_report

            write_report(stage, sections, title=f"Insurance-fund designs across {len(chosen)} crash windows",
                         command=command_line(ctx), matrix=True)
    if fmt == "json":
        rows = [r.to_json_dict() for ev in by_event.values() for r in ev]
        from backtest.finite import dumps

        click.echo(dumps(rows, indent=2))
    else:
        _print_matrix(by_event, setup)  # the answer first; per-window detail only on request
        if verbose:
            for ev in chosen:
                print_tables(ev, venue, symbols[ev.id], setup, by_event[ev.id], per_symbol=False)
    for line in warnings:
        click.echo(line, err=True)
    if out is not None and not quiet:
        click.echo(f"report: {out}/report.html, table: {out}/results.parquet", err=True)


def _print_matrix(by_event: dict[str, list[Any]], setup: Any) -> None:
    from backtest.cli.console import print_table, stdout_console
    from backtest.report.tables import matrix_table

    console = stdout_console()
    title = f"Designs × events ({setup.venue}, {setup.params.price_path} price path)"
    print_table(console, matrix_table(by_event, title))
