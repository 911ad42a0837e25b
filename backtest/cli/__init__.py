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
    "designs": "List the fund designs and variants with their parameters.",
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
        "designs": ("backtest.cli.designs_cmd", "designs"),
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


ABORTED = "aborted, nothing stored (the interrupted file, page or sweep batch was rolled back)"


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: every error a user or the environment can cause exits with one line.

    ``UserError`` carries its own message; interruption exits 130; the environment's failures that
    reach here (DuckDB I/O such as a full disk, OS errors) are named in one line too. Anything
    else is a bug and keeps its traceback.
    """
    _terminate_like_interrupt()
    try:
        cli.main(args=argv, prog_name="backtest", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (click.Abort, KeyboardInterrupt):
        click.echo(ABORTED, err=True)
        sys.exit(130)
    except UserError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except Exception as exc:  # noqa: BLE001 - environment failures become one line, bugs re-raise
        if interrupted(exc):
            click.echo(ABORTED, err=True)
            sys.exit(130)
        line = environment_error(exc)
        if line is None:
            raise
        click.echo(f"error: {line}", err=True)
        sys.exit(1)


def interrupted(exc: BaseException) -> bool:
    """Whether ``exc`` is Ctrl-C in disguise: DuckDB turns an interrupt inside a query into
    ``InterruptException``, ``RuntimeError('Query interrupted')`` or an error whose text names the
    ``KeyboardInterrupt`` (a Python callback interrupted), and the cleanup that follows can raise a
    ``TransactionException`` whose context holds the interrupt."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, KeyboardInterrupt) or type(e).__name__ == "InterruptException":
            return True
        duck = type(e).__module__.startswith(("duckdb", "_duckdb"))
        if (isinstance(e, RuntimeError) or duck) and ("Query interrupted" in str(e)
                                                       or "KeyboardInterrupt" in str(e)):
            return True
        e = e.__cause__ or e.__context__
    return False


def _terminate_like_interrupt() -> None:
    """SIGTERM (``kill``, a CI timeout) unwinds like Ctrl-C: open transactions roll back, staging
    folders and a failed sweep's files are removed, instead of dying where it stands."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def handler(_sig: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def environment_error(exc: BaseException) -> str | None:
    """One line for a failure of the machine rather than the program (disk full, I/O, permissions)."""
    import errno

    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        if exc.errno == errno.ENOSPC:
            return f"{where}disk full ({exc.strerror}); nothing of the interrupted step was stored"
        return f"{where}{exc.strerror or exc}"
    if type(exc).__module__.startswith(("duckdb", "_duckdb")) and type(exc).__name__ in (
            "IOException", "OutOfMemoryException", "PermissionException", "FatalException"):
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"the store failed: {first}; the interrupted transaction was rolled back"
    if isinstance(exc, MemoryError):
        return "out of memory; nothing of the interrupted step was stored"
    return None
