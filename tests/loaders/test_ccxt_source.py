"""The ccxt sync loop against loopback Binance USDⓈ-M / Bybit emulators (real ccxt requests and parsing)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from loaders.ccxt_source import SyncInterrupted, make_exchange, sync
from loaders.errors import SourceError, UserError
from loaders.store import Store
from tests.support.loopback import LoopbackServer
from tests.support.venue_emulators import (
    BinanceUsdmEmulator,
    BybitEmulator,
    read_binance_funding,
    read_binance_klines,
    read_ohlc_csv,
)

NOW = datetime(2026, 11, 22, 12, 0)  # the emulators' and the loader's frozen "now"
NOW_MS = int((NOW - datetime(1970, 1, 1)) / timedelta(milliseconds=1))
DAY = (datetime(2021, 5, 19), datetime(2021, 5, 20))  # the 1m crash day
MAY = (datetime(2021, 5, 1), datetime(2021, 6, 1))  # the funding month
KLINES_1M = "binance-um/klines-1m/BTCUSDT-1m-2021-05-19.csv.gz"
FUNDING_MAY = "binance-um/funding/BTCUSDT-fundingRate-2021-05.csv.gz"
MARK_1H = "binance-um/markprice-1h/BTCUSDT-markPrice-1h.csv.gz"
KLINES_PATH = "/fapi.binance.com/fapi/v1/klines"
FAST = dict(attempts=4, base_delay=0.0, now=NOW)


@pytest.fixture(scope="module")
def rows(archive_dir: Path) -> dict[str, list]:
    """Raw API rows built from the recorded archive files (strings as in the files)."""
    return {
        "klines": read_binance_klines(archive_dir / KLINES_1M),
        "funding": read_binance_funding([archive_dir / FUNDING_MAY], "BTCUSDT"),
        "mark": read_ohlc_csv(archive_dir / MARK_1H, "1h"),
    }


@pytest.fixture()
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as srv:
        yield srv
        assert not srv.misses, srv.misses  # every request hit an emulated endpoint


def binance(rows: dict[str, list], page_cap: int | None = 40, **extra: object) -> BinanceUsdmEmulator:
    return BinanceUsdmEmulator(
        now_ms=NOW_MS, page_cap=page_cap,
        klines={("klines", "BTCUSDT", "1m"): rows["klines"],
                ("markPriceKlines", "BTCUSDT", "1h"): rows["mark"]},
        funding={"BTCUSDT": rows["funding"]}, **extra,
    )


def bybit(rows: dict[str, list], page_cap: int | None = 40, **extra: object) -> BybitEmulator:
    """Bybit endpoints serving the Binance archive rows (no Bybit recording exists): exercises Bybit's
    request/response shapes with real numbers, not Bybit's own prices."""
    return BybitEmulator(
        now_ms=NOW_MS, page_cap=page_cap,
        klines={("kline", "BTCUSDT", "1m"): rows["klines"],
                ("mark-price-kline", "BTCUSDT", "1h"): rows["mark"]},
        funding={"BTCUSDT": rows["funding"]}, **extra,
    )


def run(store: Store, srv: LoopbackServer, venue: str, datasets: list[str], window: tuple[datetime, datetime],
        timeframe: str, **kw: object):
    ex = make_exchange(venue, base_url=srv.base_url, rate_limit=False)
    return sync(store, venue, ["BTCUSDT"], datasets, *window, timeframe=timeframe, exchange=ex,
                **{**FAST, **kw})


def archive_store(tmp_path: Path, archive_dir: Path) -> Store:
    from loaders.archive import import_paths

    store = Store(tmp_path / "archive.duckdb")
    report = import_paths(store, [archive_dir / KLINES_1M, archive_dir / FUNDING_MAY, archive_dir / MARK_1H])
    report.raise_for_failures()
    return store


