"""First use just works: make sure the store holds a window before anything reads it.

Every command that needs a window calls ``ensure_window``. If the store already holds the
window's last-price candles, mark candles and funding (warm-up included) it does nothing. Else
it imports the relevant files of the recorded archive when one is configured (cheap, offline),
then downloads from data.binance.vision if allowed, and otherwise fails with one line that says
exactly what to run. Missing mark candles alone are not fatal: the window loader then uses
last price as mark and records that assumption, so the report only notes them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from backtest.paths import resolve_archive
from loaders.errors import SourceError, UserError

if TYPE_CHECKING:
    from backtest.events import Event
    from loaders.store import Store

#: What a window needs, in the words used in messages.
LAST, MARK, FUNDING = "last-price candles", "mark candles", "funding"
#: Venues data.binance.vision serves (USDⓈ-M futures).
DOWNLOADABLE_VENUES = ("binanceusdm",)
_DATE_IN_NAME = re.compile(r"(\d{4})-(\d{2})(?:-(\d{2}))?$")


@dataclass
class Missing:
    """What one symbol lacks: dataset names and the first hole (for the message)."""

    datasets: list[str] = field(default_factory=list)
    first_gap: tuple[datetime, datetime] | None = None

    @property
    def fatal(self) -> bool:
        return any(d != MARK for d in self.datasets)


@dataclass
class EnsureReport:
    """What ``ensure_window`` found and did."""

    event_id: str
    venue: str
    symbols: tuple[str, ...]
    store_path: Path
    missing_before: dict[str, list[str]] = field(default_factory=dict)
    missing_after: dict[str, list[str]] = field(default_factory=dict)
    archive: Path | None = None
    imported_files: int = 0
    new_rows: int = 0
    downloaded_files: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.new_rows > 0 or self.downloaded_files > 0

    def lines(self) -> list[str]:
        if not any(self.missing_before.values()):
            return [f"{self.event_id}: the store already holds {', '.join(self.symbols)} ({self.venue})"]
        out = []
        if self.archive is not None:
            out.append(f"{self.event_id}: imported {self.imported_files} file(s) from {self.archive} "
                       f"({self.new_rows:,} new rows) into {self.store_path}")
        if self.downloaded_files:
            out.append(f"{self.event_id}: downloaded {self.downloaded_files} file(s) "
                       "from data.binance.vision")
        return out + self.notes


def ensure_window(
    store_path: str | os.PathLike[str] | None,
    event: Event,
    venue: str,
    symbols: tuple[str, ...] | list[str],
    *,
    archive: str | os.PathLike[str] | None = None,
    allow_download: bool = True,
    progress: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    base_url: str | None = None,
) -> EnsureReport:
    """Fill the store with what ``event`` needs for ``symbols`` on ``venue``; idempotent.

    ``archive`` is resolved like ``--archive`` (explicit, ``BACKTEST_ARCHIVE``, sibling
    ``shared/data``). ``cache_dir`` and ``base_url`` go to the downloader.
    """
    from loaders.store import Store

    symbols = tuple(dict.fromkeys(symbols))
    # A complete window needs no write lock: checked read-only, so a notebook or a second run holding the
    # store read-only does not make this run fail "locked". Only a window that needs filling opens for write.
    with Store(store_path, read_only=True) as store:
        report = EnsureReport(event.id, venue, symbols, store.path)
        missing = {s: missing_data(store, event, venue, s) for s in symbols}
    report.missing_before = {s: m.datasets for s, m in missing.items()}
    if not any(m.datasets for m in missing.values()):
        return report
    with Store(store_path) as store:
        missing = {s: missing_data(store, event, venue, s) for s in symbols}  # another run may have filled it
        todo = [s for s, m in missing.items() if m.datasets]
        if not todo:
            return report

        archive_dir = resolve_archive(archive)
        if archive_dir is not None:
            report.archive = archive_dir
            _import_archive(store, archive_dir, event, venue, todo, report, progress)
            missing.update({s: missing_data(store, event, venue, s) for s in todo})
            todo = [s for s in todo if missing[s].datasets]

        if todo and allow_download and venue in DOWNLOADABLE_VENUES:
            try:
                _download(store, event, todo, report, progress, cache_dir, base_url)
            except SourceError as exc:
                raise UserError(_download_failed(event, exc, archive_dir)) from exc
            missing.update({s: missing_data(store, event, venue, s) for s in todo})
            todo = [s for s in todo if missing[s].datasets]

        report.missing_after = {s: missing[s].datasets for s in symbols}
        fatal = [s for s in todo if missing[s].fatal]
        if fatal:
            raise UserError(_message(event, venue, fatal[0], missing[fatal[0]], store.path, archive_dir,
                                     allow_download, report.downloaded_files > 0))
        for s in todo:
            report.notes.append(f"{event.id} {s}: no {MARK} found anywhere; last price will stand in as mark")
        if progress:
            from backtest.progress_lines import line

            for text in report.lines():
                line(text)
        return report


def missing_data(store: Store, event: Event, venue: str, symbol: str) -> Missing:
    """What the store lacks for the window (warm-up included), judged exactly as the loader judges it."""
    import polars as pl

    from backtest.window import load_window

    w = load_window(store, event, venue, symbol, allow_gaps=True)
    out = Missing()
    gaps = w.coverage.gaps
    for prefix, name in (("candles", LAST), ("funding", FUNDING)):
        mine = gaps.filter(pl.col("dataset").str.starts_with(prefix))
        if mine.height:
            out.datasets.append(name)
            if out.first_gap is None:
                out.first_gap = (mine["gap_start"][0], mine["gap_end"][0])
    if w.bars.height == 0 or (w.bars["mark_source"] == "last_as_mark").any():
        out.datasets.insert(1 if LAST in out.datasets else 0, MARK)
    return out


def archive_files(archive: Path, event: Event, venue: str,
                  symbols: tuple[str, ...] | list[str]) -> list[Path]:
    """The archive files that can hold ``symbols`` on ``venue`` during [load_start, end].

    Whole-history files (no date in the name) are always relevant; monthly/daily files only
    when their month/day overlaps the window. Files in no known layout are left out.
    """
    from loaders.archive import DATA_SUFFIXES, discover, infer_dataset
    from loaders.errors import InputError

    out = []
    for path, _, _ in discover([archive]):
        if not path.name.lower().endswith(DATA_SUFFIXES):
            continue
        try:
            inf = infer_dataset(path)
        except InputError:
            continue
        if inf.venue != venue or inf.symbol not in symbols:
            continue
        if inf.kind not in ("candles", "funding", "open_interest", "liquidations"):
            continue
        if inf.kind == "candles" and inf.price_type not in ("last", "mark"):
            continue
        span = _name_span(path)
        if span is not None and not (span[0] <= event.end and span[1] > event.load_start):
            continue
        out.append(path)
    return out


def _name_span(path: Path) -> tuple[datetime, datetime] | None:
    """[first, end) of a monthly (YYYY-MM) or daily (YYYY-MM-DD) file, from its name."""
    stem = path.name
    for suffix in (".csv.gz", ".json.gz", ".csv", ".json", ".zip", ".gz"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    m = _DATE_IN_NAME.search(stem)
    if m is None:
        return None
    y, mo, d = int(m.group(1)), int(m.group(2)), m.group(3)
    if d is not None:
        first = datetime(y, mo, int(d))
        return first, first + timedelta(days=1)
    first = datetime(y, mo, 1)
    return first, datetime(y + mo // 12, mo % 12 + 1, 1)


def _import_archive(store: Store, archive: Path, event: Event, venue: str, symbols: list[str],
                    report: EnsureReport, progress: bool) -> None:
    from backtest.progress_lines import line, stderr_is_terminal
    from loaders.archive import import_paths

    files = archive_files(archive, event, venue, symbols)
    if not files:
        return
    if progress and not stderr_is_terminal():
        line(f"{event.id}: importing {len(files)} file(s) from the archive {archive} into {store.path} ...")
    result = import_paths(store, files, progress=progress and stderr_is_terminal())
    result.raise_for_failures()
    report.imported_files += len(result.having("imported"))
    report.new_rows += result.new_rows


def _download(store: Store, event: Event, symbols: list[str], report: EnsureReport, progress: bool,
              cache_dir: str | os.PathLike[str] | None, base_url: str | None) -> None:
    """1m and 1h candles for the window itself, 1h for the warm-up (1m there would cost ~30x the bytes)."""
    from loaders.binance_vision import download_window

    kw = dict(cache_dir=cache_dir, base_url=base_url, progress=progress)
    core = ("klines", "markPriceKlines", "fundingRate")
    parts = [(event.start, event.end, (*core, "metrics"), ("1m", "1h"))]
    if event.load_start < event.start:
        parts.insert(0, (event.load_start, event.start, core, ("1h",)))
    fetched: set[str] = set()
    for start, end, datasets, timeframes in parts:
        rep = download_window(store, symbols, start, end, datasets=datasets, timeframes=timeframes, **kw)
        got = rep.having("downloaded", "cached")
        fetched.update(f.remote.path for f in got)
        report.new_rows += sum(f.new_rows for f in got)
    report.downloaded_files += len(fetched)


def fill_hint(event_id: str, venue: str) -> str:
    """What to run to fill a window on ``venue`` (shared by the failure message and ``data status``)."""
    if venue not in DOWNLOADABLE_VENUES:
        return (f"run `backtest data sync --event {event_id} --venue {venue}` (internet) or import files "
                "with `backtest data import`")
    return f"run `backtest data download --event {event_id}` (internet)"


def _download_failed(event: Event, exc: SourceError, archive: Path | None) -> str:
    """A failed download in a run: the cause, then the ways to get the data (the archive works offline)."""
    from loaders.binance_vision import HostUnreachableError

    where = (f"the archive {archive} does not hold it" if archive is not None
             else "no archive is configured")
    if isinstance(exc, HostUnreachableError):
        return (f"{event.id} is not in the store, {where}, and {exc}: pass --archive DIR or set "
                "BACKTEST_ARCHIVE to the recorded archive, or connect to the internet for "
                "data.binance.vision")
    return (f"{event.id}: downloading from data.binance.vision failed ({exc}); {where}: re-run to resume, "
            "or pass --archive DIR / set BACKTEST_ARCHIVE to the recorded archive")


def _message(event: Event, venue: str, symbol: str, missing: Missing, store_path: Path,
             archive: Path | None, allow_download: bool, downloaded: bool) -> str:
    what = ", ".join(missing.datasets)
    gap = ""
    if missing.first_gap is not None:
        a, b = missing.first_gap
        gap = f", first gap {a:%Y-%m-%d %H:%M} -> {b:%Y-%m-%d %H:%M}"
    head = f"no complete data for {event.id} {symbol} ({what} missing{gap}) in {store_path}"
    fix = fill_hint(event.id, venue)
    if downloaded:
        return (f"{head} even after downloading from data.binance.vision: check `backtest data status "
                f"--event {event.id}` and import the missing files with `backtest data import`")
    if archive is None:
        return f"{head} and no archive configured: {fix} or pass --archive DIR / set BACKTEST_ARCHIVE"
    return f"{head} and the archive {archive} does not hold it: {fix} or pass --archive DIR with the files"
