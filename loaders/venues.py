"""What each venue serves through ccxt: datasets, page sizes, timeframes, retention (data, not code).

The sync loop (``loaders.ccxt_source``) reads this table instead of special-casing venues, and
the CLI quotes it when a dataset cannot be fetched. Retention limits are the venues' documented
limits as of ccxt 4.5.90 / November 2026 (see shared/docs/CCXT.md); entries marked "verify" were
not confirmed against the live API. A request outside a known limit is *reported*
(``RetentionError``), never answered with a silent empty result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from difflib import get_close_matches
from typing import Any

from loaders.errors import RetentionError, SourceError, UserError

#: Every dataset ``backtest data sync`` knows, in fetch order.
DATASETS = ("last", "mark", "index", "funding", "oi", "insurance")
#: Candle datasets map to ``candles.price_type``.
CANDLE_DATASETS = ("last", "mark", "index")

_TF_MS = {"1m": 60_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000, "1h": 3_600_000,
          "4h": 14_400_000, "8h": 28_800_000, "1d": 86_400_000}


def timeframe_ms(timeframe: str) -> int:
    """Milliseconds per candle / period for the timeframes the store uses."""
    try:
        return _TF_MS[timeframe]
    except KeyError:
        raise UserError(f"--timeframe {timeframe}: unknown; choose from {', '.join(_TF_MS)}") from None


class NotServedError(SourceError):
    """The venue does not serve this dataset (or serves only a snapshot): reported like retention."""


@dataclass(frozen=True)
class DatasetSpec:
    """How one venue serves one dataset.

    ``page_max`` is the largest ``limit`` the venue accepts. ``anchored_at_start`` says the venue
    answers ``[since, until]`` with the *first* ``limit`` rows; otherwise (newest-first or
    undocumented venues) the loop bounds each page to ``page_max`` steps so no row can fall
    between pages. ``min_step`` is the smallest spacing of two rows (funding can settle hourly).
    """

    method: str | None  # the ccxt call; None = not served
    page_max: int = 0
    retention: timedelta | None = None  # history kept by the venue, counted back from now
    anchored_at_start: bool = True
    min_step: timedelta | None = None  # for non-candle series; candles step by the timeframe
    periods: tuple[str, ...] = ()  # open-interest periods the venue accepts
    snapshot_only: bool = False  # insurance: the venue publishes only the current balance
    note: str = ""

    @property
    def served(self) -> bool:
        return self.method is not None


@dataclass(frozen=True)
class Venue:
    id: str  # the ccxt id
    title: str
    timeframes: tuple[str, ...]  # candle timeframes (of the store's set) the venue serves
    ccxt_options: dict[str, Any]  # pinned constructor options (load_markets = 1-2 requests)
    datasets: dict[str, DatasetSpec]
    settle: str = "USDT"  # margin currency of the linear perps we sync (insurance fund currency)
    notes: tuple[str, ...] = field(default=())

    def spec(self, dataset: str) -> DatasetSpec:
        """The dataset's spec; raises NotServedError (one line, with the reason) if not served."""
        if dataset not in DATASETS:
            raise UserError(f"--datasets {dataset}: unknown dataset; choose from {', '.join(DATASETS)}")
        spec = self.datasets.get(dataset, DatasetSpec(None))
        if not spec.served:
            raise NotServedError(f"{self.id} {dataset}: {spec.note or 'not served by the venue'}")
        return spec

    def check_timeframe(self, timeframe: str) -> None:
        timeframe_ms(timeframe)
        if timeframe not in self.timeframes:
            raise UserError(f"--timeframe {timeframe}: {self.id} has no {timeframe} candles; "
                            f"choose from {', '.join(self.timeframes)}")

    def oi_period(self, timeframe: str) -> str:
        """The OI period to use for a candle timeframe: the same, or the next coarser one served."""
        periods = self.spec("oi").periods
        if timeframe in periods:
            return timeframe
        coarser = [p for p in periods if _TF_MS[p] >= _TF_MS[timeframe]]
        return coarser[0] if coarser else periods[-1]


#: A snapshot counts as "inside" a window that ended at most this long ago.
SNAPSHOT_SLACK = timedelta(days=1)