@pytest.mark.archive
def test_binance_sync_equals_archive_import(tmp_path: Path, archive_dir: Path, rows: dict, server) -> None:
    binance(rows).mount(server)
    with Store(tmp_path / "sync.duckdb") as st, archive_store(tmp_path, archive_dir) as arch:
        day = run(st, server, "binanceusdm", ["last"], DAY, "1m")
        month = run(st, server, "binanceusdm", ["funding", "mark"], MAY, "1h")
        (last,), (funding, mark) = day.results, month.results
        assert (last.rows, last.pages) == (1440, 36)  # 40 rows a page on the emulated server
        assert funding.rows == 93 and funding.pages == 3 and mark.rows == 744 and mark.pages == 19

        # Identical rows, every column, to the archive importer's reading of the same files.
        assert_frame_equal(st.candles("binanceusdm", "BTCUSDT", "last", "1m"),
                           arch.candles("binanceusdm", "BTCUSDT", "last", "1m"))
        assert_frame_equal(st.candles("binanceusdm", "BTCUSDT", "mark", "1h", *MAY),
                           arch.candles("binanceusdm", "BTCUSDT", "mark", "1h", *MAY))
        got, want = st.funding("binanceusdm", "BTCUSDT"), arch.funding("binanceusdm", "BTCUSDT", *MAY)
        assert_frame_equal(got.drop("interval_h"), want.drop("interval_h"))
        # The API does not say the settlement interval; the archive file does. NULL never overwrites it.
        assert got["interval_h"].null_count() == got.height and want["interval_h"].unique().to_list() == [8.0]

        # Syncing over the archive's rows adds nothing and finds no conflicting value.
        again = run(arch, server, "binanceusdm", ["last"], DAY, "1m")
        assert again.rows == 0 and again.results[0].resumed_from == datetime(2021, 5, 19, 23, 59)
        assert run(arch, server, "binanceusdm", ["funding"], MAY, "1h").rows == 0

        log = st.query("SELECT source, dataset, count(*) AS n, sum(rows) AS r FROM ingest_log "
                       "GROUP BY ALL ORDER BY dataset")
        assert log.rows() == [("ccxt:binanceusdm", "candles:last:1m", 36, 1440),
                              ("ccxt:binanceusdm", "candles:mark:1h", 19, 744),
                              ("ccxt:binanceusdm", "funding", 3, 93)]


@pytest.mark.archive
def test_bybit_sync_serves_same_values(tmp_path: Path, archive_dir: Path, rows: dict, server) -> None:
    bybit(rows).mount(server)
    with Store(tmp_path / "sync.duckdb") as st, archive_store(tmp_path, archive_dir) as arch:
        rep = run(st, server, "bybit", ["last"], DAY, "1m")
        rep2 = run(st, server, "bybit", ["mark", "funding"], MAY, "1h")
        assert [r.rows for r in rep.results + rep2.results] == [1440, 744, 93]
        # Bybit pages funding in bounded 200-hour windows (it lists newest first): 31 days = 4 pages.
        assert rep2.results[1].pages == 4
        cols = ["ts", "open", "high", "low", "close", "volume", "quote_volume"]
        assert_frame_equal(st.candles("bybit", "BTCUSDT", "last", "1m").select(cols),
                           arch.candles("binanceusdm", "BTCUSDT", "last", "1m").select(cols))
        # Bybit klines carry turnover but no trade count or taker volume.
        assert st.candles("bybit", "BTCUSDT", "last", "1m")["trades"].null_count() == 1440
        mark_cols = ["ts", "open", "high", "low", "close"]
        assert_frame_equal(st.candles("bybit", "BTCUSDT", "mark", "1h").select(mark_cols),
                           arch.candles("binanceusdm", "BTCUSDT", "mark", "1h", *MAY).select(mark_cols))
        assert_frame_equal(st.funding("bybit", "BTCUSDT").select("ts", "rate"),
                           arch.funding("binanceusdm", "BTCUSDT", *MAY).select("ts", "rate"))
    bybit_paths = {p for (_, p, _) in server.log}
    assert "/api.bybit.com/v5/market/instruments-info" in bybit_paths
    pre = [q for q in server.requests_to("/api.bybit.com/v5/market/instruments-info") if q.get("status")]
    assert pre and pre[0]["status"] == "PreLaunch"


