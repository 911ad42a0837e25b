"""``backtest data sync`` end to end against loopback venues (via BACKTEST_CCXT_BASE_URL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from backtest.cli import main
from loaders.store import Store
from tests.support.loopback import LoopbackServer
from tests.support.venue_emulators import (
    BinanceUsdmEmulator,
    BybitEmulator,
    read_binance_funding,
    read_binance_klines,
    read_ohlc_csv,
)

NOW_MS = int((datetime(2026, 11, 22) - datetime(1970, 1, 1)) / timedelta(milliseconds=1))
DAY = ["--since", "2021-05-19", "--until", "2021-05-20T00:00:00Z"]


@pytest.fixture()
def venues(archive_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LoopbackServer]:
    kl = read_binance_klines(archive_dir / "binance-um/klines-1m/BTCUSDT-1m-2021-05-19.csv.gz")
    mark = read_ohlc_csv(archive_dir / "binance-um/markprice-1h/BTCUSDT-markPrice-1h.csv.gz", "1h")
    months = archive_dir.glob("binance-um/funding/BTCUSDT-fundingRate-2021-0[456].csv.gz")
    funding = read_binance_funding(months, "BTCUSDT")
    with LoopbackServer() as srv:
        BinanceUsdmEmulator(now_ms=NOW_MS, page_cap=500, funding={"BTCUSDT": funding},
                            klines={("klines", "BTCUSDT", "1m"): kl,
                                    ("markPriceKlines", "BTCUSDT", "1h"): mark}).mount(srv)
        BybitEmulator(now_ms=NOW_MS, klines={("kline", "BTCUSDT", "1m"): kl}).mount(srv)
        monkeypatch.setenv("BACKTEST_CCXT_BASE_URL", srv.base_url)
        yield srv
        assert not srv.misses, srv.misses


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(["data", "sync", *args])
        code = 0
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.archive
def test_event_window_with_warnings(venues: LoopbackServer, db_path: Path, capsys) -> None:
    code, out, err = cli(["--event", "may2021", "--symbols", "BTCUSDT",
                          "--datasets", "mark,funding,oi,insurance", "--db", str(db_path)], capsys)
    assert code == 0, err
    # may2021 = [2021-05-10 - 30 days warm-up, 2021-05-26): 1,104 hourly mark candles, 138 settlements.
    assert ("binanceusdm BTCUSDT mark: 1104 new rows (1104 fetched, 3 pages) "
            "2021-04-10 00:00 .. 2021-05-25 23:00") in out
    assert "binanceusdm BTCUSDT funding: 138 new rows" in out
    assert "warning: BTCUSDT oi: binanceusdm keeps oi history for the last 30 days only" in err
    assert "warning: BTCUSDT insurance: binanceusdm publishes only a current insurance-fund snapshot" in err
    assert "total: 1242 new rows in 4 pages" in out
    with Store(db_path) as st:
        mark = st.candles("binanceusdm", "BTCUSDT", "mark", "1h")
        assert mark.height == 1104 and mark["ts"].min() == datetime(2021, 4, 10)
        assert st.funding("binanceusdm", "BTCUSDT").height == 138

    code, out, _ = cli(["--event", "may2021", "--symbols", "BTCUSDT", "--datasets", "mark",
                        "--db", str(db_path)], capsys)
    assert code == 0 and "0 new rows (0 fetched, 0 pages, resumed after 2021-05-25 23:00)" in out


@pytest.mark.archive
def test_since_until_bybit_1m(venues: LoopbackServer, db_path: Path, capsys) -> None:
    code, out, err = cli([*DAY, "--venue", "bybit", "--symbols", "BTCUSDT", "--datasets", "last",
                          "--timeframe", "1m", "--db", str(db_path), "--quiet"], capsys)
    assert code == 0, err
    assert "bybit BTCUSDT last: 1440 new rows (1440 fetched, 2 pages)" in out  # 1000 a page
    assert all(p.startswith("/api.bybit.com/") for (_, p, _) in venues.log)


@pytest.mark.archive
def test_nothing_fetchable_exits_non_zero(venues: LoopbackServer, db_path: Path, capsys) -> None:
    code, _, err = cli(["--event", "may2021", "--datasets", "oi,insurance", "--db", str(db_path)], capsys)
    assert code == 2
    assert "warning: ETHUSDT oi: binanceusdm keeps oi history" in err
    assert err.strip().splitlines()[-1].startswith("error: nothing could be fetched from binanceusdm")


@pytest.mark.archive
def test_network_failure_reports_pages_and_resume(venues: LoopbackServer, db_path: Path, capsys) -> None:
    path = "/fapi.binance.com/fapi/v1/klines"
    real = venues.routes[("GET", path)]

    def fail_after_first(q: dict, body: bytes) -> object:
        venues.fail_next(path, 503, 502)
        return real(q, body)

    venues.routes[("GET", path)] = fail_after_first
    args = [*DAY, "--symbols", "BTCUSDT", "--datasets", "last", "--timeframe", "1m", "--db", str(db_path),
            "--retries", "2", "--backoff", "0"]
    code, _, err = cli(args, capsys)
    assert code == 2
    assert err.strip().splitlines()[-1] == (
        "error: binanceusdm BTCUSDT last: network failure after 2 attempts (ExchangeNotAvailable: "
        f"binanceusdm HTTP 502 Bad Gateway on GET {venues.base_url}/fapi.binance.com/fapi/v1/klines?"
        "interval=1m&limit=1000"
        "&symbol=BTCUSDT&startTime=1621412400000&endTime=1621468799999); 1 pages stored, re-running the "
        "same command resumes")
    venues.routes[("GET", path)] = real
    code, out, _ = cli(args, capsys)
    assert code == 0 and "940 new rows (940 fetched, 2 pages, resumed after 2021-05-19 08:19)" in out


@pytest.mark.parametrize(("args", "message"), [
    (["--venue", "kraken", *DAY, "--symbols", "BTCUSDT"],
     "error: --venue kraken: unknown venue; choose from binanceusdm, bybit, okx, gate"),
    ([*DAY, "--symbols", "BTCUSDT", "--datasets", "last,trades"],
     "error: --datasets trades: unknown; choose from last, mark, index, funding, oi, insurance"),
    (["--since", "2021-05-19"], "error: give --event ID (see `backtest events`) or both --since and --until"),
    (["--event", "may2021", "--since", "2021-05-19"],
     "error: give either --event or --since/--until, not both"),
    (["--event", "nosuch"], "error: unknown event 'nosuch'; valid ids: "),
    ([*DAY], "error: --symbols is required with --since/--until"),
    (["--since", "19/05/2021", "--until", "2021-05-20", "--symbols", "BTCUSDT"],
     "error: --since 19/05/2021: not an ISO date or datetime"),
])
def test_bad_options_are_one_line_errors(args: list[str], message: str, db_path: Path, capsys) -> None:
    code, _, err = cli([*args, "--db", str(db_path)], capsys)
    assert code == 2 and err.strip().startswith(message), err


def test_unknown_symbol_lists_markets(db_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    with LoopbackServer() as srv:
        BinanceUsdmEmulator(now_ms=NOW_MS).mount(srv)
        monkeypatch.setenv("BACKTEST_CCXT_BASE_URL", srv.base_url)
        code, _, err = cli([*DAY, "--symbols", "BTC-USDT", "--db", str(db_path)], capsys)
    assert code == 2
    assert "error: --symbols BTC-USDT: not a binanceusdm market (did you mean BTCUSDT" in err
