"""``backtest run``: replay one crash window against fund designs and print one record per design."""

from __future__ import annotations

import json

import click

from backtest.cli.options import archive_option, db_option, events_file_option, format_option, quiet_option

TABLE_COLUMNS = (
    ("design", "design"),
    ("liq_long_usd", "liq long"),
    ("liq_short_usd", "liq short"),
    ("peak_liq_usd_per_min", "peak liq/min"),
    ("bad_debt_usd", "bad debt"),
    ("surplus_usd", "surplus"),
    ("fund_paid_usd", "fund paid"),
    ("fund_end_usd", "fund end"),
    ("adl_notional_usd", "ADL notional"),
    ("adl_haircut_usd", "ADL haircut"),
    ("oi_start_usd", "OI start"),
    ("oi_min_usd", "OI min"),
    ("conservation_residual_usd", "residual"),
)


@click.command("run")
@click.option("--event", "event_id", required=True, help="Crash window id (see `backtest events`).")
@click.option("--designs", default="none", show_default=True, help="Comma-separated fund designs.")
@click.option("--venue", default="binanceusdm", show_default=True, help="Venue (ccxt id).")
@click.option("--symbols", default=None, help="Comma-separated symbols.  [default: the event's symbols]")
@click.option(
    "--price-path",
    type=click.Choice(["historical", "endogenous"]),
    default=None,
    help="Recorded path, or recorded path shifted by the impact of changed forced flow.  "
    "[default: historical]",
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="PARAM=VALUE",
    help="Override a model parameter (docs/MODEL.md §10); repeatable.",
)
@events_file_option
@db_option
@archive_option
@format_option
@quiet_option
def run(
    event_id: str,
    designs: str,
    venue: str,
    symbols: str | None,
    price_path: str | None,
    sets: tuple[str, ...],
    events_file: str | None,
    db: str | None,
    archive: str | None,
    fmt: str,
    quiet: bool,
) -> None:
    """Replay a crash window and report how fund designs fare (one record per design).

    \b
    Examples:
      backtest run --event may2021
      backtest run --event oct2025 --symbols BTCUSDT --set impact_y=0.5 --format json
    """
    import sys

    from backtest.engine.api import load_inputs, make_fund, run_event
    from backtest.engine.params import Params
    from backtest.engine.venue_rules import venue_rules
    from backtest.events import load_catalog
    from loaders.errors import UserError

    # validate everything before touching the store
    event = load_catalog(events_file).get(event_id)
    overrides: dict[str, str] = {}
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set {item}: expected PARAM=VALUE")
        overrides[key.strip()] = value.strip()
    if price_path is not None:
        overrides["price_path"] = price_path
    overrides["venue"] = venue
    venue_rules(venue)
    if venue not in event.venues:
        raise UserError(f"--venue {venue}: not a venue of {event.id}; valid: {', '.join(event.venues)}")
    params = Params.from_overrides(overrides)
    design_list = [d.strip() for d in designs.split(",") if d.strip()]
    if not design_list:
        raise UserError("--designs: no design given")
    for d in design_list:
        make_fund(d)
    sym_list = [s.strip() for s in symbols.split(",") if s.strip()] if symbols else list(event.symbols)
    for s in sym_list:
        if s not in event.symbols:
            raise UserError(f"--symbols {s}: not a symbol of {event.id}; valid: {', '.join(event.symbols)}")
    if len(set(sym_list)) != len(sym_list):
        raise UserError(f"--symbols {symbols}: a symbol is repeated")

    progress = not quiet and sys.stderr.isatty()
    inputs = load_inputs(event, venue, sym_list, params, db=db, archive=archive, progress=progress)
    results = run_event(event, design_list, inputs, params)
    if fmt == "json":
        click.echo(json.dumps([r.to_json_dict() for r in results], indent=2, default=float))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{event.id}: {event.title} ({venue}, {', '.join(sym_list)}, {params.price_path})")
    table.add_column("metric", no_wrap=True)
    for r in results:
        table.add_column(r.record["design"], justify="right", no_wrap=True)
    for key, label in TABLE_COLUMNS[1:]:
        table.add_row(label, *(_money(r.record[key]) for r in results))
    table.add_row("liquidations (pieces)", *(f"{r.record['liq_count']:,.0f}" for r in results))
    table.add_row("cohorts", *(f"{r.record['cohorts']:,}" for r in results))
    console = Console(soft_wrap=False)
    console.print(table)
    for r in results:
        for sym, f in r.per_symbol.items():
            console.print(
                f"{r.record['design']} {sym}: liq long {_money(f['liq_long_usd'])}, short "
                f"{_money(f['liq_short_usd'])}, bad debt {_money(f['bad_debt_usd'])}, ADL "
                f"{_money(f['adl_notional_usd'])}, OI {_money(f['oi_start_usd'])} -> min "
                f"{_money(f['oi_min_usd'])}"
            )


def _money(x: float) -> str:
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:,.2f}{suffix}"
    return f"{x:,.2f}"