@pytest.mark.archive
def test_interrupted_sync_resumes_without_gaps(tmp_path: Path, rows: dict, server) -> None:
    binance(rows, page_cap=100).mount(server)
    real = server.routes[("GET", KLINES_PATH)]
    calls = {"n": 0}

    def refuse_after_four(q: dict, body: bytes) -> object:
        calls["n"] += 1
        if calls["n"] > 4:  # a non-retryable refusal, as from a venue that changed its rules mid-run
            return 400, {"code": -1130, "msg": "Data sent for parameter 'startTime' is not valid."}
        return real(q, body)

    server.routes[("GET", KLINES_PATH)] = refuse_after_four
    with Store(tmp_path / "a.duckdb") as st:
        with pytest.raises(SyncInterrupted,
                           match=r"refused the request \(BadRequest.*4 pages stored, re-running"):
            run(st, server, "binanceusdm", ["last"], DAY, "1m")
        part = st.candles("binanceusdm", "BTCUSDT", "last", "1m")
        assert part.height == 400
        assert part["ts"].diff().drop_nulls().unique().to_list() == [timedelta(minutes=1)]

        server.routes[("GET", KLINES_PATH)] = real
        rep = run(st, server, "binanceusdm", ["last"], DAY, "1m")
        assert rep.results[0].resumed_from == datetime(2021, 5, 19, 6, 39)
        assert (rep.rows, rep.pages) == (1040, 11)
        assert server.requests_to(KLINES_PATH)[-11]["startTime"] == str(1621406400000)  # 06:40, not 00:00
        resumed = st.candles("binanceusdm", "BTCUSDT", "last", "1m")
        assert st.query("SELECT count(*) FROM ingest_log").item() == 15

    with Store(tmp_path / "b.duckdb") as clean:
        run(clean, server, "binanceusdm", ["last"], DAY, "1m")
        assert_frame_equal(resumed, clean.candles("binanceusdm", "BTCUSDT", "last", "1m"))


@pytest.mark.archive
def test_network_failure_mid_sync_says_how_to_resume(tmp_path: Path, rows: dict, server) -> None:
    binance(rows, page_cap=500).mount(server)
    real = server.routes[("GET", KLINES_PATH)]
    calls = {"n": 0}

    def down_after_two(q: dict, body: bytes) -> object:
        calls["n"] += 1
        if calls["n"] == 2:  # the venue goes away for longer than the retries last
            server.fail_next(KLINES_PATH, 503, 503, 503)
        return real(q, body)

    server.routes[("GET", KLINES_PATH)] = down_after_two
    with Store(tmp_path / "a.duckdb") as st:
        with pytest.raises(SyncInterrupted, match="network failure after 3 attempts .*ExchangeNotAvailable.*"
                                                  "2 pages stored, re-running the same command resumes"):
            run(st, server, "binanceusdm", ["last"], DAY, "1m", attempts=3)
        assert st.candles("binanceusdm", "BTCUSDT", "last", "1m").height == 1000
        assert run(st, server, "binanceusdm", ["last"], DAY, "1m").rows == 440
        assert st.candles("binanceusdm", "BTCUSDT", "last", "1m").height == 1440


