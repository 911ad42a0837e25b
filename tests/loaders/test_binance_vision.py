"""Binance public-data download: planning, checksum, retries, resume, import into the store."""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from pathlib import Path

import pytest

from loaders.binance_vision import (
    DownloadReport,
    FileResult,
    RemoteFile,
    RetryPolicy,
    download_window,
    parse_checksum,
    plan_files,
    resolve_base_url,
)
from loaders.errors import ChecksumError, SourceError, UserError
from loaders.store import Store
from tests.support.loopback import LoopbackServer
from tests.support.vision_site import (
    VisionSite,
    daily_path,
    day_window,
    funding_csv,
    hourly_klines_csv,
    minute_klines_csv,
    monthly_path,
    publish_crash_day,
)

FAST = RetryPolicy(attempts=3, backoff=0.001, factor=1.0, timeout=5.0)
DAY = date(2021, 5, 19)


def paths(files: list[RemoteFile]) -> list[str]:
    return [f.path for f in files]


# -- plan_files ------------------------------------------------------------------------------
def test_plan_single_day_names_and_layout() -> None:
    plan = plan_files(["BTCUSDT"], ["klines", "fundingRate", "metrics"], ["1m"],
                      datetime(2021, 5, 19), datetime(2021, 5, 20))
    assert paths(plan) == [
        "data/futures/um/monthly/fundingRate/BTCUSDT/BTCUSDT-fundingRate-2021-05.zip",
        "data/futures/um/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2021-05-19.zip",
        "data/futures/um/daily/metrics/BTCUSDT/BTCUSDT-metrics-2021-05-19.zip",
    ]
    assert plan[1].checksum_path == plan[1].path + ".CHECKSUM"


def test_plan_end_is_exclusive_and_partial_days_count() -> None:
    at = plan_files(["BTCUSDT"], ["klines"], ["1h"], datetime(2021, 5, 19), datetime(2021, 5, 21))
    assert [f.day for f in at] == [date(2021, 5, 19), date(2021, 5, 20)]
    one_us_more = plan_files(["BTCUSDT"], ["klines"], ["1h"], datetime(2021, 5, 19),
                             datetime(2021, 5, 21, 0, 0, 0, 1))
    assert [f.day for f in one_us_more][-1] == date(2021, 5, 21)
    # A window starting late in a day still needs that day's file.
    late = plan_files(["BTCUSDT"], ["klines"], ["1h"], datetime(2021, 5, 19, 23, 59), datetime(2021, 5, 20))
    assert [(f.period, f.day) for f in late] == [("daily", date(2021, 5, 19))]


def test_plan_whole_months_monthly_partial_months_daily() -> None:
    # may2021 with 30 days warm-up: 2021-04-10 .. 2021-05-26 (exclusive): no whole month.
    plan = plan_files(["BTCUSDT"], ["klines"], ["1m"], datetime(2021, 4, 10), datetime(2021, 5, 26))
    assert {f.period for f in plan} == {"daily"}
    assert len(plan) == 21 + 25
    assert plan[0].day == date(2021, 4, 10) and plan[-1].day == date(2021, 5, 25)
    # Warm-up spanning a whole month: March is monthly, Feb and April partial.
    plan = plan_files(["BTCUSDT"], ["klines"], ["1h"], datetime(2021, 2, 27), datetime(2021, 4, 2))
    assert [(f.period, f.day) for f in plan] == [
        ("daily", date(2021, 2, 27)), ("daily", date(2021, 2, 28)), ("monthly", date(2021, 3, 1)),
        ("daily", date(2021, 4, 1)),
    ]
    assert plan[2].path == "data/futures/um/monthly/klines/BTCUSDT/1h/BTCUSDT-1h-2021-03.zip"


