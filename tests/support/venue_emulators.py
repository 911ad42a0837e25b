"""Binance USDⓈ-M and Bybit v5 REST emulators built from archive rows, mounted on a LoopbackServer.

They answer the endpoints the ccxt loader uses the way the venues do: inclusive
``startTime``/``endTime`` bounds, the first ``limit`` rows from the start (Bybit lists them
newest-first; Bybit open interest walks back from ``endTime``), the latest rows when no start is
given, the venue's limit maximum (``400`` above it) and default. Values are served as the archive's
original strings so ccxt's parsing is exercised. Binance open-interest history honours the 30-day
retention relative to a frozen ``now_ms``: older rows are simply absent, like the real API, so
reporting the limit is the loader's job. ``page_cap`` shrinks the page a server returns (a venue
with a smaller page) to force many pages.
"""

from __future__ import annotations

import csv
import gzip
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.support.loopback import LoopbackServer

MINUTE_MS = 60_000
DAY_MS = 86_400_000
INTERVAL_MS = {"1m": MINUTE_MS, "5m": 5 * MINUTE_MS, "15m": 15 * MINUTE_MS, "30m": 30 * MINUTE_MS,
               "1h": 60 * MINUTE_MS, "4h": 240 * MINUTE_MS, "8h": 480 * MINUTE_MS, "1d": DAY_MS}


# -- archive readers: raw rows exactly as the venue API carries them ---------------------------
def read_binance_klines(path: Path) -> list[list[Any]]:
    """A Binance archive kline CSV (12 columns, no header) -> API rows (times/count ints, rest strings)."""
    with gzip.open(path, "rt", newline="") as fh:
        return [[int(r[0]), *r[1:6], int(r[6]), r[7], int(r[8]), *r[9:12]] for r in csv.reader(fh)
                if r and r[0].isdigit()]


def read_ohlc_csv(path: Path, interval: str) -> list[list[Any]]:
    """A ``date,open,high,low,close,volume`` CSV (e.g. mark-price 1h) -> Binance mark/index kline rows.

    Mark/index klines carry no volume on the venue: the ignore fields are "0" as on Binance.
    """
    step = INTERVAL_MS[interval]
    rows = []
    with gzip.open(path, "rt", newline="") as fh:
        for r in csv.DictReader(fh):
            t = int(datetime.fromisoformat(r["date"].replace("Z", "+00:00")).timestamp() * 1000)
            rows.append([t, r["open"], r["high"], r["low"], r["close"], "0", t + step - 1,
                         "0", 0, "0", "0", "0"])
    return rows


def read_binance_funding(paths: Iterable[Path], symbol: str) -> list[dict[str, Any]]:
    """Binance monthly fundingRate CSVs -> ``/fapi/v1/fundingRate`` rows (calc_time jitter kept)."""
    rows = []
    for path in sorted(paths):
        with gzip.open(path, "rt", newline="") as fh:
            for r in csv.DictReader(fh):
                rows.append({"symbol": symbol, "fundingTime": int(r["calc_time"]),
                             "fundingRate": r["last_funding_rate"]})
    return rows


# -- shared windowing ----------------------------------------------------------------------------
class BadLimit(Exception):
    pass


def _window(rows: Sequence[Any], ts: Callable[[Any], int], query: dict[str, str], start_key: str,
            end_key: str, default: int, maximum: int, cap: int | None, *,
            from_end: bool = False) -> list[Any]:
    limit = int(query.get("limit", default))
    if not 1 <= limit <= maximum:
        raise BadLimit(limit)
    if cap:
        limit = min(limit, cap)
    start = int(query[start_key]) if start_key in query else None
    end = int(query[end_key]) if end_key in query else None
    sel = [r for r in rows if (start is None or ts(r) >= start) and (end is None or ts(r) <= end)]
    if start is None or from_end:
        return sel[-limit:]
    return sel[:limit]


def _sorted(series: dict[Any, list[Any]] | None, ts: Callable[[Any], int]) -> dict[Any, list[Any]]:
    return {k: sorted(v, key=ts) for k, v in (series or {}).items()}


# -- Binance USDⓈ-M -------------------------------------------------------------------------------
def binance_market(symbol: str, base: str, quote: str = "USDT") -> dict[str, Any]:
    """One ``exchangeInfo.symbols[]`` entry of a USDⓈ-M perpetual (the fields ccxt reads)."""
    return {
        "symbol": symbol, "pair": symbol, "contractType": "PERPETUAL", "deliveryDate": 4133404800000,
        "onboardDate": 1569398400000, "status": "TRADING", "baseAsset": base, "quoteAsset": quote,
        "marginAsset": quote, "pricePrecision": 2, "quantityPrecision": 3, "baseAssetPrecision": 8,
        "quotePrecision": 8, "underlyingType": "COIN", "orderTypes": ["LIMIT", "MARKET"],
        "timeInForce": ["GTC"],
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": "0.10", "maxPrice": "4529764", "tickSize": "0.10"},
            {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "1000", "stepSize": "0.001"},
        ],
    }