@pytest.mark.archive
@pytest.mark.parametrize("venue", ["binanceusdm", "bybit"])
def test_transient_http_errors_are_retried(tmp_path: Path, rows: dict, server, venue: str) -> None:
    (binance if venue == "binanceusdm" else bybit)(rows, page_cap=400).mount(server)
    path = KLINES_PATH if venue == "binanceusdm" else "/api.bybit.com/v5/market/kline"
    server.fail_next(path, 429, 502, 503)
    sleeps: list[float] = []
    with Store(tmp_path / "a.duckdb") as st:
        rep = run(st, server, venue, ["last"], DAY, "1m", base_delay=0.001, sleep=sleeps.append)
        assert rep.rows == 1440 and rep.pages == 4
        assert sleeps == [0.001, 0.002, 0.004]  # exponential backoff, then success
        ts = st.candles(venue, "BTCUSDT", "last", "1m")["ts"]
        assert ts.n_unique() == 1440 and ts.min() == DAY[0] and ts.max() == datetime(2021, 5, 19, 23, 59)


def test_guard_refuses_non_loopback_urls(server) -> None:
    BinanceUsdmEmulator(now_ms=NOW_MS).mount(server)
    for venue in ("binanceusdm", "bybit", "okx", "gate"):
        ex = make_exchange(venue, base_url=server.base_url, rate_limit=False)

        def urls(v: object) -> list[str]:
            return [u for x in v.values() for u in urls(x)] if isinstance(v, dict) else [v]
        assert all(u.startswith(server.base_url + "/") for u in urls(ex.urls["api"])), venue
        with pytest.raises(SourceError, match="refused a request outside"):
            ex.fetch("https://fapi.binance.com/fapi/v1/time")
    ex = make_exchange("binanceusdm", base_url=server.base_url, rate_limit=False)
    ex.load_markets()  # the rewritten urls do reach the emulator
    assert "BTC/USDT:USDT" in ex.markets and len(server.log) == 1


@pytest.mark.archive
def test_oi_retention_is_reported_not_empty(tmp_path: Path, rows: dict, server) -> None:
    from loaders.venues import BINANCEUSDM, retained_window

    binance(rows).mount(server)
    with pytest.raises(SourceError, match=r"binanceusdm keeps oi history for the last 30 days only .* window "
                                          r"2021-05-01 00:00 \.\. 2021-06-01 00:00 cannot be fetched"):
        retained_window(BINANCEUSDM, "oi", *MAY, NOW)
    with Store(tmp_path / "a.duckdb") as st:
        rep = run(st, server, "binanceusdm", ["oi", "insurance", "funding"], MAY, "1h")
        oi, ins, funding = rep.results
        assert not oi.fetched and "30 days" in oi.warning
        assert not ins.fetched and "only a current insurance-fund snapshot" in ins.warning
        assert funding.rows == 93 and rep.anything_fetched
    assert not any("openInterestHist" in p for (_, p, _) in server.log)  # reported before asking


def _oi_rows(start: datetime, hours: int, key: str) -> list[dict]:
    """A test-only hourly open-interest series (no OI recording exists): values encode the hour."""
    base = int((start - datetime(1970, 1, 1)) / timedelta(milliseconds=1))
    return [{"timestamp": base + i * 3_600_000, key: f"{70000 + i}.125",
             "sumOpenInterestValue": f"{(70000 + i) * 3}.5"} for i in range(hours)]