def test_plan_month_boundaries_exact() -> None:
    # Exactly one month, end exclusive at the next month's midnight -> one monthly file.
    plan = plan_files(["ETHUSDT"], ["markPriceKlines"], ["1h"], datetime(2020, 2, 1), datetime(2020, 3, 1))
    assert paths(plan) == ["data/futures/um/monthly/markPriceKlines/ETHUSDT/1h/ETHUSDT-1h-2020-02.zip"]
    # Leap February: missing the 29th means daily files.
    plan = plan_files(["ETHUSDT"], ["klines"], ["1h"], datetime(2020, 2, 1), datetime(2020, 2, 29))
    assert len(plan) == 28 and {f.period for f in plan} == {"daily"}
    # A month touched only partly at its first day (start mid-day) is still whole: every day overlaps.
    plan = plan_files(["ETHUSDT"], ["klines"], ["1h"], datetime(2020, 2, 1, 12), datetime(2020, 3, 1))
    assert [f.period for f in plan] == ["monthly"]
    # Year boundary.
    plan = plan_files(["BTCUSDT"], ["klines"], ["1d"], datetime(2021, 12, 31), datetime(2022, 1, 2))
    assert paths(plan) == [
        "data/futures/um/daily/klines/BTCUSDT/1d/BTCUSDT-1d-2021-12-31.zip",
        "data/futures/um/daily/klines/BTCUSDT/1d/BTCUSDT-1d-2022-01-01.zip",
    ]


def test_plan_monthly_only_and_daily_only_datasets() -> None:
    start, end = datetime(2021, 2, 27), datetime(2021, 4, 2)
    funding = plan_files(["BTCUSDT"], ["fundingRate"], [], start, end)
    assert [(f.period, f.day) for f in funding] == [
        ("monthly", date(2021, 2, 1)), ("monthly", date(2021, 3, 1)), ("monthly", date(2021, 4, 1))]
    assert funding[0].name == "BTCUSDT-fundingRate-2021-02.zip"
    for ds in ("metrics", "liquidationSnapshot"):
        files = plan_files(["BTCUSDT"], [ds], [], start, end)
        assert {f.period for f in files} == {"daily"} and len(files) == 2 + 31 + 1
        assert files[0].path == f"data/futures/um/daily/{ds}/BTCUSDT/BTCUSDT-{ds}-2021-02-27.zip"


def test_plan_is_sorted_deduplicated_and_covers_the_window() -> None:
    start, end = datetime(2022, 4, 5, 7), datetime(2022, 5, 15, 3)
    plan = plan_files(["ETHUSDT", "BTCUSDT", "BTCUSDT"], ["indexPriceKlines", "klines", "klines"],
                      ["1h", "1m", "1h"], start, end)
    assert len(plan) == len(set(plan))
    assert plan == sorted(plan, key=lambda f: (f.symbol, f.dataset, f.timeframe or "", f.day, f.period))
    for key in {(f.symbol, f.dataset, f.timeframe) for f in plan}:
        spans = sorted(f.covers for f in plan if (f.symbol, f.dataset, f.timeframe) == key)
        assert spans[0][0] <= start and spans[-1][1] >= end
        # contiguous, no overlap
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))
    assert len({(f.symbol, f.dataset, f.timeframe) for f in plan}) == 2 * 2 * 2


@pytest.mark.parametrize(
    ("symbols", "datasets", "timeframes", "start", "end", "needle"),
    [
        (["btc/usdt"], ["klines"], ["1m"], datetime(2021, 1, 1), datetime(2021, 1, 2), "--symbols"),
        (["BTCUSDT"], ["trades"], ["1m"], datetime(2021, 1, 1), datetime(2021, 1, 2), "--datasets"),
        (["BTCUSDT"], ["klines"], ["7m"], datetime(2021, 1, 1), datetime(2021, 1, 2), "--timeframes"),
        (["BTCUSDT"], ["klines"], [], datetime(2021, 1, 1), datetime(2021, 1, 2), "--timeframes"),
        (["BTCUSDT"], ["klines"], ["1m"], datetime(2021, 1, 2), datetime(2021, 1, 2), "empty window"),
    ],
)
def test_plan_rejects_bad_input(symbols, datasets, timeframes, start, end, needle) -> None:
    with pytest.raises(UserError, match=needle):
        plan_files(symbols, datasets, timeframes, start, end)


