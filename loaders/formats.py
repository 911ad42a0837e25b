"""Parsers for archive files: Binance public-data CSVs, freqtrade-style candle CSVs, BitMEX funding JSON.

Each parser turns a file's (decompressed) bytes into a polars frame holding the store table's
columns that the file knows, plus ``_line`` (1-based source line) for error messages. Checks are
vectorised: the whole file is read as strings, cast once, and the first offending row is located
with a filter, so a 100k-row file costs milliseconds and every error names ``file:line``.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl

from loaders.coverage import TIMEFRAMES, format_duration, timeframe_of
from loaders.errors import InputError

KLINE_HEADER = ("open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume",
                "count", "taker_buy_volume", "taker_buy_quote_volume", "ignore")
CANDLE_HEADER = ("date", "open", "high", "low", "close", "volume")
FUNDING_HEADER = ("calc_time", "funding_interval_hours", "last_funding_rate")
METRICS_HEADER = ("create_time", "symbol", "sum_open_interest", "sum_open_interest_value")
LIQUIDATION_HEADER = ("time", "side", "order_type", "time_in_force", "original_quantity", "price",
                      "average_price", "order_status", "last_fill_quantity", "accumulated_fill_quantity")

#: Epoch values at or above this are microseconds (Binance spot archives from 2025), below it milliseconds.
_MICROS_FROM = 10**14
#: Plausible timestamps; anything outside is a unit or parsing error, not market data.
_TS_MIN, _TS_MAX = datetime(2009, 1, 1), datetime(2100, 1, 1)


@dataclass(frozen=True)
class Layout:
    """A file layout: which store table it feeds and the header it carries (None: no header row)."""

    name: str
    kind: str  # candles | funding | open_interest | liquidations
    header: tuple[str, ...] | None
    description: str


KLINES = Layout("klines", "candles", KLINE_HEADER, "12-column Binance klines")
KLINES_NO_HEADER = Layout("klines", "candles", None, "12-column Binance klines")
CANDLE_CSV = Layout("candle_csv", "candles", CANDLE_HEADER, "date,open,high,low,close,volume candles")
FUNDING_CSV = Layout("funding_csv", "funding", FUNDING_HEADER, "Binance fundingRate")
METRICS = Layout("metrics", "open_interest", METRICS_HEADER, "Binance metrics (open interest)")
LIQUIDATIONS = Layout("liquidation_snapshot", "liquidations", LIQUIDATION_HEADER,
                      "Binance liquidationSnapshot")
BITMEX_FUNDING = Layout("bitmex_funding_json", "funding", None, "BitMEX funding JSON")

#: What a file of each kind may look like (for "wrong header" messages).
EXPECTED = {
    "candles": f"'{','.join(KLINE_HEADER)}' (or no header) or '{','.join(CANDLE_HEADER)}'",
    "funding": f"'{','.join(FUNDING_HEADER)}' or a BitMEX funding JSON array",
    "open_interest": f"'{','.join(METRICS_HEADER)},...'",
    "liquidations": f"'{','.join(LIQUIDATION_HEADER)}'",
}


# -- bytes ------------------------------------------------------------------------------------
#: Bounds on one file's content, checked while decompressing so a bomb stops in bounded memory and time.
#: The largest recorded file is 6.4 MB / 103k rows (15m klines, 2020-2025); a month of 1m klines is
#: 44,640 rows. Anything beyond these is not a market-data file this tool reads.
MAX_CONTENT_BYTES = 128 * 1024 * 1024
MAX_ROWS = 1_000_000
_CHUNK = 1 << 20


def decompress(raw: bytes, path: str | Path, limit: int | None = None) -> bytes:
    """The content of a plain, ``.gz`` or single-member ``.zip`` file; corrupt archives are InputErrors.

    Content larger than ``limit`` (default :data:`MAX_CONTENT_BYTES`) is refused as soon as the
    decompressor passes it, never after inflating the whole file.
    """
    limit = MAX_CONTENT_BYTES if limit is None else limit
    name = str(path).lower()
    if name.endswith(".zip") or raw[:4] == b"PK\x03\x04":
        out = _unzip(raw, path, limit)
    elif name.endswith(".gz") or raw[:2] == b"\x1f\x8b":
        out = _gunzip(raw, path, limit)
    else:
        out = raw
    if len(out) > limit:
        raise _too_large(path, limit)
    return out


def _too_large(path: str | Path, limit: int) -> InputError:
    return InputError(path, f"content larger than {limit // (1024 * 1024)} MiB once decompressed; not a "
                            f"market-data file this tool reads (the largest recorded file is 6.4 MB)")


def _gunzip(raw: bytes, path: str | Path, limit: int) -> bytes:
    """Every gzip member, inflated in bounded chunks; a truncated or corrupt stream says how far it got."""
    parts: list[bytes] = []
    size = 0
    pos = 0
    try:
        while pos < len(raw):
            d = zlib.decompressobj(wbits=31)
            buf = raw[pos:]
            while True:
                piece = d.decompress(buf, _CHUNK)
                size += len(piece)
                if size > limit:
                    raise _too_large(path, limit)
                parts.append(piece)
                buf = d.unconsumed_tail
                if d.eof or (not buf and not piece):
                    break
            if not d.eof:
                raise EOFError("Compressed file ended before the end-of-stream marker was reached")
            pos = len(raw) - len(d.unused_data)
            if not raw[pos:].strip(b"\x00"):
                break
    except (OSError, EOFError, zlib.error) as exc:
        lines = b"".join(parts).count(b"\n")
        raise InputError(path, f"truncated or corrupt gzip data after {lines} complete line(s) ({exc})") \
            from None
    return b"".join(parts)


def _unzip(raw: bytes, path: str | Path, limit: int) -> bytes:
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            members = [m for m in zf.infolist() if not m.is_dir()]
            if len(members) != 1:
                names = ", ".join(m.filename for m in members) or "nothing"
                raise InputError(path, f"a zip archive must hold exactly one CSV file; it holds {names}")
            member = members[0]
            if member.flag_bits & 0x1:
                raise InputError(path, f"zip member {member.filename} is encrypted; not a public-data file")
            if member.file_size > limit:
                raise _too_large(path, limit)
            parts: list[bytes] = []
            size = 0
            with zf.open(member) as fh:
                while piece := fh.read(_CHUNK):
                    size += len(piece)
                    if size > limit:
                        raise _too_large(path, limit)
                    parts.append(piece)
            return b"".join(parts)
    except NotImplementedError as exc:
        raise InputError(path, f"zip compression not supported ({exc}); Binance archives use deflate") \
            from None
    except RuntimeError as exc:  # zipfile: encrypted member without a password
        raise InputError(path, f"zip member cannot be read ({exc})") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise InputError(path, f"truncated or corrupt zip archive ({exc})") from None


def _text(data: bytes, path: str | Path) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(path, f"not UTF-8 text ({exc.reason})", data[:exc.start].count(b"\n") + 1) from None


def _fields(line: str) -> tuple[str, ...]:
    return tuple(f.strip().strip('"').strip().lower() for f in line.split(","))


_INT = re.compile(r"-?\d+")
_DEC = re.compile(r"-?\d*\.(\d*)")


def _shape(field_: str) -> tuple[str, object]:
    """What a field looks like, length aside: digits in an integer, decimals of a number, else the
    text with every digit as 9 (``2021-05-19 00:05:00`` -> ``9999-99-99 99:99:99``)."""
    f = field_.strip().strip('"').strip()
    if _INT.fullmatch(f):
        return ("int", len(f.lstrip("-")))
    m = _DEC.fullmatch(f)
    if m:
        return ("dec", len(m.group(1)))
    return ("text", re.sub(r"\d", "9", f))


def check_last_line(data: bytes, path: str | Path, sample: int = 1000) -> None:
    """A plain file cut inside its last row is refused: without a final newline, every field of the
    last line must look like the same column in the rows before it (``-0.00089697`` cut to
    ``-0.00089`` has 5 decimals where the column has 8). A compressed file's truncation is caught by
    its checksum instead. A file of one row cannot be judged and is accepted."""
    if not data or data.endswith(b"\n") or data.lstrip()[:1] in (b"[", b"{"):
        return
    body = data[-(sample * 400):] if len(data) > sample * 400 else data
    lines = body.decode("utf-8", "replace").split("\n")
    last = lines[-1].rstrip("\r")
    before = [x.rstrip("\r") for x in lines[1:-1] if x.strip()][-sample:]
    if len(body) == len(data) and lines[0].strip() and lines[0][:1].isdigit():
        before.insert(0, lines[0].rstrip("\r"))
    fields = last.split(",")
    numeric = last[:1].isdigit()
    rows = [r.split(",") for r in before if r.count(",") == len(fields) - 1 and r[:1].isdigit() == numeric]
    if not rows:
        return
    lineno = data.count(b"\n") + 1
    for i, f in enumerate(fields):
        seen = {_shape(r[i]) for r in rows}
        if _shape(f) not in seen:
            raise InputError(path, f"the last line has no newline and its column {i + 1} {f.strip()!r} does "
                                   f"not look like the rows before it: the file is cut off", lineno)


# -- layout detection -------------------------------------------------------------------------
def first_line(data: bytes) -> str:
    """The first non-empty line (for sniffing and skip messages), at most 200 characters."""
    head = data[:4096].decode("utf-8-sig", "replace")
    for line in head.splitlines():
        if line.strip():
            return line.strip()[:200]
    return ""


def detect_layout(data: bytes) -> Layout | None:
    """Which known layout the content has, judged from its first line; None when none fits."""
    line = first_line(data)
    if line.startswith("["):
        return BITMEX_FUNDING if '"fundingRate"' in data[:4096].decode("utf-8", "replace") else None
    fields = _fields(line)
    if fields == KLINE_HEADER:
        return KLINES
    if len(fields) == 12 and fields[0].isdigit():
        return KLINES_NO_HEADER
    if fields == CANDLE_HEADER:
        return CANDLE_CSV
    if fields == FUNDING_HEADER:
        return FUNDING_CSV
    if fields[:len(METRICS_HEADER)] == METRICS_HEADER:
        return METRICS
    if fields == LIQUIDATION_HEADER:
        return LIQUIDATIONS
    return None


# -- CSV to string columns --------------------------------------------------------------------
def _split(data: bytes, path: str | Path, layout: Layout) -> pl.DataFrame:
    """Every data line split into string columns named after the layout, plus ``_line``."""
    rows = data.count(b"\n")
    if rows > MAX_ROWS + 1:
        raise InputError(path, f"{rows:,} lines; at most {MAX_ROWS:,} rows per file are read (a month of "
                               f"1m klines is 44,640)")
    text = _text(data, path)
    lines = pl.Series("raw", text.split("\n")).str.strip_suffix("\r")
    frame = pl.DataFrame({"raw": lines}).with_row_index("_line", offset=1)
    # Trailing empty lines are the file's final newline; an empty line before data is an error.
    nonempty = frame.filter(pl.col("raw").str.strip_chars() != "")
    if nonempty.height == 0:
        raise InputError(path, "the file holds no data rows")
    frame = frame.filter(pl.col("_line") <= nonempty["_line"].max())
    if layout.header is not None:
        header_line = int(nonempty["_line"][0])
        got = _fields(nonempty["raw"][0])
        expected = layout.header
        if got[:len(expected)] != expected:
            raise InputError(path, f"wrong header {nonempty['raw'][0]!r}; expected {','.join(expected)!r}",
                             header_line)
        ncols = len(got)
        repeated = next((c for i, c in enumerate(got) if c in got[:i]), None)
        if repeated is not None:
            raise InputError(path, f"the header repeats the column {repeated!r}", header_line)
        frame = frame.filter(pl.col("_line") > header_line)
        names = list(got)
    else:
        names = list(KLINE_HEADER)
        ncols = len(names)
    if frame.height == 0:
        raise InputError(path, "the file holds a header but no data rows")
    counts = frame.select(pl.col("_line"), n=pl.col("raw").str.count_matches(",", literal=True) + 1)
    _fail_where(counts, pl.col("n") != ncols, path,
                lambda r: f"expected {ncols} comma-separated columns, found {r['n']}")
    split = frame.select(
        pl.col("_line"),
        pl.col("raw").str.split_exact(",", ncols - 1).struct.rename_fields(names).alias("f"),
    ).unnest("f")
    return split.with_columns(pl.col(n).str.strip_chars().str.strip_chars('"') for n in names)


def _fail_where(frame: pl.DataFrame, mask: pl.Expr, path: str | Path,
                message: str | Callable[[dict], str]) -> None:
    """Raise an InputError naming the first row where ``mask`` holds."""
    bad = frame.filter(mask).head(1)
    if bad.height:
        row = bad.row(0, named=True)
        raise InputError(path, message(row) if callable(message) else message, row["_line"])


class _Checks:
    """Row checks on one frame, evaluated in a single pass; the first failing check names its first row."""

    def __init__(self, frame: pl.DataFrame, path: str | Path) -> None:
        self.frame, self.path = frame, path
        self.items: list[tuple[pl.Expr, str | Callable[[dict], str]]] = []

    def fail_where(self, mask: pl.Expr, message: str | Callable[[dict], str]) -> None:
        self.items.append((mask, message))

    def run(self) -> None:
        if not self.items:
            return
        flags = self.frame.select(
            mask.fill_null(False).any().alias(f"c{i}") for i, (mask, _) in enumerate(self.items)).row(0)
        for (mask, message), bad in zip(self.items, flags, strict=True):
            if bad:
                _fail_where(self.frame, mask.fill_null(False), self.path, message)


def _cast(frame: pl.DataFrame, columns: dict[str, pl.DataType], path: str | Path,
          optional: tuple[str, ...] = ()) -> pl.DataFrame:
    """Cast string columns; the first value that is not a number is an error naming line and column."""
    cast = frame.with_columns(
        pl.col(c).cast(t, strict=False).alias(f"__{c}") for c, t in columns.items()
    )
    bad = pl.any_horizontal(
        pl.col(f"__{c}").is_null() & (pl.col(c).is_not_null() & (pl.col(c) != "") if c in optional else True)
        for c in columns
    )
    rows = cast.filter(bad).head(1)
    if rows.height:
        row = rows.row(0, named=True)
        for c in columns:
            if row[f"__{c}"] is None and (c not in optional or row[c]):
                kind = "an integer" if columns[c].is_integer() else "a number"
                raise InputError(path, f"{c} is {row[c]!r}, not {kind}", row["_line"])
    return cast.drop(list(columns)).rename({f"__{c}": c for c in columns})


def _epoch(col: str) -> pl.Expr:
    """Unix ms or µs (told apart by magnitude) to a naive UTC Datetime(us)."""
    v = pl.col(col)
    return pl.from_epoch(pl.when(v >= _MICROS_FROM).then(v).otherwise(v * 1000), time_unit="us")


def _with_iso(frame: pl.DataFrame, col: str, alias: str = "ts") -> pl.DataFrame:
    """Add ``alias`` parsed from ISO-8601 text; the common ``...T..:..:..Z`` form takes a fast path."""
    fast = frame.select(pl.col(col).str.to_datetime("%Y-%m-%dT%H:%M:%SZ", strict=False, time_unit="us"))
    if fast.to_series().null_count() == frame[col].null_count():
        return frame.with_columns(fast.to_series().alias(alias))
    return frame.with_columns(_iso(col).alias(alias))


def _iso(col: str) -> pl.Expr:
    """ISO-8601 text (``Z``, ``+00:00``, offset or none = UTC; date only = midnight) to naive UTC."""
    e = pl.col(col).str.replace("T", " ", literal=True).str.replace(r"Z$", "+00:00")
    e = pl.when(e.str.len_chars() == 10).then(e + " 00:00:00").otherwise(e)
    e = pl.when(e.str.contains(r"[+-]\d\d:?\d\d$")).then(e).otherwise(e + "+00:00")
    return (e.str.to_datetime("%Y-%m-%d %H:%M:%S%.f%z", strict=False, time_unit="us")
            .dt.replace_time_zone(None))


def _check_ts(chk: _Checks, raw: str) -> None:
    chk.fail_where(pl.col("ts").is_null(), lambda r: f"{raw} is {r[raw]!r}, not a timestamp")
    chk.fail_where((pl.col("ts") < _TS_MIN) | (pl.col("ts") >= _TS_MAX),
                   lambda r: f"{raw} {r[raw]!r} is outside 2009..2100 (need Unix ms or µs, or ISO-8601 UTC)")


def _check_prices(chk: _Checks, cols: tuple[str, ...]) -> None:
    for c in cols:
        chk.fail_where(~pl.col(c).is_finite() | (pl.col(c) <= 0),
                       lambda r, c=c: f"{c} is {r[c]}; prices must be finite and > 0")


def _check_non_negative(chk: _Checks, cols: tuple[str, ...]) -> None:
    for c in cols:
        if c in chk.frame.columns:
            v = pl.col(c).cast(pl.Float64)
            chk.fail_where(v.is_not_null() & (~v.is_finite() | (v < 0)),
                           lambda r, c=c: f"{c} is {r[c]}; must be finite and >= 0")


def _check_ohlc(chk: _Checks) -> None:
    o, h, lo, c = (pl.col(x) for x in ("open", "high", "low", "close"))
    bad = (lo > h) | (lo > o) | (lo > c) | (o > h) | (c > h)
    chk.fail_where(bad, lambda r: (
        f"OHLC out of order (open={r['open']}, high={r['high']}, low={r['low']}, close={r['close']}); "
        "need low <= open, close <= high"))


# -- parsers ----------------------------------------------------------------------------------
def parse(data: bytes, layout: Layout, path: str | Path) -> pl.DataFrame:
    """Parse decompressed content of a known layout into store columns plus ``_line``."""
    return _PARSERS[layout.name](data, path, layout)


def _parse_klines(data: bytes, path: str | Path, layout: Layout) -> pl.DataFrame:
    f = _split(data, path, layout)
    f = _cast(f, {"open_time": pl.Int64, "close_time": pl.Int64, "open": pl.Float64, "high": pl.Float64,
                  "low": pl.Float64, "close": pl.Float64, "volume": pl.Float64, "quote_volume": pl.Float64,
                  "count": pl.Int64, "taker_buy_volume": pl.Float64,
                  "taker_buy_quote_volume": pl.Float64}, path)
    f = f.with_columns(ts=_epoch("open_time"), _close=_epoch("close_time"))
    chk = _Checks(f, path)
    _check_ts(chk, "open_time")
    _check_prices(chk, ("open", "high", "low", "close"))
    _check_ohlc(chk)
    _check_non_negative(chk, ("volume", "quote_volume", "count", "taker_buy_volume",
                              "taker_buy_quote_volume"))
    chk.fail_where(pl.col("_close") <= pl.col("ts"),
                   lambda r: f"close_time {r['close_time']} is not after open_time {r['open_time']}")
    # close_time = open_time + interval - 1 unit (ms or µs): round the span up to whole milliseconds.
    span = ((pl.col("_close") - pl.col("ts")).dt.total_microseconds() + 1000) // 1000 * 1000
    chk.run()
    return f.select("_line", "ts", "open", "high", "low", "close", "volume", "quote_volume",
                    pl.col("count").alias("trades"), "taker_buy_volume", "taker_buy_quote_volume",
                    span.alias("_span_us"))


def _parse_candle_csv(data: bytes, path: str | Path, layout: Layout) -> pl.DataFrame:
    f = _split(data, path, layout)
    f = _cast(f, {c: pl.Float64 for c in ("open", "high", "low", "close", "volume")}, path)
    f = _with_iso(f, "date")
    chk = _Checks(f, path)
    _check_ts(chk, "date")
    _check_prices(chk, ("open", "high", "low", "close"))
    _check_ohlc(chk)
    _check_non_negative(chk, ("volume",))
    chk.run()
    return f.select("_line", "ts", "open", "high", "low", "close", "volume")


def _parse_funding_csv(data: bytes, path: str | Path, layout: Layout) -> pl.DataFrame:
    f = _split(data, path, layout)
    f = _cast(f, {"calc_time": pl.Int64, "funding_interval_hours": pl.Float64,
                  "last_funding_rate": pl.Float64}, path)
    # Settlement times carry a few ms of jitter: floor to the minute so series join cleanly.
    f = f.with_columns(ts=_epoch("calc_time").dt.truncate("1m"))
    chk = _Checks(f, path)
    _check_ts(chk, "calc_time")
    chk.fail_where(~pl.col("last_funding_rate").is_finite(),
                   lambda r: f"last_funding_rate is {r['last_funding_rate']}; must be finite")
    iv = pl.col("funding_interval_hours")
    chk.fail_where(~iv.is_finite() | (iv <= 0),
                   lambda r: f"funding_interval_hours is {r['funding_interval_hours']}; must be > 0")
    chk.run()
    return f.select("_line", "ts", pl.col("last_funding_rate").alias("rate"),
                    pl.col("funding_interval_hours").alias("interval_h"))


def _parse_metrics(data: bytes, path: str | Path, layout: Layout) -> pl.DataFrame:
    f = _split(data, path, layout)
    f = _cast(f, {"sum_open_interest": pl.Float64, "sum_open_interest_value": pl.Float64}, path)
    f = _with_iso(f, "create_time")
    chk = _Checks(f, path)
    _check_ts(chk, "create_time")
    chk.fail_where(pl.col("symbol") == "", "symbol is empty")
    _check_non_negative(chk, ("sum_open_interest", "sum_open_interest_value"))
    chk.run()
    return f.select("_line", "ts", "symbol", pl.col("sum_open_interest").alias("oi_base"),
                    pl.col("sum_open_interest_value").alias("oi_quote"))


def _parse_liquidations(data: bytes, path: str | Path, layout: Layout) -> pl.DataFrame:
    f = _split(data, path, layout)
    f = _cast(f, {"time": pl.Int64, "original_quantity": pl.Float64, "price": pl.Float64,
                  "average_price": pl.Float64, "accumulated_fill_quantity": pl.Float64}, path)
    f = f.with_columns(ts=_epoch("time"), side=pl.col("side").str.to_lowercase())
    chk = _Checks(f, path)
    _check_ts(chk, "time")
    chk.fail_where(~pl.col("side").is_in(["buy", "sell"]),
                   lambda r: f"side is {r['side']!r}; expected BUY or SELL")
    _check_prices(chk, ("price",))
    chk.fail_where(~pl.col("original_quantity").is_finite() | (pl.col("original_quantity") <= 0),
                   lambda r: f"original_quantity is {r['original_quantity']}; must be > 0")
    _check_non_negative(chk, ("average_price", "accumulated_fill_quantity"))
    chk.run()
    return f.select(
        "_line", "ts", "side", "price", pl.col("original_quantity").alias("qty"),
        pl.col("average_price").alias("avg_price"), pl.col("accumulated_fill_quantity").alias("filled_qty"),
        (pl.col("average_price") * pl.col("accumulated_fill_quantity")).alias("quote_qty"),
        pl.col("order_status").alias("status"),
    )


def _parse_bitmex_funding(data: bytes, path: str | Path, layout: Layout) -> pl.DataFrame:
    """A JSON array of BitMEX funding records; ``_line`` is the line each record starts on."""
    text = _text(data, path)
    dec = json.JSONDecoder()
    ws = re.compile(r"\s*")
    records: list[object] = []
    lines: list[int] = []
    pos = ws.match(text, 0).end()
    line, counted = 1, 0
    try:
        if text[pos:pos + 1] != "[":
            raise InputError(path, "expected a JSON array of funding records", text.count("\n", 0, pos) + 1)
        pos = ws.match(text, pos + 1).end()
        while text[pos:pos + 1] != "]":
            line += text.count("\n", counted, pos)
            counted = pos
            obj, pos = dec.raw_decode(text, pos)
            records.append(obj)
            lines.append(line)
            pos = ws.match(text, pos).end()
            if text[pos:pos + 1] == ",":
                pos = ws.match(text, pos + 1).end()
            elif text[pos:pos + 1] != "]":
                where = line + text.count("\n", counted, pos)
                raise InputError(path, "expected ',' or ']' between records", where)
        end = ws.match(text, pos + 1).end()
        if end < len(text):
            raise InputError(path, "more content after the JSON array (a second document or trailing "
                                   "data); a file holds exactly one array", text.count("\n", 0, end) + 1)
    except json.JSONDecodeError as exc:
        raise InputError(path, f"invalid JSON: {exc.msg}", exc.lineno) from None
    except RecursionError:
        raise InputError(path, "JSON nested too deeply to be a funding record",
                         line + text.count("\n", counted, pos)) from None
    if not records:
        raise InputError(path, "the file holds no funding records")
    need = ("timestamp", "symbol", "fundingRate")
    for rec, ln in zip(records, lines, strict=True):
        if not isinstance(rec, dict) or any(k not in rec for k in need):
            raise InputError(path, f"a funding record needs the fields {', '.join(need)}", ln)
    frame = pl.DataFrame({
        "_line": lines,
        "timestamp": [str(r["timestamp"]) for r in records],
        "symbol": [str(r["symbol"]) for r in records],
        "fundingRate": [str(r["fundingRate"]) for r in records],
        "fundingInterval": [None if r.get("fundingInterval") is None else str(r["fundingInterval"])
                            for r in records],
    }, schema_overrides={"_line": pl.Int64})
    f = _cast(frame, {"fundingRate": pl.Float64}, path)
    f = f.with_columns(ts=_iso("timestamp").dt.truncate("1m"), _iv=_iso("fundingInterval"))
    chk = _Checks(f, path)
    _check_ts(chk, "timestamp")
    chk.fail_where(~pl.col("fundingRate").is_finite(),
                   lambda r: f"fundingRate is {r['fundingRate']}; must be finite")
    # BitMEX encodes the interval as a time after 2000-01-01 00:00 (08:00 = 8 hours).
    hours = (pl.col("_iv") - datetime(2000, 1, 1)).dt.total_seconds() / 3600
    chk.run()
    f = f.with_columns(interval_h=pl.when(pl.col("_iv").is_not_null()).then(hours))
    _fail_where(f, pl.col("fundingInterval").is_not_null() & ~(pl.col("interval_h") > 0), path,
                lambda r: f"fundingInterval {r['fundingInterval']!r} is not a positive time after 2000-01-01")
    return f.select("_line", "ts", "symbol", pl.col("fundingRate").alias("rate"), "interval_h")


_PARSERS: dict[str, Callable[[bytes, str | Path, Layout], pl.DataFrame]] = {
    "klines": _parse_klines,
    "candle_csv": _parse_candle_csv,
    "funding_csv": _parse_funding_csv,
    "metrics": _parse_metrics,
    "liquidation_snapshot": _parse_liquidations,
    "bitmex_funding_json": _parse_bitmex_funding,
}


# -- row-set checks ---------------------------------------------------------------------------
def drop_duplicates(frame: pl.DataFrame, key: list[str], path: str | Path, *,
                    strictly_increasing: bool = True) -> tuple[pl.DataFrame, int]:
    """Drop rows identical to an earlier row (returning how many); other repeats and disorder are errors.

    Two rows with the same key but different values name both lines. With ``strictly_increasing``
    (candles, funding, OI) each ``ts`` must be later than the previous row's; liquidations only
    need non-decreasing ``ts``.
    """
    values = [c for c in frame.columns if not c.startswith("_")]
    keep = frame.select(pl.struct(values).is_first_distinct()).to_series()
    deduped = frame.filter(keep)
    dropped = frame.height - deduped.height
    dup = deduped.filter(pl.struct(key).is_duplicated()).sort([*key, "_line"]).head(2)
    if dup.height:
        a, b = dup.row(0, named=True), dup.row(1, named=True)
        what = ", ".join(f"{k}={a[k]}" for k in key)
        raise InputError(path, f"{what} also appears on line {a['_line']} with different values", b["_line"])
    prev = pl.col("ts").shift(1)
    bad = prev >= pl.col("ts") if strictly_increasing else prev > pl.col("ts")
    ordered = deduped.with_columns(_prev_ts=prev, _prev_line=pl.col("_line").shift(1))
    _fail_where(ordered, bad.fill_null(False), path,
                lambda r: f"timestamp {r['ts']} is not after {r['_prev_ts']} on line {r['_prev_line']}; "
                          "rows must be in time order")
    return deduped, dropped


def check_timeframe(frame: pl.DataFrame, path: str | Path, expected: str | None) -> str:
    """The candle timeframe the timestamps show, checked against ``expected`` (path or --timeframe).

    The smallest step between rows is the timeframe; every step must be a whole multiple of it
    (gaps are allowed, odd offsets are not). A one-row file falls back to the kline's close_time
    span or ``expected``.
    """
    steps = frame.select(pl.col("_line"), step=pl.col("ts").diff().dt.total_microseconds(),
                         prev_line=pl.col("_line").shift(1)).drop_nulls("step")
    if steps.height == 0:
        spans = frame["_span_us"].to_list() if "_span_us" in frame.columns else []
        got = timeframe_of(_td(spans[0])) if spans else None
        tf = got or expected
        if tf is None:
            raise InputError(path, "one candle only: cannot infer the timeframe; pass --timeframe")
        if expected is not None and got is not None and got != expected:
            raise InputError(path, f"candle spans {got} but the timeframe is {expected}",
                             int(frame["_line"][0]))
        return tf
    smallest = int(steps["step"].min())
    got = timeframe_of(_td(smallest))
    if expected is not None:
        exp_us = TIMEFRAMES[expected] // _td(1)
        _fail_where(steps, pl.col("step") % exp_us != 0, path,
                    lambda r: f"{_fmt_us(r['step'])} after line {r['prev_line']}, not a multiple of the "
                              f"{expected} timeframe")
        if smallest != exp_us:
            raise InputError(path, f"rows are {_fmt_us(smallest)} apart but the timeframe is {expected}")
        return expected
    if got is None:
        row = steps.filter(pl.col("step") == smallest).row(0, named=True)
        raise InputError(path, f"rows {_fmt_us(smallest)} apart is no known timeframe "
                               f"({', '.join(TIMEFRAMES)}); pass --timeframe", row["_line"])
    _fail_where(steps, pl.col("step") % smallest != 0, path,
                lambda r: f"{_fmt_us(r['step'])} after line {r['prev_line']}, not a multiple of the "
                          f"{got} timeframe")
    return got


def _td(us: int) -> timedelta:
    return timedelta(microseconds=us)


def _fmt_us(us: int) -> str:
    return format_duration(_td(us)) if us % 1_000_000 == 0 else f"{us / 1e6:g}s"