def test_oi_inside_retention_pages_both_venues(tmp_path: Path, server) -> None:
    start = NOW - timedelta(days=35)
    BinanceUsdmEmulator(now_ms=NOW_MS, open_interest={("BTCUSDT", "1h"): _oi_rows(start, 35 * 24,
                                                                                   "sumOpenInterest")},
                        page_cap=None).mount(server)
    BybitEmulator(now_ms=NOW_MS, open_interest={("BTCUSDT", "1h"): _oi_rows(start, 35 * 24, "openInterest")}
                  ).mount(server)
    with Store(tmp_path / "a.duckdb") as st:
        rep = run(st, server, "binanceusdm", ["oi"], (start, NOW), "1h", page_limit=100)
        (oi,) = rep.results
        assert "fetching from 2026-10-23 12:00" in oi.warning  # the part older than 30 days is gone
        assert oi.rows == 30 * 24 and oi.pages == 8
        got = st.open_interest("binanceusdm", "BTCUSDT")
        assert got["ts"].min() == NOW - timedelta(days=30) and got["period"].unique().to_list() == ["1h"]
        first_hour = 70000 + 5 * 24  # five days fell out of retention
        assert got["oi_base"][0] == first_hour + 0.125 and got["oi_quote"][0] == first_hour * 3 + 0.5

        # Bybit answers newest-first from endTime: bounded pages still fetch every hour exactly once.
        rep = run(st, server, "bybit", ["oi"], (start, NOW), "1h", page_limit=48)
        assert rep.rows == 35 * 24 and rep.pages == 18
        by = st.open_interest("bybit", "BTCUSDT")
        assert by["ts"].diff().drop_nulls().unique().to_list() == [timedelta(hours=1)]
        assert by["oi_base"].to_list() == [70000 + i + 0.125 for i in range(35 * 24)]


def test_insurance_snapshot_when_window_reaches_now(tmp_path: Path, server) -> None:
    BinanceUsdmEmulator(now_ms=NOW_MS, insurance=[
        {"symbols": ["BTCUSDT", "ETHUSDT"], "assets": [
            {"asset": "USDT", "marginBalance": "1234567.89", "updateTime": NOW_MS - 3_600_000}]},
    ]).mount(server)
    BybitEmulator(now_ms=NOW_MS, insurance=[
        {"coin": "USDT", "symbols": "BTCUSDT", "balance": "7654321.5", "value": "7654321.5"},
        {"coin": "USDT", "symbols": "ETHUSDT,SOLUSDT", "balance": "11.5", "value": "11.5"},
    ]).mount(server)
    window = (NOW - timedelta(days=2), NOW)
    with Store(tmp_path / "a.duckdb") as st:
        assert run(st, server, "binanceusdm", ["insurance"], window, "1h").rows == 1
        assert run(st, server, "bybit", ["insurance"], window, "1h").rows == 1
        got = st.query("SELECT venue, fund, currency, ts, balance FROM insurance_fund ORDER BY venue")
        assert got.rows() == [("binanceusdm", "BTCUSDT", "USDT", NOW - timedelta(hours=1), 1234567.89),
                              ("bybit", "BTCUSDT", "USDT", NOW, 7654321.5)]


def test_unknown_symbol_and_dataset_list_choices(tmp_path: Path, server) -> None:
    BinanceUsdmEmulator(now_ms=NOW_MS).mount(server)
    with Store(tmp_path / "a.duckdb") as st:
        with pytest.raises(UserError, match=r"--symbols BTCUSDX: not a binanceusdm market \(did you mean "
                                            r"BTCUSDT.*known: BTCUSDT, ETHUSDT"):
            sync(st, "binanceusdm", ["BTCUSDX"], ["last"], *DAY, exchange=make_exchange(
                "binanceusdm", base_url=server.base_url, rate_limit=False), **FAST)
        with pytest.raises(UserError, match="--datasets liquidations: unknown; choose from last, mark"):
            sync(st, "binanceusdm", ["BTCUSDT"], ["liquidations"], *DAY, base_url=server.base_url, **FAST)
        with pytest.raises(UserError, match="--timeframe 8h: bybit has no 8h candles"):
            sync(st, "bybit", ["BTCUSDT"], ["last"], *DAY, timeframe="8h", base_url=server.base_url, **FAST)
        assert st.query("SELECT count(*) FROM candles").item() == 0


