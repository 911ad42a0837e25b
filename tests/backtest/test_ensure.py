"""First use just works: ensure_window fills the store from the archive or a download, or says what to do."""

from __future__ import annotations

import gzip
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from backtest import paths
from backtest.ensure import FUNDING, LAST, MARK, archive_files, ensure_window
from backtest.events import Event, load_catalog
from backtest.window import load_window
from loaders.errors import UserError
from loaders.store import Store
from tests.support.loopback import LoopbackServer
from tests.support.vision_site import VisionSite, daily_path, publish_crash_day

V, S = "binanceusdm", "BTCUSDT"
DAY = date(2021, 5, 19)


@pytest.fixture()
def no_archive(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Neither --archive, BACKTEST_ARCHIVE nor a sibling shared/data."""
    monkeypatch.delenv("BACKTEST_ARCHIVE", raising=False)
    monkeypatch.setattr(paths, "SIBLING_ARCHIVE", tmp_path / "no-such-archive")


def counts(db: Path) -> tuple[int, ...]:
    with Store(db) as st:
        return tuple(st.query(f"SELECT count(*) AS n FROM {t}")["n"][0]
                     for t in ("candles", "funding", "ingest_log"))


def test_archive_file_selection(archive_dir: Path) -> None:
    ev = load_catalog().get("may2021")
    names = sorted(p.name for p in archive_files(archive_dir, ev, V, [S]))
    assert names == [
        "BTCUSDT-15m-perp.csv.gz", "BTCUSDT-1h-perp.csv.gz", "BTCUSDT-1m-2021-05-19.csv.gz",
        "BTCUSDT-1m-2021-05-23.csv.gz", "BTCUSDT-fundingRate-2021-04.csv.gz",
        "BTCUSDT-fundingRate-2021-05.csv.gz", "BTCUSDT-markPrice-1h.csv.gz",
    ]


def test_fills_from_archive_then_does_nothing(archive_dir: Path, db_path: Path) -> None:
    ev = load_catalog().get("may2021")
    rep = ensure_window(db_path, ev, V, [S], archive=archive_dir, allow_download=False, progress=False)
    assert rep.missing_before == {S: [LAST, MARK, FUNDING]}
    assert rep.missing_after == {S: []}
    assert rep.archive == archive_dir and rep.imported_files == 7 and rep.new_rows > 100_000
    assert rep.changed
    with Store(db_path) as st:
        w = load_window(st, ev, V, S)
    assert set(w.bars["resolution"]) == {"1m", "1h"} and w.coverage.gaps.height == 0
    before = counts(db_path)

    again = ensure_window(db_path, ev, V, [S], archive=archive_dir, allow_download=False, progress=False)
    assert again.missing_before == {S: []} and not again.changed and again.imported_files == 0
    assert counts(db_path) == before
    assert "already holds" in again.lines()[0]


def test_no_archive_no_download_is_one_line_telling_what_to_do(no_archive: None, db_path: Path) -> None:
    ev = load_catalog().get("may2021")
    with pytest.raises(UserError) as info:
        ensure_window(db_path, ev, V, [S], allow_download=False, progress=False)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"no complete data for may2021 BTCUSDT ({LAST}, {MARK}, {FUNDING} missing, "
                          "first gap 2021-04-10 00:00 -> 2021-05-26 00:00) in " + str(db_path))
    assert msg.endswith("and no archive configured: run `backtest data download --event may2021` (internet) "
                        "or pass --archive DIR / set BACKTEST_ARCHIVE")
    assert counts(db_path) == (0, 0, 0)


def test_archive_without_the_window(no_archive: None, db_path: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty-archive"
    empty.mkdir()
    with pytest.raises(UserError, match=r"and the archive .*empty-archive does not hold it: run `backtest "
                                        r"data download --event may2021`"):
        ensure_window(db_path, load_catalog().get("may2021"), V, [S], archive=empty, allow_download=False,
                      progress=False)


def test_other_venue_suggests_sync(no_archive: None, db_path: Path) -> None:
    with pytest.raises(UserError, match=r"no complete data for may2021 XBTUSD .* `backtest data sync --event "
                                        r"may2021 --venue bitmex`"):
        ensure_window(db_path, load_catalog().get("may2021"), "bitmex", ["XBTUSD"], progress=False)


def test_only_mark_missing_is_a_note_not_an_error(no_archive: None, db_path: Path) -> None:
    t0 = datetime(2021, 5, 19)
    ev = Event(id="day", title="d", start=t0, end=t0 + timedelta(hours=4), warmup=timedelta(0), peak=None,
               symbols=(S,), venues=(V,))
    with Store(db_path) as st, st.transaction():
        st.upsert("candles", pl.DataFrame({
            "venue": V, "symbol": S, "price_type": "last", "timeframe": "1h",
            "ts": [t0 + timedelta(hours=i) for i in range(4)],
            "open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5}))
        st.upsert("funding", pl.DataFrame({"venue": V, "symbol": S, "ts": [t0], "rate": [0.0001],
                                           "interval_h": [8.0]}))
    rep = ensure_window(db_path, ev, V, [S], allow_download=False, progress=False)
    assert rep.missing_after == {S: [MARK]}
    assert any("last price will stand in as mark" in n for n in rep.notes)


def mark_hour_rows(archive_dir: Path, symbol: str, day: date) -> bytes:
    """The recorded 1h mark candles of one day as a Binance markPriceKlines CSV (12 columns, no header)."""
    text = gzip.decompress((archive_dir / "binance-um" / "markprice-1h" / f"{symbol}-markPrice-1h.csv.gz")
                           .read_bytes()).decode()
    out = []
    for line in text.splitlines()[1:]:
        d, o, h, lo, c, _ = line.split(",")
        ts = datetime.fromisoformat(d.replace("Z", "+00:00")).replace(tzinfo=None)
        if ts.date() == day:
            ms = int((ts - datetime(1970, 1, 1)).total_seconds() * 1000)
            out.append(f"{ms},{o},{h},{lo},{c},0,{ms + 3_599_999},0,0,0,0,0")
    assert len(out) == 24
    return ("\n".join(out) + "\n").encode()


def test_downloads_when_no_archive(no_archive: None, archive_dir: Path, db_path: Path,
                                   tmp_path: Path) -> None:
    """No archive: a loopback data.binance.vision (recorded rows) fills the store, then nothing more."""
    ev = Event(id="crashday", title="19 May", start=datetime(2021, 5, 19), end=datetime(2021, 5, 20),
               warmup=timedelta(0), peak=None, symbols=(S,), venues=(V,))
    with LoopbackServer() as server:
        site = VisionSite(server)
        publish_crash_day(site, archive_dir, S, DAY)
        site.publish(daily_path("markPriceKlines", S, "1h", DAY), mark_hour_rows(archive_dir, S, DAY))
        kw = dict(progress=False, cache_dir=tmp_path / "cache", base_url=site.base_url)
        rep = ensure_window(db_path, ev, V, [S], **kw)
        assert rep.missing_before == {S: [LAST, MARK, FUNDING]} and rep.missing_after == {S: []}
        assert rep.downloaded_files == 4 and rep.archive is None
        hits = len(server.log)
        again = ensure_window(db_path, ev, V, [S], **kw)
        assert not again.changed and len(server.log) == hits  # no request at all the second time
    with Store(db_path) as st:
        w = load_window(st, ev, V, S)
    assert set(w.bars["resolution"]) == {"1m"} and w.bars.height == 1440
    assert set(w.bars["mark_source"]) == {"basis_carried"}
    assert w.bars.filter(pl.col("ts") == datetime(2021, 5, 19, 13, 10))["low"][0] == 28688.0


def test_offline_first_run_without_archive_fails_at_once_saying_what_to_do(
        no_archive: None, db_path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No archive, no network: the name lookups fail and the one line names --archive / BACKTEST_ARCHIVE."""
    import socket

    looked: list[str] = []

    def fail(host: object, *args: object, **kwargs: object) -> object:
        looked.append(str(host))
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    monkeypatch.setattr("loaders.binance_vision.time.sleep", lambda s: pytest.fail("retried"))
    monkeypatch.delenv("BACKTEST_BINANCE_VISION_URL", raising=False)
    with pytest.raises(UserError) as info:
        ensure_window(db_path, load_catalog().get("may2021"), V, ["BTCUSDT", "ETHUSDT"], progress=False,
                      cache_dir=tmp_path / "cache")
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith("may2021 is not in the store, no archive is configured, and "
                          "https://data.binance.vision/ cannot be reached "
                          "(name lookup failed: Name or service not known)")
    assert msg.endswith("pass --archive DIR or set BACKTEST_ARCHIVE to the recorded archive, or connect to "
                        "the internet for data.binance.vision")
    assert 1 <= len(looked) <= 4 and set(looked) == {"data.binance.vision"}


def test_offline_flag_never_downloads(no_archive: None, db_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """`run --offline` (and BACKTEST_OFFLINE=1) without an archive: the archive message, no download."""
    from tests.support.cli import run_cli

    monkeypatch.setattr("loaders.binance_vision.download_window",
                        lambda *a, **k: pytest.fail("--offline downloaded"))
    for argv, env in ((["--offline"], None), ([], "1")):
        if env is not None:
            monkeypatch.setenv("BACKTEST_OFFLINE", env)
        code, out, err = run_cli(["run", "--event", "may2021", "--db", str(db_path), *argv], capsys)
        assert code == 2 and out == ""
        assert err.startswith("error: no complete data for may2021 BTCUSDT") and err.count("\n") == 1
        assert "no archive configured" in err and "--archive DIR / set BACKTEST_ARCHIVE" in err


def test_a_complete_window_is_read_while_another_process_holds_the_store_read_only(
        no_archive: None, db_path: Path) -> None:
    """A notebook's read-only connection must not make a run fail "locked": nothing needs writing."""
    import subprocess
    import sys

    from backtest.engine.api import load_inputs
    from backtest.engine.params import Params

    t0 = datetime(2021, 5, 19)
    ev = Event(id="day", title="d", start=t0, end=t0 + timedelta(hours=4), warmup=timedelta(0), peak=None,
               symbols=(S,), venues=(V,))
    hours = [t0 + timedelta(hours=i) for i in range(4)]
    with Store(db_path) as st, st.transaction():
        for price_type in ("last", "mark"):
            st.upsert("candles", pl.DataFrame({
                "venue": V, "symbol": S, "price_type": price_type, "timeframe": "1h", "ts": hours,
                "open": 100.0, "high": 101.0, "low": 99.0, "close": 100.0, "volume": 10.0}))
        st.upsert("funding", pl.DataFrame({"venue": V, "symbol": S, "ts": [t0], "rate": [0.0001],
                                           "interval_h": [8.0]}))
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb,sys,time; c=duckdb.connect(sys.argv[1], read_only=True); "
         "print('ok', flush=True); time.sleep(60)", str(db_path)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"ok"
        rep = ensure_window(db_path, ev, V, [S], allow_download=False, progress=False)
        assert rep.missing_before == {S: []}
        (inp,) = load_inputs(ev, V, [S], Params(), db=db_path, allow_download=False)
        assert inp.symbol == S
    finally:
        holder.kill()
        holder.wait()