def test_checksum_parsing_and_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    digest = "ab" * 32
    assert parse_checksum(f"{digest.upper()}  X-1m-2021-05-19.zip\n", "X-1m-2021-05-19.zip", "w") == digest
    with pytest.raises(SourceError, match="malformed"):
        parse_checksum("<html>", "X.zip", "w")
    with pytest.raises(SourceError, match="not 'X.zip'"):
        parse_checksum(f"{digest}  Y.zip", "X.zip", "w")
    monkeypatch.delenv("BACKTEST_BINANCE_VISION_URL", raising=False)
    assert resolve_base_url() == "https://data.binance.vision/"
    monkeypatch.setenv("BACKTEST_BINANCE_VISION_URL", "http://127.0.0.1:9/x")
    assert resolve_base_url() == "http://127.0.0.1:9/x/"
    assert resolve_base_url("http://h/") == "http://h/"
    with pytest.raises(UserError, match="--base-url"):
        resolve_base_url("ftp://h")


def test_report_folds_runs_of_unpublished_files() -> None:
    plan = plan_files(["BTCUSDT"], ["metrics", "fundingRate"], [], datetime(2021, 5, 10),
                      datetime(2021, 5, 13))
    rep = DownloadReport("b/", Path("c"), [FileResult(f, "not-published") for f in plan])
    lines = rep.summary_lines()
    assert "0 downloaded" in lines[0] and "4 not published" in lines[0]
    assert lines[1:] == [
        "not published: data/futures/um/monthly/fundingRate/BTCUSDT/BTCUSDT-fundingRate-2021-05.zip",
        "not published: metrics BTCUSDT daily 2021-05-10..2021-05-12 (3 files)",
    ]


# -- downloading against the loopback site (cache only, no store) ---------------------------
@pytest.fixture()
def site() -> VisionSite:
    with LoopbackServer() as server:
        yield VisionSite(server)


def test_download_verifies_and_mirrors_site_paths(site: VisionSite, archive_dir: Path,
                                                  tmp_path: Path) -> None:
    published = publish_crash_day(site, archive_dir, "BTCUSDT", DAY)
    start, end = day_window(DAY)
    rep = download_window(None, ["BTCUSDT"], start, end, datasets=["klines", "fundingRate"],
                          timeframes=["1m", "1h"], cache_dir=tmp_path / "cache", base_url=site.base_url,
                          retry=FAST)
    assert [f.status for f in rep.files] == ["downloaded"] * 3
    for rel in published:
        local = tmp_path / "cache" / rel
        assert local.read_bytes() == site.published[rel]
        sidecar = (tmp_path / "cache" / (rel + ".CHECKSUM")).read_text()
        assert sidecar.split()[0] == hashlib.sha256(local.read_bytes()).hexdigest()
    assert not list((tmp_path / "cache").rglob("*.part"))
    assert rep.bytes_downloaded == sum(len(site.published[p]) for p in published)


def test_checksum_mismatch_refused_and_not_kept(site: VisionSite, archive_dir: Path, tmp_path: Path) -> None:
    bad = daily_path("klines", "BTCUSDT", "1m", DAY)
    site.publish(bad, minute_klines_csv(archive_dir, "BTCUSDT", DAY), checksum_of=b"something else")
    good = monthly_path("fundingRate", "BTCUSDT", None, 2021, 5)
    site.publish(good, b"calc_time,funding_interval_hours,last_funding_rate\n1621382400000,8,0.0001\n")
    start, end = day_window(DAY)
    with pytest.raises(ChecksumError, match=r"BTCUSDT-1m-2021-05-19\.zip: sha256 .* does not match") as ei:
        download_window(None, ["BTCUSDT"], start, end, datasets=["klines", "fundingRate"], timeframes=["1m"],
                        cache_dir=tmp_path, base_url=site.base_url, retry=FAST)
    rep = ei.value.report
    assert {f.remote.path: f.status for f in rep.files} == {bad: "checksum-mismatch", good: "downloaded"}
    assert not (tmp_path / bad).exists() and not (tmp_path / (bad + ".CHECKSUM")).exists()
    assert (tmp_path / good).exists()
    assert not list(tmp_path.rglob("*.part"))


