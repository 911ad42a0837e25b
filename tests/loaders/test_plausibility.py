"""Issue 14: implausible, mis-shaped, incomplete or oversized files fail with file:line, store nothing."""

from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path

import pytest

from loaders import formats
from loaders.archive import import_paths
from loaders.errors import InputError
from loaders.plausibility import RULES, rules_table, stated_period
from loaders.store import Store
from tests.loaders.test_archive import KLINE_HEADER, T0, body, counts, klines, write

FUNDING_HEADER = "calc_time,funding_interval_hours,last_funding_rate"
METRICS_HEADER = "create_time,symbol,sum_open_interest,sum_open_interest_value"
H = 3_600_000


def _fails(tmp_path: Path, path: Path, needle: str, line: int | None = None) -> None:
    db = tmp_path / "db" / "s.duckdb"
    with Store(db):
        pass
    before = counts(db)
    with Store(db) as s:
        report = import_paths(s, [path])
    (f,) = report.files
    assert f.status == "failed", f"{path.name} was {f.status}"
    assert needle in f.reason, f.reason
    assert "\n" not in f.reason
    if line is not None:
        assert f"{path}:{line}:" in f.reason, f.reason
    assert counts(db) == before  # nothing of the file stored


def _imports(tmp_path: Path, path: Path) -> list[str]:
    with Store(tmp_path / "db" / "ok.duckdb") as s:
        report = import_paths(s, [path])
    (f,) = report.files
    assert f.status == "imported", f.reason
    return f.warnings


def _kline_file(tmp_path: Path, lines: list[str], name: str = "BTCUSDT-1m-2021-05-19.csv") -> Path:
    return write(tmp_path / "arc/data/futures/um/daily/klines/BTCUSDT/1m" / name, body(KLINE_HEADER, *lines))


def _row(t: int, o: float, h: float, lo: float, c: float, vol: float = 10.0, buy: float = 4.0,
         step: int = 60_000) -> str:
    return f"{t},{o},{h},{lo},{c},{vol},{t + step - 1},{vol * c},7,{buy},{buy * c},0"


@pytest.mark.parametrize("rate,interval,needle", [
    ("5.0", "8", "funding rate 5.0 per 8 h is implausible (rule rate: |rate| x 8 h / interval <= 0.05)"),
    ("1e300", "8", "funding rate 1e+300"),
    ("0.0001", "1000000000", "funding interval 1000000000.0 h (rule interval: 0 < interval <= 24 h)"),
])
def test_implausible_funding_is_refused(tmp_path, rate, interval, needle):
    p = write(tmp_path / "arc/data/futures/um/monthly/fundingRate/BTCUSDT/BTCUSDT-fundingRate-2021-05.csv",
              body(FUNDING_HEADER, "1621382400004,8,0.0001", f"1621411200003,{interval},{rate}"))
    _fails(tmp_path, p, needle, line=3)


def test_taker_buy_above_volume_is_refused(tmp_path):
    rows = klines(3)
    rows[1] = _row(T0 + 60_000, 101.0, 102.5, 100.0, 101.5, vol=10.0, buy=100.0)
    _fails(tmp_path, _kline_file(tmp_path, rows), "taker_buy_volume 100.0 exceeds volume 10.0", line=3)


@pytest.mark.parametrize("o,h,lo,c,needle", [
    (101.0, 1e308, 100.0, 101.5, "price out of range"),
    (1e-300, 101.0, 1e-300, 100.5, "price out of range"),
    (101.0, 101_500.0, 100.0, 101.5, "1e+03x the previous bar's close"),
])
def test_prices_far_from_their_neighbours_are_refused(tmp_path, o, h, lo, c, needle):
    rows = klines(3)
    rows[1] = _row(T0 + 60_000, o, h, lo, c)
    _fails(tmp_path, _kline_file(tmp_path, rows), needle, line=3)


def test_a_wick_is_stored_with_a_warning(tmp_path):
    rows = klines(3)
    rows[1] = _row(T0 + 60_000, 101.0, 350.0, 100.0, 101.5)  # 3.5x: as ETHUSDT 1h printed in 2020
    (warning,) = _imports(tmp_path, _kline_file(tmp_path, rows))
    assert ":3: a price 3.48x the previous bar's close 100.5" in warning and "rule wick" in warning


