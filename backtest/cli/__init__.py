"""The ``backtest`` command line.

Subcommands are registered by import path and imported only when run, so ``backtest --help``
stays instant (no polars, duckdb or ccxt import). Every ``UserError`` becomes one line on stderr
and a non-zero exit.
"""

from __future__ import annotations

import importlib
import sys

import click

from loaders.errors import UserError


class LazyGroup(click.Group):
    """A click group whose subcommands live in other modules, imported on first use."""

    def __init__(self, *args, lazy: dict[str, tuple[str, str]] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy or {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy:
            module, attr = self.lazy[name]
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Help text comes from the table below, so listing commands imports nothing heavy.
        rows = [(name, HELP.get(name, "")) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


HELP = {
    "events": "List the crash windows in the event catalog.",
    "data": "Import, sync, download and inspect market data in the DuckDB store.",
    "run": "Replay a crash window and report how fund designs fare.",
    "compare": "Designs x events matrix: who survives which crash without ADL.",
    "calibrate": "Reconstructed vs reported figures for a crash window, with sources.",
    "sweep": "Sweep design (and model) parameters across events; capital frontier per design.",
    "report": "Re-render the HTML report of a saved run (results directory) without replaying.",
}


@click.group(
    cls=LazyGroup,
    lazy={
        "events": ("backtest.cli.events_cmd", "events"),
        "data": ("backtest.cli.data", "data"),
        "run": ("backtest.cli.run_cmd", "run"),
        "compare": ("backtest.cli.compare_cmd", "compare"),
        "calibrate": ("backtest.cli.calibrate_cmd", "calibrate"),
        "sweep": ("backtest.cli.sweep_cmd", "sweep"),
        "report": ("backtest.cli.report_cmd", "report"),
    },
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
)
@click.version_option(package_name="crash-backtest")
def cli() -> None:
    """Replay historical crypto crashes to test insurance-fund designs.

    \b
    Start here:
      backtest events                      the crash windows you can replay
      backtest run --event may2021         replay one window (fills the store on first use)
      backtest data status --event may2021 what data the store holds for a window
    """


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: user errors exit cleanly with one line."""
    try:
        cli.main(args=argv, prog_name="backtest", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except UserError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
