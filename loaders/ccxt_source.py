"""Fetch candles, funding, open interest and insurance balances through ccxt, one page at a time.

ccxt does the requests and parsing; the paging loop is ours (ccxt's ``paginate`` caps at 10 calls,
fetches the *latest* pages without ``until`` and assumes an 8h funding step). Each page is stored
in its own transaction together with its ingest-log record, so an interrupted sync leaves whole
pages only and a re-run resumes after the newest stored row of the window: no duplicates, no gaps.
Values are normalized like the archive importer: candle ts = open time, funding ts floored to
the minute, naive UTC, floats parsed from the exchange's strings.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from difflib import get_close_matches
from typing import Any
from urllib.parse import urlsplit

import ccxt
import polars as pl

from loaders.errors import RetentionError, SourceError, UserError
from loaders.store import Store
from loaders.venues import (
    CANDLE_DATASETS,
    DATASETS,
    DatasetSpec,
    NotServedError,
    Venue,
    get_venue,
    retained_window,
    timeframe_ms,
)

#: Errors worth another attempt: connection trouble, timeouts, 429/418, 5xx, maintenance.
RETRYABLE = (ccxt.NetworkError,)
MINUTE_MS = 60_000
#: Longest spacing of two funding settlements on the venues here (8h schedule, minute-floored).
MAX_FUNDING_GAP = timedelta(hours=8, minutes=1)


# -- exchange construction -------------------------------------------------------------------
def make_exchange(venue_id: str, *, base_url: str | None = None, rate_limit: bool = True,
                  timeout_ms: int = 30_000) -> ccxt.Exchange:
    """The one place exchanges are built: pinned market options, optional loopback redirect.

    With ``base_url`` every ``urls['api']`` entry becomes ``base_url/<orig-host><orig-path>`` and
    ``fetch`` refuses any other URL, so a missed endpoint fails loudly instead of going online.
    """
    venue = get_venue(venue_id)
    cls = getattr(ccxt, venue.id, None)
    if cls is None:
        raise SourceError(f"{venue.id}: not available in the installed ccxt {ccxt.__version__}")
    ex = cls({
        "enableRateLimit": rate_limit,
        "timeout": timeout_ms,
        "enableLastJsonResponse": True,  # raw rows carry fields ccxt's OHLCV drops (taker volume)
        "options": copy.deepcopy(venue.ccxt_options),
    })
    _transient_statuses_first(ex)
    if base_url:
        _point_at(ex, base_url.rstrip("/"))
    return ex


def _transient_statuses_first(ex: ccxt.Exchange) -> None:
    """Classify HTTP 408/418/429/5xx as transient before the venue reads the body.

    Venue classes parse a JSON error body first (Binance ``{"code": ...}``, Bybit without
    ``retCode``) and raise a plain ``ExchangeError`` for an unknown code, which would make a
    gateway's 502 page or a 429 look permanent and stop the sync instead of retrying it.
    """
    venue_handler = ex.handle_errors

    def handle_errors(code: int, reason: str, url: str, method: str, *args: Any) -> Any:
        if code in (418, 429):
            raise ccxt.DDoSProtection(f"{ex.id} HTTP {code} {reason} on {method} {url}")
        if code in (408, 504):
            raise ccxt.RequestTimeout(f"{ex.id} HTTP {code} {reason} on {method} {url}")
        if code >= 500:
            raise ccxt.ExchangeNotAvailable(f"{ex.id} HTTP {code} {reason} on {method} {url}")
        return venue_handler(code, reason, url, method, *args)

    ex.handle_errors = handle_errors


def _point_at(ex: ccxt.Exchange, base_url: str) -> None:
    def rewrite(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: rewrite(v) for k, v in value.items()}
        if isinstance(value, str) and value.startswith("http"):
            url = urlsplit(value.replace("{hostname}", ex.hostname or ""))
            return f"{base_url}/{url.netloc}{url.path}"
        return value

    ex.urls["api"] = rewrite(ex.urls["api"])
    real_fetch = ex.fetch

    def guarded(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        if not url.startswith(base_url + "/"):
            raise SourceError(f"{ex.id}: refused a request outside {base_url}: {method} {url}")
        return real_fetch(url, method, headers, body)

    ex.fetch = guarded


# -- results ---------------------------------------------------------------------------------
@dataclass
class SeriesResult:
    """What one (symbol, dataset) sync did. ``warning`` set and ``fetched`` False = reported, skipped."""

    venue: str
    symbol: str
    dataset: str
    rows: int = 0  # new rows stored
    fetched_rows: int = 0  # rows received in the window (new or already stored)
    pages: int = 0
    first_ts: datetime | None = None
    last_ts: datetime | None = None
    warning: str | None = None
    fetched: bool = True
    resumed_from: datetime | None = None
    backward: bool = False  # the series was walked newest-first: resumed_from is where it continued down
    venue_oldest: datetime | None = None  # oldest ts any reply carried (insurance history: reach of the API)


@dataclass
class SyncReport:
    results: list[SeriesResult] = field(default_factory=list)

    @property
    def pages(self) -> int:
        return sum(r.pages for r in self.results)

    @property
    def rows(self) -> int:
        return sum(r.rows for r in self.results)

    @property
    def warnings(self) -> list[str]:
        return [r.warning for r in self.results if r.warning]

    @property
    def anything_fetched(self) -> bool:
        return any(r.fetched for r in self.results)


class SyncInterrupted(SourceError):
    """A sync stopped part-way (network down after retries, or the venue refused a request)."""

    def __init__(self, message: str, report: SyncReport) -> None:
        super().__init__(message)
        self.report = report


# -- the sync --------------------------------------------------------------------------------
@dataclass
class _Ctx:
    store: Store
    ex: ccxt.Exchange
    venue: Venue
    attempts: int
    base_delay: float
    sleep: Callable[[float], None]
    page_limit: int | None
    report: SyncReport
    replace: bool = False


def sync(
    store: Store,
    venue_id: str,
    symbols: Sequence[str],
    datasets: Sequence[str],
    start: datetime,
    end: datetime,
    *,
    timeframe: str = "1h",
    exchange: ccxt.Exchange | None = None,
    base_url: str | None = None,
    now: datetime | None = None,
    attempts: int = 5,
    base_delay: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
    page_limit: int | None = None,
    replace: bool = False,
    progress: bool = False,
) -> SyncReport:
    """Fetch ``[start, end)`` (naive UTC) of each dataset for each exchange-native symbol.

    Datasets a venue does not serve, or whose window is past the venue's retention, are reported
    as warnings in the result and skipped; a network failure that outlives ``attempts`` retries
    (exponential backoff from ``base_delay`` s) or a refused request raises ``SyncInterrupted``,
    saying how many pages were stored. ``page_limit`` lowers the venue's page size (tests).
    A fetched value that disagrees with a stored one is a ``ConflictError`` unless ``replace``.
    """
    venue = get_venue(venue_id)
    if start >= end:
        raise UserError(f"empty window: start {start:%Y-%m-%d %H:%M} is not before end {end:%Y-%m-%d %H:%M}")
    unknown = [d for d in datasets if d not in DATASETS]
    if unknown:
        raise UserError(f"--datasets {','.join(unknown)}: unknown; choose from {', '.join(DATASETS)}")
    if any(d in CANDLE_DATASETS for d in datasets):
        venue.check_timeframe(timeframe)
    now = now or datetime.now(UTC).replace(tzinfo=None)
    ex = exchange or make_exchange(venue.id, base_url=base_url)
    report = SyncReport()
    ctx = _Ctx(store, ex, venue, max(1, attempts), base_delay, sleep, page_limit, report, replace)
    unified = {s: resolve_symbol(ctx, s) for s in symbols}
    with _progress(progress) as bar:
        for symbol in symbols:
            for dataset in datasets:
                result = SeriesResult(venue.id, symbol, dataset)
                report.results.append(result)
                try:
                    spec = venue.spec(dataset)
                    first, warning = retained_window(venue, dataset, start, end, now)
                except (RetentionError, NotServedError) as exc:
                    result.warning, result.fetched = str(exc), False
                    continue
                result.warning = warning
                task = bar(f"{venue.id} {symbol} {dataset}")
                _sync_series(ctx, symbol, unified[symbol], dataset, spec, first, end, timeframe, result, task)
                if (result.fetched_rows == 0 and result.warning is None and result.resumed_from is None
                        and not spec.snapshot_only):
                    result.warning = (f"{venue.id} returned no {dataset} rows for {symbol} in "
                                      f"{first:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} (not listed then?)")
    return report


def resolve_symbol(ctx: _Ctx, native_id: str) -> str:
    """Exchange-native id (BTCUSDT) -> ccxt unified symbol, preferring the linear perpetual."""
    _retry(ctx, "load markets", ctx.ex.load_markets)
    candidates = ctx.ex.markets_by_id.get(native_id) or []
    if not candidates:
        ids = sorted(ctx.ex.markets_by_id)
        close = get_close_matches(native_id, ids, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        shown = ", ".join(ids[:20]) + (f", ... ({len(ids)} in all)" if len(ids) > 20 else "")
        raise UserError(f"--symbols {native_id}: not a {ctx.venue.id} market{hint}; known: {shown}")
    ranked = sorted(candidates, key=lambda m: (not m.get("swap"), not m.get("linear")))
    return ranked[0]["symbol"]


def _series_key(venue: Venue, symbol: str, dataset: str, timeframe: str, period: str) -> tuple[str, dict]:
    if dataset in CANDLE_DATASETS:
        return "candles", dict(venue=venue.id, symbol=symbol, price_type=dataset, timeframe=timeframe)
    if dataset == "funding":
        return "funding", dict(venue=venue.id, symbol=symbol)
    if dataset == "oi":
        return "open_interest", dict(venue=venue.id, symbol=symbol, period=period)
    return "insurance_fund", dict(venue=venue.id, fund=symbol, currency=venue.settle)


def _sync_series(ctx: _Ctx, symbol: str, unified: str, dataset: str, spec: DatasetSpec,
                 start: datetime, end: datetime, timeframe: str, result: SeriesResult,
                 task: Callable[[int, int], None]) -> None:
    if spec.snapshot_only:
        _sync_snapshot(ctx, symbol, unified, dataset, result, task)
        return
    if spec.method == "insurance_history":
        _INSURANCE_HISTORY[ctx.venue.id](ctx, symbol, unified, spec, start, end, result, task)
        return
    period = ctx.venue.oi_period(timeframe) if dataset == "oi" else timeframe
    table, key = _series_key(ctx.venue, symbol, dataset, timeframe, period)
    if dataset == "funding":
        step = MINUTE_MS  # stored ts are floored to the minute; the next settlement is >= 1h later
        span_step = int(spec.min_step.total_seconds() * 1000) if spec.min_step else 3_600_000
        max_gap = MAX_FUNDING_GAP
    else:
        step = span_step = timeframe_ms(period)
        max_gap = timedelta(milliseconds=step)
    limit = min(spec.page_max, ctx.page_limit or spec.page_max)
    start_ms, end_ms = _ms(start), _ms(end)
    cursor = start_ms
    resumed = _resume_point(ctx.store, table, key, start, end, max_gap)
    if resumed is not None:
        cursor = max(start_ms, _ms(resumed) + step)
        result.resumed_from = resumed
    what = f"{ctx.venue.id} {symbol} {dataset}"
    while cursor < end_ms:
        page_until = end_ms - 1 if spec.anchored_at_start else min(end_ms, cursor + limit * span_step) - 1
        records = _retry(ctx, what, _FETCH[dataset], ctx.ex, unified, timeframe, period, cursor, limit,
                         page_until)
        raw = ctx.ex.last_json_response
        frame, last_raw = _NORMALIZE[dataset](ctx.venue, symbol, timeframe, period, records, raw,
                                              cursor, page_until)
        if frame.height == 0:
            if spec.anchored_at_start:
                break  # nothing at or after cursor up to the window end
            cursor = page_until + 1
            continue
        new = _store_page(ctx.store, table, frame, ctx.replace, source=f"ccxt:{ctx.venue.id}",
                          dataset=_log_dataset(dataset, timeframe, period), item=what)
        result.pages += 1
        result.rows += new
        result.fetched_rows += frame.height
        result.first_ts = result.first_ts or frame["ts"][0]
        result.last_ts = frame["ts"][-1]
        task(frame.height, 1)
        next_cursor = last_raw + (1 if dataset == "funding" else step)
        if next_cursor <= cursor:
            raise SyncInterrupted(f"{what}: the venue returned rows before the requested start; stopped "
                                  "to avoid looping", ctx.report)
        cursor = next_cursor


def _sync_snapshot(ctx: _Ctx, symbol: str, unified: str, dataset: str, result: SeriesResult,
                   task: Callable[[int, int], None]) -> None:
    what = f"{ctx.venue.id} {symbol} {dataset}"
    market = ctx.ex.market(unified)
    if ctx.venue.id == "binanceusdm":
        raw = _retry(ctx, what, ctx.ex.fapiPublicGetInsuranceBalance, {"symbol": symbol})
        groups = raw if isinstance(raw, list) else [raw]
        rows = [(a["asset"], a["updateTime"], a["marginBalance"]) for g in groups
                if symbol in (g.get("symbols") or [symbol]) for a in g.get("assets") or []]
    else:  # bybit
        raw = _retry(ctx, what, ctx.ex.publicGetV5MarketInsurance, {"coin": market["settleId"]})
        res = raw.get("result") or {}
        pools = res.get("list") or []
        mine = [p for p in pools if symbol in (p.get("symbols") or "").split(",")] or \
               [p for p in pools if not p.get("symbols")]
        rows = [(p["coin"], res.get("updatedTime"), p["balance"]) for p in mine]
    if not rows:
        result.warning = f"{ctx.venue.id} returned no insurance-fund balance covering {symbol}"
        return
    frame = pl.DataFrame(
        {"venue": [ctx.venue.id] * len(rows), "fund": [symbol] * len(rows), "currency": [r[0] for r in rows],
         "ts": [_dt(int(r[1])) for r in rows], "balance": [float(r[2]) for r in rows]},
        schema={"venue": pl.String, "fund": pl.String, "currency": pl.String, "ts": pl.Datetime("us"),
                "balance": pl.Float64},
    ).sort("ts")
    new = _store_page(ctx.store, "insurance_fund", frame, ctx.replace, source=f"ccxt:{ctx.venue.id}",
                      dataset="insurance_fund", item=what)
    result.pages, result.rows, result.fetched_rows = 1, new, frame.height
    result.first_ts, result.last_ts = frame["ts"][0], frame["ts"][-1]
    task(frame.height, 1)


# -- insurance-fund history (okx, gate: implicit API, our own paging) ----------------------------
def _okx_insurance(ctx: _Ctx, symbol: str, unified: str, spec: DatasetSpec, start: datetime, end: datetime,
                   result: SeriesResult, task: Callable[[int, int], None]) -> None:
    """Walk OKX ``public/insurance-fund`` backward from the window end with ``after`` (older than ts).

    The venue answers newest first, so the walk goes down; each stored page logs the span it
    covers completely, and a re-run skips covered spans (resume without gaps, whatever the order
    of earlier runs). Several records can share a ts (a liquidation deposit and a regular update):
    the store keeps one balance per ts, the first the venue lists (its newest).
    """
    market = ctx.ex.market(unified)
    family = (market.get("info") or {}).get("instFamily") or (market.get("info") or {}).get("uly")
    if not family:
        raise SourceError(f"okx {symbol}: the market carries no instFamily; cannot ask for its "
                          "insurance fund")
    fund = f"SWAP:{family}"
    what, source, log_ds = f"okx {symbol} insurance", "ccxt:okx", f"insurance_fund:{fund}"
    limit = min(spec.page_max, ctx.page_limit or spec.page_max)
    start_ms, end_ms = _ms(start), _ms(end)
    covered = _covered_spans(ctx.store, source, log_ds, start, end)
    result.backward = True
    cursor, oldest_full_page = end_ms, None
    while cursor > start_ms:
        skip = min((lo for lo, hi in covered if lo < cursor <= hi), default=None)
        if skip is not None:
            cursor = skip
            result.resumed_from = _dt(cursor)
            continue
        params = {"instType": "SWAP", "instFamily": family, "limit": str(limit), "after": str(cursor)}
        raw = _retry(ctx, what, ctx.ex.publicGetPublicInsuranceFund, params)
        details = [d for entry in raw.get("data") or [] for d in entry.get("details") or []]
        if not details:
            break  # nothing older than the cursor
        page_oldest = min(int(d["ts"]) for d in details)
        _note_oldest(result, page_oldest)
        full = len(details) >= limit
        lo = max(page_oldest if full else start_ms, start_ms)
        rows = [(int(d["ts"]), d.get("ccy") or market["settleId"], d["balance"]) for d in details
                if start_ms <= int(d["ts"]) < min(cursor, end_ms)]
        frame = _insurance_frame("okx", fund, rows)
        if frame.height:
            result.rows += _store_history_page(ctx.store, frame, ctx.replace, source=source, dataset=log_ds,
                                               item=what, covered=(lo, cursor))
            result.pages += 1
            result.fetched_rows += frame.height
            result.first_ts = frame["ts"][0]
            result.last_ts = result.last_ts or frame["ts"][-1]
            task(frame.height, 1)
        if not full:
            oldest_full_page = page_oldest
            break
        if page_oldest >= cursor:
            raise SyncInterrupted(f"{what}: the venue returned rows not older than `after`; stopped to avoid "
                                  "looping", ctx.report)
        cursor = page_oldest
    if result.fetched_rows == 0 and result.resumed_from is None and result.venue_oldest is None:
        # Nothing older than the window end: ask for the newest page once, to say where history starts.
        raw = _retry(ctx, what, ctx.ex.publicGetPublicInsuranceFund,
                     {"instType": "SWAP", "instFamily": family, "limit": str(limit)})
        for d in (d for entry in raw.get("data") or [] for d in entry.get("details") or []):
            _note_oldest(result, int(d["ts"]))
    _history_warnings(result, "okx", start, end, reach=oldest_full_page)


def _gate_insurance(ctx: _Ctx, symbol: str, unified: str, spec: DatasetSpec, start: datetime, end: datetime,
                    result: SeriesResult, task: Callable[[int, int], None]) -> None:
    """Gate ``futures/{settle}/insurance``: the newest ``limit`` rows ``{t: s, b}``, no time filter.

    One request at the largest limit is all the venue offers; rows of the window are stored, and a
    window older than the reply reaches is reported, not returned empty.
    """
    market = ctx.ex.market(unified)
    settle = market["settleId"]  # "usdt"
    fund, currency = f"futures-{settle}", settle.upper()
    what, source, log_ds = f"gate {symbol} insurance", "ccxt:gate", f"insurance_fund:{fund}"
    limit = min(spec.page_max, ctx.page_limit or spec.page_max)
    start_ms, end_ms = _ms(start), _ms(end)
    raw = _retry(ctx, what, ctx.ex.publicFuturesGetSettleInsurance, {"settle": settle, "limit": limit})
    got = [(int(r["t"]) * 1000, r["b"]) for r in raw or []]
    for ts, _ in got:
        _note_oldest(result, ts)
    full = len(got) >= limit
    rows = [(ts, currency, b) for ts, b in got if start_ms <= ts < end_ms]
    frame = _insurance_frame("gate", fund, rows)
    if frame.height:
        lo = max(_ms(result.venue_oldest) if full else start_ms, start_ms)
        result.rows = _store_history_page(ctx.store, frame, ctx.replace, source=source, dataset=log_ds,
                                          item=what, covered=(lo, end_ms))
        result.pages, result.fetched_rows = 1, frame.height
        result.first_ts, result.last_ts = frame["ts"][0], frame["ts"][-1]
        task(frame.height, 1)
    reach = _ms(result.venue_oldest) if full and result.venue_oldest else None
    _history_warnings(result, "gate", start, end, reach=reach,
                      why=f"gate serves only its newest {limit} rows, no time filter" if full else None)


def _note_oldest(result: SeriesResult, ts_ms: int) -> None:
    ts = _dt(ts_ms)
    if result.venue_oldest is None or ts < result.venue_oldest:
        result.venue_oldest = ts


def _history_warnings(result: SeriesResult, venue: str, start: datetime, end: datetime, *,
                      reach: int | None, why: str | None = None) -> None:
    """Say so when the venue had nothing for the window, or history that stops inside it."""
    window = f"{start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M}"
    if result.fetched_rows == 0 and result.resumed_from is None:
        oldest = (f"; the oldest ts it returned is {result.venue_oldest:%Y-%m-%d %H:%M}"
                  if result.venue_oldest else "; it returned no rows at all")
        result.warning = (f"{venue} returned no insurance history for the window {window}{oldest}"
                          + (f" ({why})" if why else ""))
    elif reach is not None and _dt(reach) > start and result.resumed_from is None:
        result.warning = (f"{venue} returned insurance history back to {_dt(reach):%Y-%m-%d %H:%M} only; "
                          f"nothing earlier in the window {window}" + (f" ({why})" if why else ""))


def _insurance_frame(venue: str, fund: str, rows: list[tuple[int, str, Any]]) -> pl.DataFrame:
    """(ts ms, currency, balance) rows -> insurance_fund frame, one per ts (the first given), ascending."""
    seen: set[tuple[int, str]] = set()
    unique = []
    for ts, ccy, bal in rows:
        if (ts, ccy) not in seen:
            seen.add((ts, ccy))
            unique.append((ts, ccy, bal))
    return pl.DataFrame(
        {"venue": [venue] * len(unique), "fund": [fund] * len(unique), "currency": [r[1] for r in unique],
         "ts": [_dt(r[0]) for r in unique], "balance": [float(r[2]) for r in unique]},
        schema={"venue": pl.String, "fund": pl.String, "currency": pl.String, "ts": pl.Datetime("us"),
                "balance": pl.Float64},
    ).sort("ts")


def _store_history_page(store: Store, frame: pl.DataFrame, replace: bool, *, source: str, dataset: str,
                        item: str, covered: tuple[int, int]) -> int:
    """Upsert one insurance-history page and log it in one transaction.

    The log record's ``first_ts``/``last_ts`` are the span ``[first_ts, last_ts)`` the page covers
    completely (every venue row in it is stored), which is what a later run may skip.
    """
    lo, hi = _dt(covered[0]), _dt(covered[1])
    canonical = json.dumps([f"{lo:%Y-%m-%dT%H:%M:%S.%f}", f"{hi:%Y-%m-%dT%H:%M:%S.%f}",
                            frame.with_columns(pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%S%.f")).rows()],
                           separators=(",", ":"))
    sha = hashlib.sha256(canonical.encode()).hexdigest()
    with store.transaction():
        new = store.upsert("insurance_fund", frame, on_conflict="replace" if replace else "error",
                           source=f"{source} {item} page {frame['ts'][0]:%Y-%m-%dT%H:%M}")
        store.log_ingest(source=source, dataset=dataset, sha256=sha,
                         item=f"{item} covers {lo:%Y-%m-%dT%H:%M:%S}..{hi:%Y-%m-%dT%H:%M:%S}",
                         rows=frame.height, first_ts=lo, last_ts=hi)
    return new


def _covered_spans(store: Store, source: str, dataset: str, start: datetime,
                   end: datetime) -> list[tuple[int, int]]:
    """Spans earlier insurance-history pages covered completely, overlapping ``[start, end]``, in ms."""
    frame = store.query("SELECT first_ts, last_ts FROM ingest_log WHERE source = ? AND dataset = ? "
                        "AND last_ts >= ? AND first_ts < ?", [source, dataset, start, end])
    return [(_ms(lo), _ms(hi)) for lo, hi in frame.rows()]


_INSURANCE_HISTORY: dict[str, Callable[..., None]] = {"okx": _okx_insurance, "gate": _gate_insurance}


# -- single-page calls -----------------------------------------------------------------------
def _fetch_candles(method: str) -> Callable[..., list]:
    def call(ex: ccxt.Exchange, unified: str, timeframe: str, period: str, since: int, limit: int,
             until: int) -> list:
        return getattr(ex, method)(unified, timeframe, since, limit, {"until": until})
    return call


def _fetch_funding(ex: ccxt.Exchange, unified: str, timeframe: str, period: str, since: int, limit: int,
                   until: int) -> list:
    return ex.fetch_funding_rate_history(unified, since, limit, {"until": until})


def _fetch_oi(ex: ccxt.Exchange, unified: str, timeframe: str, period: str, since: int, limit: int,
              until: int) -> list:
    return ex.fetch_open_interest_history(unified, period, since, limit, {"until": until})


_FETCH: dict[str, Callable[..., list]] = {
    "last": _fetch_candles("fetch_ohlcv"),
    "mark": _fetch_candles("fetch_mark_ohlcv"),
    "index": _fetch_candles("fetch_index_ohlcv"),
    "funding": _fetch_funding,
    "oi": _fetch_oi,
}


def _retry(ctx: _Ctx, what: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Call ``fn``; retry transient failures with exponential backoff; turn the rest into SyncInterrupted."""
    for attempt in range(ctx.attempts):
        try:
            return fn(*args)
        except RETRYABLE as exc:
            if attempt == ctx.attempts - 1:
                raise SyncInterrupted(
                    f"{what}: network failure after {ctx.attempts} attempts ({_brief(exc)}); "
                    f"{ctx.report.pages} pages stored, re-running the same command resumes", ctx.report
                ) from exc
            ctx.sleep(ctx.base_delay * 2**attempt)
        except ccxt.BaseError as exc:
            raise SyncInterrupted(
                f"{what}: the venue refused the request ({_brief(exc)}); "
                f"{ctx.report.pages} pages stored, re-running the same command resumes", ctx.report
            ) from exc
    raise AssertionError("unreachable")


