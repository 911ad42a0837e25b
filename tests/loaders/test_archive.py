"""Archive import: dataset inference on both layouts, checksums, conflicts, idempotence, the real archive."""

from __future__ import annotations

import gzip
import hashlib
import io
import subprocess
import sys
import zipfile
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from loaders.archive import ImportReport, Inferred, import_paths, infer_dataset
from loaders.errors import ChecksumError, ConflictError, InputError, StoreLockedError, UserError
from loaders.store import Store

T0 = 1621382400000  # 2021-05-19 00:00 UTC
KLINE_HEADER = (
    "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,"
    "taker_buy_quote_volume,ignore"
)
TABLES = ("candles", "funding", "open_interest", "liquidations", "ingest_log")


def klines(n: int, step_ms: int = 60_000, start: int = T0, bump: float = 0.0) -> list[str]:
    out = []
    for i in range(n):
        t = start + i * step_ms
        o, c = 100.0 + i, 100.5 + i + bump
        out.append(f"{t},{o},{c + 1},{o - 1},{c},10.0,{t + step_ms - 1},{10 * c},7,4.0,{4 * c},0")
    return out


def body(*lines: str) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    elif path.suffix == ".zip":
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(path.stem + ".csv", data)
        data = buf.getvalue()
    path.write_bytes(data)
    return path


def counts(db: Path) -> dict[str, int]:
    with Store(db) as s:
        return {t: int(s.query(f"SELECT count(*) AS n FROM {t}")["n"][0]) for t in TABLES}


def run(db: Path, *paths: Path, **kw: object) -> ImportReport:
    with Store(db) as store:
        return import_paths(store, list(paths), **kw)


# -- inference --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("rel", "expected"),
    [
        (
            "binance-um/klines-1h/BTCUSDT-1h-perp.csv.gz",
            Inferred("candles", "binanceusdm", "BTCUSDT", "last", "1h"),
        ),
        (
            "binance-um/klines-15m/ETHUSDT-15m-perp.csv.gz",
            Inferred("candles", "binanceusdm", "ETHUSDT", "last", "15m"),
        ),
        (
            "binance-um/klines-1m/BTCUSDT-1m-2021-05-19.csv.gz",
            Inferred("candles", "binanceusdm", "BTCUSDT", "last", "1m"),
        ),
        (
            "binance-um/markprice-1h/BTCUSDT-markPrice-1h.csv.gz",
            Inferred("candles", "binanceusdm", "BTCUSDT", "mark", "1h"),
        ),
        (
            "binance-spot/klines-1h/BTCUSDT-1h-spot.csv.gz",
            Inferred("candles", "binance", "BTCUSDT", "spot", "1h"),
        ),
        (
            "binance-um/funding/BTCUSDT-fundingRate-2021-05.csv.gz",
            Inferred("funding", "binanceusdm", "BTCUSDT"),
        ),
        ("bitmex/funding/XBTUSD-funding.json.gz", Inferred("funding", "bitmex", "XBTUSD")),
        (
            "data/futures/um/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2021-05.zip",
            Inferred("candles", "binanceusdm", "BTCUSDT", "last", "1m"),
        ),
        (
            "data/futures/um/daily/klines/ETHUSDT/15m/ETHUSDT-15m-2021-05-19.zip",
            Inferred("candles", "binanceusdm", "ETHUSDT", "last", "15m"),
        ),
        (
            "data/futures/um/monthly/markPriceKlines/BTCUSDT/1h/BTCUSDT-1h-2021-05.zip",
            Inferred("candles", "binanceusdm", "BTCUSDT", "mark", "1h"),
        ),
        (
            "data/futures/um/daily/indexPriceKlines/BTCUSDT/1m/BTCUSDT-1m-2021-05-19.zip",
            Inferred("candles", "binanceusdm", "BTCUSDT", "index", "1m"),
        ),
        (
            "data/futures/um/monthly/fundingRate/BTCUSDT/BTCUSDT-fundingRate-2021-05.zip",
            Inferred("funding", "binanceusdm", "BTCUSDT"),
        ),
        (
            "data/futures/um/daily/metrics/BTCUSDT/BTCUSDT-metrics-2021-05-19.zip",
            Inferred("open_interest", "binanceusdm", "BTCUSDT"),
        ),
        (
            "data/futures/um/daily/liquidationSnapshot/BTCUSDT/BTCUSDT-liquidationSnapshot-2021-05-19.zip",
            Inferred("liquidations", "binanceusdm", "BTCUSDT"),
        ),
        (
            "data/spot/monthly/klines/BTCUSDT/1h/BTCUSDT-1h-2025-02.zip",
            Inferred("candles", "binance", "BTCUSDT", "spot", "1h"),
        ),
        (
            "data/futures/cm/daily/klines/BTCUSD_PERP/1m/BTCUSD_PERP-1m-2021-05-19.zip",
            Inferred("candles", "binancecoinm", "BTCUSD_PERP", "last", "1m"),
        ),
        ("somewhere/prices.csv", Inferred()),
        ("BTCUSDT-1m-2021-05-19.csv", Inferred("candles", None, "BTCUSDT", None, "1m")),
    ],
)
def test_infer_dataset(rel: str, expected: Inferred) -> None:
    assert infer_dataset(Path("/mirror") / rel) == expected


