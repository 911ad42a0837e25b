"""Bulk download of Binance public-data files (data.binance.vision) for a crash window.

Binance publishes its USDⓈ-M futures history as zip files, monthly for complete months and
daily for every day, each with a ``.CHECKSUM`` sidecar. That archive reaches back further than
the REST API keeps (mark/index candles, funding, 5-minute OI in ``metrics``), so it is how a
user with internet fills the store for an old window.

The job splits in three parts so each can be tested alone:

* ``plan_files`` — a pure function from (symbols, datasets, timeframes, window) to the list of
  remote files: monthly files for months the window covers entirely, daily files for the rest.
* ``Downloader`` — fetches a file and its sidecar with retries, verifies the SHA-256 and only
  then renames it into the cache (which mirrors the site's paths, so a re-run finds it and the
  archive importer can infer venue/symbol/dataset from the path).
* ``download_window`` — runs the plan, imports every verified file into the store right away
  (one transaction per file, via ``loaders.archive.import_paths``) and returns a report.
"""

from __future__ import annotations

import calendar
import errno
import hashlib
import os
import re
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from http.client import HTTPException
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from loaders.errors import ChecksumError, SourceError, UserError

if TYPE_CHECKING:
    from loaders.store import Store

DEFAULT_BASE_URL = "https://data.binance.vision/"
BASE_URL_ENV = "BACKTEST_BINANCE_VISION_URL"

#: Candle datasets: one directory per timeframe.
KLINE_DATASETS = ("klines", "markPriceKlines", "indexPriceKlines")
#: Datasets Binance publishes as monthly files only.
MONTHLY_ONLY = ("fundingRate",)
#: Datasets Binance publishes as daily files only.
DAILY_ONLY = ("metrics", "liquidationSnapshot")
DATASETS = KLINE_DATASETS + MONTHLY_ONLY + DAILY_ONLY
DEFAULT_DATASETS = DATASETS
DEFAULT_TIMEFRAMES = ("1m", "1h")
#: Kline intervals published in the USDⓈ-M archive with daily and monthly files.
TIMEFRAMES = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d")

_SYMBOL = re.compile(r"^[A-Z0-9]{2,30}$")
_CHECKSUM_LINE = re.compile(r"^([0-9a-fA-F]{64})\s+\*?(\S+)\s*$")
#: HTTP statuses worth retrying: overload, throttling, gateway trouble.
_TRANSIENT = {408, 425, 429, 500, 502, 503, 504}
_CHUNK = 1 << 16

Status = Literal["downloaded", "cached", "not-published", "checksum-mismatch", "failed", "not-tried"]


# -- planning --------------------------------------------------------------------------------
@dataclass(frozen=True, order=True)
class RemoteFile:
    """One zip on data.binance.vision (``day`` is the 1st of the month for monthly files)."""

    symbol: str
    dataset: str
    timeframe: str | None
    period: Literal["daily", "monthly"]
    day: date

    @property
    def name(self) -> str:
        stamp = self.day.strftime("%Y-%m") if self.period == "monthly" else self.day.isoformat()
        return f"{self.symbol}-{self.timeframe or self.dataset}-{stamp}.zip"

    @property
    def path(self) -> str:
        """Site-relative path, also the file's place under the cache directory."""
        parts = ["data", "futures", "um", self.period, self.dataset, self.symbol]
        if self.timeframe:
            parts.append(self.timeframe)
        return "/".join([*parts, self.name])

    @property
    def checksum_path(self) -> str:
        return self.path + ".CHECKSUM"

    @property
    def covers(self) -> tuple[datetime, datetime]:
        """The UTC interval [from, to) of the file's rows."""
        first = datetime(self.day.year, self.day.month, self.day.day)
        if self.period == "daily":
            return first, first + timedelta(days=1)
        days = calendar.monthrange(self.day.year, self.day.month)[1]
        return first, first + timedelta(days=days)