def _brief(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}"


# -- normalization ---------------------------------------------------------------------------
_CANDLE_SCHEMA = {"venue": pl.String, "symbol": pl.String, "price_type": pl.String, "timeframe": pl.String,
                  "ts": pl.Datetime("us"), "open": pl.Float64, "high": pl.Float64, "low": pl.Float64,
                  "close": pl.Float64, "volume": pl.Float64, "quote_volume": pl.Float64, "trades": pl.Int64,
                  "taker_buy_volume": pl.Float64, "taker_buy_quote_volume": pl.Float64}


def _kline_extras(venue: Venue, dataset: str, raw: Any) -> dict[int, tuple]:
    """Fields of the raw kline rows that ccxt's 6-column OHLCV drops, by open time (ms).

    Binance last-price klines carry quote volume, trade count and taker-buy volumes (the archive
    layout); Bybit klines carry turnover (quote volume). Mark/index klines carry none.
    """
    if dataset != "last":
        return {}
    if venue.id == "binanceusdm" and isinstance(raw, list):
        return {int(r[0]): (_f(r[7]), int(r[8]), _f(r[9]), _f(r[10])) for r in raw if len(r) >= 11}
    if venue.id == "bybit" and isinstance(raw, dict):
        rows = (raw.get("result") or {}).get("list") or []
        return {int(r[0]): (_f(r[6]), None, None, None) for r in rows if len(r) >= 7}
    return {}