def test_infer_dataset_names_disagreement() -> None:
    with pytest.raises(InputError, match=r"timeframe '1h' \(timeframe folder\).*'15m'|timeframe '15m'.*'1h'"):
        infer_dataset(Path("/m/data/futures/um/daily/klines/BTCUSDT/1h/BTCUSDT-15m-2021-05-19.zip"))
    with pytest.raises(InputError, match="symbol"):
        infer_dataset(Path("/m/data/futures/um/daily/klines/ETHUSDT/1m/BTCUSDT-1m-2021-05-19.zip"))


# -- formats and containers -------------------------------------------------------------------
def test_plain_gz_zip_and_header_variants_store_the_same_rows(tmp_path: Path) -> None:
    rows = klines(30)
    stored = []
    for i, (name, data) in enumerate(
        [
            ("BTCUSDT-1m-2021-05-19.csv", body(*rows)),
            ("BTCUSDT-1m-2021-05-19.csv.gz", body(KLINE_HEADER, *rows)),
            ("BTCUSDT-1m-2021-05-19.zip", body(*rows)),
            ("BTCUSDT-1m-2021-05-19.zip", body(KLINE_HEADER, *rows)),
        ]
    ):
        f = write(tmp_path / f"v{i}" / "data/futures/um/daily/klines/BTCUSDT/1m" / name, data)
        db = tmp_path / f"v{i}.duckdb"
        report = run(db, f)
        assert [(r.status, r.dataset, r.rows, r.new_rows) for r in report.files] == [
            ("imported", "binanceusdm/BTCUSDT/last/1m", 30, 30)
        ]
        with Store(db) as s:
            stored.append(s.candles("binanceusdm", "BTCUSDT", "last", "1m"))
    assert all(s.equals(stored[0]) for s in stored)
    assert stored[0]["ts"][0] == datetime(2021, 5, 19) and stored[0]["trades"][0] == 7