def retained_window(venue: Venue, dataset: str, start: datetime, end: datetime,
                    now: datetime) -> tuple[datetime, str | None]:
    """Clip ``[start, end)`` to what the venue still keeps.

    Returns the (possibly later) start and a warning when part of the window is gone; raises
    ``RetentionError`` when all of it is (e.g. Binance OI history for May 2021: 30 days only).
    """
    spec = venue.spec(dataset)
    if spec.snapshot_only:
        if end < now - SNAPSHOT_SLACK:
            raise NotServedError(
                f"{venue.id} publishes {spec.note}; the window ends {end:%Y-%m-%d %H:%M}, so its "
                f"{dataset} history cannot be fetched through the API"
            )
        return start, None
    if spec.retention is None:
        return start, None
    oldest = now - spec.retention
    if end <= oldest:
        raise RetentionError(
            f"{venue.id} keeps {dataset} history for {_fmt_days(spec.retention)} only (oldest now "
            f"{oldest:%Y-%m-%d %H:%M}); the window {start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} "
            "cannot be fetched through the API"
        )
    if start < oldest:
        return oldest, (f"{venue.id} keeps {dataset} history for {_fmt_days(spec.retention)} only: "
                        f"fetching from {oldest:%Y-%m-%d %H:%M}, the part before is not available")
    return start, None


def _fmt_days(delta: timedelta) -> str:
    return f"the last {delta.days} days"


_CANDLE_NOTE = "full history since listing"

BINANCEUSDM = Venue(
    id="binanceusdm",
    title="Binance USDⓈ-M perpetuals",
    timeframes=("1m", "5m", "15m", "1h", "4h", "8h", "1d"),
    ccxt_options={"fetchMarkets": {"types": ["linear"]}},  # one GET /fapi/v1/exchangeInfo
    datasets={
        # ccxt caps klines at 1000 per call although fapi accepts 1500.
        "last": DatasetSpec("fetch_ohlcv", 1000, note=_CANDLE_NOTE),
        "mark": DatasetSpec("fetch_mark_ohlcv", 1000, note=_CANDLE_NOTE),
        "index": DatasetSpec("fetch_index_ohlcv", 1000, note="indexPriceKlines (queried by pair)"),
        # startTime/endTime inclusive, ascending, first `limit` from startTime; ccxt's paginate
        # assumes an 8h step, which loses rows of 4h/1h series, so the loop steps on timestamps.
        "funding": DatasetSpec("fetch_funding_rate_history", 1000, min_step=timedelta(hours=1),
                               note="full history; intervals 8h, 4h or 1h per symbol"),
        "oi": DatasetSpec("fetch_open_interest_history", 500, retention=timedelta(days=30),
                          anchored_at_start=False, periods=("5m", "15m", "30m", "1h", "4h", "1d"),
                          note="futures/data/openInterestHist keeps the last 30 days only"),
        "insurance": DatasetSpec(
            "insurance_snapshot", snapshot_only=True,
            note="only a current insurance-fund snapshot (fapi/v1/insuranceBalance), no history"),
    },
    notes=("long/short ratios and taker volume (futures/data/*) also keep 30 days only",
           "no public liquidation history over REST (websocket forceOrder only)"),
)

BYBIT = Venue(
    id="bybit",
    title="Bybit v5 linear perpetuals",
    timeframes=("1m", "5m", "15m", "1h", "4h", "1d"),  # no 8h interval
    ccxt_options={"fetchMarkets": {"types": ["linear"]}},  # instruments-info linear + PreLaunch
    datasets={
        # Rows come newest-first (ccxt re-sorts); with start+end the venue answers the earliest
        # `limit` rows from start.
        "last": DatasetSpec("fetch_ohlcv", 1000, note=_CANDLE_NOTE),
        "mark": DatasetSpec("fetch_mark_ohlcv", 1000, note=_CANDLE_NOTE),
        "index": DatasetSpec("fetch_index_ohlcv", 1000, note=_CANDLE_NOTE),
        # funding/history pages newest-first from endTime: bound each page to 200 hourly steps.
        "funding": DatasetSpec("fetch_funding_rate_history", 200, anchored_at_start=False,
                               min_step=timedelta(hours=1), note="full history"),
        # open-interest walks backwards from endTime (cursor paging); bounded pages avoid the cursor.
        "oi": DatasetSpec("fetch_open_interest_history", 200, anchored_at_start=False,
                          periods=("5m", "15m", "30m", "1h", "4h", "1d"),
                          note="retention not documented (verify)"),
        "insurance": DatasetSpec(
            "insurance_snapshot", snapshot_only=True,
            note="only a current insurance-fund snapshot (v5/market/insurance), no history"),
    },
    notes=("no REST liquidation or trade history",),
)