def _f(value: Any) -> float | None:
    return None if value in (None, "") else float(value)


def _candle_normalizer(dataset: str) -> Callable[..., tuple[pl.DataFrame, int]]:
    def norm(venue: Venue, symbol: str, timeframe: str, period: str, records: list, raw: Any,
             lo: int, hi: int) -> tuple[pl.DataFrame, int]:
        extras = _kline_extras(venue, dataset, raw)
        rows = [r for r in records if lo <= r[0] <= hi]
        cols: dict[str, list] = {c: [] for c in _CANDLE_SCHEMA}
        for ts, o, h, lw, c, v in (r[:6] for r in rows):
            qv, n, tbv, tbq = extras.get(ts, (None, None, None, None))
            for name, value in zip(cols, (venue.id, symbol, dataset, timeframe, _dt(ts), o, h, lw, c, v,
                                          qv, n, tbv, tbq), strict=True):
                cols[name].append(value)
        frame = pl.DataFrame(cols, schema=_CANDLE_SCHEMA)
        return frame, (rows[-1][0] if rows else lo)
    return norm


def _norm_funding(venue: Venue, symbol: str, timeframe: str, period: str, records: list, raw: Any,
                  lo: int, hi: int) -> tuple[pl.DataFrame, int]:
    rows = [r for r in records if lo <= r["timestamp"] <= hi]
    marks = [(r.get("info") or {}).get("markPrice") for r in rows]
    frame = pl.DataFrame(
        {"venue": [venue.id] * len(rows), "symbol": [symbol] * len(rows),
         "ts": [_dt(r["timestamp"] - r["timestamp"] % MINUTE_MS) for r in rows],
         "rate": [r["fundingRate"] for r in rows], "mark_price": [_f(m) for m in marks]},
        schema={"venue": pl.String, "symbol": pl.String, "ts": pl.Datetime("us"), "rate": pl.Float64,
                "mark_price": pl.Float64},
    )
    return frame, (rows[-1]["timestamp"] if rows else lo)


