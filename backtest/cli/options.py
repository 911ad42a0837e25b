"""Options shared by several commands, declared once."""

from __future__ import annotations

import click

db_option = click.option(
    "--db",
    "db",
    type=click.Path(dir_okay=False),
    default=None,
    envvar="BACKTEST_DB",
    show_envvar=True,
    help="DuckDB store file.  [default: data/market.duckdb of the checkout, whatever the current folder]",
)
archive_option = click.option(
    "--archive",
    "archive",
    type=click.Path(file_okay=False),
    default=None,
    envvar="BACKTEST_ARCHIVE",
    show_envvar=True,
    help="Directory of recorded archive files (layout of shared/data) used to fill the store.",
)
events_file_option = click.option(
    "--events-file",
    "events_file",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    envvar="BACKTEST_EVENTS",
    show_envvar=True,
    help="Extra TOML file of crash windows, merged over the built-in catalog.",
)
format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Output format.",
)
quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress display.")
offline_option = click.option(
    "--offline",
    "offline",
    is_flag=True,
    default=False,
    envvar="BACKTEST_OFFLINE",
    show_envvar=True,
    help="Never download: fill a missing window from the archive only, else fail saying what to do.",
)