class BinanceUsdmEmulator:
    """``fapi.binance.com``: exchangeInfo, klines / markPriceKlines / indexPriceKlines, fundingRate,
    futures/data/openInterestHist, insuranceBalance."""

    HOST = "/fapi.binance.com"

    def __init__(self, *, now_ms: int, markets: Sequence[dict[str, Any]] | None = None,
                 klines: dict[tuple[str, str, str], list[list[Any]]] | None = None,
                 funding: dict[str, list[dict[str, Any]]] | None = None,
                 open_interest: dict[tuple[str, str], list[dict[str, Any]]] | None = None,
                 insurance: list[dict[str, Any]] | None = None, page_cap: int | None = None) -> None:
        """``klines[(kind, symbol_or_pair, interval)]`` with kind klines|markPriceKlines|indexPriceKlines."""
        self.now_ms = now_ms
        self.markets = list(markets or [binance_market("BTCUSDT", "BTC"), binance_market("ETHUSDT", "ETH")])
        self.klines = _sorted(klines, lambda r: r[0])
        self.funding = _sorted(funding, lambda r: r["fundingTime"])
        self.open_interest = _sorted(open_interest, lambda r: r["timestamp"])
        self.insurance = insurance or []
        self.page_cap = page_cap

    def mount(self, server: LoopbackServer) -> None:
        r = server.routes
        r[("GET", f"{self.HOST}/fapi/v1/exchangeInfo")] = self._exchange_info
        for kind in ("klines", "markPriceKlines", "indexPriceKlines"):
            r[("GET", f"{self.HOST}/fapi/v1/{kind}")] = self._klines(kind)
        r[("GET", f"{self.HOST}/fapi/v1/fundingRate")] = self._funding
        r[("GET", f"{self.HOST}/futures/data/openInterestHist")] = self._oi
        r[("GET", f"{self.HOST}/fapi/v1/insuranceBalance")] = self._insurance

    def _ids(self) -> set[str]:
        return {m["symbol"] for m in self.markets}

    @staticmethod
    def _error(code: int, msg: str) -> tuple[int, dict[str, Any]]:
        return 400, {"code": code, "msg": msg}

    def _exchange_info(self, q: dict[str, str], _b: bytes) -> dict[str, Any]:
        return {"timezone": "UTC", "serverTime": self.now_ms, "rateLimits": [], "exchangeFilters": [],
                "assets": [], "symbols": self.markets}

    def _klines(self, kind: str) -> Callable[[dict[str, str], bytes], Any]:
        key_param = "pair" if kind == "indexPriceKlines" else "symbol"

        def handler(q: dict[str, str], _b: bytes) -> Any:
            if key_param not in q or "interval" not in q:
                return self._error(-1102, f"Mandatory parameter '{key_param}' was not sent")
            if q[key_param] not in self._ids():
                return self._error(-1121, "Invalid symbol.")
            rows = self.klines.get((kind, q[key_param], q["interval"]), [])
            try:
                return _window(rows, lambda r: r[0], q, "startTime", "endTime", 500, 1500, self.page_cap)
            except BadLimit:
                return self._error(-1130, "Data sent for parameter 'limit' is not valid.")
        return handler

    def _funding(self, q: dict[str, str], _b: bytes) -> Any:
        rows = self.funding.get(q.get("symbol", ""), [])
        try:
            return _window(rows, lambda r: r["fundingTime"], q, "startTime", "endTime", 100, 1000,
                           self.page_cap)
        except BadLimit:
            return self._error(-1130, "Data sent for parameter 'limit' is not valid.")

    def _oi(self, q: dict[str, str], _b: bytes) -> Any:
        if q.get("symbol") not in self._ids():
            return self._error(-1121, "Invalid symbol.")
        rows = self.open_interest.get((q["symbol"], q.get("period", "")), [])
        oldest = self.now_ms - 30 * DAY_MS  # the venue keeps the last 30 days only
        kept = [r for r in rows if oldest <= r["timestamp"] <= self.now_ms]
        try:
            return _window(kept, lambda r: r["timestamp"], q, "startTime", "endTime", 30, 500, self.page_cap)
        except BadLimit:
            return self._error(-1130, "Data sent for parameter 'limit' is not valid.")

    def _insurance(self, q: dict[str, str], _b: bytes) -> Any:
        if "symbol" in q:
            for group in self.insurance:
                if q["symbol"] in group["symbols"]:
                    return group
            return self._error(-1121, "Invalid symbol.")
        return self.insurance


