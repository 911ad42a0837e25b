"""``backtest run``: replay one crash window against every fund design and compare them.

Also home of the pieces ``backtest compare`` shares: option parsing (``--set`` for model and design
parameters, ``--config``), the progress display, and running one event end to end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import click

from backtest.cli.options import (
    archive_option,
    db_option,
    events_file_option,
    format_option,
    offline_option,
    quiet_option,
)

DEFAULT_RISK_FREE = 0.04  # = backtest.metrics.DEFAULT_RISK_FREE (not imported: --help stays light)


def design_options(f: Any) -> Any:
    """Options shared by ``run`` and ``compare``: designs, their config, model/design parameters, output."""
    for opt in reversed(
        [
            click.option(
                "--designs",
                default=None,
                help="Comma-separated designs or variant labels.  [default: every registered design and "
                "every variant in --config]",
            ),
            click.option(
                "--config",
                "config",
                type=click.Path(dir_okay=False),
                default=None,
                help="TOML file of design parameters and variants (see docs/DESIGNS.md).",
            ),
            click.option("--venue", default="binanceusdm", show_default=True, help="Venue (ccxt id)."),
            click.option(
                "--price-path",
                type=click.Choice(["historical", "endogenous"]),
                default=None,
                help="Recorded path, or recorded path shifted by the impact of changed forced flow.  "
                "[default: historical]",
            ),
            click.option(
                "--set",
                "sets",
                multiple=True,
                metavar="PARAM=VALUE",
                help="Override a model parameter (docs/MODEL.md §10), or a design parameter as "
                "DESIGN.PARAM=VALUE (docs/DESIGNS.md); repeatable.",
            ),
            click.option(
                "--risk-free",
                "risk_free",
                type=float,
                default=DEFAULT_RISK_FREE,
                show_default=True,
                help="Yearly risk-free rate for the capital cost of each fund.",
            ),
            click.option(
                "--out",
                "out",
                type=click.Path(file_okay=False),
                default=None,
                help="Directory for report.html (single file, plots embedded), results.parquet, the per-tick "
                "and per-bar series (ticks.parquet, bars.parquet) and run.json (`backtest report DIR` "
                "re-renders the page from them).",
            ),
            events_file_option,
            db_option,
            archive_option,
            offline_option,
            format_option,
            quiet_option,
        ]
    ):
        f = opt(f)
    return f


@dataclass
class Setup:
    """Validated options: model params, design specs; nothing touched yet."""

    params: Any
    specs: list[Any]
    venue: str
    risk_free: float


def parse_setup(
    designs: str | None,
    config: str | None,
    sets: tuple[str, ...],
    venue: str,
    price_path: str | None,
    risk_free: float,
) -> Setup:
    """Every option checked (UserError naming the option) before the store or output is touched."""
    import math

    from backtest.engine.api import resolve_designs
    from backtest.engine.params import Params
    from backtest.engine.venue_rules import venue_rules
    from loaders.errors import InputError, UserError
    from strategies.config import load_config

    model: dict[str, str] = {}
    design_sets: list[str] = []
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set {item}: expected PARAM=VALUE or DESIGN.PARAM=VALUE")
        if "." in key:
            design_sets.append(item)
        else:
            model[key.strip()] = value.strip()
    if price_path is not None:
        model["price_path"] = price_path
    model["venue"] = venue
    venue_rules(venue)
    params = Params.from_overrides(model)
    if not (math.isfinite(risk_free) and -0.5 < risk_free < 1.0):
        raise UserError(f"--risk-free {risk_free}: expected a yearly rate between -0.5 and 1 (e.g. 0.04)")
    if config is not None:
        from pathlib import Path

        if not Path(config).is_file():
            raise InputError(config, "designs file not found")
    cfg = load_config(config, design_sets)
    labels = [d.strip() for d in designs.split(",") if d.strip()] if designs is not None else None
    specs = resolve_designs(labels, cfg)
    return Setup(params=params, specs=specs, venue=venue, risk_free=risk_free)


def check_symbols(event: Any, venue: str, symbols: str | None) -> list[str]:
    from loaders.errors import UserError

    if venue not in event.venues:
        raise UserError(f"--venue {venue}: not a venue of {event.id}; valid: {', '.join(event.venues)}")
    sym_list = [s.strip() for s in symbols.split(",") if s.strip()] if symbols else list(event.symbols)
    for s in sym_list:
        if s not in event.symbols:
            raise UserError(f"--symbols {s}: not a symbol of {event.id}; valid: {', '.join(event.symbols)}")
    if len(set(sym_list)) != len(sym_list):
        raise UserError(f"--symbols {symbols}: a symbol is repeated")
    return sym_list


class RunProgress:
    """One rich progress line per event (load + each design's replay), on stderr; a no-op when disabled."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._p: Any = None
        self.plain = False

    def __enter__(self) -> RunProgress:
        from backtest.progress_lines import stderr_is_terminal

        self.plain = self.enabled and not stderr_is_terminal()
        if self.enabled and not self.plain:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self._p = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._p.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._p is not None:
            self._p.__exit__(*exc)
            self._p = None

    def task(self, name: str, total: int) -> Any:
        """A callable ``step(label)``: finishes the previous step and shows ``label`` as running."""
        if self.plain:
            import time

            from backtest.progress_lines import line

            t0, count = time.perf_counter(), {"n": 0}

            def plain(label: str) -> None:
                count["n"] += 1
                line(f"{name} [{count['n']}/{total}] {label} ({time.perf_counter() - t0:.1f} s)")

            return plain
        if self._p is None:
            return lambda _label: None
        tid = self._p.add_task(name, total=total)
        state = {"n": 0}

        def step(label: str) -> None:
            if state["n"]:
                self._p.advance(tid)
            state["n"] += 1
            self._p.update(tid, description=f"{name}: {label}")

        return step

    def done(self) -> None:
        """Fill every bar (the last step has no successor to advance it)."""
        if self._p is not None:
            for tid in self._p.task_ids:
                self._p.update(tid, completed=self._p.tasks[tid].total)


def run_one_event(
    event: Any,
    setup: Setup,
    sym_list: list[str],
    *,
    db: str | None,
    archive: str | None,
    progress: bool,
    offline: bool = False,
    catalog: Any = None,
) -> tuple[list[Any], list[Any]]:
    """Fill/load the window, replay every design (warm-up shared), add the fund metrics.

    ``catalog``: where a window without a listed fund finds the nearest one (backtest/capital.py)."""
    from backtest.capital import fund_oi_ratio
    from backtest.engine.api import load_inputs, run_event
    from backtest.ensure import ensure_window
    from backtest.finite import check_results
    from backtest.metrics import add_fund_metrics

    ensure_window(db, event, setup.venue, sym_list, archive=archive, progress=progress,
                  allow_download=not offline)
    ratio = fund_oi_ratio(event, setup.venue, setup.params, catalog=catalog, db=db, archive=archive,
                          progress=progress)
    extra = 2 if setup.params.price_path == "endogenous" else 0
    with RunProgress(progress) as prog:
        step = prog.task(event.id, len(sym_list) + 1 + extra + len(setup.specs))
        inputs = load_inputs(
            event, setup.venue, sym_list, setup.params, db=db, archive=archive, ensure=False,
            on_symbol=lambda s: step(f"loading {s}"),
        )
        results = run_event(event, setup.specs, inputs, setup.params, venue=setup.venue, on_step=step,
                            fund_oi_ratio=ratio)
        prog.done()
    add_fund_metrics(results, window_s=(event.end - event.start).total_seconds(), risk_free=setup.risk_free)
    check_results(results)
    return inputs, results


PATH_OPTIONS = ("db", "archive", "offline", "quiet", "verbose", "fmt", "out", "events_file")


def command_line(ctx: click.Context) -> str:
    """The command with every option that changes results (for the report header; paths left out)."""
    import shlex

    parts = [ctx.command_path]
    for p in ctx.command.params:
        if not isinstance(p, click.Option) or p.name in PATH_OPTIONS:
            continue
        value = ctx.params.get(p.name)
        if p.is_flag and p.secondary_opts:  # --x/--no-x: name the side that was chosen
            if value != p.default:
                parts.append(p.opts[0] if value else p.secondary_opts[0])
            continue
        if p.is_flag:  # a plain flag takes no value: present when set, absent otherwise
            if value:
                parts.append(p.opts[0])
            continue
        if value is None or value == p.default or value == ():
            continue
        for v in value if p.multiple else [value]:
            parts += [p.opts[0], shlex.quote(str(v))]
    return " ".join(parts)


@click.command("run")
@click.option("--event", "event_id", required=True, help="Crash window id (see `backtest events`).")
@click.option("--symbols", default=None, help="Comma-separated symbols.  [default: the event's symbols]")
@design_options
@click.pass_context
def run(
    ctx: click.Context,
    event_id: str,
    symbols: str | None,
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
    """Replay a crash window and compare how the fund designs fare (one record per design).

    Every registered design runs on the same replay (the warm-up is replayed once and shared).

    \b
    Examples:
      backtest run --event may2021
      backtest run --event may2021 --designs static,dynamic --set static.capital_usd=1e8 --out report/
      backtest run --event oct2025 --symbols BTCUSDT --set impact_y=0.5 --format json
    """
    import contextlib

    from backtest.events import load_catalog

    # validate everything before touching the store or the output directory
    catalog = load_catalog(events_file)
    event = catalog.get(event_id)
    setup = parse_setup(designs, config, sets, venue, price_path, risk_free)
    sym_list = check_symbols(event, venue, symbols)
    progress = not quiet  # rich bars on a terminal, plain lines on a pipe (backtest.progress_lines)
    with contextlib.ExitStack() as stack:
        stage = None
        if out is not None:
            from backtest.report.html import staged_output

            stage = stack.enter_context(staged_output(out))
        inputs, results = run_one_event(event, setup, sym_list, db=db, archive=archive, progress=progress,
                                        offline=offline, catalog=catalog)
        from backtest.calibration_check import window_warnings

        warnings = window_warnings(event, results, inputs, setup.params)
        if stage is not None:
            from backtest.report.html import EventSection, write_report
            from backtest.report.plots import window_prices

            section = EventSection(event, results, window_prices(inputs), venue, setup.params, risk_free,
                                   notes=list(warnings))
            write_report(stage, [section], title=f"Insurance-fund designs in {event.id}: {event.title}",
                         command=command_line(ctx))
    if fmt == "json":
        from backtest.finite import dumps

        click.echo(dumps([r.to_json_dict() for r in results], indent=2))
    else:
        print_tables(event, venue, sym_list, setup, results)
    for line in warnings:
        click.echo(line, err=True)
    if out is not None and not quiet:
        click.echo(f"report: {out}/report.html, table: {out}/results.parquet", err=True)


def print_tables(
    event: Any, venue: str, sym_list: list[str], setup: Setup, results: list[Any], per_symbol: bool = True
) -> None:
    from backtest.cli.console import print_table, stdout_console
    from backtest.report.tables import capital_lines, comparison_table, money

    console = stdout_console()
    title = (
        f"{event.id}: {event.title} ({venue}, {', '.join(sym_list)}, {setup.params.price_path}; "
        f"window {event.start:%Y-%m-%d %H:%M} → {event.end:%Y-%m-%d %H:%M} UTC)"
    )
    print_table(console, comparison_table(results, title))
    for line in capital_lines(results):
        console.print(f"start capital of {line}", markup=False, highlight=False)
    for r in results if per_symbol else ():
        for sym, f in r.per_symbol.items():
            console.print(
                f"{r.record['design']} {sym}: liq long {money(f['liq_long_usd'])}, short "
                f"{money(f['liq_short_usd'])}, bad debt {money(f['bad_debt_usd'])}, ADL "
                f"{money(f['adl_notional_usd'])}, OI {money(f['oi_start_usd'])} -> min "
                f"{money(f['oi_min_usd'])}",
                highlight=False,
            )
