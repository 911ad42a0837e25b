"""Import archive files into the store: discovery, dataset inference, checksums, one transaction per file.

Two folder layouts are understood: the recorded archive (``shared/data``: ``binance-um/klines-1h/
BTCUSDT-1h-perp.csv.gz`` ...) and data.binance.vision (``data/futures/um/monthly/klines/BTCUSDT/1h/
BTCUSDT-1h-2021-05.zip`` ...). Venue, symbol, price type and timeframe come from the path unless
overridden; the timestamps must agree with the timeframe. A file already imported with the same
SHA-256 for the same dataset is skipped, so re-importing a whole archive is nearly free.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from dataclasses import replace as _with
from datetime import datetime
from pathlib import Path

import polars as pl

from loaders import formats, plausibility
from loaders.errors import ChecksumError, InputError, UserError
from loaders.store import Store

SOURCE = "archive"
DATA_SUFFIXES = (".csv", ".csv.gz", ".zip", ".json", ".json.gz")
OVERRIDE_KEYS = ("venue", "symbol", "price_type", "timeframe")
OPTION = {"venue": "--venue", "symbol": "--symbol", "price_type": "--price-type", "timeframe": "--timeframe"}

#: Top folders of the recorded-archive layout and the ccxt venue they hold.
VENUE_DIRS = {"binance-um": "binanceusdm", "binance-cm": "binancecoinm", "binance-spot": "binance",
              "bitmex": "bitmex", "bybit": "bybit", "okx": "okx"}
#: data.binance.vision dataset folders: (kind, price type).
VISION_DATASETS = {
    "klines": ("candles", "last"), "markPriceKlines": ("candles", "mark"),
    "indexPriceKlines": ("candles", "index"), "fundingRate": ("funding", None),
    "metrics": ("open_interest", None), "liquidationSnapshot": ("liquidations", None),
}
VISION_MARKETS = {("futures", "um"): "binanceusdm", ("futures", "cm"): "binancecoinm"}

_SYM = r"(?P<symbol>[A-Za-z0-9_]+?)"
_TF = r"(?P<timeframe>\d+[mhd])"
_DATE = r"\d{4}-\d{2}(?:-\d{2})?"
#: File-name rules: (pattern, kind, price type implied by the name).
NAME_RULES: list[tuple[re.Pattern[str], str, str | None]] = [
    (re.compile(rf"^{_SYM}-fundingRate-{_DATE}$"), "funding", None),
    (re.compile(rf"^{_SYM}-funding$"), "funding", None),
    (re.compile(rf"^{_SYM}-metrics-{_DATE}$"), "open_interest", None),
    (re.compile(rf"^{_SYM}-liquidationSnapshot-{_DATE}$"), "liquidations", None),
    (re.compile(rf"^{_SYM}-markPrice-{_TF}$"), "candles", "mark"),
    (re.compile(rf"^{_SYM}-indexPrice-{_TF}$"), "candles", "index"),
    (re.compile(rf"^{_SYM}-{_TF}-perp$"), "candles", "last"),
    (re.compile(rf"^{_SYM}-{_TF}-spot$"), "candles", "spot"),
    (re.compile(rf"^{_SYM}-{_TF}-{_DATE}$"), "candles", None),
]
_FOLDER_RULES: list[tuple[re.Pattern[str], str, str | None]] = [
    (re.compile(rf"^klines-{_TF}$"), "candles", "last"),
    (re.compile(rf"^markprice-{_TF}$"), "candles", "mark"),
    (re.compile(rf"^indexprice-{_TF}$"), "candles", "index"),
    (re.compile(r"^funding$"), "funding", None),
    (re.compile(r"^(?:metrics|open-interest)$"), "open_interest", None),
    (re.compile(r"^liquidations$"), "liquidations", None),
]
_TABLE = {"candles": "candles", "funding": "funding", "open_interest": "open_interest",
          "liquidations": "liquidations"}
_KEY_IN_FILE = {"candles": ["ts"], "funding": ["ts"], "open_interest": ["ts"],
                "liquidations": ["ts", "side", "price", "qty"]}
OI_PERIOD = "5m"  # Binance metrics files hold 5-minute open interest


# -- datasets ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Inferred:
    """What a path (and overrides) says about a file; unknown fields are None."""

    kind: str | None = None
    venue: str | None = None
    symbol: str | None = None
    price_type: str | None = None
    timeframe: str | None = None

    def name(self) -> str | None:
        """The ingest-log dataset name, once every needed field is known."""
        if self.kind is None or self.venue is None or self.symbol is None:
            return None
        base = f"{self.venue}/{self.symbol}"
        if self.kind == "candles":
            if self.price_type is None or self.timeframe is None:
                return None
            return f"{base}/{self.price_type}/{self.timeframe}"
        if self.kind == "open_interest":
            return f"{base}/open_interest/{OI_PERIOD}"
        return f"{base}/{self.kind}"


def _strip_suffix(name: str) -> str:
    for suffix in (".csv.gz", ".json.gz", ".csv", ".json", ".zip", ".gz"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _merge(path: Path, found: dict[str, tuple[str, str]], field_: str, value: str | None, where: str) -> None:
    if value is None:
        return
    if field_ in found and found[field_][0] != value:
        raise InputError(path, f"the path says {field_} {found[field_][0]!r} ({found[field_][1]}) and "
                               f"{value!r} ({where}); pass {OPTION.get(field_, '--' + field_)}")
    found.setdefault(field_, (value, where))


def infer_dataset(path: str | Path) -> Inferred:
    """Kind, venue, symbol, price type and timeframe implied by folder and file names.

    Folder and file name must agree where both say something; a disagreement is an InputError.
    """
    path = Path(path)
    parts = path.parts
    found: dict[str, tuple[str, str]] = {}
    stem = _strip_suffix(path.name)
    for pattern, kind, price in NAME_RULES:
        m = pattern.match(stem)
        if m:
            _merge(path, found, "kind", kind, "file name")
            _merge(path, found, "symbol", m.group("symbol"), "file name")
            _merge(path, found, "price_type", price, "file name")
            _merge(path, found, "timeframe", m.groupdict().get("timeframe"), "file name")
            break
    # data.binance.vision: .../{futures/um|futures/cm|spot}/{monthly|daily}/<dataset>/<SYMBOL>[/<tf>]/file
    for i in range(len(parts) - 3):
        if parts[i + 1] in ("monthly", "daily") and (
                (i >= 1 and (parts[i - 1], parts[i]) in VISION_MARKETS) or parts[i] == "spot"):
            dataset = parts[i + 2]
            if dataset not in VISION_DATASETS:
                break
            kind, price = VISION_DATASETS[dataset]
            spot = parts[i] == "spot"
            where = "/".join(parts[max(0, i - 1):i + 3])
            venue = "binance" if spot else VISION_MARKETS[(parts[i - 1], parts[i])]
            _merge(path, found, "venue", venue, where)
            _merge(path, found, "kind", kind, where)
            _merge(path, found, "price_type", "spot" if spot and kind == "candles" else price, where)
            if i + 3 < len(parts) - 1:
                _merge(path, found, "symbol", parts[i + 3], "symbol folder")
            if kind == "candles" and i + 4 < len(parts) - 1:
                _merge(path, found, "timeframe", parts[i + 4], "timeframe folder")
            break
    else:
        # Recorded-archive layout: <venue-dir>/<dataset-dir>/file
        if len(parts) >= 3 and parts[-3] in VENUE_DIRS:
            venue_dir = parts[-3]
            for pattern, kind, price in _FOLDER_RULES:
                m = pattern.match(parts[-2])
                if m:
                    where = f"{venue_dir}/{parts[-2]}"
                    if venue_dir == "binance-spot" and kind == "candles":
                        price = "spot"
                    _merge(path, found, "venue", VENUE_DIRS[venue_dir], where)
                    _merge(path, found, "kind", kind, where)
                    _merge(path, found, "price_type", price, where)
                    _merge(path, found, "timeframe", m.groupdict().get("timeframe"), where)
                    break
    return Inferred(**{k: v[0] for k, v in found.items()})


# -- checksums --------------------------------------------------------------------------------
_SUM_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *]?(.+?)\s*$")


class _Checksums:
    """Parsed SHA256SUMS files (cached per directory) and ``.CHECKSUM`` sidecars."""

    def __init__(self) -> None:
        self._sums: dict[Path, dict[str, tuple[str, int]] | None] = {}

    def _load(self, directory: Path) -> dict[str, tuple[str, int]] | None:
        if directory not in self._sums:
            sums_file = directory / "SHA256SUMS"
            entries: dict[str, tuple[str, int]] | None = None
            if sums_file.is_file():
                entries = {}
                for n, line in enumerate(sums_file.read_text("utf-8", "replace").splitlines(), start=1):
                    if not line.strip() or line.lstrip().startswith("#"):
                        continue
                    m = _SUM_LINE.match(line)
                    if not m:
                        raise InputError(sums_file, "malformed line; expected '<sha256>  <path>'", n)
                    rel = m.group(2)
                    rel = rel[2:] if rel.startswith("./") else rel
                    entries[rel] = (m.group(1).lower(), n)
            self._sums[directory] = entries
        return self._sums[directory]

    def verify(self, path: Path, digest: str, root: Path) -> list[str]:
        """Check every published checksum of ``path``; return where they came from."""
        checked: list[str] = []
        path = path.resolve()
        for directory in path.parents:
            entries = self._load(directory)
            if entries is not None:
                rel = path.relative_to(directory).as_posix()
                if rel in entries:
                    expected, n = entries[rel]
                    sums_file = directory / "SHA256SUMS"
                    if expected != digest:
                        raise ChecksumError(f"{path}: SHA-256 {digest} does not match {expected} listed in "
                                            f"{sums_file}:{n}; the file is damaged or was changed")
                    checked.append(str(sums_file))
            if directory == root or directory == directory.parent:
                break
        sidecar = path.with_name(path.name + ".CHECKSUM")
        if sidecar.is_file():
            text = sidecar.read_text("utf-8", "replace").strip()
            m = _SUM_LINE.match(text)
            if not m:
                raise InputError(sidecar, "malformed checksum file; expected '<sha256>  <file name>'", 1)
            if Path(m.group(2)).name != path.name:
                raise ChecksumError(f"{sidecar}: names {m.group(2)!r}, not {path.name!r}")
            if m.group(1).lower() != digest:
                raise ChecksumError(f"{path}: SHA-256 {digest} does not match {m.group(1).lower()} in "
                                    f"{sidecar}; the file is damaged or was changed")
            checked.append(str(sidecar))
        return checked


# -- results ----------------------------------------------------------------------------------
@dataclass
class FileResult:
    """What happened to one file: imported, unchanged (already imported), skipped or failed."""

    path: Path
    status: str = "pending"
    dataset: str | None = None
    rows: int = 0
    new_rows: int = 0
    duplicates: int = 0
    first_ts: datetime | None = None
    last_ts: datetime | None = None
    reason: str | None = None
    error: UserError | None = None
    verified: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # rows stored anyway (loaders/plausibility.py)

    def as_dict(self) -> dict[str, object]:
        return {
            "path": str(self.path), "status": self.status, "dataset": self.dataset, "rows": self.rows,
            "new_rows": self.new_rows, "duplicates_dropped": self.duplicates,
            "first_ts": self.first_ts.isoformat() if self.first_ts else None,
            "last_ts": self.last_ts.isoformat() if self.last_ts else None,
            "reason": self.reason, "verified_by": self.verified, "warnings": self.warnings,
        }


@dataclass
class ImportReport:
    """Per-file results of one import run, in the order the files were processed."""

    files: list[FileResult] = field(default_factory=list)
    elapsed: float = 0.0

    def having(self, *statuses: str) -> list[FileResult]:
        return [f for f in self.files if f.status in statuses]

    @property
    def failures(self) -> list[FileResult]:
        return self.having("failed")

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files if f.status == "imported")

    @property
    def new_rows(self) -> int:
        return sum(f.new_rows for f in self.files)

    def totals(self) -> dict[str, int]:
        out = {s: len(self.having(s)) for s in ("imported", "unchanged", "skipped", "failed")}
        out.update(files=len(self.files), rows=self.rows, new_rows=self.new_rows,
                   duplicates_dropped=sum(f.duplicates for f in self.files))
        return out

    def raise_for_failures(self) -> None:
        """Raise the failure (one file) or a summary naming the first (several), after the run."""
        failed = self.failures
        if len(failed) == 1 and failed[0].error is not None:
            raise failed[0].error
        if failed:
            raise UserError(f"{len(failed)} of {len(self.files)} files failed; first: {failed[0].reason}")


# -- discovery --------------------------------------------------------------------------------
def discover(paths: Iterable[str | Path]) -> list[tuple[Path, bool, Path]]:
    """(file, named explicitly, import root) for every file under ``paths``, sorted, each once."""
    out: list[tuple[Path, bool, Path]] = []
    seen: set[Path] = set()
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            root = p.resolve()
            files = sorted(f for f in p.rglob("*") if f.is_file()
                           and not any(part.startswith(".") for part in f.relative_to(p).parts))
            items = [(f, False, root) for f in files]
        elif p.is_file():
            # A named file is checked against SHA256SUMS in any folder above it.
            items = [(p, True, Path(p.resolve().anchor))]
        else:
            raise InputError(p, "no such file or directory")
        for f, explicit, root in items:
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                out.append((f, explicit, root))
    return out


def _not_data(path: Path) -> str | None:
    name = path.name
    if name == "SHA256SUMS" or name.endswith(".CHECKSUM"):
        return "checksum file"
    if name.endswith((".part", ".tmp")):
        return "partial download"
    if not name.lower().endswith(DATA_SUFFIXES):
        return f"not a data file (expected {', '.join(DATA_SUFFIXES)})"
    return None


# -- one file ---------------------------------------------------------------------------------
class _Skip(Exception):  # noqa: N818 - control flow, not an error
    """The file is not market data in a known layout."""


class _Importer:
    def __init__(self, store: Store, overrides: dict[str, str | None], replace: bool, verify: bool) -> None:
        self.store = store
        self.overrides = {k: v for k, v in overrides.items() if v}
        unknown = set(self.overrides) - set(OVERRIDE_KEYS)
        if unknown:
            raise ValueError(f"unknown overrides {sorted(unknown)}")
        self.replace = replace
        self.verify = verify
        self.checksums = _Checksums()
        log = store.query("SELECT dataset, sha256, rows, first_ts, last_ts FROM ingest_log WHERE source = ?",
                          [SOURCE])
        self.logged = {(r["dataset"], r["sha256"]): r for r in log.iter_rows(named=True)}

    def run(self, path: Path, explicit: bool, root: Path) -> FileResult:
        result = FileResult(path)
        try:
            self._import(result, path, root)
        except _Skip as skip:
            if explicit:
                err = InputError(path, f"unsupported file: {skip}")
                result.status, result.reason, result.error = "failed", str(err), err
            else:
                result.status, result.reason = "skipped", str(skip)
        except UserError as err:
            result.status, result.reason, result.error = "failed", str(err), err
        return result

    def _unchanged(self, result: FileResult, dataset: str | None, digest: str) -> bool:
        if self.replace or dataset is None or (dataset, digest) not in self.logged:
            return False
        rec = self.logged[(dataset, digest)]
        result.status, result.dataset, result.rows = "unchanged", dataset, rec["rows"] or 0
        result.first_ts, result.last_ts = rec["first_ts"], rec["last_ts"]
        result.reason = "already imported (same SHA-256)"
        return True

    def _import(self, result: FileResult, path: Path, root: Path) -> None:
        why = _not_data(path)
        if why:
            raise _Skip(why)
        size = path.stat().st_size
        if size > formats.MAX_CONTENT_BYTES:
            cap = formats.MAX_CONTENT_BYTES // 2**20
            raise InputError(path, f"{size / 2**20:,.0f} MiB; at most {cap} MiB per file are read (the "
                                   f"largest recorded file is 6.4 MB)")
        raw = path.read_bytes()
        digest = hashlib.sha256(raw).hexdigest()
        if self.verify:
            result.verified = self.checksums.verify(path, digest, root)
        inferred = _with(infer_dataset(path), **self.overrides)
        if self._unchanged(result, inferred.name(), digest):
            return
        content = formats.decompress(raw, path)
        if content is raw:
            formats.check_last_line(content, path)  # a compressed file's truncation fails its CRC instead
        layout = formats.detect_layout(content)
        if layout is None and inferred.kind == "candles" and formats.first_line(content)[:1].isdigit():
            layout = formats.KLINES_NO_HEADER  # data without a header: let the column checks name the line
        if layout is None:
            head = formats.first_line(content)
            if inferred.kind is not None:
                raise InputError(path, f"wrong header {head[:80]!r}; a {inferred.kind} file needs "
                                       f"{formats.EXPECTED[inferred.kind]}", 1)
            raise _Skip(f"unrecognised layout (first line {head[:40]!r})")
        if inferred.kind is not None and inferred.kind != layout.kind:
            raise InputError(path, f"the path says {inferred.kind} but the content is {layout.description}",
                             1)
        kind = layout.kind
        frame = formats.parse(content, layout, path)

        # Symbols written inside the file (metrics, BitMEX JSON) beat nothing but an explicit --symbol.
        symbol = inferred.symbol
        if "symbol" in frame.columns:
            in_file = frame["symbol"].unique().to_list()
            if len(in_file) > 1:
                line = frame.filter(pl.col("symbol") != frame["symbol"][0])["_line"][0]
                raise InputError(path, f"the file mixes symbols {sorted(in_file)}; import one per file",
                                 int(line))
            if "symbol" not in self.overrides:
                if symbol is not None and symbol != in_file[0]:
                    raise InputError(path, f"the path says symbol {symbol!r} but the rows say "
                                           f"{in_file[0]!r}; pass --symbol to choose")
                symbol = in_file[0]
            frame = frame.drop("symbol")
        inferred = _with(inferred, kind=kind, symbol=symbol)
        missing = [k for k in ("venue", "symbol") if getattr(inferred, k) is None]
        if kind == "candles" and inferred.price_type is None:
            missing.append("price_type")
        if missing:
            opts = " and ".join(OPTION[k] for k in missing)
            raise InputError(path, f"cannot infer the {', '.join(missing)} from the path; pass {opts}")

        frame, result.duplicates = formats.drop_duplicates(
            frame, _KEY_IN_FILE[kind], path, strictly_increasing=kind != "liquidations")
        if kind == "candles":
            inferred = _with(inferred, timeframe=formats.check_timeframe(frame, path, inferred.timeframe))
        result.warnings = plausibility.check(frame, kind, path, inferred.timeframe)
        dataset = inferred.name()
        assert dataset is not None
        if self._unchanged(result, dataset, digest):
            return

        keys: dict[str, str] = {"venue": inferred.venue, "symbol": inferred.symbol}
        if kind == "candles":
            keys.update(price_type=inferred.price_type, timeframe=inferred.timeframe)
        elif kind == "open_interest":
            keys["period"] = OI_PERIOD
        rows = frame.drop([c for c in frame.columns if c.startswith("_") and c != "_line"]).with_columns(
            pl.lit(v, dtype=pl.String).alias(k) for k, v in keys.items())
        first_ts, last_ts = rows["ts"].min(), rows["ts"].max()
        with self.store.transaction():
            result.new_rows = self.store.upsert(_TABLE[kind], rows, source=str(path),
                                                on_conflict="replace" if self.replace else "error")
            self.store.log_ingest(source=SOURCE, dataset=dataset, sha256=digest, item=str(path.resolve()),
                                  rows=rows.height, first_ts=first_ts, last_ts=last_ts)
        self.logged[(dataset, digest)] = {"rows": rows.height, "first_ts": first_ts, "last_ts": last_ts}
        result.status, result.dataset, result.rows = "imported", dataset, rows.height
        result.first_ts, result.last_ts = first_ts, last_ts


def import_paths(
    store: Store,
    paths: Sequence[str | Path],
    *,
    overrides: dict[str, str | None] | None = None,
    replace: bool = False,
    verify: bool = True,
    progress: bool = False,
) -> ImportReport:
    """Import every file under ``paths`` (files or directories, recursed), one transaction per file.

    Failures do not stop the run: each file's outcome is in the report (``report.failures``;
    ``report.raise_for_failures()`` turns them into an exception). Files in no known layout are
    skipped when found in a directory and failures when named explicitly.
    """
    started = time.perf_counter()
    items = discover(paths)
    importer = _Importer(store, overrides or {}, replace, verify)
    report = ImportReport()
    if progress:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("{task.description:<40.40}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task("importing", total=len(items))
            for path, explicit, root in items:
                bar.update(task, description=path.name)
                report.files.append(importer.run(path, explicit, root))
                bar.advance(task)
    else:
        for path, explicit, root in items:
            report.files.append(importer.run(path, explicit, root))
    report.elapsed = time.perf_counter() - started
    return report