def test_transient_errors_are_retried(site: VisionSite, tmp_path: Path) -> None:
    rel = monthly_path("fundingRate", "BTCUSDT", None, 2021, 5)
    site.publish(rel, b"calc_time,funding_interval_hours,last_funding_rate\n1621382400000,8,0.0001\n")
    site.server.fail_next(site.route(rel), 503, 502)
    site.server.fail_next(site.route(rel + ".CHECKSUM"), 429)
    slept: list[float] = []
    from loaders import binance_vision

    d = binance_vision.Downloader(site.base_url, tmp_path, RetryPolicy(attempts=3, backoff=0.5, factor=2.0),
                                  sleep=slept.append)
    res = d.fetch(plan_files(["BTCUSDT"], ["fundingRate"], [], *day_window(DAY))[0])
    assert res.status == "downloaded", res.error
    assert site.gets(rel) == 3 and site.gets(rel + ".CHECKSUM") == 2
    assert slept == [0.5, 0.5, 1.0]  # one retry for the sidecar, two for the zip, growing backoff


def test_not_published_listed_and_nothing_found_is_an_error(site: VisionSite, archive_dir: Path,
                                                            tmp_path: Path) -> None:
    start, end = day_window(DAY)
    kw = dict(cache_dir=tmp_path, base_url=site.base_url, retry=FAST)
    with pytest.raises(SourceError, match="none of the 2 files for this window is published"):
        download_window(None, ["BTCUSDT"], start, end, datasets=["metrics", "liquidationSnapshot"], **kw)
    publish_crash_day(site, archive_dir, "BTCUSDT", DAY)
    rep = download_window(None, ["BTCUSDT"], start, end, timeframes=["1m"],
                          datasets=["klines", "metrics", "liquidationSnapshot"], **kw)
    assert [f.remote.dataset for f in rep.having("not-published")] == ["liquidationSnapshot", "metrics"]
    assert [f.status for f in rep.having("downloaded")] == ["downloaded"]
    text = "\n".join(rep.summary_lines())
    assert "not published: data/futures/um/daily/metrics/BTCUSDT/BTCUSDT-metrics-2021-05-19.zip" in text


def test_persistent_failure_then_resume_without_redownload(site: VisionSite, archive_dir: Path,
                                                           tmp_path: Path) -> None:
    published = publish_crash_day(site, archive_dir, "BTCUSDT", DAY)
    flaky = published[1]
    site.server.fail_next(site.route(flaky), *([503] * FAST.attempts))
    start, end = day_window(DAY)
    kw = dict(datasets=["klines", "fundingRate"], timeframes=["1m", "1h"], cache_dir=tmp_path,
              base_url=site.base_url, retry=FAST)
    with pytest.raises(SourceError, match=r"BTCUSDT-1h-2021-05-19\.zip: gave up after 3 attempts"):
        download_window(None, ["BTCUSDT"], start, end, **kw)
    assert not (tmp_path / flaky).exists()
    before = {p: site.gets(p) for p in published}
    rep = download_window(None, ["BTCUSDT"], start, end, **kw)
    assert {f.remote.path: f.status for f in rep.files} == {
        published[0]: "cached", flaky: "downloaded", published[2]: "cached"}
    assert site.gets(published[0]) == before[published[0]]
    assert site.gets(published[2]) == before[published[2]]
    # A cached file that was tampered with is fetched again, not trusted.
    (tmp_path / published[0]).write_bytes(b"corrupt")
    rep = download_window(None, ["BTCUSDT"], start, end, **kw)
    assert {f.remote.path: f.status for f in rep.files}[published[0]] == "downloaded"
    assert (tmp_path / published[0]).read_bytes() == site.published[published[0]]


