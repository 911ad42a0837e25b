"""Parsers and row checks of archive files: layouts, units, and one clear file:line error per bad input."""

from __future__ import annotations

import gzip
import io
import zipfile
from datetime import datetime

import polars as pl
import pytest

from loaders import formats
from loaders.errors import InputError

T0 = 1621382400000  # 2021-05-19 00:00 UTC in ms
HEADER = ",".join(formats.KLINE_HEADER)


def kline(
    t_ms: int,
    o: float = 100.0,
    h: float = 101.0,
    lo: float = 99.0,
    c: float = 100.5,
    v: float = 10.0,
    step_ms: int = 60_000,
) -> str:
    return f"{t_ms},{o},{h},{lo},{c},{v},{t_ms + step_ms - 1},{v * c},7,4.0,{4 * c},0"


def klines(n: int, step_ms: int = 60_000) -> list[str]:
    return [
        kline(T0 + i * step_ms, o=100 + i, h=102 + i, lo=99 + i, c=101 + i, step_ms=step_ms) for i in range(n)
    ]


def csv(*lines: str) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def parse(data: bytes, layout: formats.Layout | None = None) -> pl.DataFrame:
    layout = layout or formats.detect_layout(data)
    assert layout is not None
    return formats.parse(data, layout, "f.csv")


# -- layouts ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("first", "name"),
    [
        (HEADER, "klines"),
        (kline(T0), "klines"),
        ("date,open,high,low,close,volume", "candle_csv"),
        ("calc_time,funding_interval_hours,last_funding_rate", "funding_csv"),
        (
            "create_time,symbol,sum_open_interest,sum_open_interest_value,count_toptrader_long_short_ratio",
            "metrics",
        ),
        (",".join(formats.LIQUIDATION_HEADER), "liquidation_snapshot"),
    ],
)
def test_detect_layout(first: str, name: str) -> None:
    layout = formats.detect_layout(csv(first, kline(T0)))
    assert layout is not None and layout.name == name


@pytest.mark.parametrize("first", ["ticker,net_volume,net_notional_usd", "# README", "", "1,2,3"])
def test_unknown_layouts_are_none(first: str) -> None:
    assert formats.detect_layout(csv(first)) is None


def test_klines_with_and_without_header_parse_identically() -> None:
    rows = klines(5)
    a = parse(csv(*rows))
    b = parse(csv(HEADER, *rows))
    assert a.drop("_line").equals(b.drop("_line"))
    assert a["_line"].to_list() == [1, 2, 3, 4, 5] and b["_line"].to_list() == [2, 3, 4, 5, 6]
    assert a["ts"][0] == datetime(2021, 5, 19) and a["trades"][0] == 7
    assert a["taker_buy_quote_volume"][0] == pytest.approx(4 * 101)


def test_microsecond_timestamps_are_detected_by_magnitude() -> None:
    ms = parse(csv(*klines(3)))
    us_rows = [
        ",".join(
            [
                str(int(r.split(",")[0]) * 1000),
                *r.split(",")[1:6],
                str(int(r.split(",")[0]) * 1000 + 59_999_999),
                *r.split(",")[7:],
            ]
        )
        for r in klines(3)
    ]
    us = parse(csv(*us_rows))
    assert us["ts"].to_list() == ms["ts"].to_list()
    assert us["_span_us"].to_list() == ms["_span_us"].to_list() == [60_000_000] * 3


def test_candle_csv_iso_dates() -> None:
    f = parse(
        csv(
            "date,open,high,low,close,volume",
            "2021-05-19T00:00:00Z,1,2,0.5,1.5,3",
            "2021-05-19 01:00:00,1,2,0.5,1.5,3",
            "2021-05-19T04:00:00+02:00,1,2,0.5,1.5,0",
        )
    )
    assert f["ts"].to_list() == [datetime(2021, 5, 19, 0), datetime(2021, 5, 19, 1), datetime(2021, 5, 19, 2)]


def test_funding_floors_jitter_to_the_minute() -> None:
    f = parse(csv("calc_time,funding_interval_hours,last_funding_rate", "1577836800005,8,-0.00012359"))
    assert f.row(0, named=True) == {
        "_line": 2,
        "ts": datetime(2020, 1, 1),
        "rate": -0.00012359,
        "interval_h": 8.0,
    }