# -- Bybit v5 -------------------------------------------------------------------------------------
BYBIT_INTERVAL = {"1": "1m", "5": "5m", "15": "15m", "30": "30m", "60": "1h", "240": "4h", "D": "1d"}
BYBIT_OI_INTERVAL = {"5min": "5m", "15min": "15m", "30min": "30m", "1h": "1h", "4h": "4h", "1d": "1d"}


def bybit_market(symbol: str, base: str, quote: str = "USDT") -> dict[str, Any]:
    """One ``instruments-info`` (linear) entry of a USDT perpetual."""
    return {
        "symbol": symbol, "contractType": "LinearPerpetual", "status": "Trading", "baseCoin": base,
        "quoteCoin": quote, "settleCoin": quote, "launchTime": "1585526400000", "deliveryTime": "0",
        "deliveryFeeRate": "", "priceScale": "2", "fundingInterval": 480, "unifiedMarginTrade": True,
        "copyTrading": "both", "upperFundingRate": "0.00375", "lowerFundingRate": "-0.00375",
        "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"},
        "priceFilter": {"minPrice": "0.10", "maxPrice": "1999999.80", "tickSize": "0.10"},
        "lotSizeFilter": {"maxOrderQty": "1190", "minOrderQty": "0.001", "qtyStep": "0.001",
                          "postOnlyMaxOrderQty": "1190", "maxMktOrderQty": "119", "minNotionalValue": "5"},
    }