def _days(start: datetime, end: datetime) -> list[date]:
    """UTC days that overlap [start, end)."""
    first = start.date()
    last = (end - timedelta(microseconds=1)).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _validate(symbols: Sequence[str], datasets: Sequence[str], timeframes: Sequence[str],
              start: datetime, end: datetime) -> None:
    for s in symbols:
        if not _SYMBOL.match(s):
            raise UserError(f"--symbols: {s!r} is not an exchange symbol id like BTCUSDT")
    for d in datasets:
        if d not in DATASETS:
            raise UserError(f"--datasets: unknown dataset {d!r} (valid: {', '.join(DATASETS)})")
    for tf in timeframes:
        if tf not in TIMEFRAMES:
            raise UserError(f"--timeframes: unknown timeframe {tf!r} (valid: {', '.join(TIMEFRAMES)})")
    if not symbols:
        raise UserError("--symbols: no symbol given")
    if any(d in KLINE_DATASETS for d in datasets) and not timeframes:
        raise UserError("--timeframes: candle datasets need at least one timeframe")
    if start.tzinfo is not None or end.tzinfo is not None:
        raise ValueError("plan_files takes naive UTC datetimes")
    if start >= end:
        raise UserError(f"empty window: start {start} is not before end {end}")


def plan_files(
    symbols: Sequence[str],
    datasets: Sequence[str],
    timeframes: Sequence[str],
    start: datetime,
    end: datetime,
) -> list[RemoteFile]:
    """The files that hold [start, end) (naive UTC, end exclusive), sorted and without duplicates.

    A month whose every day overlaps the window is fetched as one monthly file (one request
    instead of ~30); the other days come as daily files. ``fundingRate`` exists only monthly, so
    every month the window touches is fetched; ``metrics`` and ``liquidationSnapshot`` exist
    only daily. Files may reach beyond the window (a whole day or month); extra rows are harmless.
    """
    _validate(symbols, datasets, timeframes, start, end)
    days = _days(start, end)
    by_month: dict[tuple[int, int], list[date]] = {}
    for d in days:
        by_month.setdefault((d.year, d.month), []).append(d)

    out: set[RemoteFile] = set()
    for symbol in dict.fromkeys(symbols):
        for dataset in dict.fromkeys(datasets):
            tfs: Iterable[str | None] = dict.fromkeys(timeframes) if dataset in KLINE_DATASETS else (None,)
            for tf in tfs:
                for (y, m), month_days in by_month.items():
                    whole = len(month_days) == calendar.monthrange(y, m)[1]
                    if dataset in MONTHLY_ONLY or (whole and dataset not in DAILY_ONLY):
                        out.add(RemoteFile(symbol, dataset, tf, "monthly", date(y, m, 1)))
                    else:
                        out.update(RemoteFile(symbol, dataset, tf, "daily", d) for d in month_days)
    return sorted(out, key=lambda f: (f.symbol, f.dataset, f.timeframe or "", f.day, f.period))


