"""Coverage and gaps of a time series on a regular grid (candles, funding, open interest).

Pure functions on polars data, so ``backtest data status`` and the window loader judge
completeness the same way. A series lives on a grid ``anchor + k * step``; a *gap* is a run of
grid slots inside the window with no row. Rows off the grid are counted apart, never as present.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl

#: Timeframes the store uses, as durations (Binance kline intervals up to a day).
TIMEFRAMES: dict[str, timedelta] = {
    "1m": timedelta(minutes=1), "3m": timedelta(minutes=3), "5m": timedelta(minutes=5),
    "15m": timedelta(minutes=15), "30m": timedelta(minutes=30), "1h": timedelta(hours=1),
    "2h": timedelta(hours=2), "4h": timedelta(hours=4), "6h": timedelta(hours=6),
    "8h": timedelta(hours=8), "12h": timedelta(hours=12), "1d": timedelta(days=1),
}
EPOCH = datetime(1970, 1, 1)
_US = timedelta(microseconds=1)


def timeframe_delta(timeframe: str) -> timedelta:
    """The duration of a timeframe string; ``ValueError`` names the valid ones."""
    try:
        return TIMEFRAMES[timeframe]
    except KeyError:
        valid = ", ".join(TIMEFRAMES)
        raise ValueError(f"unknown timeframe {timeframe!r}; expected one of {valid}") from None


def timeframe_of(step: timedelta) -> str | None:
    """The timeframe string of a duration, or None when it is not one the store knows."""
    for name, delta in TIMEFRAMES.items():
        if delta == step:
            return name
    return None


def format_duration(delta: timedelta) -> str:
    """Compact human duration: ``3d4h``, ``45m``, ``0``."""
    secs = int(delta.total_seconds())
    if secs <= 0:
        return "0"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if secs >= size:
            parts.append(f"{secs // size}{unit}")
            secs %= size
    return "".join(parts)


@dataclass(frozen=True)
class Coverage:
    """How completely a series fills the grid slots of [start, end)."""

    start: datetime
    end: datetime
    step: timedelta
    expected: int
    present: int
    off_grid: int
    gaps: int
    largest_gap: timedelta
    first_ts: datetime | None
    last_ts: datetime | None

    @property
    def missing(self) -> int:
        return self.expected - self.present

    @property
    def ratio(self) -> float:
        return self.present / self.expected if self.expected else 1.0

    @property
    def complete(self) -> bool:
        return self.expected > 0 and self.present == self.expected


def _to_series(ts: pl.Series | pl.DataFrame, column: str = "ts") -> pl.Series:
    s = ts[column] if isinstance(ts, pl.DataFrame) else ts
    return s.cast(pl.Datetime("us"))


def _grid_bounds(start: datetime, end: datetime, step_us: int, anchor_us: int) -> tuple[int, int]:
    """First and last grid slot (in µs since the epoch) inside [start, end); first > last if none."""
    s = (start - EPOCH) // _US
    e = (end - EPOCH) // _US
    first = anchor_us + -((anchor_us - s) // step_us) * step_us  # ceil onto the grid
    last = anchor_us + ((e - 1 - anchor_us) // step_us) * step_us  # floor onto the grid, end exclusive
    return first, last


def _on_grid(ts: pl.Series, start: datetime, end: datetime, step_us: int,
             anchor_us: int) -> tuple[pl.Series, int, int]:
    """Distinct on-grid µs values inside the window (sorted), their count and the off-grid count."""
    us = ts.drop_nulls().cast(pl.Int64)
    s, e = (start - EPOCH) // _US, (end - EPOCH) // _US
    inside = us.filter((us >= s) & (us < e)).unique().sort()
    on = inside.filter((inside - anchor_us) % step_us == 0)
    return on, on.len(), inside.len() - on.len()


def find_gaps(
    ts: pl.Series | pl.DataFrame,
    step: timedelta | str,
    start: datetime,
    end: datetime,
    *,
    anchor: datetime = EPOCH,
) -> pl.DataFrame:
    """Runs of missing grid slots in [start, end): ``gap_start``, ``gap_end`` (exclusive), ``missing``.

    ``ts`` is a Datetime series (or a frame with a ``ts`` column); order and duplicates do not matter.
    """
    step_td = timeframe_delta(step) if isinstance(step, str) else step
    step_us = step_td // _US
    anchor_us = (anchor - EPOCH) // _US
    first, last = _grid_bounds(start, end, step_us, anchor_us)
    empty = pl.DataFrame(schema={"gap_start": pl.Datetime("us"), "gap_end": pl.Datetime("us"),
                                 "missing": pl.Int64})
    if first > last:
        return empty
    on, _, _ = _on_grid(_to_series(ts), start, end, step_us, anchor_us)
    # Sentinels one step outside the window turn leading/trailing holes into ordinary gaps.
    points = pl.concat([pl.Series([first - step_us], dtype=pl.Int64), on,
                        pl.Series([last + step_us], dtype=pl.Int64)])
    frame = pl.DataFrame({"cur": points}).with_columns(prev=pl.col("cur").shift(1)).drop_nulls()
    frame = (frame.with_columns(missing=(pl.col("cur") - pl.col("prev")) // step_us - 1)
             .filter(pl.col("missing") > 0))
    return frame.select(
        gap_start=pl.from_epoch(pl.col("prev") + step_us, time_unit="us"),
        gap_end=pl.from_epoch(pl.col("cur"), time_unit="us"),
        missing=pl.col("missing"),
    ).cast({"gap_start": pl.Datetime("us"), "gap_end": pl.Datetime("us")})


def coverage(
    ts: pl.Series | pl.DataFrame,
    step: timedelta | str,
    start: datetime,
    end: datetime,
    *,
    anchor: datetime = EPOCH,
) -> Coverage:
    """Expected vs present grid slots in [start, end), the number of gaps and the largest one."""
    step_td = timeframe_delta(step) if isinstance(step, str) else step
    step_us = step_td // _US
    anchor_us = (anchor - EPOCH) // _US
    series = _to_series(ts)
    first, last = _grid_bounds(start, end, step_us, anchor_us)
    expected = 0 if first > last else (last - first) // step_us + 1
    on, present, off = _on_grid(series, start, end, step_us, anchor_us)
    gaps = find_gaps(series, step_td, start, end, anchor=anchor)
    largest = int(gaps["missing"].max()) if gaps.height else 0
    inside = series.filter((series >= start) & (series < end))
    return Coverage(
        start=start, end=end, step=step_td, expected=expected, present=present, off_grid=off,
        gaps=gaps.height, largest_gap=step_td * largest,
        first_ts=inside.min() if inside.len() else None,
        last_ts=inside.max() if inside.len() else None,
    )