class BybitEmulator:
    """``api.bybit.com`` v5: instruments-info (incl. the PreLaunch call), kline, mark-price-kline,
    index-price-kline, funding/history, open-interest, insurance.

    Klines are given as Binance-layout rows (``[open_ms, o, h, l, c, volume, close_ms, quote_volume,
    ...]``) and served in Bybit's layout (strings, ``turnover`` = quote volume, newest first).
    """

    HOST = "/api.bybit.com"

    def __init__(self, *, now_ms: int, markets: Sequence[dict[str, Any]] | None = None,
                 klines: dict[tuple[str, str, str], list[list[Any]]] | None = None,
                 funding: dict[str, list[dict[str, Any]]] | None = None,
                 open_interest: dict[tuple[str, str], list[dict[str, Any]]] | None = None,
                 insurance: list[dict[str, Any]] | None = None, page_cap: int | None = None) -> None:
        """``klines[(kind, symbol, interval)]`` with kind kline|mark-price-kline|index-price-kline and a
        ccxt interval (1m, 1h); ``funding[symbol]`` rows ``{fundingTime: ms, fundingRate: str}``;
        ``open_interest[(symbol, period)]`` rows ``{timestamp: ms, openInterest: str}``."""
        self.now_ms = now_ms
        self.markets = list(markets or [bybit_market("BTCUSDT", "BTC"), bybit_market("ETHUSDT", "ETH")])
        self.klines = _sorted(klines, lambda r: r[0])
        self.funding = _sorted(funding, lambda r: r["fundingTime"])
        self.open_interest = _sorted(open_interest, lambda r: r["timestamp"])
        self.insurance = insurance or []
        self.page_cap = page_cap

    def mount(self, server: LoopbackServer) -> None:
        r = server.routes
        r[("GET", f"{self.HOST}/v5/market/instruments-info")] = self._instruments
        for kind in ("kline", "mark-price-kline", "index-price-kline"):
            r[("GET", f"{self.HOST}/v5/market/{kind}")] = self._klines(kind)
        r[("GET", f"{self.HOST}/v5/market/funding/history")] = self._funding
        r[("GET", f"{self.HOST}/v5/market/open-interest")] = self._oi
        r[("GET", f"{self.HOST}/v5/market/insurance")] = self._insurance

    def _ids(self) -> set[str]:
        return {m["symbol"] for m in self.markets}

    def _ok(self, result: dict[str, Any]) -> dict[str, Any]:
        return {"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": self.now_ms}

    @staticmethod
    def _error(code: int, msg: str) -> dict[str, Any]:
        return {"retCode": code, "retMsg": msg, "result": {}, "retExtInfo": {}, "time": 0}

    def _instruments(self, q: dict[str, str], _b: bytes) -> Any:
        if q.get("category") != "linear":
            return self._error(10001, "this emulator serves category=linear only")
        rows = [] if q.get("status") == "PreLaunch" else self.markets
        return self._ok({"category": "linear", "list": rows, "nextPageCursor": ""})

    def _klines(self, kind: str) -> Callable[[dict[str, str], bytes], Any]:
        def handler(q: dict[str, str], _b: bytes) -> Any:
            interval = BYBIT_INTERVAL.get(q.get("interval", ""))
            if q.get("category") != "linear" or interval is None:
                return self._error(10001, "params error: category or interval")
            if q.get("symbol") not in self._ids():
                return self._error(10001, "params error: symbol invalid")
            rows = self.klines.get((kind, q["symbol"], interval), [])
            try:
                sel = _window(rows, lambda r: r[0], q, "start", "end", 200, 1000, self.page_cap)
            except BadLimit:
                return self._error(10001, "params error: limit")
            if kind == "kline":
                out = [[str(r[0]), *r[1:6], r[7]] for r in sel]
            else:
                out = [[str(r[0]), *r[1:5]] for r in sel]
            return self._ok({"category": "linear", "symbol": q["symbol"], "list": out[::-1]})
        return handler

    def _funding(self, q: dict[str, str], _b: bytes) -> Any:
        if "startTime" in q and "endTime" not in q:
            return self._error(10001, "params error: endTime is required when startTime is set")
        rows = self.funding.get(q.get("symbol", ""), [])
        try:
            sel = _window(rows, lambda r: r["fundingTime"], q, "startTime", "endTime", 200, 200,
                          self.page_cap)
        except BadLimit:
            return self._error(10001, "params error: limit")
        out = [{"symbol": q["symbol"], "fundingRate": r["fundingRate"],
                "fundingRateTimestamp": str(r["fundingTime"])} for r in sel]
        return self._ok({"category": "linear", "list": out[::-1]})

    def _oi(self, q: dict[str, str], _b: bytes) -> Any:
        period = BYBIT_OI_INTERVAL.get(q.get("intervalTime", ""))
        if q.get("symbol") not in self._ids() or period is None:
            return self._error(10001, "params error: symbol or intervalTime")
        rows = self.open_interest.get((q["symbol"], period), [])
        try:  # walks back from endTime: the newest `limit` rows of the range
            sel = _window(rows, lambda r: r["timestamp"], q, "startTime", "endTime", 50, 200, self.page_cap,
                          from_end=True)
        except BadLimit:
            return self._error(10001, "params error: limit")
        out = [{"openInterest": r["openInterest"], "timestamp": str(r["timestamp"])} for r in sel]
        return self._ok({"symbol": q["symbol"], "category": "linear", "list": out[::-1],
                         "nextPageCursor": ""})

    def _insurance(self, q: dict[str, str], _b: bytes) -> Any:
        pools = [p for p in self.insurance if p["coin"] == q.get("coin", p["coin"])]
        return self._ok({"updatedTime": str(self.now_ms), "list": pools})


# -- OKX v5 ---------------------------------------------------------------------------------------
def okx_swap_market(family: str, settle: str = "USDT") -> dict[str, Any]:
    """One ``public/instruments?instType=SWAP`` entry of a linear perpetual (the fields ccxt reads)."""
    base, quote = family.split("-")
    return {
        "alias": "", "baseCcy": "", "category": "1", "ctMult": "1", "ctType": "linear", "ctVal": "0.01",
        "ctValCcy": base, "expTime": "", "instFamily": family, "instId": f"{family}-SWAP", "instType": "SWAP",
        "lever": "100", "listTime": "1573557408000", "lotSz": "0.01", "maxLmtSz": "100000000",
        "maxMktSz": "12000", "minSz": "0.01", "optType": "", "quoteCcy": "", "settleCcy": settle,
        "state": "live", "stk": "", "tickSz": "0.1", "uly": f"{base}-{quote}",
    }