def test_funding_metrics_liquidations_and_bitmex(tmp_path: Path) -> None:
    root, dbs = tmp_path / "arc", tmp_path / "db"
    vision = root / "data/futures/um"
    write(
        vision / "monthly/fundingRate/BTCUSDT/BTCUSDT-fundingRate-2021-05.zip",
        body(
            "calc_time,funding_interval_hours,last_funding_rate",
            "1621382400004,8,0.0001",
            "1621411200003,8,-0.0004",
        ),
    )
    write(
        vision / "daily/metrics/BTCUSDT/BTCUSDT-metrics-2021-05-19.zip",
        body(
            "create_time,symbol,sum_open_interest,sum_open_interest_value,count_toptrader_long_short_ratio,"
            "sum_toptrader_long_short_ratio,count_long_short_ratio,sum_taker_long_short_vol_ratio",
            "2021-05-19 00:00:00,BTCUSDT,100.5,4300000,1.1,1.2,1.3,0.9",
            "2021-05-19 00:05:00,BTCUSDT,101.5,4310000,,,,",
        ),
    )
    write(
        vision / "daily/liquidationSnapshot/BTCUSDT/BTCUSDT-liquidationSnapshot-2021-05-19.zip",
        body(
            "time,side,order_type,time_in_force,original_quantity,price,average_price,order_status,"
            "last_fill_quantity,accumulated_fill_quantity",
            f"{T0 + 5},SELL,LIMIT,IOC,0.5,40000,39990,FILLED,0.5,0.5",
            f"{T0 + 5},BUY,LIMIT,IOC,0.2,41000,41010,FILLED,0.2,0.2",
        ),
    )
    write(
        root / "bitmex/funding/XBTUSD-funding.json.gz",
        b'[{"timestamp":"2021-05-19T04:00:00.000Z","symbol":"XBTUSD","fundingInterval":'
        b'"2000-01-01T08:00:00.000Z","fundingRate":-0.0025},\n'
        b'{"timestamp":"2021-05-19T04:00:00.000Z","symbol":"XBTUSD","fundingInterval":'
        b'"2000-01-01T08:00:00.000Z","fundingRate":-0.0025}]',
    )
    db = dbs / "s.duckdb"
    report = run(db, root)
    got = {r.dataset: (r.status, r.rows, r.duplicates) for r in report.files}
    assert got == {
        "binanceusdm/BTCUSDT/funding": ("imported", 2, 0),
        "binanceusdm/BTCUSDT/open_interest/5m": ("imported", 2, 0),
        "binanceusdm/BTCUSDT/liquidations": ("imported", 2, 0),
        "bitmex/XBTUSD/funding": ("imported", 1, 1),
    }
    with Store(db) as s:
        assert s.funding("binanceusdm", "BTCUSDT")["ts"].to_list() == [
            datetime(2021, 5, 19, 0),
            datetime(2021, 5, 19, 8),
        ]
        assert s.funding("bitmex", "XBTUSD").select("ts", "rate", "interval_h").rows() == [
            (datetime(2021, 5, 19, 4), -0.0025, 8.0)
        ]
        oi = s.open_interest("binanceusdm", "BTCUSDT")
        assert oi.select("period", "oi_base", "oi_quote").rows() == [
            ("5m", 100.5, 4300000.0),
            ("5m", 101.5, 4310000.0),
        ]
        liq = s.query("SELECT side, qty, quote_qty FROM liquidations ORDER BY side")
        assert liq.rows() == [
            ("buy", 0.2, pytest.approx(0.2 * 41010)),
            ("sell", 0.5, pytest.approx(0.5 * 39990)),
        ]


def test_overrides_and_missing_dataset(tmp_path: Path) -> None:
    f = write(
        tmp_path / "prices.csv",
        body(
            "date,open,high,low,close,volume",
            "2021-05-19T00:00:00Z,1,2,0.5,1.5,3",
            "2021-05-19T04:00:00Z,1,2,0.5,1.5,3",
        ),
    )
    report = run(tmp_path / "a.duckdb", f)
    assert report.files[0].status == "failed"
    assert (
        "cannot infer the venue, symbol, price_type from the path; pass --venue and --symbol and --price-type"
        in report.files[0].reason
    )
    report = run(
        tmp_path / "a.duckdb", f, overrides={"venue": "okx", "symbol": "BTC-USDT-SWAP", "price_type": "last"}
    )
    assert report.files[0].dataset == "okx/BTC-USDT-SWAP/last/4h"
    # An override beats the path, but not the timestamps.
    g = write(tmp_path / "binance-um/klines-1h/BTCUSDT-1h-perp.csv", body(*klines(3, step_ms=3_600_000)))
    report = run(tmp_path / "b.duckdb", g, overrides={"venue": "bybit", "timeframe": "4h"})
    assert (
        report.files[0].status == "failed" and "not a multiple of the 4h timeframe" in report.files[0].reason
    )
    report = run(tmp_path / "b.duckdb", g, overrides={"venue": "bybit"})
    assert report.files[0].dataset == "bybit/BTCUSDT/last/1h"


def test_unsupported_files_skipped_in_folders_but_fail_when_named(tmp_path: Path) -> None:
    root, dbs = tmp_path / "arc", tmp_path / "db"
    good = write(root / "binance-um/klines-1m/BTCUSDT-1m-2021-05-19.csv.gz", body(*klines(5)))
    adl = write(root / "hyperliquid/adl.csv.gz", body("ticker,net_volume", "BTC,1.0"))
    (root / "README.md").write_text("# hi\n")
    report = run(dbs / "s.duckdb", root)
    by = {r.path.name: (r.status, r.reason) for r in report.files}
    assert by[good.name][0] == "imported"
    assert by[adl.name] == ("skipped", "unrecognised layout (first line 'ticker,net_volume')")
    assert by["README.md"][0] == "skipped" and not report.failures
    report = run(root / "s.duckdb", adl)
    assert report.files[0].status == "failed" and "unsupported file" in report.files[0].reason
    with pytest.raises(InputError, match="adl.csv.gz: unsupported file"):
        report.raise_for_failures()


