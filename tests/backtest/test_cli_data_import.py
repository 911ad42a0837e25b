"""``backtest data import`` and ``backtest data status`` end to end through the CLI entry point."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from backtest.cli import main
from loaders.store import Store

T0 = 1621382400000  # 2021-05-19 00:00 UTC
REPO = Path(__file__).resolve().parents[2]


def klines(n: int, step_ms: int = 60_000, start: int = T0) -> bytes:
    out = []
    for i in range(n):
        t = start + i * step_ms
        o, c = 100.0 + i, 100.5 + i
        out.append(f"{t},{o},{c + 1},{o - 1},{c},10.0,{t + step_ms - 1},{10 * c},7,4.0,{4 * c},0")
    return ("\n".join(out) + "\n").encode()


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        main(list(argv))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def counts(db: Path) -> dict[str, int]:
    with Store(db) as s:
        return {
            t: int(s.query(f"SELECT count(*) AS n FROM {t}")["n"][0])
            for t in ("candles", "funding", "open_interest", "liquidations", "ingest_log")
        }


@pytest.fixture()
def archive(tmp_path: Path) -> Path:
    root = tmp_path / "arc"
    day = root / "binance-um" / "klines-1m" / "BTCUSDT-1m-2021-05-19.csv.gz"
    day.parent.mkdir(parents=True)
    day.write_bytes(gzip.compress(klines(120)))
    funding = root / "binance-um" / "funding" / "BTCUSDT-fundingRate-2021-05.csv"
    funding.parent.mkdir(parents=True)
    funding.write_text(
        "calc_time,funding_interval_hours,last_funding_rate\n1621382400004,8,0.0001\n"
        "1621411200003,8,-0.0004\n"
    )
    (root / "notes.txt").write_text("not data\n")
    return root


def test_import_json_report_and_rerun(
    archive: Path, db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(
        capsys, "data", "import", str(archive), "--db", str(db_path), "--format", "json", "-q"
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["totals"] == {
        "imported": 2,
        "unchanged": 0,
        "skipped": 1,
        "failed": 0,
        "files": 3,
        "rows": 122,
        "new_rows": 122,
        "duplicates_dropped": 0,
    }
    datasets = {f["dataset"]: f["status"] for f in report["files"]}
    assert datasets == {
        "binanceusdm/BTCUSDT/funding": "imported",
        "binanceusdm/BTCUSDT/last/1m": "imported",
        None: "skipped",
    }
    code, out, _ = cli(capsys, "data", "import", str(archive), "--db", str(db_path), "--format", "json")
    assert code == 0 and json.loads(out)["totals"]["unchanged"] == 2


def test_import_table_output(archive: Path, db_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "data", "import", str(archive), "--db", str(db_path))
    assert code == 0
    assert "binanceusdm/BTCUSDT/last/1m" in out and "imported" in out and "skipped: not a data file" in out
    assert "3 files: 2 imported, 0 unchanged, 1 skipped, 0 failed; 122 rows read, 122 new" in out


@pytest.mark.parametrize(
    ("name", "content", "where", "message"),
    [
        (
            "binance-um/klines-1m/BTCUSDT-1m-2021-05-20.csv",
            klines(3) + b"1621382580000,1,2\n",
            ":4:",
            "expected 12 comma-separated columns",
        ),
        (
            "binance-um/klines-1m/BTCUSDT-1m-2021-05-20.csv",
            klines(3).replace(b",101.5,", b",x,", 1),
            ":1:",
            "not a number",
        ),
        (
            "binance-um/funding/BTCUSDT-fundingRate-2021-06.csv",
            b"calc_time,rate\n1,2\n",
            ":1:",
            "wrong header",
        ),
        (
            "prices.csv",
            b"date,open,high,low,close,volume\n2021-05-19T00:00:00Z,1,2,0.5,1.5,3\n",
            ": ",
            "pass --venue",
        ),
        (
            "binance-um/klines-1m/BTCUSDT-1m-2021-05-20.csv.gz",
            gzip.compress(klines(500))[:-100],
            ": ",
            "truncated",
        ),
    ],
)
def test_bad_file_fails_and_leaves_the_store_unchanged(
    archive: Path,
    db_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: bytes,
    where: str,
    message: str,
) -> None:
    assert cli(capsys, "data", "import", str(archive), "--db", str(db_path), "-q")[0] == 0
    before = counts(db_path)
    bad = tmp_path / "bad" / name
    bad.parent.mkdir(parents=True)
    bad.write_bytes(content)
    code, out, err = cli(capsys, "data", "import", str(bad), "--db", str(db_path))
    assert code == 2
    assert err.startswith(f"error: {bad}{where}") and message in err and len(err.strip().splitlines()) == 1
    assert "failed" in out
    assert counts(db_path) == before


def test_one_failure_does_not_stop_the_others(
    archive: Path, db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (archive / "binance-um" / "klines-1m" / "BTCUSDT-1m-2021-05-18.csv").write_bytes(b"1,2,3\n")
    code, out, err = cli(capsys, "data", "import", str(archive), "--db", str(db_path), "--format", "json")
    assert code == 2 and "BTCUSDT-1m-2021-05-18.csv:1: expected 12" in err
    assert json.loads(out)["totals"]["imported"] == 2 and counts(db_path)["candles"] == 120


def test_checksum_mismatch_and_no_verify(
    archive: Path, db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (archive / "SHA256SUMS").write_text("0" * 64 + "  ./binance-um/funding/BTCUSDT-fundingRate-2021-05.csv\n")
    code, _, err = cli(capsys, "data", "import", str(archive), "--db", str(db_path), "-q")
    assert code == 2 and "does not match" in err and counts(db_path)["funding"] == 0
    code, _, _ = cli(capsys, "data", "import", str(archive), "--db", str(db_path), "--no-verify", "-q")
    assert code == 0 and counts(db_path)["funding"] == 2


def test_overrides(tmp_path: Path, db_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "prices.csv"
    f.write_text(
        "date,open,high,low,close,volume\n2021-05-19T00:00:00Z,1,2,0.5,1.5,3\n"
        "2021-05-19T00:15:00Z,1,2,0.5,1.5,3\n"
    )
    code, out, err = cli(
        capsys,
        "data",
        "import",
        str(f),
        "--venue",
        "bybit",
        "--symbol",
        "BTCUSDT",
        "--price-type",
        "mark",
        "--db",
        str(db_path),
        "--format",
        "json",
    )
    assert code == 0, err
    assert json.loads(out)["files"][0]["dataset"] == "bybit/BTCUSDT/mark/15m"
    code, _, err = cli(
        capsys,
        "data",
        "import",
        str(f),
        "--venue",
        "bybit",
        "--symbol",
        "BTCUSDT",
        "--price-type",
        "mark",
        "--timeframe",
        "1h",
        "--db",
        str(db_path),
    )
    assert code == 2 and "prices.csv:3: 15m after line 2, not a multiple of the 1h timeframe" in err


def test_locked_store(archive: Path, db_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Store(db_path).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys\nfrom loaders.store import Store\ns = Store(sys.argv[1])\n"
            "print('locked', flush=True)\nsys.stdin.readline()\n",
            str(db_path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        code, _, err = cli(capsys, "data", "import", str(archive), "--db", str(db_path))
        assert code == 2 and "locked by another process" in err
    finally:
        holder.communicate("\n", timeout=30)


# -- status -----------------------------------------------------------------------------------
def test_status_without_event(archive: Path, db_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "data", "status", "--db", str(db_path))
    assert code == 0 and "holds no market data" in out
    cli(capsys, "data", "import", str(archive), "--db", str(db_path), "-q")
    code, out, _ = cli(capsys, "data", "status", "--db", str(db_path), "--format", "json")
    rows = {(d["table"], d["type"], d["timeframe"]): d for d in json.loads(out)["datasets"]}
    assert (
        rows[("candles", "last", "1m")].items()
        >= {
            "venue": "binanceusdm",
            "symbol": "BTCUSDT",
            "rows": 120,
            "first": "2021-05-19T00:00:00",
            "last": "2021-05-19T01:59:00",
        }.items()
    )
    assert rows[("funding", "funding", "8h")]["rows"] == 2
    code, out, _ = cli(capsys, "data", "status", "--db", str(db_path))
    assert code == 0 and "BTCUSDT" in out and "2021-05-19 01:59" in out


def test_status_unknown_event(db_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "data", "status", "--event", "nosuchevent", "--db", str(db_path))
    assert code == 2 and "nosuchevent" in err and "may2021" in err


def status_json(capsys: pytest.CaptureFixture[str], db: Path, event: str) -> tuple[dict, dict]:
    code, out, _ = cli(capsys, "data", "status", "--event", event, "--db", str(db), "--format", "json")
    assert code == 0
    doc = json.loads(out)
    return doc, {(d["symbol"], d["type"], d["timeframe"]): d["coverage"] for d in doc["datasets"]}


def test_status_says_absent_not_one_gap(
    archive: Path, db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A dataset with no row in the window (or none at all) is absent, with the command that fills it."""
    cli(capsys, "data", "import", str(archive), "--db", str(db_path), "-q")  # BTCUSDT, 19 May 2021 only
    doc, cov = status_json(capsys, db_path, "mar2020")
    assert cov[("BTCUSDT", "last", "1m")].items() >= {"present": 0, "state": "absent"}.items()
    assert cov[("BTCUSDT", "mark", "-")]["state"] == cov[("ETHUSDT", "last", "-")]["state"] == "not in store"
    absent = {(a["symbol"], a["dataset"]) for a in doc["event"]["absent"]}
    assert ("BTCUSDT", "last-price candles") in absent and ("ETHUSDT", "funding") in absent
    assert doc["event"]["fill"] == ["run `backtest data download --event mar2020` (internet)"]

    code, out, _ = cli(capsys, "data", "status", "--event", "mar2020", "--db", str(db_path))
    assert code == 0
    rows = [tuple(c.strip() for c in line.split("│")[1:-1]) for line in out.splitlines() if "│" in line]
    by_key = {(c[1], c[2], c[3]): c for c in rows}
    assert by_key[("BTCUSDT", "last", "1m")][-2:] == ("absent", "whole window")  # was "1" gap of 46d
    assert by_key[("BTCUSDT", "mark", "-")][-2:] == ("not in store", "whole window")
    assert by_key[("ETHUSDT", "funding", "-")][-2:] == ("not in store", "whole window")
    assert "no BTCUSDT last-price candles" in out and "backtest data download --event mar2020" in out

    # inside a window it partly covers, the same series has gaps, counted as before
    doc, cov = status_json(capsys, db_path, "may2021")
    assert cov[("BTCUSDT", "last", "1m")].items() >= {"present": 120, "gaps": 2, "state": "gaps"}.items()
    absent = {(a["symbol"], a["dataset"]) for a in doc["event"]["absent"]}
    assert ("BTCUSDT", "last-price candles") not in absent and ("BTCUSDT", "mark candles") in absent