class OkxEmulator:
    """``www.okx.com`` v5: public/instruments (SWAP) and public/insurance-fund.

    ``insurance[instFamily]`` is a list of ``details[]`` records ``{ts: ms, balance, amt, type, ccy}``.
    Served like the venue documents it: newest first; ``after`` = records older than ts, ``before`` =
    newer than ts (both exclusive); the newest ``limit`` (default and maximum 100) of what remains.
    """

    HOST = "/www.okx.com"

    def __init__(self, *, markets: Sequence[dict[str, Any]] | None = None,
                 insurance: dict[str, list[dict[str, Any]]] | None = None) -> None:
        self.markets = list(markets or [okx_swap_market("BTC-USDT"), okx_swap_market("ETH-USDT")])
        self.insurance = {k: sorted(v, key=lambda r: -int(r["ts"])) for k, v in (insurance or {}).items()}

    def mount(self, server: LoopbackServer) -> None:
        server.routes[("GET", f"{self.HOST}/api/v5/public/instruments")] = self._instruments
        server.routes[("GET", f"{self.HOST}/api/v5/public/insurance-fund")] = self._insurance

    @staticmethod
    def _ok(data: list[Any]) -> dict[str, Any]:
        return {"code": "0", "msg": "", "data": data}

    @staticmethod
    def _error(code: str, msg: str) -> tuple[int, dict[str, Any]]:
        return 400, {"code": code, "msg": msg, "data": []}

    def _instruments(self, q: dict[str, str], _b: bytes) -> Any:
        if q.get("instType") != "SWAP":
            return self._error("51000", "this emulator serves instType=SWAP only")
        return self._ok(self.markets)

    def _insurance(self, q: dict[str, str], _b: bytes) -> Any:
        if q.get("instType") != "SWAP" or not q.get("instFamily"):
            return self._error("51000", "Parameter instType or instFamily error")
        limit = int(q.get("limit", 100))
        if not 1 <= limit <= 100:
            return self._error("51000", "Parameter limit error")
        rows = self.insurance.get(q["instFamily"], [])
        if "after" in q:
            rows = [r for r in rows if int(r["ts"]) < int(q["after"])]
        if "before" in q:
            rows = [r for r in rows if int(r["ts"]) > int(q["before"])]
        details = [{"adlType": "", "maxBal": "", "maxBalTs": "", "decRate": "", **r, "ts": str(r["ts"])}
                   for r in rows[:limit]]
        total = details[0]["balance"] if details else "0"
        return self._ok([{"details": details, "instFamily": q["instFamily"], "instType": "SWAP",
                          "total": total}])


# -- Gate v4 ---------------------------------------------------------------------------------------
def gate_contract(name: str) -> dict[str, Any]:
    """One ``futures/usdt/contracts`` entry of a USDT perpetual."""
    return {
        "name": name, "type": "direct", "quanto_multiplier": "0.0001", "mark_price_round": "0.01",
        "order_price_round": "0.1", "leverage_min": "1", "leverage_max": "100", "maintenance_rate": "0.005",
        "mark_type": "index", "funding_interval": 28800, "order_size_min": 1, "order_size_max": 1000000,
        "in_delisting": False, "status": "trading", "create_time": 1573557408, "launch_time": 1573557408,
        "maker_fee_rate": "-0.00025", "taker_fee_rate": "0.00075", "funding_rate": "0.0001",
        "mark_price": "60000", "index_price": "60000", "last_price": "60000", "contract_type": "",
    }


class GateEmulator:
    """``api.gateio.ws`` v4: spot/currencies, futures/usdt/contracts and futures/usdt/insurance.

    ``insurance`` rows ``{t: seconds, b: balance}``; the venue takes no time filter, only ``limit``
    (default 100, maximum 1000 assumed), and answers the newest ``limit`` rows, newest first.
    """

    HOST = "/api.gateio.ws"

    def __init__(self, *, contracts: Sequence[dict[str, Any]] | None = None,
                 insurance: list[dict[str, Any]] | None = None) -> None:
        self.contracts = list(contracts or [gate_contract("BTC_USDT"), gate_contract("ETH_USDT")])
        self.insurance = sorted(insurance or [], key=lambda r: -int(r["t"]))

    def mount(self, server: LoopbackServer) -> None:
        # ccxt's gate load_markets also loads the currency list (public spot/currencies)
        server.routes[("GET", f"{self.HOST}/api/v4/spot/currencies")] = [
            {"currency": "USDT", "name": "Tether", "delisted": False, "withdraw_disabled": False,
             "withdraw_delayed": False, "deposit_disabled": False, "trade_disabled": False,
             "chains": [{"name": "ETH", "addr": "", "withdraw_disabled": False, "withdraw_delayed": False,
                         "deposit_disabled": False}]}]
        server.routes[("GET", f"{self.HOST}/api/v4/futures/usdt/contracts")] = self.contracts
        server.routes[("GET", f"{self.HOST}/api/v4/futures/usdt/insurance")] = self._insurance

    def _insurance(self, q: dict[str, str], _b: bytes) -> Any:
        limit = int(q.get("limit", 100))
        if not 1 <= limit <= 1000:
            return 400, {"label": "INVALID_PARAM_VALUE", "message": "limit out of range"}
        return self.insurance[:limit]