def test_missing_monthly_file_is_fetched_as_daily_files(site: VisionSite, archive_dir: Path,
                                                        tmp_path: Path) -> None:
    days = [date(2021, 5, 19), date(2021, 5, 23)]
    for d in days:
        site.publish(daily_path("klines", "BTCUSDT", "1h", d), hourly_klines_csv(archive_dir, "BTCUSDT", d))
    monthly = monthly_path("klines", "BTCUSDT", "1h", 2021, 5)
    rep = download_window(None, ["BTCUSDT"], datetime(2021, 5, 1), datetime(2021, 6, 1), datasets=["klines"],
                          timeframes=["1h"], cache_dir=tmp_path, base_url=site.base_url, retry=FAST)
    assert site.gets(monthly + ".CHECKSUM") == 1 and site.gets(monthly) == 0
    assert [f.remote.day for f in rep.having("downloaded")] == days
    assert len(rep.files) == 31 and {f.remote.period for f in rep.files} == {"daily"}
    assert rep.files == sorted(rep.files, key=lambda f: f.remote.day)
    assert "not published: klines BTCUSDT 1h daily 2021-05-01..2021-05-18 (18 files)" in rep.summary_lines()


# -- import into the store -------------------------------------------------------------------
DATA_TABLES = ("candles", "funding", "open_interest", "liquidations")


def dump(store: Store, table: str) -> list[tuple]:
    return store.query(f"SELECT * FROM {table} ORDER BY ALL").rows()


@pytest.mark.parametrize("day", [date(2021, 5, 19), date(2025, 10, 10)])
def test_download_equals_importing_the_archive(site: VisionSite, archive_dir: Path, tmp_path: Path,
                                               day: date) -> None:
    from loaders.archive import import_paths

    publish_crash_day(site, archive_dir, "BTCUSDT", day)
    start, end = day_window(day)
    with Store(tmp_path / "downloaded.duckdb") as got:
        rep = download_window(got, ["BTCUSDT"], start, end, datasets=["klines", "fundingRate"],
                              timeframes=["1m", "1h"], cache_dir=tmp_path / "cache", base_url=site.base_url,
                              retry=FAST)
        assert [f.status for f in rep.files] == ["downloaded"] * 3
        assert sum(f.new_rows for f in rep.files) == 1440 + 24 + got.funding("binanceusdm", "BTCUSDT").height
        got_m1 = got.candles("binanceusdm", "BTCUSDT", "last", "1m")
        got_h1 = got.candles("binanceusdm", "BTCUSDT", "last", "1h")
        got_funding = got.funding("binanceusdm", "BTCUSDT")
    um = archive_dir / "binance-um"
    with Store(tmp_path / "direct.duckdb") as want:
        import_paths(want, [um / "klines-1m" / f"BTCUSDT-1m-{day}.csv.gz",
                            um / "funding" / f"BTCUSDT-fundingRate-{day:%Y-%m}.csv.gz",
                            um / "klines-1h" / "BTCUSDT-1h-perp.csv.gz"])
        want_m1 = want.candles("binanceusdm", "BTCUSDT", "last", "1m")
        want_h1 = want.candles("binanceusdm", "BTCUSDT", "last", "1h", start, end)
        want_funding = want.funding("binanceusdm", "BTCUSDT")
    assert got_m1.height == 1440 and got_m1.equals(want_m1)
    assert got_funding.height > 80 and got_funding.equals(want_funding)
    # The site's 1h file is built from the 1m rows; it matches the independently recorded 1h candles.
    ohlcv = ["ts", "open", "high", "low", "close", "volume"]
    assert got_h1.height == 24 and got_h1.select(ohlcv).equals(want_h1.select(ohlcv))
    assert got_h1["trades"].sum() == got_m1["trades"].sum()