def test_wrong_header_for_the_path_is_an_error(tmp_path: Path) -> None:
    root, dbs = tmp_path / "arc", tmp_path / "db"
    f = write(
        root / "binance-um/funding/BTCUSDT-fundingRate-2021-05.csv",
        body("calc_time,interval,rate", "1621382400004,8,0.0001"),
    )
    report = run(dbs / "s.duckdb", root)
    assert report.files[0].status == "failed"
    assert f"{f}:1: wrong header 'calc_time,interval,rate'" in report.files[0].reason
    g = write(root / "binance-um/funding/ETHUSDT-fundingRate-2021-05.csv", body(*klines(2)))
    report = run(root / "s.duckdb", g)
    assert "the path says funding but the content is 12-column Binance klines" in report.files[0].reason


# -- checksums --------------------------------------------------------------------------------
def test_sha256sums_in_a_parent_folder(tmp_path: Path) -> None:
    root, dbs = tmp_path / "arc", tmp_path / "db"
    f = write(root / "binance-um/klines-1m/BTCUSDT-1m-2021-05-19.csv.gz", body(*klines(5)))
    digest = hashlib.sha256(f.read_bytes()).hexdigest()
    (root / "SHA256SUMS").write_text(f"{digest}  ./binance-um/klines-1m/{f.name}\n")
    report = run(root / "ok.duckdb", root)
    assert report.files[1].status == "imported" and report.files[1].verified == [str(root / "SHA256SUMS")]
    (root / "SHA256SUMS").write_text("# comment\n" + "0" * 64 + f"  ./binance-um/klines-1m/{f.name}\n")
    db = dbs / "bad.duckdb"
    before = counts(db)
    report = run(db, root)
    [bad] = report.failures
    assert (
        isinstance(bad.error, ChecksumError)
        and "SHA256SUMS:2" in bad.reason
        and "does not match" in bad.reason
    )
    assert counts(db) == before
    assert run(db, root, verify=False).files[1].status == "imported"
    # A named file is checked against SHA256SUMS further up too.
    assert isinstance(run(root / "c.duckdb", f).files[0].error, ChecksumError)


def test_checksum_sidecar(tmp_path: Path) -> None:
    root, dbs = tmp_path / "arc", tmp_path / "db"
    f = write(root / "data/futures/um/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2021-05-19.zip", body(*klines(5)))
    sidecar = f.with_name(f.name + ".CHECKSUM")
    sidecar.write_text(f"{hashlib.sha256(f.read_bytes()).hexdigest()}  {f.name}\n")
    assert run(dbs / "a.duckdb", f).files[0].verified == [str(sidecar)]
    sidecar.write_text(f"{'ab' * 32}  {f.name}\n")
    db = dbs / "b.duckdb"
    report = run(db, root)
    assert [r.status for r in report.files] == ["failed", "skipped"]
    assert isinstance(report.files[0].error, ChecksumError) and counts(db)["candles"] == 0