def test_metrics_and_liquidations() -> None:
    m = parse(
        csv(
            "create_time,symbol,sum_open_interest,sum_open_interest_value,count_toptrader_long_short_ratio",
            "2021-05-19 00:05:00,BTCUSDT,1000.5,43000000.1,",
        )
    )
    assert m.row(0, named=True) == {
        "_line": 2,
        "ts": datetime(2021, 5, 19, 0, 5),
        "symbol": "BTCUSDT",
        "oi_base": 1000.5,
        "oi_quote": 43000000.1,
    }
    liq = parse(
        csv(",".join(formats.LIQUIDATION_HEADER), f"{T0},SELL,LIMIT,IOC,0.5,40000,39990,FILLED,0.5,0.5")
    )
    r = liq.row(0, named=True)
    assert (r["side"], r["qty"], r["filled_qty"], r["status"]) == ("sell", 0.5, 0.5, "FILLED")
    assert r["quote_qty"] == pytest.approx(39990 * 0.5)


def test_bitmex_json_records_carry_their_line() -> None:
    text = (
        '[\n\t{"timestamp":"2021-01-01T04:00:00.000Z","symbol":"XBTUSD",'
        '"fundingInterval":"2000-01-01T08:00:00.000Z","fundingRate":0.0001},\n'
        '   {\n      "timestamp":"2021-01-01T12:00:00.000Z",\n      "symbol":"XBTUSD",\n'
        '      "fundingInterval":"2000-01-01T08:00:00.000Z",\n      "fundingRate":-0.0025\n   }\n]\n'
    )
    f = parse(text.encode())
    assert f["_line"].to_list() == [2, 3]
    assert f["interval_h"].to_list() == [8.0, 8.0] and f["rate"].to_list() == [0.0001, -0.0025]
    assert f["ts"].to_list() == [datetime(2021, 1, 1, 4), datetime(2021, 1, 1, 12)]


# -- bad input: each names the file and the 1-based line ---------------------------------------
GOOD = klines(3)
BAD_CASES = {
    "column count": (csv(GOOD[0], GOOD[1], "1,2,3"), 3, "expected 12 comma-separated columns, found 3"),
    "non-numeric": (csv(GOOD[0], GOOD[1].replace(",103,", ",abc,", 1)), 2, "'abc', not a number"),
    "empty field": (csv(GOOD[0], GOOD[1].replace(",103,", ",,", 1)), 2, "not a number"),
    "nan price": (csv(GOOD[0], kline(T0 + 60_000, c=float("nan"))), 2, "close is nan"),
    "inf price": (csv(kline(T0, h=float("inf"))), 1, "high is inf"),
    "zero price": (
        csv(GOOD[0], GOOD[1], kline(T0 + 120_000, lo=0.0)),
        3,
        "low is 0.0; prices must be finite and > 0",
    ),
    "negative price": (csv(kline(T0, o=-1.0)), 1, "open is -1.0"),
    "high below close": (csv(GOOD[0], kline(T0 + 60_000, c=105.0)), 2, "OHLC out of order"),
    "low above open": (csv(kline(T0, lo=100.2)), 1, "OHLC out of order"),
    "negative volume": (csv(GOOD[0], kline(T0 + 60_000, v=-3.0)), 2, "volume is -3.0"),
    "integer time": (csv(GOOD[0].replace(str(T0), "1.6e12", 1)), 1, "open_time is '1.6e12', not an integer"),
    "time out of range": (csv(kline(12345)), 1, "outside 2009..2100"),
    "wrong header": (csv(HEADER.replace("volume", "vol", 1), *GOOD), 1, "wrong header"),
    "blank line inside": (csv(GOOD[0], "", GOOD[2]), 2, "found 1"),
}


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_klines(case: str) -> None:
    data, line, msg = BAD_CASES[case]
    layout = formats.KLINES if case == "wrong header" else formats.KLINES_NO_HEADER
    with pytest.raises(InputError) as exc:
        formats.parse(data, layout, "bad.csv")
    assert exc.value.line == line
    assert str(exc.value).startswith(f"bad.csv:{line}: ")
    assert msg in str(exc.value)


@pytest.mark.parametrize(
    ("data", "layout", "line", "msg"),
    [
        (
            csv("calc_time,funding_interval_hours,last_funding_rate", "1577836800000,8,nan"),
            formats.FUNDING_CSV,
            2,
            "must be finite",
        ),
        (
            csv("calc_time,funding_interval_hours,last_funding_rate", "1577836800000,0,0.1"),
            formats.FUNDING_CSV,
            2,
            "funding_interval_hours is 0.0",
        ),
        (
            csv("date,open,high,low,close,volume", "2021-13-45T00:00:00Z,1,2,0.5,1.5,3"),
            formats.CANDLE_CSV,
            2,
            "not a timestamp",
        ),
        (
            csv(",".join(formats.LIQUIDATION_HEADER), f"{T0},LONG,LIMIT,IOC,0.5,40000,39990,FILLED,0.5,0.5"),
            formats.LIQUIDATIONS,
            2,
            "side is 'long'",
        ),
        (csv("date,open,high,low,close,volume"), formats.CANDLE_CSV, None, "header but no data rows"),
        (
            b'[\n{"timestamp": "2021-01-01T04:00:00Z", "symbol": "XBTUSD"}\n]',
            formats.BITMEX_FUNDING,
            2,
            "needs the fields",
        ),
        (b'[\n{"timestamp": \n', formats.BITMEX_FUNDING, 3, "invalid JSON"),
    ],
)
def test_bad_other_layouts(data: bytes, layout: formats.Layout, line: int | None, msg: str) -> None:
    with pytest.raises(InputError) as exc:
        formats.parse(data, layout, "bad.csv")
    assert exc.value.line == line and msg in str(exc.value)