def test_checksum_mismatch_imports_nothing_from_that_file(site: VisionSite, archive_dir: Path,
                                                          tmp_path: Path) -> None:
    bad = daily_path("klines", "BTCUSDT", "1m", DAY)
    site.publish(bad, minute_klines_csv(archive_dir, "BTCUSDT", DAY), checksum_of=b"x")
    good = monthly_path("fundingRate", "BTCUSDT", None, 2021, 5)
    site.publish(good, funding_csv(archive_dir, "BTCUSDT", 2021, 5))
    with Store(tmp_path / "s.duckdb") as store:
        with pytest.raises(ChecksumError, match="BTCUSDT-1m-2021-05-19.zip"):
            download_window(store, ["BTCUSDT"], *day_window(DAY), datasets=["klines", "fundingRate"],
                            timeframes=["1m"], cache_dir=tmp_path / "c", base_url=site.base_url, retry=FAST)
        assert store.query("SELECT count(*) AS n FROM candles")["n"][0] == 0
        assert store.funding("binanceusdm", "BTCUSDT").height > 80  # the verified file still went in


def test_interrupted_run_then_rerun_gives_the_full_store(site: VisionSite, archive_dir: Path,
                                                         tmp_path: Path) -> None:
    published = publish_crash_day(site, archive_dir, "BTCUSDT", DAY)
    kw = dict(datasets=["klines", "fundingRate"], timeframes=["1m", "1h"], base_url=site.base_url, retry=FAST)
    with Store(tmp_path / "full.duckdb") as full:
        download_window(full, ["BTCUSDT"], *day_window(DAY), cache_dir=tmp_path / "c1", **kw)
        want = {t: dump(full, t) for t in DATA_TABLES}

    site.server.fail_next(site.route(published[0]), *([503] * FAST.attempts))
    with Store(tmp_path / "s.duckdb") as store:
        with pytest.raises(SourceError, match="gave up"):
            download_window(store, ["BTCUSDT"], *day_window(DAY), cache_dir=tmp_path / "c2", **kw)
        assert store.query("SELECT count(*) AS n FROM candles WHERE timeframe = '1m'")["n"][0] == 0
        assert store.candles("binanceusdm", "BTCUSDT", "last", "1h").height == 24  # kept
        before = {p: site.gets(p) for p in published}
        rep = download_window(store, ["BTCUSDT"], *day_window(DAY), cache_dir=tmp_path / "c2", **kw)
        assert {f.remote.path: f.status for f in rep.files} == {
            published[0]: "downloaded", published[1]: "cached", published[2]: "cached"}
        assert {p: site.gets(p) - before[p] for p in published} == {published[0]: 1, published[1]: 0,
                                                                    published[2]: 0}
        assert sum(f.new_rows for f in rep.files) == 1440  # the cached files were already imported
        assert {t: dump(store, t) for t in DATA_TABLES} == want


def test_import_conflict_keeps_its_type_and_names_the_file(site: VisionSite, archive_dir: Path,
                                                           tmp_path: Path) -> None:
    import polars as pl

    from loaders.errors import ConflictError

    published = publish_crash_day(site, archive_dir, "BTCUSDT", DAY)
    with Store(tmp_path / "s.duckdb") as store:
        store.upsert("candles", pl.DataFrame({
            "venue": ["binanceusdm"], "symbol": ["BTCUSDT"], "price_type": ["last"], "timeframe": ["1m"],
            "ts": [datetime(2021, 5, 19, 13, 10)], "open": [1.0], "high": [1.0], "low": [1.0],
            "close": [1.0]}))
        with pytest.raises(ConflictError, match=r"BTCUSDT-1m-2021-05-19\.zip:\d+: .* already stored") as ei:
            download_window(store, ["BTCUSDT"], *day_window(DAY), datasets=["klines", "fundingRate"],
                            timeframes=["1m", "1h"], cache_dir=tmp_path / "c", base_url=site.base_url,
                            retry=FAST)
        statuses = {f.remote.path: f.status for f in ei.value.report.files}
        assert statuses == {published[0]: "failed", published[1]: "downloaded", published[2]: "downloaded"}
        assert store.query("SELECT count(*) AS n FROM candles WHERE timeframe = '1m'")["n"][0] == 1
        assert store.candles("binanceusdm", "BTCUSDT", "last", "1h").height == 24