# -- store writes -----------------------------------------------------------------------------
def test_conflicts_unchanged_and_replace(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    a = write(tmp_path / "a/binance-um/klines-1m/BTCUSDT-1m-2021-05-19.csv", body(*klines(10)))
    assert run(db, a).files[0].new_rows == 10
    again = run(db, a).files[0]
    assert (again.status, again.rows, again.new_rows) == ("unchanged", 10, 0)
    # Same rows in another file (e.g. a gz copy): imported, nothing new.
    copy = write(tmp_path / "b/binance-um/klines-1m/BTCUSDT-1m-2021-05-19.csv.gz", body(*klines(12)))
    assert (run(db, copy).files[0].new_rows, counts(db)["candles"]) == (2, 12)
    # A file disagreeing with stored rows fails and changes nothing; --replace overwrites.
    changed = write(
        tmp_path / "c/binance-um/klines-1m/BTCUSDT-1m-2021-05-19.csv", body(*klines(14, bump=0.25))
    )
    before = counts(db)
    report = run(db, changed, a)
    assert [r.status for r in report.files] == ["failed", "unchanged"]
    assert isinstance(report.files[0].error, ConflictError)
    assert f"{changed}:1: " in report.files[0].reason and "--replace" in report.files[0].reason
    assert counts(db) == before
    with pytest.raises(ConflictError):
        report.raise_for_failures()
    replaced = run(db, changed, replace=True).files[0]
    assert (replaced.status, replaced.new_rows) == ("imported", 2)
    with Store(db) as s:
        assert s.candles("binanceusdm", "BTCUSDT", "last", "1m")["close"][0] == 100.75


def test_bad_file_among_good_ones(tmp_path: Path) -> None:
    root, dbs = tmp_path / "arc", tmp_path / "db"
    write(root / "binance-um/klines-1m/BTCUSDT-1m-2021-05-19.csv", body(*klines(5)))
    bad = write(
        root / "binance-um/klines-1m/BTCUSDT-1m-2021-05-20.csv",
        body(*klines(4, start=T0 + 86_400_000), "1621555200000,1,2,3"),
    )
    gz = write(
        root / "binance-um/klines-1m/BTCUSDT-1m-2021-05-21.csv.gz",
        body(*klines(1000, start=T0 + 2 * 86_400_000)),
    )
    gz.write_bytes(gz.read_bytes()[:-200])
    report = run(dbs / "s.duckdb", root)
    assert [r.status for r in report.files] == ["imported", "failed", "failed"]
    assert report.files[1].reason == f"{bad}:5: expected 12 comma-separated columns, found 4"
    assert "truncated or corrupt gzip" in report.files[2].reason
    assert counts(dbs / "s.duckdb")["candles"] == 5
    with pytest.raises(UserError, match="2 of 3 files failed; first: "):
        report.raise_for_failures()


LOCK_HOLDER = """
import sys, time
from loaders.store import Store
s = Store(sys.argv[1])
print("locked", flush=True)
sys.stdin.readline()
"""


def test_locked_store(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    Store(db).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(StoreLockedError, match="locked by another process"):
            Store(db)
    finally:
        holder.communicate("\n", timeout=30)


# -- the recorded archive ---------------------------------------------------------------------
def _tables(db: Path) -> dict[str, pl.DataFrame]:
    with Store(db) as s:
        return {
            t: s.query(f"SELECT * FROM {t} ORDER BY ALL")
            for t in ("candles", "funding", "open_interest", "liquidations")
        }


def _same(a: dict[str, pl.DataFrame], b: dict[str, pl.DataFrame]) -> bool:
    return a.keys() == b.keys() and all(a[k].equals(b[k]) for k in a)


def test_real_archive_imports_and_reimports_identically(archive_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "archive.duckdb"
    first = run(db, archive_dir)
    assert not first.failures, [f.reason for f in first.failures]
    skipped = sorted(r.path.name for r in first.having("skipped"))
    assert skipped == [
        "README.md",
        "SHA256SUMS",
        "adl_by_coin_REALTIME.csv.gz",
        "adl_net_volume_full_12min.csv.gz",
    ]
    assert all(r.verified for r in first.having("imported"))  # every data file is in SHA256SUMS
    bitmex = [r for r in first.files if r.dataset == "bitmex/XBTUSD/funding"]
    assert [(r.rows, r.duplicates) for r in bitmex] == [(1255, 2)]  # 1,257 records, 2 exact duplicates
    tables = _tables(db)
    with Store(db) as s:
        n = {
            (r[0], r[1], r[2], r[3]): r[4]
            for r in s.query(
                "SELECT venue, symbol, price_type, timeframe, count(*) FROM candles GROUP BY ALL"
            ).rows()
        }
        funding = dict(s.query("SELECT venue || '/' || symbol, count(*) FROM funding GROUP BY ALL").rows())
    # Row counts as documented in shared/data/README.md.
    assert n[("binanceusdm", "BTCUSDT", "last", "1h")] == 58_623
    assert n[("binanceusdm", "ETHUSDT", "last", "1h")] == 56_713
    assert n[("binanceusdm", "BTCUSDT", "last", "15m")] == 102_784
    assert n[("binanceusdm", "BTCUSDT", "last", "1m")] == 14_400
    assert n[("binanceusdm", "BTCUSDT", "mark", "1h")] == 56_084
    assert n[("binance", "BTCUSDT", "spot", "1h")] == 73_264
    assert funding == {"binanceusdm/BTCUSDT": 7_119, "binanceusdm/ETHUSDT": 7_119, "bitmex/XBTUSD": 1_255}

    second = run(db, archive_dir)
    assert {r.status for r in second.files} == {"unchanged", "skipped"}
    assert second.new_rows == 0 and _same(_tables(db), tables)
    # Re-parsing and re-writing (no ingest-log shortcut) must change nothing either.
    third = run(db, archive_dir / "binance-um" / "klines-1m", archive_dir / "bitmex", replace=True)
    assert {r.status for r in third.files} == {"imported"} and third.new_rows == 0
    assert _same(_tables(db), tables)
