"""``backtest data import``: load archive files (Binance public-data layouts, candle CSVs) into the store."""

from __future__ import annotations

import sys

import click

from backtest.cli.options import db_option, format_option, quiet_option

PRICE_TYPES = ("last", "mark", "index", "spot")  # mirrors loaders.store.PRICE_TYPES without importing duckdb
TIMEFRAMES = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d")


@click.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--venue", help="ccxt venue id for every file (e.g. binanceusdm); beats the path.")
@click.option("--symbol", help="Exchange-native symbol for every file (e.g. BTCUSDT); beats the path.")
@click.option("--price-type", type=click.Choice(PRICE_TYPES), help="Candle price type; beats the path.")
@click.option("--timeframe", type=click.Choice(TIMEFRAMES),
              help="Candle timeframe; checked against the timestamps.")
@click.option("--replace", is_flag=True,
              help="Overwrite stored rows that disagree (default: such a file fails).")
@click.option("--no-verify", is_flag=True, help="Skip SHA256SUMS / .CHECKSUM verification.")
@db_option
@quiet_option
@format_option
def import_cmd(paths: tuple[str, ...], venue: str | None, symbol: str | None, price_type: str | None,
               timeframe: str | None, replace: bool, no_verify: bool, db: str | None, quiet: bool,
               fmt: str) -> None:
    """Import archive files or folders (recursed) into the store, one transaction per file.

    \b
    Layouts: 12-column Binance klines (with or without header), fundingRate, metrics (open
    interest), liquidationSnapshot, date,open,high,low,close,volume candle CSVs and BitMEX funding
    JSON; plain, .gz or .zip. Venue, symbol, price type and timeframe come from the folder and file
    names (shared/data and data.binance.vision layouts) unless given as options. Files already
    imported unchanged are skipped; files in no known layout inside a folder are skipped.

    \b
    Example:
      backtest data import ../shared/data
    """
    from loaders.archive import import_paths
    from loaders.store import Store

    overrides = {"venue": venue, "symbol": symbol, "price_type": price_type, "timeframe": timeframe}
    with Store(db) as store:
        report = import_paths(store, list(paths), overrides=overrides, replace=replace, verify=not no_verify,
                              progress=not quiet and sys.stderr.isatty())
    if fmt == "json":
        from backtest.finite import dumps

        click.echo(dumps({"files": [f.as_dict() for f in report.files], "totals": report.totals(),
                               "elapsed_s": round(report.elapsed, 3), "db": str(store.path)}, indent=2))
    else:
        _print_table(report, str(store.path), paths)
    for f in report.files:
        for w in f.warnings:
            click.echo(f"warning: {w}", err=True)
    report.raise_for_failures()


def _print_table(report, db: str, roots: tuple[str, ...]) -> None:  # noqa: ANN001 - ImportReport (lazy)
    import os

    from rich.table import Table

    from backtest.cli.console import stdout_console

    console = stdout_console()
    table = Table(title=f"import into {db}", title_justify="left")
    for col, just in (("file", "left"), ("dataset", "left"), ("rows", "right"), ("new rows", "right"),
                      ("status", "left")):
        table.add_column(col, justify=just, overflow="fold")
    style = {"imported": "green", "unchanged": "dim", "skipped": "yellow", "failed": "bold red"}
    dirs = [os.path.abspath(r if os.path.isdir(r) else os.path.dirname(r) or ".") for r in roots]
    base = os.path.commonpath(dirs) if dirs else os.getcwd()
    for f in report.files:
        status = f.status
        if f.status in ("skipped", "failed") and f.reason:
            status = f"{f.status}: {f.reason}"
        elif f.duplicates:
            status = f"{f.status} ({f.duplicates} duplicate row(s) dropped)"
        if f.warnings:
            status += f" ({len(f.warnings)} warning(s), listed below)"
        shown = os.path.relpath(os.path.abspath(f.path), base)
        table.add_row(shown, f.dataset or "-", f"{f.rows:,}", f"{f.new_rows:,}",
                      f"[{style.get(f.status, '')}]{status}[/]")
    console.print(table)
    t = report.totals()
    console.print(
        f"{t['files']} files: {t['imported']} imported, {t['unchanged']} unchanged, {t['skipped']} skipped, "
        f"{t['failed']} failed; {t['rows']:,} rows read, {t['new_rows']:,} new; "
        f"{t['duplicates_dropped']} duplicate row(s) dropped; {report.elapsed:.2f} s",
        highlight=False,
    )