# -- an unreachable host: fail fast, not once per file ----------------------------------------
def _no_dns(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every name lookup fails as on a machine without network; returns the names looked up."""
    import socket

    looked: list[str] = []

    def fail(host: object, *args: object, **kwargs: object) -> object:
        looked.append(str(host))
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    return looked


def test_offline_gives_up_after_the_first_lookups_not_per_file(monkeypatch: pytest.MonkeyPatch,
                                                                tmp_path: Path) -> None:
    """A whole month of files (hundreds) against a name that does not resolve: one line, a few lookups."""
    from loaders.binance_vision import HostUnreachableError

    looked = _no_dns(monkeypatch)
    sleeps: list[float] = []
    monkeypatch.setattr("loaders.binance_vision.time.sleep", sleeps.append)
    plan = plan_files(["BTCUSDT", "ETHUSDT"], list(("klines", "markPriceKlines", "metrics")), ["1m", "1h"],
                      datetime(2021, 5, 3), datetime(2021, 5, 30))
    assert len(plan) > 200
    with pytest.raises(HostUnreachableError) as info:
        download_window(None, ["BTCUSDT", "ETHUSDT"], datetime(2021, 5, 3), datetime(2021, 5, 30),
                        datasets=["klines", "markPriceKlines", "metrics"], timeframes=["1m", "1h"],
                        cache_dir=tmp_path, base_url="https://data.binance.vision/")
    msg = str(info.value)
    assert "\n" not in msg and "Name or service not known" in msg and "cannot be reached" in msg
    assert f"{len(plan)} file(s) not downloaded" in msg
    assert 1 <= len(looked) <= 4  # at most one lookup per worker thread, no retries
    assert sleeps == []
    rep = info.value.report
    assert len(rep.having("not-tried")) >= len(plan) - 4
    summary = rep.summary_lines()
    assert len(summary) <= 5 and "not tried (host unreachable)" in summary[0]


def test_refused_connection_before_any_answer_is_unreachable(tmp_path: Path) -> None:
    import socket

    from loaders.binance_vision import HostUnreachableError

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    unreachable = r"127\.0\.0\.1:\d+/ cannot be reached \(connection refused: "
    with pytest.raises(HostUnreachableError, match=unreachable):
        download_window(None, ["BTCUSDT"], *day_window(DAY), datasets=["klines"], timeframes=["1m", "1h"],
                        cache_dir=tmp_path, base_url=f"http://127.0.0.1:{port}/", retry=FAST)


def test_lost_connection_after_an_answer_is_retried(tmp_path: Path) -> None:
    """Once the host answered, a refused connection is a flaky network: retried, then reported per file."""
    import socket

    from loaders.binance_vision import Downloader, HostUnreachableError

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleeps: list[float] = []
    dl = Downloader(f"http://127.0.0.1:{port}/", tmp_path, FAST, sleep=sleeps.append)
    dl.reached = True
    remote = plan_files(["BTCUSDT"], ["klines"], ["1h"], *day_window(DAY))[0]
    res = dl.fetch(remote)
    assert res.status == "failed" and "gave up after 3 attempts" in (res.error or "")
    assert len(sleeps) == FAST.attempts - 1 and dl.unreachable is None
    assert not isinstance(res.exc, HostUnreachableError)
