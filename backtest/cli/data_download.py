"""``backtest data download``: fill the store from data.binance.vision for one crash window."""

from __future__ import annotations

import click

from backtest.cli.options import db_option, events_file_option, quiet_option

_DATASETS = "klines,markPriceKlines,indexPriceKlines,fundingRate,metrics,liquidationSnapshot"


def _csv(value: str | None) -> list[str] | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    return items or None


@click.command("download")
@click.option("--event", "event_id", required=True, metavar="ID",
              help="Crash window id (see `backtest events`).")
@click.option("--symbols", default=None, metavar="LIST",
              help="Comma-separated symbols, e.g. BTCUSDT,ETHUSDT.  [default: the event's symbols]")
@click.option("--datasets", default=None, metavar="LIST",
              help=f"Comma-separated datasets.  [default: {_DATASETS}]")
@click.option("--timeframes", default=None, metavar="LIST",
              help="Comma-separated candle timeframes.  [default: 1m,1h]")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Where downloaded files are kept (mirrors the site's paths).  "
              "[default: data/cache/binance-vision of the checkout]")
@click.option("--base-url", default=None, envvar="BACKTEST_BINANCE_VISION_URL", show_envvar=True,
              help="Site to download from.  [default: https://data.binance.vision/]")
@click.option("--retries", type=click.IntRange(1, 20), default=5, show_default=True,
              help="Attempts per file on network errors and HTTP 5xx/429.")
@click.option("--backoff", type=click.FloatRange(0), default=1.0, show_default=True,
              help="First wait between attempts in seconds (doubles each retry, at most 30 s).")
@db_option
@events_file_option
@quiet_option
def download(event_id: str, symbols: str | None, datasets: str | None, timeframes: str | None,
             cache_dir: str | None, base_url: str | None, retries: int, backoff: float, db: str | None,
             events_file: str | None, quiet: bool) -> None:
    """Download a window's Binance public-data files, verify checksums, import them.

    Fetches the USDⓈ-M futures files of data.binance.vision covering the event window plus its
    warm-up (monthly files for whole months, daily files otherwise), checks each against its
    published SHA-256 and imports it into the store. Files Binance does not publish (HTTP 404)
    are listed and skipped. Re-running resumes: verified files in the cache are not fetched again.
    """
    from backtest.events import load_catalog
    from loaders.binance_vision import HostUnreachableError, RetryPolicy, download_window
    from loaders.errors import UserError
    from loaders.store import Store

    event = load_catalog(events_file).get(event_id)
    chosen = _csv(symbols) or list(event.symbols)
    retry = RetryPolicy(attempts=retries, backoff=backoff)
    if not quiet:
        click.echo(f"{event.id}: {event.load_start:%Y-%m-%d %H:%M} .. {event.end:%Y-%m-%d %H:%M} UTC "
                   f"(incl. warm-up), {','.join(chosen)}", err=True)
    with Store(db) as store:
        try:
            report = download_window(store, chosen, event.load_start, event.end, datasets=_csv(datasets),
                                     timeframes=_csv(timeframes), cache_dir=cache_dir, base_url=base_url,
                                     progress=not quiet, retry=retry)
        except UserError as exc:
            partial = getattr(exc, "report", None)
            if partial is not None:
                for line in partial.summary_lines():
                    click.echo(line)
            if isinstance(exc, HostUnreachableError):
                raise HostUnreachableError(
                    f"{exc}: connect to the internet, or import the recorded archive with `backtest data "
                    "import DIR` (or pass --archive DIR to run)"
                ) from exc
            raise
    for line in report.summary_lines():
        click.echo(line)
