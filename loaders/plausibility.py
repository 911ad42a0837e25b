"""Plausibility and shape rules a parsed file must meet before it is stored, as data per dataset.

The parsers (loaders/formats.py) check that each value is well formed (a number, a positive price,
OHLC in order). These rules check that the rows are *market data*: a funding rate of 500 % per 8 h,
taker-buy volume above the bar's volume, a price a thousand times its neighbours, a bar 30 s off the
timeframe grid or a row dated outside the file's period are not, and they move results silently.

Each rule says which dataset it applies to, its bound, and what happens: ``reject`` fails the file
with ``file:line`` and the bound (nothing of it is stored); ``warn`` stores the file and reports the
line, for values a venue really printed (a wick of several times the previous close on a thin book).
The bounds are an order of magnitude beyond anything in the recorded archive (figures in ``why``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from loaders.coverage import TIMEFRAMES
from loaders.errors import InputError

FUNDING_MAX_PER_8H = 0.05
FUNDING_MAX_INTERVAL_H = 24.0
PRICE_MIN, PRICE_MAX = 1e-9, 1e9
JUMP_REJECT = 10.0
JUMP_WARN = 2.0
OI_STEP = timedelta(minutes=5)


@dataclass(frozen=True)
class Rule:
    """One documented rule: dataset kind, name, bound in words, action and the evidence for it."""

    kind: str
    name: str
    bound: str
    action: str  # "reject" | "warn"
    why: str


RULES: tuple[Rule, ...] = (
    Rule("funding", "rate", f"|rate| x 8 h / interval <= {FUNDING_MAX_PER_8H:g}", "reject",
         "Binance caps USDⓈ-M funding at 3 %/8 h; the largest recorded |rate| is 0.375 % (Binance), "
         "0.30 % (BitMEX)"),
    Rule("funding", "interval", f"0 < interval <= {FUNDING_MAX_INTERVAL_H:g} h", "reject",
         "venues settle every 1, 4 or 8 h; every recorded interval is 8 h"),
    Rule("candles", "taker_buy", "taker_buy_volume <= volume and taker_buy_quote_volume <= quote_volume",
         "reject", "taker-buy volume is part of the bar's volume; recorded maximum share 0.977"),
    Rule("candles", "grid", "bar open time on the timeframe's grid (a multiple of the timeframe since "
         "1970-01-01 UTC)", "reject", "Binance bars open on the grid"),
    Rule("candles", "price_range", f"{PRICE_MIN:g} <= open, high, low, close <= {PRICE_MAX:g}", "reject",
         "no USDⓈ-M contract trades outside this range"),
    Rule("candles", "jump", f"every price within {JUMP_REJECT:g}x of the previous bar's close (adjacent "
         "bars)", "reject", "largest recorded move: a high 3.4x the previous 1h close (ETHUSDT)"),
    Rule("candles", "wick", f"a price more than {JUMP_WARN:g}x from the previous bar's close", "warn",
         "real wicks on thin books do this (ETHUSDT 1h: high 3.4x the previous close): stored, reported"),
    Rule("*", "period", "timestamps inside the period a dated file name states (-YYYY-MM or "
         "-YYYY-MM-DD; the period's end itself allowed)", "reject",
         "data.binance.vision files hold exactly their month or day"),
    Rule("*", "future", "no timestamp after the import time + 1 day", "reject",
         "market data is recorded, not forecast"),
    Rule("open_interest", "period", "rows on the 5-minute grid, 5 minutes apart (gaps allowed)", "reject",
         "Binance metrics files hold 5-minute open interest; other periods would be stored as 5m"),
)

_DATED = re.compile(r"-(\d{4})-(\d{2})(?:-(\d{2}))?$")


def rules_table() -> str:
    """The rules as a markdown table (README / docs)."""
    rows = ["| dataset | rule | bound | action | why |", "|---|---|---|---|---|"]
    rows += [f"| {r.kind} | {r.name} | {r.bound} | {r.action} | {r.why} |" for r in RULES]
    return "\n".join(rows)


def stated_period(path: str | Path) -> tuple[datetime, datetime] | None:
    """[start, end] of the month or day a data.binance.vision-style name states, else None."""
    name = Path(path).name
    for suffix in (".csv.gz", ".json.gz", ".csv", ".json", ".zip", ".gz"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    m = _DATED.search(name)
    if not m:
        return None
    year, month, day = int(m.group(1)), int(m.group(2)), m.group(3)
    try:
        if day is not None:
            start = datetime(year, month, int(day))
            return start, start + timedelta(days=1)
        start = datetime(year, month, 1)
    except ValueError:
        return None
    return start, datetime(year + (month == 12), month % 12 + 1, 1)


def check(frame: pl.DataFrame, kind: str, path: str | Path, timeframe: str | None = None,
          now: datetime | None = None) -> list[str]:
    """Apply :data:`RULES` to a parsed file (sorted by ``ts``, with ``_line``): raise ``InputError`` on
    the first rejected row, return the warnings (``file:line: ...``) of rows stored anyway."""
    if frame.height == 0:
        return []
    now = now or datetime.now(UTC).replace(tzinfo=None)
    period = stated_period(path)
    if period is not None:
        lo, hi = period
        _fail(frame, (pl.col("ts") < lo) | (pl.col("ts") > hi), path,
              lambda r: f"timestamp {r['ts']} is outside the period {lo:%Y-%m-%d}..{hi:%Y-%m-%d} the file "
                        f"name states")
    _fail(frame, pl.col("ts") > now + timedelta(days=1), path,
          lambda r: f"timestamp {r['ts']} is in the future (rule future: {_bound('*', 'future')})")
    if kind == "funding":
        _funding(frame, path)
    elif kind == "candles":
        return _candles(frame, path, timeframe)
    elif kind == "open_interest":
        _open_interest(frame, path)
    return []


def _bound(kind: str, name: str) -> str:
    return next(r.bound for r in RULES if r.kind == kind and r.name == name)


def _fail(frame: pl.DataFrame, mask: pl.Expr, path: str | Path, message) -> None:  # noqa: ANN001
    bad = frame.filter(mask.fill_null(False)).head(1)
    if bad.height:
        row = bad.row(0, named=True)
        raise InputError(path, message(row), row["_line"])


def _funding(frame: pl.DataFrame, path: str | Path) -> None:
    iv = pl.col("interval_h") if "interval_h" in frame.columns else pl.lit(None, pl.Float64)
    _fail(frame, iv.is_not_null() & ((iv <= 0) | (iv > FUNDING_MAX_INTERVAL_H)), path,
          lambda r: f"funding interval {r['interval_h']} h (rule interval: {_bound('funding', 'interval')})")
    per8 = pl.col("rate").abs() * 8.0 / iv.fill_null(8.0)
    _fail(frame, per8 > FUNDING_MAX_PER_8H, path,
          lambda r: f"funding rate {r['rate']} per {r.get('interval_h') or 8:g} h is implausible (rule rate: "
                    f"{_bound('funding', 'rate')})")


def _candles(frame: pl.DataFrame, path: str | Path, timeframe: str | None) -> list[str]:
    for vol, buy in (("volume", "taker_buy_volume"), ("quote_volume", "taker_buy_quote_volume")):
        if buy in frame.columns and vol in frame.columns:
            _fail(frame, pl.col(buy) > pl.col(vol) * (1 + 1e-9) + 1e-12, path,
                  lambda r, b=buy, v=vol: f"{b} {r[b]} exceeds {v} {r[v]} (rule taker_buy)")
    prices = ("open", "high", "low", "close")
    out_of_range = pl.any_horizontal((pl.col(c) < PRICE_MIN) | (pl.col(c) > PRICE_MAX) for c in prices)
    _fail(frame, out_of_range, path,
          lambda r: f"price out of range (open={r['open']}, high={r['high']}, low={r['low']}, "
                    f"close={r['close']}; rule price_range: {_bound('candles', 'price_range')})")
    if timeframe not in TIMEFRAMES:
        return []
    step_us = TIMEFRAMES[timeframe] // timedelta(microseconds=1)
    us = pl.col("ts").dt.epoch("us")
    _fail(frame, us % step_us != 0, path,
          lambda r: f"bar open {r['ts']} is off the {timeframe} grid (rule grid)")
    prev = frame.with_columns(_pc=pl.col("close").shift(1),
                              _adj=(pl.col("ts").diff().dt.total_microseconds() == step_us))
    pc = pl.col("_pc")
    ratio = pl.max_horizontal(pl.max_horizontal(pl.col(c), pc) / pl.min_horizontal(pl.col(c), pc)
                              for c in prices)
    prev = prev.with_columns(_ratio=pl.when(pl.col("_adj")).then(ratio))
    _fail(prev, pl.col("_ratio") > JUMP_REJECT, path,
          lambda r: f"prices (open={r['open']}, high={r['high']}, low={r['low']}, close={r['close']}) are "
                    f"{r['_ratio']:.3g}x the previous bar's close {r['_pc']} (rule jump: "
                    f"{_bound('candles', 'jump')})")
    wicks = prev.filter(pl.col("_ratio").fill_null(0.0) > JUMP_WARN)
    return [f"{path}:{r['_line']}: a price {r['_ratio']:.3g}x the previous bar's close {r['_pc']} (high="
            f"{r['high']}, low={r['low']}); stored (rule wick: {_bound('candles', 'wick')})"
            for r in wicks.head(5).iter_rows(named=True)] + (
        [f"{path}: {wicks.height - 5} more such bar(s)"] if wicks.height > 5 else [])


def _open_interest(frame: pl.DataFrame, path: str | Path) -> None:
    step_us = OI_STEP // timedelta(microseconds=1)
    steps = frame.with_columns(_step=pl.col("ts").diff().dt.total_microseconds())
    _fail(steps, (pl.col("ts").dt.epoch("us") % step_us != 0) | (pl.col("_step") % step_us != 0), path,
          lambda r: f"open interest at {r['ts']} is off the 5-minute grid (rule period: "
                    f"{_bound('open_interest', 'period')})")
    smallest = steps["_step"].min()
    if smallest is not None and smallest != step_us:
        row = steps.filter(pl.col("_step") == smallest).row(0, named=True)
        raise InputError(path, f"open-interest rows are {timedelta(microseconds=smallest)} apart, not 5 "
                               f"minutes (rule period: {_bound('open_interest', 'period')})", row["_line"])
