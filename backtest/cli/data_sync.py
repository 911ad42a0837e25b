"""``backtest data sync``: fetch a window's candles, funding, open interest, insurance through ccxt."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime

import click

from backtest.cli.options import db_option, events_file_option, quiet_option

#: Points every ccxt request at another base URL (a loopback emulator in tests).
BASE_URL_ENV = "BACKTEST_CCXT_BASE_URL"
DATASET_NAMES = "last,mark,index,funding,oi,insurance"
_DATASETS = DATASET_NAMES.split(",")


def _csv(value: str | None) -> list[str] | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    return items or None


def _when(option: str, value: str) -> datetime:
    """ISO date or datetime; an offset is converted to UTC, a naive value is taken as UTC."""
    from loaders.errors import UserError

    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UserError(f"{option} {value}: not an ISO date or datetime (e.g. 2021-05-19 or "
                        "2021-05-19T12:00)") from None
    return dt.astimezone(UTC).replace(tzinfo=None) if dt.tzinfo else dt


@click.command("sync")
@click.option("--event", "event_id", default=None, metavar="ID",
              help="Crash window id (see `backtest events`); fetches [start - warm-up, end).")
@click.option("--venue", default=None, metavar="ID",
              help="ccxt venue id: binanceusdm, bybit, okx, gate.  [default: the event's first venue, "
                   "else binanceusdm]")
@click.option("--symbols", default=None, metavar="LIST",
              help="Comma-separated exchange-native ids, e.g. BTCUSDT,ETHUSDT (okx BTC-USDT-SWAP, gate "
                   "BTC_USDT).  [default: the event's]")
@click.option("--datasets", default=None, metavar="LIST",
              help=f"Comma-separated datasets from {DATASET_NAMES}.  [default: all of them; what the venue "
                   "cannot serve is reported and skipped]")
@click.option("--timeframe", default="1h", show_default=True, help="Candle timeframe (OI uses the same "
              "period or the next coarser one the venue serves).")
@click.option("--since", default=None, metavar="ISO", help="Window start (UTC), instead of --event.")
@click.option("--until", default=None, metavar="ISO", help="Window end (UTC, exclusive), instead of --event.")
@click.option("--retries", type=click.IntRange(1, 20), default=5, show_default=True,
              help="Attempts per page on network errors, HTTP 429 and 5xx.")
@click.option("--backoff", type=click.FloatRange(0), default=1.0, show_default=True,
              help="First wait between attempts in seconds (doubles each retry).")
@click.option("--replace", is_flag=True, help="Overwrite stored values the venue now reports differently "
              "(default: stop with a conflict error naming the row).")
@db_option
@events_file_option
@quiet_option
def sync(event_id: str | None, venue: str | None, symbols: str | None, datasets: str | None, timeframe: str,
         since: str | None, until: str | None, retries: int, backoff: float, replace: bool, db: str | None,
         events_file: str | None, quiet: bool) -> None:
    """Fetch a window's candles, funding, open interest and insurance-fund balances through ccxt.

    Pages through each dataset with explicit since/until windows and stores every page in its own
    transaction, so an interrupted sync keeps whole pages and re-running the same command resumes
    where it stopped. Insurance-fund history comes from okx (per instFamily) and gate (futures-usdt);
    Binance/Bybit serve a current snapshot only. History a venue no longer keeps (Binance OI: 30 days),
    never served, or simply did not return for the window is reported as a warning, not left silent.
    """
    from loaders.ccxt_source import make_exchange
    from loaders.ccxt_source import sync as run_sync
    from loaders.errors import SourceError, UserError
    from loaders.store import Store
    from loaders.venues import VENUES, get_venue

    if event_id and (since or until):
        raise UserError("give either --event or --since/--until, not both")
    if event_id:
        from backtest.events import load_catalog

        event = load_catalog(events_file).get(event_id)
        start, end = event.load_start, event.end
        default_symbols = list(event.symbols)
        default_venue = next((v for v in event.venues if v in VENUES), "binanceusdm")
        label = event.id
    elif since and until:
        start, end = _when("--since", since), _when("--until", until)
        default_symbols, default_venue, label = [], "binanceusdm", "window"
    else:
        raise UserError("give --event ID (see `backtest events`) or both --since and --until")
    chosen_venue = get_venue(venue or default_venue)
    chosen = _csv(symbols) or default_symbols
    if not chosen:
        raise UserError("--symbols is required with --since/--until (e.g. --symbols BTCUSDT,ETHUSDT)")
    wanted = _csv(datasets) or list(_DATASETS)
    unknown = [d for d in wanted if d not in _DATASETS]
    if unknown:
        raise UserError(f"--datasets {','.join(unknown)}: unknown; choose from {', '.join(_DATASETS)}")
    base_url = os.environ.get(BASE_URL_ENV) or None
    # Loopback/test servers need no client-side throttling; real venues keep ccxt's rate limiter.
    exchange = make_exchange(chosen_venue.id, base_url=base_url, rate_limit=base_url is None)
    if not quiet:
        click.echo(f"{label}: {start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC on {chosen_venue.id}, "
                   f"{','.join(chosen)}: {','.join(wanted)} ({timeframe})", err=True)
    with Store(db) as store:
        report = run_sync(store, chosen_venue.id, chosen, wanted, start, end, timeframe=timeframe,
                          exchange=exchange, attempts=retries, base_delay=backoff, replace=replace,
                          progress=not quiet and sys.stderr.isatty())
    for r in report.results:
        if r.fetched:
            span = f"{r.first_ts:%Y-%m-%d %H:%M} .. {r.last_ts:%Y-%m-%d %H:%M}" if r.first_ts else "-"
            where = "below" if r.backward else "after"  # insurance history is walked newest-first
            resumed = f", resumed {where} {r.resumed_from:%Y-%m-%d %H:%M}" if r.resumed_from else ""
            click.echo(f"{r.venue} {r.symbol} {r.dataset}: {r.rows} new rows ({r.fetched_rows} fetched, "
                       f"{r.pages} pages{resumed}) {span}")
        if r.warning:
            click.echo(f"warning: {r.symbol} {r.dataset}: {r.warning}", err=True)
    click.echo(f"total: {report.rows} new rows in {report.pages} pages")
    if not report.anything_fetched:
        raise SourceError(f"nothing could be fetched from {chosen_venue.id} for {','.join(chosen)} "
                          f"({','.join(wanted)}); see the warnings above")