OKX = Venue(
    id="okx",
    title="OKX USDT swaps",
    timeframes=("1m", "5m", "15m", "1h", "4h", "1d"),
    ccxt_options={"fetchMarkets": {"types": ["swap"]}},
    datasets={
        # ccxt picks market/candles vs market/history-candles from the wall clock; history
        # endpoints cap at 100 rows for mark/index, 300 recent - 100 is safe for all.
        "last": DatasetSpec("fetch_ohlcv", 100, anchored_at_start=False, note="history-candles"),
        "mark": DatasetSpec("fetch_mark_ohlcv", 100, anchored_at_start=False,
                            note="history-mark-price-candles"),
        "index": DatasetSpec("fetch_index_ohlcv", 100, anchored_at_start=False,
                             note="history-index-candles (by instFamily)"),
        "funding": DatasetSpec("fetch_funding_rate_history", 100, retention=timedelta(days=90),
                               anchored_at_start=False, min_step=timedelta(hours=1),
                               note="public/funding-rate-history keeps ~3 months (verify)"),
        "oi": DatasetSpec("fetch_open_interest_history", 100, anchored_at_start=False,
                          periods=("5m", "1h", "1d"),
                          note="rubik open-interest-history, short retention (verify)"),
        # public/insurance-fund: instType SWAP + instFamily, newest first, `after` = older than ts,
        # `before` = newer than ts, limit <= 100. How far back it reaches is undocumented (verify).
        "insurance": DatasetSpec("insurance_history", 100, anchored_at_start=False,
                                 note="insurance-fund history (public/insurance-fund, per instFamily); "
                                      "depth not documented (verify)"),
    },
    notes=("liquidation orders (public/liquidation-orders) ~7 days, undeclared in ccxt",),
)

GATE = Venue(
    id="gate",
    title="Gate USDT futures",
    timeframes=("1m", "5m", "15m", "1h", "4h", "8h", "1d"),
    # swap markets settled in USDT only: one GET /futures/usdt/contracts
    ccxt_options={"fetchMarkets": {"types": ["swap"]},
                  "swap": {"fetchMarkets": {"settlementCurrencies": ["usdt"]}}},
    datasets={
        "last": DatasetSpec("fetch_ohlcv", 1000, anchored_at_start=False, note="from/to in seconds"),
        "mark": DatasetSpec("fetch_mark_ohlcv", 1000, anchored_at_start=False, note="mark_<contract>"),
        "index": DatasetSpec("fetch_index_ohlcv", 1000, anchored_at_start=False, note="index_<contract>"),
        "funding": DatasetSpec("fetch_funding_rate_history", 1000, anchored_at_start=False,
                               min_step=timedelta(hours=1), note="futures/{settle}/funding_rate"),
        "oi": DatasetSpec("fetch_open_interest_history", 100, anchored_at_start=False,
                          periods=("5m", "15m", "30m", "1h", "4h", "1d"),
                          note="contract_stats, retention not documented (verify)"),
        # futures/{settle}/insurance: the newest `limit` rows {t: s, b: balance}, no time filter, so
        # a window older than `limit` rows back cannot be reached (reported, not returned empty).
        "insurance": DatasetSpec("insurance_history", 1000, anchored_at_start=False,
                                 note="insurance-fund history (futures/usdt/insurance): newest rows only, "
                                      "no time filter; limit maximum 1000 (verify)"),
    },
    notes=("public liquidation orders via fetchLiquidations (ccxt sends ms where gate wants s: verify)",),
)

VENUES: dict[str, Venue] = {v.id: v for v in (BINANCEUSDM, BYBIT, OKX, GATE)}


def get_venue(venue_id: str) -> Venue:
    """The table entry for a ccxt id; an unknown id is a UserError listing the known ones."""
    try:
        return VENUES[venue_id]
    except KeyError:
        close = get_close_matches(venue_id, VENUES, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise UserError(f"--venue {venue_id}: unknown venue{hint}; choose from {', '.join(VENUES)}") from None