# -- downloading -----------------------------------------------------------------------------
@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try a flaky network: ``attempts`` tries, sleeping backoff * factor**i between."""

    attempts: int = 5
    backoff: float = 1.0
    factor: float = 2.0
    max_delay: float = 30.0
    timeout: float = 60.0

    def delay(self, attempt: int) -> float:
        return min(self.backoff * self.factor**attempt, self.max_delay)


class NotPublished(Exception):
    """The site answered 404: Binance has no such file (not an error for the run)."""


class _Transient(Exception):
    """A failure worth retrying (connection trouble, 5xx, truncated body)."""


class _NoHost(_Transient):
    """The host itself cannot be reached: its name does not resolve, it refuses, or there is no route."""


class HostUnreachableError(SourceError):
    """The site was never reached (offline, no DNS): retrying each of hundreds of files cannot help."""


@dataclass
class FileResult:
    """What happened to one planned file."""

    remote: RemoteFile
    status: Status
    path: Path | None = None
    bytes: int = 0
    error: str | None = None
    rows: int = 0
    new_rows: int = 0
    exc: UserError | None = field(default=None, repr=False, compare=False)


@dataclass
class DownloadReport:
    """Per-file outcome of a download run, in plan order."""

    base_url: str
    cache_dir: Path
    files: list[FileResult] = field(default_factory=list)

    def having(self, *statuses: Status) -> list[FileResult]:
        return [f for f in self.files if f.status in statuses]

    @property
    def verified_paths(self) -> list[Path]:
        return [f.path for f in self.having("downloaded", "cached") if f.path is not None]

    @property
    def bytes_downloaded(self) -> int:
        return sum(f.bytes for f in self.having("downloaded"))

    def summary_lines(self) -> list[str]:
        """Human summary; runs of unpublished consecutive files are folded into one line."""
        n = {s: len(self.having(s)) for s in ("downloaded", "cached", "not-published",
                                               "checksum-mismatch", "failed", "not-tried")}
        not_tried = f", {n['not-tried']} not tried (host unreachable)" if n["not-tried"] else ""
        lines = [
            f"{n['downloaded']} downloaded ({self.bytes_downloaded / 1e6:.1f} MB), {n['cached']} already "
            f"cached, {n['not-published']} not published, {n['checksum-mismatch']} checksum mismatch, "
            f"{n['failed']} failed{not_tried}; {sum(f.new_rows for f in self.files)} new rows in the store",
        ]
        for group in _fold(self.having("not-published")):
            lines.append(f"not published: {group}")
        for f in self.having("checksum-mismatch", "failed"):
            lines.append(f"{f.status}: {f.remote.path}: {f.error}")
        return lines


def _fold(results: list[FileResult]) -> list[str]:
    """'klines BTCUSDT 1m daily 2021-04-10..2021-04-30 (21 files)' for runs of adjacent files."""
    groups: list[list[RemoteFile]] = []
    for r in sorted((r.remote for r in results),
                    key=lambda f: (f.symbol, f.dataset, f.timeframe or "", f.period, f.day)):
        prev = groups[-1][-1] if groups else None
        if (prev is not None and (prev.symbol, prev.dataset, prev.timeframe, prev.period)
                == (r.symbol, r.dataset, r.timeframe, r.period) and prev.covers[1].date() == r.day):
            groups[-1].append(r)
        else:
            groups.append([r])
    out = []
    for g in groups:
        a, b = g[0], g[-1]
        if len(g) == 1:
            out.append(a.path)
            continue
        fmt = (lambda d: d.strftime("%Y-%m")) if a.period == "monthly" else date.isoformat
        what = " ".join(x for x in (a.dataset, a.symbol, a.timeframe, a.period) if x)
        out.append(f"{what} {fmt(a.day)}..{fmt(b.day)} ({len(g)} files)")
    return out


def resolve_base_url(explicit: str | None = None) -> str:
    """``--base-url`` beats ``BACKTEST_BINANCE_VISION_URL`` beats data.binance.vision."""
    url = explicit or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
    if not re.match(r"^https?://", url):
        raise UserError(f"--base-url: {url!r} is not an http(s) URL")
    return url if url.endswith("/") else url + "/"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def parse_checksum(text: str, expected_name: str, where: str) -> str:
    """The hex digest from a ``<sha256>  <filename>`` sidecar, refusing one for another file."""
    m = _CHECKSUM_LINE.match(text.strip())
    if not m:
        raise SourceError(f"{where}: malformed checksum file (expected '<sha256>  <filename>')")
    digest, name = m.group(1).lower(), m.group(2)
    if name != expected_name:
        raise SourceError(f"{where}: checksum is for {name!r}, not {expected_name!r}")
    return digest


class Downloader:
    """Fetches remote files into a cache that mirrors the site, verifying every byte.

    Until the site has answered once, a failure to reach the host at all (name lookup, refused
    connection, no route) is final: it sets ``unreachable`` and every later ``fetch`` returns
    "not-tried" at once, so an offline first run fails in seconds instead of retrying every file.
    Once the host has answered, the same failures count as a flaky network and are retried.
    """

    def __init__(self, base_url: str, cache_dir: Path, retry: RetryPolicy | None = None,
                 on_bytes: Callable[[int], None] | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.base_url = base_url
        self.cache_dir = Path(cache_dir)
        self.retry = retry or RetryPolicy()
        self.on_bytes = on_bytes or (lambda n: None)
        self.sleep = sleep
        self.reached = False
        self.unreachable: str | None = None

    def local_path(self, remote: RemoteFile) -> Path:
        return self.cache_dir.joinpath(*remote.path.split("/"))

    def cached(self, remote: RemoteFile) -> Path | None:
        """The cached zip if it and its sidecar exist and agree; a stale pair is removed."""
        path = self.local_path(remote)
        sidecar = path.with_name(path.name + ".CHECKSUM")
        if not (path.is_file() and sidecar.is_file()):
            return None
        try:
            digest = parse_checksum(sidecar.read_text(), remote.name, str(sidecar))
        except (SourceError, UnicodeDecodeError):
            digest = None
        if digest is not None and sha256_file(path) == digest:
            return path
        path.unlink(missing_ok=True)
        sidecar.unlink(missing_ok=True)
        return None

    def fetch(self, remote: RemoteFile) -> FileResult:
        """Cache hit, or download + verify + rename. Never raises for one file's trouble."""
        hit = self.cached(remote)
        if hit is not None:
            return FileResult(remote, "cached", hit)
        if self.unreachable is not None:
            return FileResult(remote, "not-tried", error=self.unreachable)
        try:
            checksum_text = self._retrying(remote.checksum_path, None).decode("utf-8", "replace")
            digest = parse_checksum(checksum_text, remote.name, self.base_url + remote.checksum_path)
            path = self.local_path(remote)
            path.parent.mkdir(parents=True, exist_ok=True)
            part = path.with_name(path.name + ".part")
            try:
                size = self._retrying(remote.path, part)
                actual = sha256_file(part)
                if actual != digest:
                    raise ChecksumError(
                        f"{self.base_url}{remote.path}: sha256 {actual} does not match the published "
                        f"checksum {digest}; file refused"
                    )
                os.replace(part, path)
            finally:
                part.unlink(missing_ok=True)
            _write_atomic(path.with_name(path.name + ".CHECKSUM"), checksum_text.encode())
            return FileResult(remote, "downloaded", path, bytes=size)
        except NotPublished:
            return FileResult(remote, "not-published")
        except HostUnreachableError as exc:
            return FileResult(remote, "failed", error=str(exc))
        except ChecksumError as exc:
            self.local_path(remote).unlink(missing_ok=True)
            return FileResult(remote, "checksum-mismatch", error=str(exc))
        except SourceError as exc:
            return FileResult(remote, "failed", error=str(exc))

    def _retrying(self, rel: str, dest: Path | None) -> bytes | int:
        url = self.base_url + rel
        last = ""
        for attempt in range(self.retry.attempts):
            if attempt:
                self.sleep(self.retry.delay(attempt - 1))
            try:
                return self._get(url, dest)
            except _NoHost as exc:
                if not self.reached:
                    self.unreachable = self.unreachable or str(exc)
                    raise HostUnreachableError(f"{url}: host unreachable ({exc})") from None
                last = str(exc)
            except _Transient as exc:
                last = str(exc)
        raise SourceError(f"{url}: gave up after {self.retry.attempts} attempts ({last})")

    def _get(self, url: str, dest: Path | None) -> bytes | int:
        """One GET: the body in memory (dest None) or streamed to ``dest``; returns bytes / size."""
        req = urllib.request.Request(url, headers={"User-Agent": "crash-backtest"})
        try:
            with urllib.request.urlopen(req, timeout=self.retry.timeout) as resp:
                self.reached = True
                expected = resp.headers.get("Content-Length")
                if dest is None:
                    body = resp.read()
                    got = len(body)
                else:
                    got = 0
                    with dest.open("wb") as fh:
                        while chunk := resp.read(_CHUNK):
                            fh.write(chunk)
                            got += len(chunk)
                            self.on_bytes(len(chunk))
                if expected is not None and int(expected) != got:
                    raise _Transient(f"truncated body: {got} of {expected} bytes")
                return body if dest is None else got
        except urllib.error.HTTPError as exc:
            self.reached = True
            if exc.code == 404:
                raise NotPublished(url) from None
            if exc.code in _TRANSIENT:
                raise _Transient(f"HTTP {exc.code}") from None
            raise SourceError(f"{url}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, HTTPException, ConnectionError, TimeoutError) as exc:
            cause = _no_host(exc)
            if cause is not None:
                raise _NoHost(cause) from None
            raise _Transient(f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}") from None


def _no_host(exc: BaseException) -> str | None:
    """Why the host cannot be reached at all (no name, refused, no route), or None for a dropped/slow link."""
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if not isinstance(reason, OSError):
        return None
    text = reason.strerror or str(reason)
    if isinstance(reason, socket.gaierror):
        return f"name lookup failed: {text}"
    if isinstance(reason, ConnectionRefusedError):
        return f"connection refused: {text}"
    if reason.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return f"no route: {text}"
    return None


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# -- the whole run ---------------------------------------------------------------------------
def _import_one(store: Store, result: FileResult) -> None:
    """Hand one verified file to the archive importer (it runs one transaction per file).

    An import failure (bad content, conflict with stored rows) marks the file failed and keeps
    the exception, so the run goes on and raises it at the end.
    """
    from loaders.archive import import_paths

    report = import_paths(store, [result.path], verify=True, progress=False)
    for item in report.files:
        result.rows += item.rows or 0
        result.new_rows += item.new_rows or 0
        if item.status == "failed":
            result.status, result.error = "failed", item.reason
            result.exc = item.error or UserError(str(item.reason))


def download_window(
    store: Store | None,
    symbols: Sequence[str],
    start: datetime,
    end: datetime,
    *,
    datasets: Sequence[str] | None = None,
    timeframes: Sequence[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    base_url: str | None = None,
    progress: bool = False,
    retry: RetryPolicy | None = None,
    workers: int = 4,
) -> DownloadReport:
    """Download, verify and import every Binance public-data file for [start, end).

    Each verified file is imported as soon as it arrives, so an interrupted run keeps what it
    got; a re-run finds verified files in the cache and the importer skips files it already
    imported. ``store=None`` only fills the cache. Unpublished files (HTTP 404) are reported and
    skipped; a window where nothing at all is published, a checksum mismatch, or a file that
    keeps failing raises (after the rest of the run) with the report attached as ``.report``.
    """
    plan = plan_files(symbols, datasets or DEFAULT_DATASETS, timeframes or DEFAULT_TIMEFRAMES, start, end)
    from loaders.locations import default_cache_dir

    report = DownloadReport(resolve_base_url(base_url), Path(cache_dir or default_cache_dir()))
    with _Progress(progress, len(plan)) as bar:
        downloader = Downloader(report.base_url, report.cache_dir, retry, on_bytes=bar.advance_bytes)
        results: dict[RemoteFile, FileResult] = {}
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            pending: set[Future[FileResult]] = {pool.submit(downloader.fetch, f) for f in plan}
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                # Imports run here, one at a time: the store connection is not shared with threads.
                for fut in sorted(done, key=lambda f: f.result().remote):
                    res = fut.result()
                    results[res.remote] = res
                    bar.advance_file(res.remote.name)
                    if res.status == "not-published" and res.remote.period == "monthly" \
                            and res.remote.dataset not in MONTHLY_ONLY:
                        days = split_daily(res.remote)
                        bar.add_files(len(days))
                        pending.update(pool.submit(downloader.fetch, f) for f in days)
                    elif store is not None and res.status in ("downloaded", "cached"):
                        try:
                            _import_one(store, res)
                        except BaseException:
                            for other in pending:
                                other.cancel()
                            raise
    report.files = [results[f] for f in _final_order(plan, results)]
    _raise_for(report, downloader.unreachable)
    return report


def split_daily(monthly: RemoteFile) -> list[RemoteFile]:
    """The daily files of a monthly one: Binance publishes a month's file only days after it
    ends, while daily files appear the next day, so a missing monthly file is retried as dailies."""
    first, stop = monthly.covers
    return [RemoteFile(monthly.symbol, monthly.dataset, monthly.timeframe, "daily", d)
            for d in _days(first, stop)]


def _final_order(plan: list[RemoteFile], results: dict[RemoteFile, FileResult]) -> list[RemoteFile]:
    """Plan order, with a monthly file that had to be fetched as dailies replaced by them."""
    out = []
    for f in plan:
        days = [d for d in split_daily(f) if d in results] if f.period == "monthly" else []
        out.extend(days or [f])
    return out


def _raise_for(report: DownloadReport, unreachable: str | None = None) -> None:
    bad = report.having("checksum-mismatch")
    if unreachable is not None:
        skipped = len(report.having("not-tried", "failed"))
        err: UserError = HostUnreachableError(
            f"{report.base_url} cannot be reached ({unreachable}); {skipped} file(s) not downloaded"
        )
    elif bad:
        err = ChecksumError(_many(bad, "refused (checksum mismatch)"))
    elif report.having("failed"):
        failed = report.having("failed")
        if len(failed) == 1 and failed[0].exc is not None:
            err = failed[0].exc  # an import error keeps its own type (ConflictError, InputError)
        else:
            err = SourceError(_many(failed, "failed; re-run to resume (verified files are kept)"))
    elif report.files and len(report.having("not-published")) == len(report.files):
        first, last = report.files[0].remote, report.files[-1].remote
        err = SourceError(
            f"{report.base_url}: none of the {len(report.files)} files for this window is published "
            f"({first.path} .. {last.path}); check the symbols and dates"
        )
    else:
        return
    err.report = report  # type: ignore[attr-defined]
    raise err


def _many(bad: list[FileResult], what: str) -> str:
    more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
    return f"{bad[0].error}{more}; {len(bad)} file(s) {what}"


class _Progress:
    """A rich bar over files and bytes; a no-op when off or not on a terminal."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled = enabled
        self.total = total
        self.progress = None
        self._bytes = 0
        self._files = 0
        self._last_line = 0.0

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            console = Console(stderr=True)
            if console.is_terminal:
                self.progress = Progress(
                    TextColumn("{task.description:<40}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("files  {task.fields[mb]:.1f} MB"), TimeElapsedColumn(),
                    console=console, transient=True,
                )
                self.progress.start()
                self.task = self.progress.add_task("binance-vision", total=self.total, mb=0.0)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def advance_bytes(self, n: int) -> None:
        self._bytes += n
        if self.progress is not None:
            self.progress.update(self.task, mb=self._bytes / 1e6)

    def add_files(self, n: int) -> None:
        if self.progress is not None:
            self.total += n
            self.progress.update(self.task, total=self.total)

    def advance_file(self, name: str) -> None:
        self._files += 1
        if self.enabled and self.progress is None:
            # Off a terminal: a plain line every few seconds and at the end, so a pipe shows the run is alive.
            now = time.monotonic()
            if now - self._last_line >= 5.0 or self._files == self.total:
                self._last_line = now
                print(f"data.binance.vision: {self._files}/{self.total} files, {self._bytes / 1e6:.1f} MB",
                      file=sys.stderr, flush=True)
        if self.progress is not None:
            self.progress.update(self.task, advance=1, description=name)