def test_status_event_coverage_on_the_archive(
    archive_dir: Path, db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    um = archive_dir / "binance-um"
    code, _, err = cli(
        capsys,
        "data",
        "import",
        str(um / "klines-1h" / "BTCUSDT-1h-perp.csv.gz"),
        str(um / "klines-1m" / "BTCUSDT-1m-2021-05-19.csv.gz"),
        *(str(um / "funding" / f"BTCUSDT-fundingRate-2021-{m}.csv.gz") for m in ("04", "05")),
        "--db",
        str(db_path),
        "-q",
    )
    assert code == 0, err
    code, out, _ = cli(
        capsys, "data", "status", "--event", "may2021", "--db", str(db_path), "--format", "json"
    )
    assert code == 0
    doc = json.loads(out)
    assert (
        doc["event"]["load_start"] == "2021-04-10T00:00:00" and doc["event"]["end"] == "2021-05-26T00:00:00"
    )
    cov = {(d["symbol"], d["type"], d["timeframe"]): d["coverage"] for d in doc["datasets"]}
    hours = 46 * 24  # 30 days warm-up + 16 days window
    assert (
        cov[("BTCUSDT", "last", "1h")].items()
        >= {"expected": hours, "present": hours, "gaps": 0, "largest_gap_s": 0}.items()
    )
    assert (
        cov[("BTCUSDT", "funding", "8h")].items()
        >= {"expected": 46 * 3, "present": 46 * 3, "gaps": 0}.items()
    )
    # 1m beside 1h is recorded only on crash days, by design: measured over its recorded day, not as
    # "expected 66,240 · present 1,440 · gaps 2 · largest 39d"
    one_min = cov[("BTCUSDT", "last", "1m")]
    assert (one_min["expected"], one_min["present"], one_min["gaps"]) == (1440, 1440, 0)
    assert one_min["largest_gap_s"] == 0 and one_min["state"] == "complete"
    assert one_min["scope"] == "recorded_days" and one_min["recorded_days"] == ["2021-05-19"]
    assert cov[("BTCUSDT", "last", "1h")]["scope"] == "window"
    # Nothing stored for ETH: each dataset the window needs is said to be absent, not left out.
    for kind in ("last", "mark", "funding"):
        assert cov[("ETHUSDT", kind, "-")].items() >= {"present": 0, "state": "not in store"}.items()
    assert cov[("BTCUSDT", "mark", "-")]["state"] == "not in store"
    code, out, _ = cli(capsys, "data", "status", "--event", "may2021", "--db", str(db_path))
    assert code == 0 and "may2021" in out and "39d" not in out
    assert "rows (all time)" in out and "1 recorded day (by design)" in out
    rows = [tuple(c.strip() for c in line.split("│")[1:-1]) for line in out.splitlines() if "│" in line]
    one_min_row = next(r for r in rows if r[1:4] == ("BTCUSDT", "last", "1m"))
    assert one_min_row[-5:] == ("1 recorded day (by design)", "1,440", "1,440", "0", "0")
    # a window with none of its recorded days: said plainly, not "absent" or one long gap
    code, out, _ = cli(capsys, "data", "status", "--event", "luna2022", "--db", str(db_path), "--format",
                       "json")
    cov = {(d["symbol"], d["type"], d["timeframe"]): d["coverage"] for d in json.loads(out)["datasets"]}
    assert cov[("BTCUSDT", "last", "1m")].items() >= {"present": 0, "state": "no recorded day"}.items()