def test_bars_off_the_grid_and_outside_the_period_are_refused(tmp_path):
    off = [_row(T0 + 30_000 + i * 60_000, 100.0, 101.0, 99.0, 100.5) for i in range(3)]
    _fails(tmp_path, _kline_file(tmp_path, off), "off the 1m grid (rule grid)", line=2)
    late = klines(3) + [_row(4_070_908_800_000, 100.0, 101.0, 99.0, 100.5)]  # 2099-01-01
    _fails(tmp_path, _kline_file(tmp_path, late), "outside the period 2021-05-19..2021-05-20", line=5)
    undated = tmp_path / "arc/binance-um/klines-1m/BTCUSDT-1m-perp.csv"
    write(undated, body(KLINE_HEADER, *late))
    _fails(tmp_path, undated, "is in the future", line=5)


def test_hourly_metrics_are_not_stored_as_5m(tmp_path):
    p = write(tmp_path / "arc/data/futures/um/daily/metrics/BTCUSDT/BTCUSDT-metrics-2021-05-19.csv",
              body(METRICS_HEADER, "2021-05-19 00:00:00,BTCUSDT,100,4300000",
                   "2021-05-19 01:00:00,BTCUSDT,101,4310000", "2021-05-19 02:00:00,BTCUSDT,101,4310000"))
    _fails(tmp_path, p, "open-interest rows are 1:00:00 apart, not 5 minutes", line=3)


@pytest.mark.parametrize("last,cut", [("1621411200003,8,-0.00089697", "1621411200003,8,-0.00089"),
                                      ("1621440000001,8,0.00010000", "1621440000001,8,0.0001")])
def test_a_plain_file_cut_inside_its_last_field_is_refused(tmp_path, last, cut):
    head = [FUNDING_HEADER, "1621382400004,8,0.00012345", "1621396800002,8,-0.00054321"]
    p = tmp_path / "arc/data/futures/um/monthly/fundingRate/BTCUSDT/BTCUSDT-fundingRate-2021-05.csv"
    p.parent.mkdir(parents=True)
    p.write_bytes("\n".join([*head, cut]).encode())  # no final newline: the file was cut
    _fails(tmp_path, p, "the last line has no newline and its column 3", line=4)
    p.write_bytes("\n".join([*head, last]).encode())  # whole, just no final newline (as Binance zips)
    assert _imports(tmp_path, p) == []


def test_a_candle_csv_cut_inside_its_volume_is_refused(tmp_path):
    rows = [f"2021-05-19T0{i}:00:00Z,100.5,101.25,99.75,100.125,66{i}2.683" for i in range(3)]
    p = tmp_path / "arc/binance-um/klines-1h/BTCUSDT-1h-perp.csv"
    p.parent.mkdir(parents=True)
    p.write_bytes("\n".join(["date,open,high,low,close,volume", *rows[:2], rows[2][:-7]]).encode())  # 6.0
    _fails(tmp_path, p, "its column 6 '6' does not look like the rows before it", line=4)


BITMEX = (b'{"timestamp":"2021-05-19T04:00:00.000Z","symbol":"XBTUSD","fundingInterval":'
          b'"2000-01-01T08:00:00.000Z","fundingRate":-0.0025}')


@pytest.mark.parametrize("content,needle", [
    (b"[" + BITMEX + b"]\n[" + BITMEX + b"]\n", "more content after the JSON array"),
    (b"[" + BITMEX + b"] trailing", "more content after the JSON array"),
    (b"[" + b"[" * 100_000 + b"]" * 100_000 + b"]", "JSON"),
])
def test_json_must_be_exactly_one_document(tmp_path, content, needle):
    p = write(tmp_path / "arc/bitmex/funding/XBTUSD-funding.json", content)
    _fails(tmp_path, p, needle)


