"""``backtest data download`` end to end against a loopback data.binance.vision."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest

from backtest.cli import main
from loaders.store import Store
from tests.support.loopback import LoopbackServer
from tests.support.vision_site import VisionSite, daily_path, minute_klines_csv, publish_crash_day

DAY = date(2021, 5, 19)
EVENT = """
[crashday]
title = "19 May 2021, one day"
start = 2021-05-19T00:00:00Z
end = 2021-05-20T00:00:00Z
warmup_days = 0
symbols = ["BTCUSDT"]
venues = ["binanceusdm"]
"""


@pytest.fixture()
def site(monkeypatch: pytest.MonkeyPatch) -> VisionSite:
    with LoopbackServer() as server:
        s = VisionSite(server)
        monkeypatch.setenv("BACKTEST_BINANCE_VISION_URL", s.base_url)
        yield s


@pytest.fixture()
def events_file(tmp_path: Path) -> Path:
    f = tmp_path / "events.toml"
    f.write_text(EVENT)
    return f


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(["data", "download", *args])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def args(events_file: Path, db: Path, cache: Path, *extra: str) -> list[str]:
    return ["--event", "crashday", "--events-file", str(events_file), "--db", str(db), "--cache-dir",
            str(cache), "--backoff", "0", "--quiet", *extra]


def test_download_imports_and_resumes(site: VisionSite, archive_dir: Path, events_file: Path, db_path: Path,
                                      tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    published = publish_crash_day(site, archive_dir, "BTCUSDT", DAY)
    a = args(events_file, db_path, tmp_path / "cache", "--datasets", "klines,fundingRate,metrics",
             "--timeframes", "1m,1h")
    code, out, err = run(capsys, *a)
    assert code == 0, err
    assert "3 downloaded" in out and "1 not published" in out
    assert "not published: data/futures/um/daily/metrics/BTCUSDT/BTCUSDT-metrics-2021-05-19.zip" in out
    with Store(db_path, read_only=True) as store:
        m1 = store.candles("binanceusdm", "BTCUSDT", "last", "1m")
        h1 = store.candles("binanceusdm", "BTCUSDT", "last", "1h")
        funding = store.funding("binanceusdm", "BTCUSDT")
    assert m1.height == 1440 and m1["ts"][0] == datetime(2021, 5, 19) and m1["low"].min() == 28688.0
    assert h1.height == 24 and h1["low"].min() == 28688.0
    assert funding.height == 93 and funding["ts"].min() == datetime(2021, 5, 1)
    for p in published:
        assert (tmp_path / "cache" / p).is_file()

    gets = sum(site.gets(p) for p in published)
    code, out, err = run(capsys, *a)
    assert code == 0, err
    assert "0 downloaded" in out and "3 already cached" in out and "0 new rows" in out
    assert sum(site.gets(p) for p in published) == gets


def test_checksum_mismatch_exits_2_naming_the_file(site: VisionSite, archive_dir: Path, events_file: Path,
                                                   db_path: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    bad = daily_path("klines", "BTCUSDT", "1m", DAY)
    site.publish(bad, minute_klines_csv(archive_dir, "BTCUSDT", DAY), checksum_of=b"tampered")
    code, out, err = run(capsys, *args(events_file, db_path, tmp_path / "c", "--datasets", "klines",
                                       "--timeframes", "1m"))
    assert code == 2
    assert err.startswith("error: ") and "BTCUSDT-1m-2021-05-19.zip" in err and "checksum" in err
    assert len(err.strip().splitlines()) == 1
    assert "checksum-mismatch: " in out
    with Store(db_path, read_only=True) as store:
        assert store.query("SELECT count(*) AS n FROM candles")["n"][0] == 0


def test_transient_503_is_retried(site: VisionSite, archive_dir: Path, events_file: Path, db_path: Path,
                                  tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = daily_path("klines", "BTCUSDT", "1m", DAY)
    site.publish(path, minute_klines_csv(archive_dir, "BTCUSDT", DAY))
    site.server.fail_next(site.route(path), 503, 503)
    code, out, err = run(capsys, *args(events_file, db_path, tmp_path / "c", "--datasets", "klines",
                                       "--timeframes", "1m", "--retries", "3"))
    assert code == 0, err
    assert site.gets(path) == 3 and "1 downloaded" in out


def test_nothing_published_and_unknown_event(site: VisionSite, events_file: Path, db_path: Path,
                                             tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, *args(events_file, db_path, tmp_path / "c", "--symbols", "NOSUCHUSDT"))
    assert code == 2
    assert "none of the" in err and "is published" in err
    code, _, err = run(capsys, "--event", "nope", "--events-file", str(events_file), "--db", str(db_path))
    assert code == 2 and "nope" in err
    code, _, err = run(capsys, *args(events_file, db_path, tmp_path / "c", "--datasets", "trades"))
    assert code == 2 and "--datasets" in err


def test_offline_download_stops_at_once_and_names_the_archive(
        events_file: Path, db_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`data download --retries 1` offline: was 740 files tried (81 s) after every lookup had failed."""
    import socket

    looked: list[str] = []

    def fail(host: object, *a: object, **k: object) -> object:
        looked.append(str(host))
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    monkeypatch.delenv("BACKTEST_BINANCE_VISION_URL", raising=False)
    code, out, err = run(capsys, *args(events_file, db_path, tmp_path / "cache", "--retries", "1"))
    assert code == 2 and len(looked) <= 4
    assert "not tried (host unreachable)" in out.splitlines()[0]
    assert err.startswith("error: https://data.binance.vision/ cannot be reached (name lookup failed")
    assert "backtest data import DIR" in err and err.count("\n") == 1
