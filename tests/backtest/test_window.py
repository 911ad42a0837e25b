"""Window loading: stitching resolutions without gaps or overlaps, mark basis carry, funding, OI."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from backtest.events import Event, load_catalog
from backtest.window import load_window
from loaders.errors import UserError
from loaders.store import Store

V, S = "binanceusdm", "BTCUSDT"
T0 = datetime(2021, 5, 19)
H = timedelta(hours=1)


def event(hours: int = 6, warmup_h: int = 2, eid: str = "tiny") -> Event:
    """A window [T0 + warmup, T0 + hours) loaded from T0."""
    return Event(id=eid, title="tiny", start=T0 + warmup_h * H, end=T0 + hours * H,
                 warmup=warmup_h * H, peak=None, symbols=(S,), venues=(V,))


def candles(tf: str, start: datetime, n: int, *, price: float = 100.0, step: float = 1.0,
            price_type: str = "last") -> pl.DataFrame:
    """n candles from ``start``: open = price + i*step, high = open + 2, low = open - 1, close = open + .5"""
    delta = {"1m": timedelta(minutes=1), "15m": timedelta(minutes=15), "1h": H}[tf]
    opens = [price + i * step for i in range(n)]
    return pl.DataFrame({
        "venue": V, "symbol": S, "price_type": price_type, "timeframe": tf,
        "ts": [start + i * delta for i in range(n)],
        "open": opens, "high": [o + 2 for o in opens], "low": [o - 1 for o in opens],
        "close": [o + 0.5 for o in opens], "volume": [0.0 if price_type == "mark" else 1.0] * n,
    })


def hour_from_minutes(minutes: pl.DataFrame) -> pl.DataFrame:
    """The 1h candle(s) the given 1m candles aggregate to (so the fine bars are consistent)."""
    return (minutes.sort("ts").with_columns(ts=pl.col("ts").dt.truncate("1h"), timeframe=pl.lit("1h"))
            .group_by("venue", "symbol", "price_type", "timeframe", "ts", maintain_order=True)
            .agg(open=pl.col("open").first(), high=pl.col("high").max(), low=pl.col("low").min(),
                 close=pl.col("close").last(), volume=pl.col("volume").sum()))


def quarter_from_minutes(minutes: pl.DataFrame) -> pl.DataFrame:
    return (minutes.sort("ts").with_columns(ts=pl.col("ts").dt.truncate("15m"), timeframe=pl.lit("15m"))
            .group_by("venue", "symbol", "price_type", "timeframe", "ts", maintain_order=True)
            .agg(open=pl.col("open").first(), high=pl.col("high").max(), low=pl.col("low").min(),
                 close=pl.col("close").last(), volume=pl.col("volume").sum()))


def funding(start: datetime, n: int, every_h: int = 8) -> pl.DataFrame:
    return pl.DataFrame({"venue": V, "symbol": S, "ts": [start + i * every_h * H for i in range(n)],
                         "rate": [0.0001 * (i + 1) for i in range(n)], "interval_h": [float(every_h)] * n})


@pytest.fixture()
def store(db_path: Path) -> Store:
    with Store(db_path) as st:
        yield st


def fill(store: Store, *frames: pl.DataFrame, table: str = "candles") -> None:
    with store.transaction():
        for f in frames:
            store.upsert(table, f)


def mixed_store(store: Store) -> None:
    """Hours 0..5 at 1h; hour 2 fully 1m; hour 3: 15m + 1m in its first quarter; hour 4: 30 1m only."""
    m_h2 = candles("1m", T0 + 2 * H, 60, price=200, step=0.1)
    m_h3q0 = candles("1m", T0 + 3 * H, 15, price=300, step=0.1)
    q_h3 = pl.concat([quarter_from_minutes(m_h3q0),
                      candles("15m", T0 + 3 * H + timedelta(minutes=15), 3, price=302)])
    m_h4 = candles("1m", T0 + 4 * H, 30, price=400)
    hours = pl.concat([candles("1h", T0, 2), hour_from_minutes(m_h2),
                       hour_from_minutes(q_h3.with_columns(timeframe=pl.lit("1m"))),
                       candles("1h", T0 + 4 * H, 2, price=400)])
    mark_h = hours.with_columns(price_type=pl.lit("mark"), open=pl.col("open") + 1, high=pl.col("high") + 3,
                                low=pl.col("low") - 2, close=pl.col("close") + 1, volume=pl.lit(0.0))
    fill(store, m_h2, m_h3q0, q_h3, m_h4, hours.select(m_h2.columns), mark_h.select(m_h2.columns))
    fill(store, funding(T0, 2), table="funding")


def test_finest_resolution_wins_only_where_it_covers_completely(store: Store) -> None:
    mixed_store(store)
    w = load_window(store, event(), V, S)
    b = w.bars
    assert b["ts"].is_sorted() and b["ts"].n_unique() == b.height
    res = dict(b.group_by("resolution").len().iter_rows())
    assert res == {"1h": 4, "1m": 60 + 15, "15m": 3}
    by_hour = (b.with_columns(h=pl.col("ts").dt.truncate("1h"))
               .group_by("h").agg(pl.col("resolution").unique()))
    got = {r["h"]: sorted(r["resolution"]) for r in by_hour.iter_rows(named=True)}
    assert got[T0 + 4 * H] == ["1h"]  # 30 minutes of 1m do not replace the hour
    assert got[T0 + 3 * H] == ["15m", "1m"]
    # no gaps, no overlaps: each bar ends where the next begins, covering [T0, T0 + 6h)
    ends = b.select(e=pl.col("ts") + pl.duration(seconds=pl.col("dt_s")))["e"]
    assert (ends[:-1] == b["ts"][1:]).all()
    assert b["ts"][0] == T0 and ends[-1] == T0 + 6 * H
    assert b["dt_s"].sum() == 6 * 3600
    assert w.coverage.gaps.height == 0
    assert list(w.coverage.runs["resolution"]) == ["1h", "1m", "15m", "1h"]
    assert b.schema["ts"] == pl.Datetime("us") and b.schema["resolution"] == pl.Utf8
    assert b.schema["dt_s"] == pl.Int64


def test_in_window_flag_and_warmup(store: Store) -> None:
    mixed_store(store)
    w = load_window(store, event(), V, S)
    assert not w.bars.filter(pl.col("ts") < T0 + 2 * H)["in_window"].any()
    assert w.bars.filter(pl.col("ts") >= T0 + 2 * H)["in_window"].all()
    w2 = load_window(store, event(), V, S, include_warmup=False)
    assert w2.bars["ts"].min() == T0 + 2 * H and w2.bars["in_window"].all()


def test_mark_same_resolution_and_basis_carry(store: Store) -> None:
    mixed_store(store)
    b = load_window(store, event(), V, S).bars
    hour = b.filter(pl.col("resolution") == "1h")
    assert set(hour["mark_source"]) == {"mark"}
    assert (hour["mark_open"] == hour["open"] + 1).all()
    fine = b.filter(pl.col("ts").dt.truncate("1h") == T0 + 2 * H)
    assert set(fine["mark_source"]) == {"basis_carried"}
    # hour 2 basis: close +1, high +3, low -2 (mark vs last of the same hour)
    assert fine["mark_close"].to_list() == pytest.approx((fine["close"] + 1).to_list())
    assert fine["mark_open"].to_list() == pytest.approx((fine["open"] + 1).to_list())
    # the fine mark path reaches exactly the hour's mark extremes and never leaves them
    hour_mark = store.candles(V, S, "mark", "1h", T0 + 2 * H, T0 + 3 * H).row(0, named=True)
    assert fine["mark_high"].max() == pytest.approx(hour_mark["high"])
    assert fine["mark_low"].min() == pytest.approx(hour_mark["low"])
    assert (fine["mark_high"] >= fine[["mark_open", "mark_close"]].max_horizontal()).all()
    assert (fine["mark_low"] <= fine[["mark_open", "mark_close"]].min_horizontal()).all()
    w = load_window(store, event(), V, S)
    assert "mark_basis_carried" in w.assumptions and "last_as_mark" not in w.assumptions


def test_last_as_mark_without_mark_data(store: Store) -> None:
    fill(store, candles("1h", T0, 6))
    fill(store, funding(T0, 2), table="funding")
    w = load_window(store, event(), V, S)
    assert set(w.bars["mark_source"]) == {"last_as_mark"}
    assert (w.bars["mark_low"] == w.bars["low"]).all()
    assert "last_as_mark" in w.assumptions


def test_inconsistent_fine_bars_keep_the_coarse_bar(store: Store) -> None:
    m = candles("1m", T0 + 2 * H, 60, price=200, step=0.1)
    hour = hour_from_minutes(m).with_columns(high=pl.col("high") + 50)  # disagrees with its minutes
    fill(store, candles("1h", T0, 2), hour, candles("1h", T0 + 3 * H, 3), m)
    fill(store, funding(T0, 2), table="funding")
    w = load_window(store, event(), V, S)
    assert set(w.bars["resolution"]) == {"1h"} and w.bars.height == 6
    assert "2021-05-19 02:00" in w.assumptions["fine_bars_rejected_1h"]


def test_gap_is_a_user_error_naming_dataset_and_first_gap(store: Store) -> None:
    # hour 3 missing at 1h; only 20 minutes of 1m inside it
    fill(store, candles("1h", T0, 3), candles("1h", T0 + 4 * H, 2), candles("1m", T0 + 3 * H, 20))
    fill(store, funding(T0, 2), table="funding")
    with pytest.raises(UserError, match=r"candles binanceusdm BTCUSDT last: 1 gap\(s\) in tiny .* first "
                                        r"2021-05-19 03:20 -> 2021-05-19 04:00 \(40m\)"):
        load_window(store, event(), V, S)
    w = load_window(store, event(), V, S, allow_gaps=True)
    assert w.coverage.gaps.height == 1 and "gaps" in w.assumptions
    # the partial minutes are used where nothing coarser exists
    assert w.bars.filter(pl.col("resolution") == "1m").height == 20


def test_funding_inclusive_end_and_gaps(store: Store) -> None:
    fill(store, candles("1h", T0, 24))
    fill(store, funding(T0, 4), table="funding")  # 00, 08, 16, 24h
    ev = Event(id="day", title="d", start=T0, end=T0 + 24 * H, warmup=timedelta(0), peak=None,
               symbols=(S,), venues=(V,))
    w = load_window(store, ev, V, S)
    assert w.funding["ts"].to_list() == [T0, T0 + 8 * H, T0 + 16 * H, T0 + 24 * H]
    assert w.funding.columns == ["ts", "rate", "interval_h"]
    store.con.execute("DELETE FROM funding WHERE ts = ?", [T0 + 8 * H]).fetchall()
    with pytest.raises(UserError, match=r"funding binanceusdm BTCUSDT: 1 gap\(s\) .* first 2021-05-19 00:00"):
        load_window(store, ev, V, S)


def test_open_interest_finest_period_or_empty(store: Store) -> None:
    fill(store, candles("1h", T0, 6))
    fill(store, funding(T0, 2), table="funding")
    w = load_window(store, event(), V, S)
    assert w.open_interest.height == 0 and w.open_interest.columns == ["ts", "oi_base", "oi_quote"]
    assert "open_interest" in w.assumptions
    oi = pl.DataFrame({"venue": V, "symbol": S, "period": ["5m"] * 3 + ["1h"],
                       "ts": [T0, T0 + timedelta(minutes=5), T0 + timedelta(minutes=10), T0],
                       "oi_base": [1.0, 2.0, 3.0, 9.0], "oi_quote": [10.0, 20.0, 30.0, 90.0]})
    fill(store, oi, table="open_interest")
    w = load_window(store, event(), V, S)
    assert w.open_interest["oi_base"].to_list() == [1.0, 2.0, 3.0]


def test_empty_store_reports_the_whole_range(store: Store) -> None:
    with pytest.raises(UserError, match=r"last: 1 gap\(s\) in tiny.*\(6h\)"):
        load_window(store, event(), V, S)
    # a day without candles also lacks funding settlements
    with pytest.raises(UserError, match=r"last: 1 gap\(s\) \(and 1 in other datasets\) in tiny.*\(1d\)"):
        load_window(store, event(hours=24), V, S)


# -- the recorded archive --------------------------------------------------------------------

@pytest.fixture(scope="module")
def archive_store(archive_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Store:
    """A store with the BTC files the may2021 and oct2025 windows need (selective: fast)."""
    from loaders.archive import import_paths

    um = archive_dir / "binance-um"
    files = [um / "klines-1h/BTCUSDT-1h-perp.csv.gz", um / "klines-15m/BTCUSDT-15m-perp.csv.gz",
             um / "markprice-1h/BTCUSDT-markPrice-1h.csv.gz",
             *sorted((um / "klines-1m").glob("BTCUSDT-1m-2021-05-*")),
             *sorted((um / "klines-1m").glob("BTCUSDT-1m-2025-10-*")),
             *[um / f"funding/BTCUSDT-fundingRate-{m}.csv.gz"
               for m in ("2021-04", "2021-05", "2025-09", "2025-10")]]
    path = tmp_path_factory.mktemp("archive") / "market.duckdb"
    with Store(path) as st:
        report = import_paths(st, files)
        report.raise_for_failures()
        yield st


def runs(w) -> list[tuple[str, datetime, datetime, int]]:
    return [(r["resolution"], r["first_ts"], r["end_ts"], r["bars"])
            for r in w.coverage.runs.iter_rows(named=True)]


def test_may2021_real_archive(archive_store: Store) -> None:
    ev = load_catalog().get("may2021")
    w = load_window(archive_store, ev, V, S)
    d = datetime
    assert runs(w) == [
        ("1h", d(2021, 4, 10), d(2021, 5, 19), 936),
        ("1m", d(2021, 5, 19), d(2021, 5, 20), 1440),
        ("1h", d(2021, 5, 20), d(2021, 5, 23), 72),
        ("1m", d(2021, 5, 23), d(2021, 5, 24), 1440),
        ("1h", d(2021, 5, 24), d(2021, 5, 26), 48),
    ]
    assert w.coverage.gaps.height == 0
    b = w.bars
    crash = b.filter(pl.col("ts") == d(2021, 5, 19, 13, 10)).row(0, named=True)
    assert crash["low"] == 28688.0 and crash["resolution"] == "1m" and crash["in_window"]
    assert crash["taker_buy_volume"] is not None
    # the carried mark reproduces the hourly mark low (29,563.37) in the minute of the last-price low
    assert crash["mark_low"] == pytest.approx(29563.37, abs=0.01)
    hour13 = b.filter(pl.col("ts").dt.truncate("1h") == d(2021, 5, 19, 13))
    assert hour13["mark_low"].min() == crash["mark_low"]
    assert set(b.filter(pl.col("resolution") == "1h")["mark_source"]) == {"mark"}
    assert set(b.filter(pl.col("resolution") == "1m")["mark_source"]) == {"basis_carried"}
    # funding: every 8h settlement from load_start to end inclusive (46 days * 3 + 1)
    assert w.funding.height == 46 * 3 + 1
    f = w.funding.filter(pl.col("ts") == d(2021, 5, 19, 16))
    assert f["rate"][0] == pytest.approx(-0.000897, abs=5e-7)
    assert w.open_interest.height == 0 and "open_interest" in w.assumptions
    assert not b.filter(pl.col("ts") < ev.start)["in_window"].any()


def test_oct2025_real_archive(archive_store: Store) -> None:
    ev = load_catalog().get("oct2025")
    w = load_window(archive_store, ev, V, S)
    d = datetime
    assert runs(w) == [
        ("15m", d(2025, 9, 8), d(2025, 10, 10), 3072),
        ("1m", d(2025, 10, 10), d(2025, 10, 12), 2880),
        ("15m", d(2025, 10, 12), d(2025, 10, 14), 192),
    ]
    low = w.bars.sort("low").row(0, named=True)
    assert (low["ts"], low["low"]) == (d(2025, 10, 10, 21, 20), 101516.5)
    assert set(w.bars["mark_source"]) == {"basis_carried"}
    assert w.coverage.gaps.height == 0


def test_missing_warmup_in_real_archive_is_reported(archive_store: Store) -> None:
    """luna2022 funding was not imported into this store: the loader says so instead of returning less."""
    with pytest.raises(UserError, match=r"funding binanceusdm BTCUSDT: 1 gap\(s\) in luna2022"):
        load_window(archive_store, load_catalog().get("luna2022"), V, S)
