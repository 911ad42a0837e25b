"""``backtest data``: the data-layer subcommands (each lives in its own module)."""

from __future__ import annotations

import click

from backtest.cli import LazyGroup

HELP_DATA = {
    "import": "Import archive files (Binance public-data layouts, candle CSVs) into the store.",
    "sync": "Fetch a window's candles, funding and open interest through ccxt.",
    "download": "Download a window's Binance public-data files, verify checksums, import them.",
    "status": "Show what the store holds: per dataset first/last ts, rows, gaps.",
}


class _DataGroup(LazyGroup):
    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(n, HELP_DATA.get(n, "")) for n in self.list_commands(ctx)])


@click.group(
    cls=_DataGroup,
    lazy={
        "import": ("backtest.cli.data_import", "import_cmd"),
        "status": ("backtest.cli.data_status", "status"),
        "sync": ("backtest.cli.data_sync", "sync"),
        "download": ("backtest.cli.data_download", "download"),
    },
)
def data() -> None:
    """Import, sync, download and inspect market data in the DuckDB store."""