def test_page_frames_are_whole_transactions(tmp_path: Path, server) -> None:
    """A page whose rows conflict with stored ones is rolled back whole, log record included."""
    rows = [[1621382400000 + i * 60_000, "100.5", "101", "99", "100", "1", 0, "100", 1, "0.5", "50", "0"]
            for i in range(10)]
    BinanceUsdmEmulator(now_ms=NOW_MS, klines={("klines", "BTCUSDT", "1m"): rows}, page_cap=4).mount(server)
    with Store(tmp_path / "a.duckdb") as st:
        clash = pl.DataFrame({"venue": ["binanceusdm"], "symbol": ["BTCUSDT"], "price_type": ["last"],
                              "timeframe": ["1m"], "ts": [datetime(2021, 5, 19, 0, 5)], "open": [1.0],
                              "high": [1.0], "low": [1.0], "close": [1.0]})
        st.upsert("candles", clash)
        with pytest.raises(Exception, match="already stored with other values"):
            run(st, server, "binanceusdm", ["last"], (DAY[0], DAY[0] + timedelta(minutes=10)), "1m")
        assert st.query("SELECT count(*) FROM candles").item() == 5  # page 1 (4 rows) + the clashing row
        assert st.query("SELECT count(*) FROM ingest_log").item() == 1


def test_conflicting_page_replaced_only_on_request(tmp_path: Path, server) -> None:
    rows = [[1621382400000 + i * 60_000, "100.5", "101", "99", "100", "1", 0, "100", 1, "0.5", "50", "0"]
            for i in range(3)]
    BinanceUsdmEmulator(now_ms=NOW_MS, klines={("klines", "BTCUSDT", "1m"): rows}).mount(server)
    window = (DAY[0], DAY[0] + timedelta(minutes=3))
    with Store(tmp_path / "a.duckdb") as st:
        clash = DAY[0] + timedelta(minutes=2)
        st.upsert("candles", pl.DataFrame({"venue": ["binanceusdm"], "symbol": ["BTCUSDT"],
                                           "price_type": ["last"], "timeframe": ["1m"], "ts": [clash],
                                           "open": [1.0], "high": [1.0], "low": [1.0], "close": [1.0]}))
        with pytest.raises(UserError, match=r"ccxt:binanceusdm binanceusdm BTCUSDT last page .*:3: .*"
                                            r"open 1.0 -> 100.5"):
            run(st, server, "binanceusdm", ["last"], window, "1m")
        assert run(st, server, "binanceusdm", ["last"], window, "1m", replace=True).rows == 2
        assert st.candles("binanceusdm", "BTCUSDT", "last", "1m")["open"].to_list() == [100.5] * 3


@pytest.mark.parametrize("venue", ["binanceusdm", "bybit"])
def test_index_candles_use_the_venue_parameters(tmp_path: Path, server, venue: str) -> None:
    """Index klines: Binance queries them by ``pair``, Bybit by symbol on index-price-kline (5 fields)."""
    rows = [[1621382400000 + i * 3_600_000, f"4288{i}.5", f"4299{i}.25", f"4277{i}.75", f"4290{i}.0", "0",
             1621382400000 + (i + 1) * 3_600_000 - 1, "0", 60, "0", "0", "0"] for i in range(5)]
    if venue == "binanceusdm":
        BinanceUsdmEmulator(now_ms=NOW_MS, klines={("indexPriceKlines", "BTCUSDT", "1h"): rows}).mount(server)
        path = "/fapi.binance.com/fapi/v1/indexPriceKlines"
    else:
        BybitEmulator(now_ms=NOW_MS, klines={("index-price-kline", "BTCUSDT", "1h"): rows}).mount(server)
        path = "/api.bybit.com/v5/market/index-price-kline"
    with Store(tmp_path / "a.duckdb") as st:
        rep = run(st, server, venue, ["index"], (DAY[0], DAY[0] + timedelta(hours=5)), "1h")
        assert rep.rows == 5
        got = st.candles(venue, "BTCUSDT", "index", "1h")
        assert got["open"].to_list() == [float(f"4288{i}.5") for i in range(5)]
        assert got["low"].to_list() == [float(f"4277{i}.75") for i in range(5)]
    (query,) = server.requests_to(path)
    assert query.get("pair" if venue == "binanceusdm" else "symbol") == "BTCUSDT"