def _norm_oi(venue: Venue, symbol: str, timeframe: str, period: str, records: list, raw: Any,
             lo: int, hi: int) -> tuple[pl.DataFrame, int]:
    rows = sorted((r for r in records if lo <= r["timestamp"] <= hi), key=lambda r: r["timestamp"])
    frame = pl.DataFrame(
        {"venue": [venue.id] * len(rows), "symbol": [symbol] * len(rows), "period": [period] * len(rows),
         "ts": [_dt(r["timestamp"]) for r in rows], "oi_base": [r.get("openInterestAmount") for r in rows],
         "oi_quote": [r.get("openInterestValue") for r in rows]},
        schema={"venue": pl.String, "symbol": pl.String, "period": pl.String, "ts": pl.Datetime("us"),
                "oi_base": pl.Float64, "oi_quote": pl.Float64},
    )
    return frame, (rows[-1]["timestamp"] if rows else lo)


_NORMALIZE: dict[str, Callable[..., tuple[pl.DataFrame, int]]] = {
    "last": _candle_normalizer("last"),
    "mark": _candle_normalizer("mark"),
    "index": _candle_normalizer("index"),
    "funding": _norm_funding,
    "oi": _norm_oi,
}


def _log_dataset(dataset: str, timeframe: str, period: str) -> str:
    if dataset in CANDLE_DATASETS:
        return f"candles:{dataset}:{timeframe}"
    return "funding" if dataset == "funding" else f"open_interest:{period}"


