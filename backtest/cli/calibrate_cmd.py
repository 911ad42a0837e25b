"""``backtest calibrate``: the reconstructed cascade of a window next to what was reported about it."""

from __future__ import annotations

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


@click.command("calibrate")
@click.option("--event", "event_id", required=True, help="Crash window id (see `backtest events`).")
@click.option("--symbols", default=None, help="Comma-separated symbols.  [default: the event's symbols]")
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="PARAM=VALUE",
    help="Override a model parameter (docs/MODEL.md §10); repeatable.",
)
@click.option(
    "--venue-share",
    type=float,
    default=None,
    help="Binance share of an all-venue figure.  [default: the model's venue_share]",
)
@click.option(
    "--asset-share",
    type=float,
    default=None,
    help="BTC+ETH share of an all-asset liquidation total.  [default: 0.6, docs/CALIBRATION.md]",
)
@events_file_option
@db_option
@archive_option
@offline_option
@format_option
@quiet_option
def calibrate(
    event_id: str,
    symbols: str | None,
    sets: tuple[str, ...],
    venue_share: float | None,
    asset_share: float | None,
    events_file: str | None,
    db: str | None,
    archive: str | None,
    offline: bool,
    fmt: str,
    quiet: bool,
) -> None:
    """Reconstructed versus reported figures: liquidations (total, long share), peak timing, OI
    change, funding extreme, insurance-fund change, with each figure's scope, source and confidence
    (docs/CALIBRATION.md)."""

    from backtest.calibrate import DEFAULT_ASSET_SHARE, ModelSeries, Shares, compare
    from backtest.calibrate_run import fund_rows, implied_leverage
    from backtest.cli.run_cmd import check_symbols
    from backtest.engine.api import load_inputs, run_event
    from backtest.engine.params import Params
    from backtest.events import load_catalog
    from loaders.errors import UserError

    model: dict[str, str] = {}
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set {item}: expected PARAM=VALUE")
        model[key.strip()] = value.strip()
    params = Params.from_overrides(model)
    for name, v in (("--venue-share", venue_share), ("--asset-share", asset_share)):
        if v is not None and not 0 < v <= 1:
            raise UserError(f"{name} {v}: expected a share in (0, 1]")
    shares = Shares(
        venue_share if venue_share is not None else params.venue_share,
        asset_share if asset_share is not None else DEFAULT_ASSET_SHARE,
    )
    event = load_catalog(events_file).get(event_id)
    sym_list = check_symbols(event, params.venue, symbols)
    progress = not quiet  # rich bars on a terminal, plain lines on a pipe (backtest.progress_lines)
    inputs = load_inputs(event, params.venue, sym_list, params, db=db, archive=archive, progress=progress,
                         allow_download=not offline)
    (result,) = run_event(event, ["none"], inputs, params)
    cal = compare(event, ModelSeries.from_result(result, inputs), shares)
    cal.rows.extend(fund_rows(event, inputs, params))
    leverage = implied_leverage(inputs, params, result)
    if fmt == "json":
        doc = cal.to_dict()
        doc["symbols"] = sym_list
        doc["params"] = params.to_dict()
        doc["implied_leverage"] = leverage
        from backtest.finite import dumps

        click.echo(dumps(doc, indent=2))
        return
    _print_table(event, cal, sym_list)
    from backtest.cli.console import stdout_console

    shares = ", ".join(f"{k} {v:.1%}" for k, v in leverage.items())
    stdout_console().print(f"Implied share of new notional by effective leverage: {shares} "
                           "(docs/CALIBRATION.md: the fitted mix against public statements).", soft_wrap=True)


def _print_table(event: Any, cal: Any, symbols: list[str]) -> None:
    from rich.table import Table

    from backtest.calibrate import LOWER_BOUND_MAX_RATIO
    from backtest.cli.console import stdout_console

    funds = "; fund rows: design static from the reported balance" if any(
        r.metric == "fund_change" for r in cal.rows) else ""
    t = Table(
        title=f"{event.id}: {event.title}\nmodel: binanceusdm {'+'.join(symbols)}, design none{funds}; "
        f"like-for-like = reported x venue_share {cal.shares.venue_share:g} (all-venue figures) "
        f"x asset_share {cal.shares.asset_share:g} (all-asset totals)",
    )
    for col, just in (("#", "right"), ("figure", "left"), ("metric", "left"), ("unit", "left"),
                      ("reconstructed", "right"), ("reported", "right"), ("like-for-like", "right"),
                      ("ratio", "right"), ("conf", "center"), ("verdict", "left")):
        t.add_column(col, justify=just, overflow="fold")
    notes = []
    for i, r in enumerate(cal.rows, 1):
        rep = _num(r.reported, r.metric) + (" LB" if r.lower_bound else "")
        t.add_row(str(i), r.figure, r.metric, _unit(r), _num(r.model, r.metric), rep,
                  _num(r.comparable, r.metric),
                  "-" if r.ratio is None else f"{r.ratio:.2f}", r.confidence,
                  r.verdict + ("" if r.scored else " [not scored]"))
        notes.append(f"{i}. {r.figure}: {r.scope} | measured {r.interval} | {r.scale} | {r.source}")
    console = stdout_console()
    console.print(t)
    console.print("LB = reported as a lower bound (throttled CEX feeds after April 2021): consistent when "
                  f"the reconstruction is 1-{LOWER_BOUND_MAX_RATIO:g}x it.", soft_wrap=True)
    for line in notes:
        console.print(line, soft_wrap=True, highlight=False, markup=False)


#: What the numbers of each row are in (the "ratio" column holds model / like-for-like only).
UNITS = {
    "liquidations": "USD",
    "long_share": "share of liquidations",
    "oi_change": "OI change (fraction)",
    "funding_extreme": "% per 8h settlement",
    "peak_time": "hours vs catalog peak",
}


def _unit(r: Any) -> str:
    if r.metric == "fund_change":
        return f"{r.unit} (change)"
    return UNITS.get(r.metric, r.unit)


def _num(v: float | None, metric: str) -> str:
    if v is None:
        return "-"
    if metric == "peak_time":
        return f"{v:+.1f} h"
    if metric == "liquidations":
        return f"{v / 1e9:.3f}B" if abs(v) >= 1e8 else f"{v / 1e6:.1f}M"
    if metric == "funding_extreme":
        return f"{v * 100:+.4f}%"
    if metric == "fund_change":
        return f"{v / 1e6:+.2f}M"
    return f"{v:+.3f}"
