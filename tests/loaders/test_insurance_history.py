"""Insurance-fund history from okx and gate through ccxt's implicit API, against loopback emulators.

No recording of either venue's insurance fund exists anywhere (the archive has none, and there is
no network here), so the balances below are a small hand-written series: distinct values per row
so a misplaced, duplicated or dropped row shows up. The emulators answer like the venue docs say:
okx newest first, ``after`` = older than ts, ``before`` = newer than ts, limit <= 100; gate the
newest ``limit`` rows with no time filter. Whether the real venues behave so (and how far back okx
reaches) is unverified.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from backtest.cli import main
from loaders.ccxt_source import SyncInterrupted, make_exchange, sync
from loaders.errors import SourceError
from loaders.store import Store
from tests.support.loopback import LoopbackServer
from tests.support.venue_emulators import GateEmulator, OkxEmulator

OKX_PATH = "/www.okx.com/api/v5/public/insurance-fund"
GATE_PATH = "/api.gateio.ws/api/v4/futures/usdt/insurance"
FAST = dict(attempts=4, base_delay=0.0, now=datetime(2026, 11, 22, 12, 0))


def _ms(text: str) -> int:
    return int((datetime.fromisoformat(text) - datetime(1970, 1, 1)) / timedelta(milliseconds=1))


# (ts, balance, type): OKX BTC-USDT swap fund around a made-up liquidation burst on 2025-10-10.
OKX_SERIES = [
    ("2025-10-09T00:00", "1000000.5", "regular_update"),
    ("2025-10-09T08:00", "1000100.25", "regular_update"),
    ("2025-10-09T16:00", "1000200.75", "regular_update"),
    ("2025-10-10T00:00", "1000300.0", "regular_update"),
    ("2025-10-10T21:05", "1012345.5", "liquidation_balance_deposit"),
    ("2025-10-10T21:07", "987654.25", "bankruptcy_loss"),
    ("2025-10-10T21:10", "950000.125", "bankruptcy_loss"),
    ("2025-10-11T00:00", "955000.0", "regular_update"),
    ("2025-10-11T08:00", "956000.5", "regular_update"),
    ("2025-10-11T16:00", "957000.75", "regular_update"),
    ("2025-10-12T00:00", "958000.0", "regular_update"),
    ("2025-10-12T08:00", "958500.5", "regular_update"),
]
# A second record at an existing ts, given first so the emulator lists it first (the venue's newest):
# the store keeps that one.
OKX_SAME_TS = ("2025-10-10T21:07", "987000.5", "adl")
WINDOW = (datetime(2025, 10, 9, 8), datetime(2025, 10, 12))  # [08:00 on the 9th, the 12th)
IN_WINDOW = [r for r in OKX_SERIES if WINDOW[0] <= datetime.fromisoformat(r[0]) < WINDOW[1]]

# Gate futures-usdt fund, daily rows {t: seconds, b}.
GATE_SERIES = [("2025-10-05", "75000000.5"), ("2025-10-06", "75100000.25"), ("2025-10-07", "75200000.0"),
               ("2025-10-08", "75300000.75"), ("2025-10-09", "75400000.5"), ("2025-10-10", "74000000.125"),
               ("2025-10-11", "74100000.0"), ("2025-10-12", "74200000.5")]


def okx_rows(series: list[tuple[str, str, str]] = OKX_SERIES) -> list[dict]:
    return [{"ts": _ms(ts), "balance": bal, "amt": "0", "type": typ, "ccy": "USDT"}
            for ts, bal, typ in series]


def gate_rows() -> list[dict]:
    return [{"t": _ms(d) // 1000, "b": b} for d, b in GATE_SERIES]


@pytest.fixture()
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as srv:
        yield srv
        assert not srv.misses, srv.misses


def run(store: Store, srv: LoopbackServer, venue: str, symbol: str, window: tuple[datetime, datetime],
        **kw: object):
    ex = make_exchange(venue, base_url=srv.base_url, rate_limit=False)
    return sync(store, venue, [symbol], ["insurance"], *window, exchange=ex, **{**FAST, **kw})


def stored(st: Store, venue: str) -> list[tuple]:
    return st.query("SELECT fund, currency, strftime(ts, '%Y-%m-%dT%H:%M') AS ts, balance "
                    "FROM insurance_fund WHERE venue = ? ORDER BY ts", [venue]).rows()


def test_okx_pages_back_through_the_window(tmp_path: Path, server) -> None:
    OkxEmulator(insurance={"BTC-USDT": okx_rows([OKX_SAME_TS, *OKX_SERIES])}).mount(server)
    with Store(tmp_path / "a.duckdb") as st:
        (res,) = run(st, server, "okx", "BTC-USDT-SWAP", WINDOW, page_limit=3).results
        want = [("SWAP:BTC-USDT", "USDT", ts, float(OKX_SAME_TS[1] if ts == OKX_SAME_TS[0] else bal))
                for ts, bal, _ in IN_WINDOW]
        assert stored(st, "okx") == want  # exactly the window's rows, one per ts
        assert (res.rows, res.fetched_rows, res.warning) == (9, 9, None)
        assert res.venue_oldest == datetime(2025, 10, 9)  # the last page reached below the window start
        log = st.query("SELECT dataset, first_ts, last_ts FROM ingest_log ORDER BY last_ts DESC").rows()
        assert log[0] == ("insurance_fund:SWAP:BTC-USDT", datetime(2025, 10, 11), WINDOW[1])
        assert log[-1][1] == WINDOW[0] and len(log) == res.pages == 4
    queries = server.requests_to(OKX_PATH)
    assert [q["after"] for q in queries] == [str(_ms(t)) for t in ("2025-10-12T00:00", "2025-10-11T00:00",
                                                                  "2025-10-10T21:07", "2025-10-09T16:00")]
    assert all(q["instType"] == "SWAP" and q["instFamily"] == "BTC-USDT" and q["limit"] == "3"
               for q in queries)


def test_okx_interrupted_then_resumed_has_no_gaps(tmp_path: Path, server) -> None:
    emu = OkxEmulator(insurance={"BTC-USDT": okx_rows()})
    emu.mount(server)
    real = server.routes[("GET", OKX_PATH)]
    calls = {"n": 0}

    def refuse_after_two(q: dict, body: bytes) -> object:
        calls["n"] += 1
        if calls["n"] > 2:  # non-retryable: the venue rejects the parameters mid-run
            return 400, {"code": "51000", "msg": "Parameter after error", "data": []}
        return real(q, body)

    server.routes[("GET", OKX_PATH)] = refuse_after_two
    with Store(tmp_path / "a.duckdb") as st:
        with pytest.raises(SyncInterrupted, match=r"okx BTC-USDT-SWAP insurance: the venue refused .*"
                                                  r"BadRequest.*2 pages stored"):
            run(st, server, "okx", "BTC-USDT-SWAP", WINDOW, page_limit=2)
        assert [r[2] for r in stored(st, "okx")] == [r[0] for r in IN_WINDOW[-4:]]  # two newest pages

        server.routes[("GET", OKX_PATH)] = real
        before = len(server.requests_to(OKX_PATH))
        (res,) = run(st, server, "okx", "BTC-USDT-SWAP", WINDOW, page_limit=2).results
        assert res.resumed_from == datetime(2025, 10, 10, 21, 10) and res.rows == 5 and res.warning is None
        # The re-run asked below the covered span only, never again for the newest rows.
        assert server.requests_to(OKX_PATH)[before]["after"] == str(_ms("2025-10-10T21:10"))
        assert [r[2:] for r in stored(st, "okx")] == [(t, float(b)) for t, b, _ in IN_WINDOW]

        # A third run finds everything covered: no request, nothing new, no warning.
        n = len(server.requests_to(OKX_PATH))
        (res,) = run(st, server, "okx", "BTC-USDT-SWAP", WINDOW, page_limit=2).results
        assert (res.rows, res.warning, len(server.requests_to(OKX_PATH))) == (0, None, n)

        # A wider window later fetches only what lies outside the covered span.
        (res,) = run(st, server, "okx", "BTC-USDT-SWAP", (datetime(2025, 10, 8), datetime(2025, 10, 13)),
                     page_limit=2).results
        assert res.rows == 3 and len(stored(st, "okx")) == len(OKX_SERIES)


def test_transient_5xx_are_retried(tmp_path: Path, server) -> None:
    OkxEmulator(insurance={"BTC-USDT": okx_rows()}).mount(server)
    GateEmulator(insurance=gate_rows()).mount(server)
    server.fail_next(OKX_PATH, 502, 503)
    server.fail_next(GATE_PATH, 500)
    sleeps: list[float] = []
    with Store(tmp_path / "a.duckdb") as st:
        rep = run(st, server, "okx", "BTC-USDT-SWAP", WINDOW, page_limit=5, base_delay=0.001,
                  sleep=sleeps.append)
        assert rep.rows == len(IN_WINDOW) and sleeps == [0.001, 0.002]
        rep = run(st, server, "gate", "BTC_USDT", WINDOW, base_delay=0.001, sleep=sleeps.append)
        assert rep.rows == 2 and sleeps[2:] == [0.001]  # daily rows of 10-10 and 10-11
        with pytest.raises(SyncInterrupted, match="network failure after 2 attempts"):
            server.fail_next(GATE_PATH, 503, 503)
            run(st, server, "gate", "BTC_USDT", WINDOW, attempts=2)


def test_gate_stores_window_rows_and_reports_its_reach(tmp_path: Path, server) -> None:
    GateEmulator(insurance=gate_rows()).mount(server)
    with Store(tmp_path / "a.duckdb") as st:
        (res,) = run(st, server, "gate", "BTC_USDT", WINDOW).results
        assert stored(st, "gate") == [("futures-usdt", "USDT", f"{d}T00:00", float(b))
                                      for d, b in GATE_SERIES if "2025-10-10" <= d <= "2025-10-11"]
        assert res.warning is None and res.venue_oldest == datetime(2025, 10, 5)
        assert server.requests_to(GATE_PATH)[-1] == {"limit": "1000"}
        # With only 4 rows a reply, the newest rows end the reach: the window start is out of it.
        (res,) = run(st, server, "gate", "BTC_USDT", (datetime(2025, 10, 6), datetime(2025, 10, 13)),
                     page_limit=4).results
        assert res.rows == 2  # 10-09 and 10-12; 10-10 and 10-11 were stored already
        assert res.warning == ("gate returned insurance history back to 2025-10-09 00:00 only; nothing "
                               "earlier in the window 2025-10-06 00:00 .. 2025-10-13 00:00 (gate serves "
                               "only its newest 4 rows, no time filter)")


@pytest.mark.parametrize("venue", ["okx", "gate"])
def test_empty_window_is_a_warning_not_silence(tmp_path: Path, server, venue: str) -> None:
    OkxEmulator(insurance={"BTC-USDT": okx_rows()}).mount(server)
    GateEmulator(insurance=gate_rows()).mount(server)
    symbol = "BTC-USDT-SWAP" if venue == "okx" else "BTC_USDT"
    may2021 = (datetime(2021, 5, 10), datetime(2021, 5, 26))
    with Store(tmp_path / "a.duckdb") as st:
        (res,) = run(st, server, venue, symbol, may2021).results
        assert res.fetched and res.rows == 0
        oldest = "2025-10-09 00:00" if venue == "okx" else "2025-10-05 00:00"
        assert res.warning == (f"{venue} returned no insurance history for the window 2021-05-10 00:00 .. "
                               f"2021-05-26 00:00; the oldest ts it returned is {oldest}")
        assert st.query("SELECT count(*) FROM insurance_fund").item() == 0
    if venue == "okx":  # nothing older than the window end, so one probe of the newest page says where
        assert [("after" in q) for q in server.requests_to(OKX_PATH)] == [True, False]


def test_okx_venue_with_no_rows_at_all(tmp_path: Path, server) -> None:
    OkxEmulator().mount(server)
    with Store(tmp_path / "a.duckdb") as st:
        (res,) = run(st, server, "okx", "ETH-USDT-SWAP", WINDOW).results
        assert res.warning.endswith("; it returned no rows at all")


def test_okx_and_gate_requests_stay_on_loopback(server) -> None:
    OkxEmulator(insurance={"BTC-USDT": okx_rows()}).mount(server)
    GateEmulator(insurance=gate_rows()).mount(server)
    okx = make_exchange("okx", base_url=server.base_url, rate_limit=False)
    gate = make_exchange("gate", base_url=server.base_url, rate_limit=False)
    assert okx.publicGetPublicInsuranceFund({"instType": "SWAP", "instFamily": "BTC-USDT", "limit": "1"})[
        "data"][0]["details"][0]["balance"] == OKX_SERIES[-1][1]
    assert gate.publicFuturesGetSettleInsurance({"settle": "usdt", "limit": 1}) == [gate_rows()[-1]]
    for ex, url in ((okx, "https://www.okx.com/api/v5/public/insurance-fund"),
                    (gate, "https://api.gateio.ws/api/v4/futures/usdt/insurance")):
        with pytest.raises(SourceError, match="refused a request outside"):
            ex.fetch(url)


def test_capability_table() -> None:
    from loaders.venues import VENUES

    got = {v: (VENUES[v].spec("insurance").method, VENUES[v].spec("insurance").snapshot_only) for v in VENUES}
    assert got == {"binanceusdm": ("insurance_snapshot", True), "bybit": ("insurance_snapshot", True),
                   "okx": ("insurance_history", False), "gate": ("insurance_history", False)}


def test_cli_sync_okx_insurance(tmp_path: Path, server, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    OkxEmulator(insurance={"BTC-USDT": okx_rows()}).mount(server)
    monkeypatch.setenv("BACKTEST_CCXT_BASE_URL", server.base_url)
    db = tmp_path / "cli.duckdb"
    args = ["data", "sync", "--venue", "okx", "--symbols", "BTC-USDT-SWAP", "--datasets", "insurance",
            "--since", "2025-10-09T08:00", "--until", "2025-10-12", "--db", str(db), "--quiet"]
    main(args)
    out, err = capsys.readouterr()
    assert ("okx BTC-USDT-SWAP insurance: 9 new rows (9 fetched, 1 pages) 2025-10-09 08:00 .. "
            "2025-10-11 16:00") in out
    assert "total: 9 new rows in 1 pages" in out and "warning" not in err
    main(args)  # the same command again: everything is covered, nothing is asked twice
    out, err = capsys.readouterr()
    assert "0 new rows (0 fetched, 0 pages, resumed below 2025-10-09 08:00)" in out
    with Store(db) as st:
        assert [r[2:] for r in stored(st, "okx")] == [(t, float(b)) for t, b, _ in IN_WINDOW]

    # An empty window succeeds (exit 0) but says so on stderr.
    main([*args[:8], "--since", "2021-05-10", "--until", "2021-05-26", "--db", str(db)])
    out, err = capsys.readouterr()
    assert "okx BTC-USDT-SWAP insurance: 0 new rows (0 fetched, 0 pages) -" in out
    assert "warning: BTC-USDT-SWAP insurance: okx returned no insurance history for the window" in err