def test_a_header_repeating_a_column_is_an_error(tmp_path):
    p = write(tmp_path / "arc/data/futures/um/daily/metrics/BTCUSDT/BTCUSDT-metrics-2021-05-19.csv",
              body(METRICS_HEADER + ",symbol", "2021-05-19 00:00:00,BTCUSDT,100,4300000,BTCUSDT"))
    _fails(tmp_path, p, "repeats the column 'symbol'", line=1)


def _zip_bytes(data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("BTCUSDT-1m-2021-05-19.csv", data)
    return buf.getvalue()


def _patch_zip(raw: bytes, *, flag: int | None = None, method: int | None = None) -> bytes:
    """Set the general-purpose flag / compression method in the local and central headers."""
    b = bytearray(raw)
    for sig, flag_at, method_at in ((b"PK\x03\x04", 6, 8), (b"PK\x01\x02", 8, 10)):
        i = b.find(sig)
        if flag is not None:
            b[i + flag_at:i + flag_at + 2] = flag.to_bytes(2, "little")
        if method is not None:
            b[i + method_at:i + method_at + 2] = method.to_bytes(2, "little")
    return bytes(b)


@pytest.mark.parametrize("patch,needle", [({"flag": 1}, "is encrypted"),
                                          ({"method": 99}, "zip compression not supported")])
def test_unreadable_zip_members_are_one_line_errors(tmp_path, patch, needle):
    raw = _patch_zip(_zip_bytes(body(KLINE_HEADER, *klines(3))), **patch)
    p = tmp_path / "arc/data/futures/um/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2021-05-19.zip"
    p.parent.mkdir(parents=True)
    p.write_bytes(raw)
    _fails(tmp_path, p, needle)


@pytest.mark.parametrize("suffix", [".csv.gz", ".zip"])
def test_a_decompression_bomb_stops_at_the_limit(tmp_path, monkeypatch, suffix):
    monkeypatch.setattr(formats, "MAX_CONTENT_BYTES", 1 << 20)
    line = _row(T0, 100.0, 101.0, 99.0, 100.5).encode() + b"\n"
    content = KLINE_HEADER.encode() + b"\n" + line * ((8 << 20) // len(line))  # 8 MiB of one kline
    p = tmp_path / f"arc/data/futures/um/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2021-05-19{suffix}"
    p.parent.mkdir(parents=True)
    p.write_bytes(gzip.compress(content, 1) if suffix == ".csv.gz" else _zip_bytes(content))
    assert p.stat().st_size < (1 << 20)
    _fails(tmp_path, p, "content larger than 1 MiB once decompressed")


def test_gzip_members_and_trailing_garbage(tmp_path):
    rows = klines(4)
    two = gzip.compress(body(KLINE_HEADER, *rows[:2]), mtime=0) + gzip.compress(body(*rows[2:]), mtime=0)
    p = tmp_path / "arc/binance-um/klines-1m/BTCUSDT-1m-perp.csv.gz"
    p.parent.mkdir(parents=True)
    p.write_bytes(two)
    assert _imports(tmp_path, p) == []  # concatenated members are one gzip file (RFC 1952)
    p.write_bytes(two + b"garbage")
    _fails(tmp_path, p, "truncated or corrupt gzip data")


def test_too_many_rows_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(formats, "MAX_ROWS", 10)
    _fails(tmp_path, _kline_file(tmp_path, klines(20)), "at most 10 rows per file")


def test_rules_are_documented_data():
    assert {r.action for r in RULES} == {"reject", "warn"}
    table = rules_table()
    assert all(r.bound in table for r in RULES)
    assert stated_period("BTCUSDT-1h-2021-05.zip")[1].month == 6
    assert stated_period("BTCUSDT-metrics-2021-12-31.csv")[1].year == 2022
    assert stated_period("BTCUSDT-1h-perp.csv.gz") is None


def test_decompress_keeps_real_files(tmp_path):
    data = body(KLINE_HEADER, *klines(5))
    assert formats.decompress(gzip.compress(data), "x.gz") == data
    assert formats.decompress(_zip_bytes(data), "x.zip") == data
    with pytest.raises(InputError, match="truncated or corrupt gzip"):
        formats.decompress(gzip.compress(data)[:-10], "x.gz")


def test_readme_lists_the_rules():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert rules_table() in readme, "regenerate the import-rules table in README.md"