# -- storage ---------------------------------------------------------------------------------
def _store_page(store: Store, table: str, frame: pl.DataFrame, replace: bool, *, source: str, dataset: str,
                item: str) -> int:
    """Upsert one page and log it, in one transaction: a page is stored whole or not at all."""
    canonical = json.dumps(frame.with_columns(pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%S%.f")).rows(),
                           separators=(",", ":"), allow_nan=True)
    sha = hashlib.sha256(canonical.encode()).hexdigest()
    first, last = frame["ts"][0], frame["ts"][-1]
    with store.transaction():
        new = store.upsert(table, frame, on_conflict="replace" if replace else "error",
                           source=f"{source} {item} page {first:%Y-%m-%dT%H:%M}")
        store.log_ingest(source=source, dataset=dataset, sha256=sha,
                         item=f"{item} {first:%Y-%m-%dT%H:%M}..{last:%Y-%m-%dT%H:%M}",
                         rows=frame.height, first_ts=first, last_ts=last)
    return new


def _resume_point(store: Store, table: str, key: dict[str, str], start: datetime, end: datetime,
                  max_gap: timedelta) -> datetime | None:
    """Newest stored ts inside [start, end) when the stored rows run without gaps from the window start.

    That is what an interrupted sync leaves (whole pages from the start on), so fetching resumes
    after it. Rows stored by another window or source that leave holes do not count: the sync then
    starts at the window start and the idempotent upsert skips what is already there.
    """
    where = " AND ".join(f"{k} = ?" for k in key)
    frame = store.query(
        f"SELECT min(ts) AS first, max(ts) AS last, max(gap) AS gap FROM ("
        f"  SELECT ts, epoch(ts) - epoch(lag(ts) OVER (ORDER BY ts)) AS gap FROM {table}"
        f"  WHERE {where} AND ts >= ? AND ts < ?)",
        [*key.values(), start, end],
    )
    first, last, gap = frame.row(0)
    if first is None or first - start >= max_gap or (gap is not None and gap > max_gap.total_seconds()):
        return None
    return last


def _ms(dt: datetime) -> int:
    return int(math.floor(dt.replace(tzinfo=UTC).timestamp() * 1000))


def _dt(ms: int) -> datetime:
    return datetime(1970, 1, 1) + timedelta(milliseconds=int(ms))


# -- progress --------------------------------------------------------------------------------
@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[str], Callable[[int, int], None]]]:
    """``bar(description)`` -> ``advance(rows, pages)``; a no-op when disabled."""
    if not enabled:
        yield lambda _desc: (lambda _rows, _pages: None)
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("{task.description}"),
               TextColumn("{task.fields[rows]:>8,} rows  {task.fields[pages]:>4} pages"), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as prog:
        def bar(desc: str) -> Callable[[int, int], None]:
            task = prog.add_task(desc, total=None, rows=0, pages=0)
            state = {"rows": 0, "pages": 0}

            def advance(rows: int, pages: int) -> None:
                state["rows"] += rows
                state["pages"] += pages
                prog.update(task, **state)
            return advance
        yield bar