def test_truncated_gzip_says_how_far_it_got() -> None:
    blob = gzip.compress(csv(*klines(2000)))
    with pytest.raises(
        InputError, match=r"f\.csv\.gz: truncated or corrupt gzip data after \d+ complete line"
    ):
        formats.decompress(blob[: len(blob) // 2], "f.csv.gz")


def test_corrupt_gzip_and_zip() -> None:
    blob = bytearray(gzip.compress(csv(*klines(50))))
    blob[20:40] = b"\x00" * 20
    with pytest.raises(InputError, match="corrupt gzip"):
        formats.decompress(bytes(blob), "f.csv.gz")
    with pytest.raises(InputError, match="corrupt zip"):
        formats.decompress(b"PK\x03\x04 this is not a zip", "f.zip")


def test_zip_must_hold_one_member() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a.csv", "1")
        zf.writestr("b.csv", "2")
    with pytest.raises(InputError, match="exactly one CSV file; it holds a.csv, b.csv"):
        formats.decompress(buf.getvalue(), "f.zip")
    one = io.BytesIO()
    with zipfile.ZipFile(one, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.csv", csv(*GOOD))
    assert formats.decompress(one.getvalue(), "f.zip") == csv(*GOOD)


# -- row-set checks ---------------------------------------------------------------------------
def test_identical_duplicates_dropped_and_counted() -> None:
    f = parse(csv(GOOD[0], GOOD[1], GOOD[1], GOOD[2], GOOD[2]))
    out, dropped = formats.drop_duplicates(f, ["ts"], "f.csv")
    assert dropped == 2 and out["_line"].to_list() == [1, 2, 4]


def test_duplicate_with_other_values_names_both_lines() -> None:
    f = parse(csv(GOOD[0], GOOD[1], kline(T0 + 60_000, c=101.9, h=103, o=101, lo=100), GOOD[2]))
    with pytest.raises(InputError) as exc:
        formats.drop_duplicates(f, ["ts"], "f.csv")
    assert exc.value.line == 3 and "also appears on line 2 with different values" in str(exc.value)


def test_out_of_order_rows() -> None:
    f = parse(csv(GOOD[0], GOOD[2], GOOD[1]))
    with pytest.raises(InputError) as exc:
        formats.drop_duplicates(f, ["ts"], "f.csv")
    assert exc.value.line == 3 and "on line 2; rows must be in time order" in str(exc.value)


def test_liquidations_may_share_a_timestamp() -> None:
    liq = parse(
        csv(
            ",".join(formats.LIQUIDATION_HEADER),
            f"{T0},SELL,LIMIT,IOC,0.5,40000,39990,FILLED,0.5,0.5",
            f"{T0},SELL,LIMIT,IOC,0.7,40000,39990,FILLED,0.7,0.7",
        )
    )
    out, dropped = formats.drop_duplicates(
        liq, ["ts", "side", "price", "qty"], "f.csv", strictly_increasing=False
    )
    assert out.height == 2 and dropped == 0


def test_timeframe_inferred_and_checked() -> None:
    hourly = parse(csv(*klines(4, step_ms=3_600_000)))
    assert formats.check_timeframe(hourly, "f.csv", None) == "1h"
    assert formats.check_timeframe(hourly, "f.csv", "1h") == "1h"
    with pytest.raises(InputError, match="rows are 1h apart but the timeframe is 15m"):
        formats.check_timeframe(hourly, "f.csv", "15m")
    with pytest.raises(InputError, match="1h after line 1, not a multiple of the 4h timeframe"):
        formats.check_timeframe(hourly, "f.csv", "4h")
    gappy = parse(csv(kline(T0), kline(T0 + 60_000), kline(T0 + 300_000), kline(T0 + 330_000)))
    with pytest.raises(InputError) as exc:
        formats.check_timeframe(gappy, "f.csv", None)
    assert exc.value.line == 4 and "30s" in str(exc.value)
    single = parse(csv(kline(T0, step_ms=900_000)))
    assert formats.check_timeframe(single, "f.csv", None) == "15m"
    with pytest.raises(InputError, match="candle spans 15m but the timeframe is 1h"):
        formats.check_timeframe(single, "f.csv", "1h")
