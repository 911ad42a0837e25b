"""Load one crash window for one venue-symbol as a single bar series at the finest resolution.

Recorded data is patchy in resolution: 1m candles exist only on a few crash days, 15m for recent
windows, 1h everywhere. The replay wants one series, so bars are stitched bottom-up: a coarse
bar is replaced by its finer bars only when they cover it completely *and* aggregate back to
the same OHLC and volume (a partial or disagreeing set of fine bars would invent or hide a
move); where no coarse bar exists, whatever finer bars exist are used. The result has no
overlaps by construction; holes are reported (and refused unless ``allow_gaps``).

Mark price drives liquidations. Where mark candles exist at the bar's resolution they are used
as is. Where only a coarser mark exists, the coarse basis (mark - last) is carried onto the
fine bars (see ``_carry_basis``); with no mark at all, last price stands in. Each bar says which
in ``mark_source`` and every such choice is listed in ``MarketWindow.assumptions``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import polars as pl

from loaders.coverage import format_duration
from loaders.errors import UserError

if TYPE_CHECKING:
    from backtest.events import Event
    from loaders.store import Store

#: Bar resolutions from finest to coarsest, with their length in seconds.
RESOLUTIONS = ("1m", "15m", "1h")
SECONDS = {"1m": 60, "15m": 900, "1h": 3600}
#: Relative tolerance under which fine bars "aggregate to the same" coarse bar.
AGG_REL_TOL = 1e-9
VOLUME_REL_TOL = 1e-6
DEFAULT_FUNDING_INTERVAL_H = 8.0

BAR_SCHEMA: dict[str, pl.DataType] = {
    "ts": pl.Datetime("us"), "resolution": pl.Utf8, "dt_s": pl.Int64,
    "open": pl.Float64, "high": pl.Float64, "low": pl.Float64, "close": pl.Float64,
    "volume": pl.Float64, "quote_volume": pl.Float64, "taker_buy_volume": pl.Float64,
    "mark_open": pl.Float64, "mark_high": pl.Float64, "mark_low": pl.Float64, "mark_close": pl.Float64,
    "mark_source": pl.Utf8, "in_window": pl.Boolean,
}
_OHLCV = ("open", "high", "low", "close", "volume", "quote_volume", "taker_buy_volume")
_HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class WindowCoverage:
    """What the stitched series is made of: contiguous runs per resolution, holes, mark sources."""

    start: datetime
    end: datetime
    runs: pl.DataFrame  # resolution, first_ts, last_ts, end_ts, bars
    gaps: pl.DataFrame  # dataset, gap_start, gap_end
    mark_sources: dict[str, int]
    funding_rows: int
    oi_rows: int

    def by_resolution(self) -> pl.DataFrame:
        """Bars, first and last bar open per resolution (finest first)."""
        if self.runs.height == 0:
            return pl.DataFrame(schema={"resolution": pl.Utf8, "bars": pl.Int64, "runs": pl.UInt32,
                                        "first_ts": pl.Datetime("us"), "last_ts": pl.Datetime("us")})
        order = {r: i for i, r in enumerate(RESOLUTIONS)}
        return (
            self.runs.group_by("resolution")
            .agg(bars=pl.col("bars").sum(), runs=pl.len(), first_ts=pl.col("first_ts").min(),
                 last_ts=pl.col("last_ts").max())
            .sort(pl.col("resolution").replace_strict(order, return_dtype=pl.Int64))
        )

    def lines(self) -> list[str]:
        """Human-readable summary, one line per resolution, then gaps and mark sources."""
        out = []
        for r in self.by_resolution().iter_rows(named=True):
            out.append(f"{r['resolution']:>4}: {r['bars']:>6} bars in {r['runs']} run(s), "
                       f"{r['first_ts']:%Y-%m-%d %H:%M} .. {r['last_ts']:%Y-%m-%d %H:%M}")
        if self.gaps.height:
            g = self.gaps.row(0, named=True)
            out.append(f"gaps: {self.gaps.height} (first {g['dataset']} {g['gap_start']:%Y-%m-%d %H:%M} -> "
                       f"{g['gap_end']:%Y-%m-%d %H:%M})")
        else:
            out.append("gaps: none")
        out.append("mark: " + ", ".join(f"{k} {v}" for k, v in sorted(self.mark_sources.items())))
        return out


@dataclass
class MarketWindow:
    """Everything the replay reads for one (event, venue, symbol).

    ``bars.in_window`` is True for bars that overlap [start, end); warm-up bars are False.
    ``funding`` holds settlements in [load_start, end] (a settlement at ``end`` accrued inside).
    """

    event_id: str
    venue: str
    symbol: str
    start: datetime
    end: datetime
    load_start: datetime
    bars: pl.DataFrame
    funding: pl.DataFrame  # ts, rate, interval_h
    open_interest: pl.DataFrame  # ts, oi_base, oi_quote (may be empty)
    assumptions: dict[str, str] = field(default_factory=dict)
    coverage: WindowCoverage | None = None


def load_window(
    store: Store,
    event: Event,
    venue: str,
    symbol: str,
    *,
    include_warmup: bool = True,
    allow_gaps: bool = False,
) -> MarketWindow:
    """Stitched bars, funding settlements and open interest for [load_start, end) of ``event``.

    Bounds are widened to whole hours so every bar lies entirely inside the loaded range.
    Holes in the bars or in the funding series raise a ``UserError`` naming the dataset and the
    first hole, unless ``allow_gaps`` (then they are listed in ``coverage.gaps``).
    """
    begin = event.load_start if include_warmup else event.start
    lo, hi = _floor_hour(begin), _ceil_hour(event.end)
    assumptions: dict[str, str] = {}
    if (lo, hi) != (begin, event.end):
        assumptions["bounds_widened"] = (
            f"bounds widened to whole hours: {lo:%Y-%m-%d %H:%M} .. {hi:%Y-%m-%d %H:%M} UTC")

    raw_last = {tf: _candles(store, venue, symbol, "last", tf, lo, hi, assumptions) for tf in RESOLUTIONS}
    stitched = raw_last["1m"]
    for tf in RESOLUTIONS[1:]:
        stitched = _stitch(raw_last[tf], stitched, tf, assumptions)
    stitched = stitched.sort("ts")
    if stitched.height:
        finest = stitched["resolution"].unique().to_list()
        assumptions["stitching"] = (
            "bars are last-price candles at the finest resolution available at each moment "
            f"({', '.join(r for r in RESOLUTIONS if r in finest)}); a coarser bar is replaced by finer "
            "bars only where they cover it completely and aggregate to the same OHLC and volume")

    bars = _with_marks(store, venue, symbol, stitched, raw_last, lo, hi, assumptions)
    bar_end = pl.col("ts") + pl.duration(seconds=pl.col("dt_s"))
    bars = bars.with_columns(
        in_window=(bar_end > event.start) & (pl.col("ts") < event.end)
    ).select(list(BAR_SCHEMA))
    if bars["quote_volume"].null_count() or bars["taker_buy_volume"].null_count():
        assumptions["volume_detail"] = (
            "quote volume and taker-buy volume are missing (null) on bars whose source files lack "
            "them (the recorded 1h/15m candles); only base volume is complete")

    gaps = _bar_gaps(bars, lo, hi).with_columns(dataset=pl.lit(f"candles {venue} {symbol} last"))
    funding, funding_gaps = _funding(store, venue, symbol, begin, event.end, assumptions)
    gaps = pl.concat([gaps.select("dataset", "gap_start", "gap_end"),
                      funding_gaps.select("dataset", "gap_start", "gap_end")])
    oi = _open_interest(store, venue, symbol, lo, hi, assumptions)

    coverage = WindowCoverage(
        start=lo, end=hi, runs=_runs(bars), gaps=gaps,
        mark_sources=dict(bars.group_by("mark_source").len().iter_rows()),
        funding_rows=funding.height, oi_rows=oi.height,
    )
    if gaps.height and not allow_gaps:
        g = gaps.row(0, named=True)
        span = format_duration(g["gap_end"] - g["gap_start"])
        same = gaps.filter(pl.col("dataset") == g["dataset"]).height
        others = f" (and {gaps.height - same} in other datasets)" if gaps.height > same else ""
        raise UserError(
            f"{g['dataset']}: {same} gap(s){others} in {event.id} "
            f"[{lo:%Y-%m-%d %H:%M}, {hi:%Y-%m-%d %H:%M}); first {g['gap_start']:%Y-%m-%d %H:%M} -> "
            f"{g['gap_end']:%Y-%m-%d %H:%M} ({span}) in {store.path}: fill it with `backtest data download "
            f"--event {event.id}` or `backtest data import`, or allow gaps")
    if gaps.height:
        assumptions["gaps"] = f"{gaps.height} hole(s) left in the data and allowed (see coverage.gaps)"
    return MarketWindow(
        event_id=event.id, venue=venue, symbol=symbol, start=event.start, end=event.end,
        load_start=begin, bars=bars, funding=funding, open_interest=oi,
        assumptions=assumptions, coverage=coverage,
    )


# -- bars ------------------------------------------------------------------------------------

def _floor_hour(ts: datetime) -> datetime:
    return ts.replace(minute=0, second=0, microsecond=0)


def _ceil_hour(ts: datetime) -> datetime:
    f = _floor_hour(ts)
    return f if f == ts else f + _HOUR


def _candles(store: Store, venue: str, symbol: str, price_type: str, tf: str, lo: datetime,
             hi: datetime, assumptions: dict[str, str]) -> pl.DataFrame:
    """One candle series as bar rows; off-grid rows (ts not on the timeframe grid) are dropped and noted."""
    df = store.candles(venue, symbol, price_type, tf, lo, hi)
    cols = [pl.col("ts").cast(pl.Datetime("us"))]
    cols += [pl.col(c).cast(pl.Float64) for c in _OHLCV]
    df = df.select(cols).with_columns(resolution=pl.lit(tf), dt_s=pl.lit(SECONDS[tf], dtype=pl.Int64))
    on_grid = pl.col("ts") == pl.col("ts").dt.truncate(tf)
    off = df.filter(~on_grid).height
    if off:
        assumptions[f"off_grid_{price_type}_{tf}"] = (
            f"{off} {price_type} {tf} candle(s) not aligned to the {tf} grid were ignored")
    return df.filter(on_grid)


def _within(a: pl.Expr, b: pl.Expr, rel: float) -> pl.Expr:
    """|a - b| small relative to their size; a null on either side counts as agreeing."""
    ok = (a - b).abs() <= rel * pl.max_horizontal(a.abs(), b.abs()) + 1e-12
    return ok.fill_null(True)


def _stitch(coarse: pl.DataFrame, fine: pl.DataFrame, tf: str, assumptions: dict[str, str]) -> pl.DataFrame:
    """Merge a coarse series with the (already stitched) finer series below it.

    Per coarse period: complete and consistent fine bars win; else the coarse bar; where there
    is no coarse bar, any fine bars are kept.
    """
    if fine.height == 0:
        return coarse
    if coarse.height == 0:
        return fine
    fine = fine.with_columns(_p=pl.col("ts").dt.truncate(tf))
    agg = fine.sort("ts").group_by("_p").agg(
        _secs=pl.col("dt_s").sum(), _o=pl.col("open").first(), _h=pl.col("high").max(),
        _l=pl.col("low").min(), _c=pl.col("close").last(), _v=pl.col("volume").sum(),
    )
    joined = agg.join(coarse.select(_p="ts", co="open", ch="high", cl="low", cc="close", cv="volume"),
                      on="_p", how="left")
    has_coarse = pl.col("co").is_not_null()
    complete = pl.col("_secs") == SECONDS[tf]
    consistent = (
        _within(pl.col("_o"), pl.col("co"), AGG_REL_TOL) & _within(pl.col("_h"), pl.col("ch"), AGG_REL_TOL)
        & _within(pl.col("_l"), pl.col("cl"), AGG_REL_TOL) & _within(pl.col("_c"), pl.col("cc"), AGG_REL_TOL)
        & _within(pl.col("_v"), pl.col("cv"), VOLUME_REL_TOL)
    )
    joined = joined.with_columns(use_fine=~has_coarse | (complete & consistent))
    rejected = joined.filter(has_coarse & complete & ~consistent).sort("_p")
    if rejected.height:
        first = rejected["_p"][0]
        assumptions[f"fine_bars_rejected_{tf}"] = (
            f"{rejected.height} {tf} period(s) kept as {tf} bars because the finer bars do not aggregate "
            f"to the same OHLC/volume (first {first:%Y-%m-%d %H:%M})")
    fine_periods = joined.filter(pl.col("use_fine")).select("_p")
    keep_fine = fine.join(fine_periods, on="_p", how="semi").drop("_p")
    keep_coarse = coarse.join(fine_periods.rename({"_p": "ts"}), on="ts", how="anti")
    return pl.concat([keep_fine, keep_coarse.select(keep_fine.columns)])


def _bar_gaps(bars: pl.DataFrame, lo: datetime, hi: datetime) -> pl.DataFrame:
    """Holes in [lo, hi) not covered by any bar; bars never overlap by construction (checked)."""
    empty = pl.DataFrame(schema={"gap_start": pl.Datetime("us"), "gap_end": pl.Datetime("us")})
    if bars.height == 0:
        return pl.DataFrame({"gap_start": [lo], "gap_end": [hi]}).cast(empty.schema)
    spans = bars.select(s="ts", e=pl.col("ts") + pl.duration(seconds=pl.col("dt_s"))).sort("s")
    spans = spans.with_columns(next_s=pl.col("s").shift(-1))
    overlap = spans.filter(pl.col("next_s") < pl.col("e"))
    if overlap.height:  # a bug in _stitch, not a data problem
        raise AssertionError(f"stitched bars overlap at {overlap['next_s'][0]}")
    inner = spans.filter(pl.col("next_s") > pl.col("e")).select(gap_start="e", gap_end="next_s")
    rows = []
    if spans["s"][0] > lo:
        rows.append({"gap_start": lo, "gap_end": spans["s"][0]})
    tail = spans["e"][-1]
    out = pl.concat([pl.DataFrame(rows, schema=empty.schema), inner.cast(empty.schema)])
    if tail < hi:
        out = pl.concat([out, pl.DataFrame({"gap_start": [tail], "gap_end": [hi]}).cast(empty.schema)])
    return out


def _runs(bars: pl.DataFrame) -> pl.DataFrame:
    """Contiguous stretches of one resolution (a gap or a resolution change starts a new run)."""
    if bars.height == 0:
        return pl.DataFrame(schema={"resolution": pl.Utf8, "first_ts": pl.Datetime("us"),
                                    "last_ts": pl.Datetime("us"), "end_ts": pl.Datetime("us"),
                                    "bars": pl.UInt32})
    b = bars.select("ts", "resolution", "dt_s").with_columns(
        e=pl.col("ts") + pl.duration(seconds=pl.col("dt_s")))
    new = (pl.col("resolution") != pl.col("resolution").shift(1)) | (pl.col("ts") != pl.col("e").shift(1))
    b = b.with_columns(run=new.fill_null(True).cum_sum())
    return b.group_by("run", maintain_order=True).agg(
        resolution=pl.col("resolution").first(), first_ts=pl.col("ts").first(), last_ts=pl.col("ts").last(),
        end_ts=pl.col("e").last(), bars=pl.len(),
    ).drop("run")


# -- mark price ------------------------------------------------------------------------------

def _with_marks(store: Store, venue: str, symbol: str, bars: pl.DataFrame,
                raw_last: dict[str, pl.DataFrame], lo: datetime, hi: datetime,
                assumptions: dict[str, str]) -> pl.DataFrame:
    marks = {tf: _candles(store, venue, symbol, "mark", tf, lo, hi, assumptions) for tf in RESOLUTIONS}
    basis = {tf: _basis(marks[tf], raw_last[tf], bars, tf) for tf in RESOLUTIONS}
    parts = []
    carried: dict[tuple[str, str], int] = {}
    for i, res in enumerate(RESOLUTIONS):
        sub = bars.filter(pl.col("resolution") == res)
        if sub.height == 0:
            continue
        m = marks[res].select("ts", mark_open="open", mark_high="high", mark_low="low", mark_close="close")
        sub = sub.join(m, on="ts", how="left").with_columns(
            mark_source=pl.when(pl.col("mark_open").is_not_null()).then(pl.lit("mark")).otherwise(None))
        for coarse in RESOLUTIONS[i + 1:]:
            before = sub["mark_source"].null_count()
            sub = _carry_basis(sub, basis[coarse], coarse)
            n = before - sub["mark_source"].null_count()
            if n:
                carried[(res, coarse)] = n
        parts.append(sub)
    out = pl.concat(parts).sort("ts") if parts else bars.with_columns(
        mark_open=pl.lit(None, pl.Float64), mark_high=pl.lit(None, pl.Float64),
        mark_low=pl.lit(None, pl.Float64), mark_close=pl.lit(None, pl.Float64),
        mark_source=pl.lit(None, pl.Utf8))
    if carried:
        what = ", ".join(f"{n} {r} bars from {c} mark" for (r, c), n in carried.items())
        assumptions["mark_basis_carried"] = (
            f"no mark candles at the bar's resolution for {what}: mark = last + the coarse candle's basis "
            "(basis = coarse mark - coarse last of the same period; mark open/close = open/close + close "
            "basis clipped into the coarse mark's low..high; mark high = high + high basis, mark low = "
            "low + low basis, widened to contain mark open/close; the fine mark path thus stays inside "
            "the coarse mark range and reaches its extremes where last price made its extremes)")
    missing = out["mark_source"].null_count()
    if missing:
        assumptions["last_as_mark"] = (
            f"no mark candles cover {missing} bar(s): last price is used as the mark price there")
    return out.with_columns(
        mark_open=pl.coalesce("mark_open", "open"), mark_high=pl.coalesce("mark_high", "high"),
        mark_low=pl.coalesce("mark_low", "low"), mark_close=pl.coalesce("mark_close", "close"),
        mark_source=pl.col("mark_source").fill_null("last_as_mark"),
    )


def _basis(mark: pl.DataFrame, last: pl.DataFrame, bars: pl.DataFrame, tf: str) -> pl.DataFrame:
    """Per coarse period: mark - last for close, high and low.

    The coarse last candle is the stored one; where it is missing, it is aggregated from the
    stitched bars of that period.
    """
    schema = {"_k": pl.Datetime("us"), "b_close": pl.Float64, "b_high": pl.Float64, "b_low": pl.Float64,
              "m_high": pl.Float64, "m_low": pl.Float64}
    if mark.height == 0:
        return pl.DataFrame(schema=schema)
    fine = bars.filter(pl.col("dt_s") <= SECONDS[tf]).sort("ts")
    agg = (fine.with_columns(_k=pl.col("ts").dt.truncate(tf))
           .group_by("_k").agg(high=pl.col("high").max(), low=pl.col("low").min(),
                               close=pl.col("close").last())
           .join(last.select(_k="ts"), on="_k", how="anti"))
    coarse_last = pl.concat([last.select(_k="ts", high="high", low="low", close="close"), agg])
    joined = mark.select(_k="ts", mh="high", ml="low", mc="close").join(coarse_last, on="_k", how="inner")
    return joined.select(
        "_k", b_close=pl.col("mc") - pl.col("close"), b_high=pl.col("mh") - pl.col("high"),
        b_low=pl.col("ml") - pl.col("low"), m_high="mh", m_low="ml")


def _carry_basis(sub: pl.DataFrame, basis: pl.DataFrame, coarse: str) -> pl.DataFrame:
    """Fill bars still without a mark from the covering coarse period's basis.

    mark open/close = last open/close + close basis, clipped into the coarse mark's [low, high];
    mark high/low = last high/low + high/low basis, widened to contain mark open/close. So the
    fine mark never leaves the coarse mark's range, and the bar that printed the coarse period's
    last-price extreme prints the coarse mark extreme.
    """
    if basis.height == 0 or sub["mark_source"].null_count() == 0:
        return sub
    j = sub.with_columns(_k=pl.col("ts").dt.truncate(coarse)).join(basis, on="_k", how="left")
    fill = pl.col("mark_source").is_null() & pl.col("b_close").is_not_null()
    mo = (pl.col("open") + pl.col("b_close")).clip(pl.col("m_low"), pl.col("m_high"))
    mc = (pl.col("close") + pl.col("b_close")).clip(pl.col("m_low"), pl.col("m_high"))
    mh = pl.max_horizontal(pl.col("high") + pl.col("b_high"), mo, mc)
    ml = pl.min_horizontal(pl.col("low") + pl.col("b_low"), mo, mc)
    return j.with_columns(
        mark_open=pl.when(fill).then(mo).otherwise(pl.col("mark_open")),
        mark_high=pl.when(fill).then(mh).otherwise(pl.col("mark_high")),
        mark_low=pl.when(fill).then(ml).otherwise(pl.col("mark_low")),
        mark_close=pl.when(fill).then(mc).otherwise(pl.col("mark_close")),
        mark_source=pl.when(fill).then(pl.lit("basis_carried")).otherwise(pl.col("mark_source")),
    ).drop("_k", "b_close", "b_high", "b_low", "m_high", "m_low")


# -- funding and open interest ---------------------------------------------------------------

def _funding(store: Store, venue: str, symbol: str, begin: datetime, end: datetime,
             assumptions: dict[str, str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Settlements in [begin, end] (both ends: a settlement at ``end`` accrued inside the window)."""
    df = store.funding(venue, symbol, begin, end + timedelta(microseconds=1)).select(
        pl.col("ts").cast(pl.Datetime("us")), pl.col("rate").cast(pl.Float64),
        pl.col("interval_h").cast(pl.Float64))
    unknown = df["interval_h"].null_count()
    if unknown:
        assumptions["funding_interval"] = (
            f"{unknown} funding settlement(s) without a stated interval: "
            f"{DEFAULT_FUNDING_INTERVAL_H:g}h assumed")
        df = df.with_columns(pl.col("interval_h").fill_null(DEFAULT_FUNDING_INTERVAL_H))
    dataset = f"funding {venue} {symbol}"
    schema = {"dataset": pl.Utf8, "gap_start": pl.Datetime("us"), "gap_end": pl.Datetime("us")}
    if df.height == 0:
        if end - begin <= timedelta(hours=DEFAULT_FUNDING_INTERVAL_H * 1.5):
            return df, pl.DataFrame(schema=schema)  # too short to be sure a settlement is missing
        return df, pl.DataFrame({"dataset": [dataset], "gap_start": [begin], "gap_end": [end]}, schema=schema)
    # A hole: more than 1.5 intervals between settlements (or between a bound and the nearest one).
    step = pl.duration(seconds=(pl.col("interval_h") * 3600 * 1.5).cast(pl.Int64))
    spans = df.select("ts", "interval_h").with_columns(prev=pl.col("ts").shift(1))
    inner = spans.filter(pl.col("ts") - pl.col("prev") > step).select(gap_start="prev", gap_end="ts")
    rows = []
    first, last = df.row(0, named=True), df.row(-1, named=True)
    if first["ts"] - begin > timedelta(hours=first["interval_h"] * 1.5):
        rows.append({"gap_start": begin, "gap_end": first["ts"]})
    tail = []
    if end - last["ts"] > timedelta(hours=last["interval_h"] * 1.5):
        tail.append({"gap_start": last["ts"], "gap_end": end})
    gaps = pl.concat([pl.DataFrame(rows, schema={k: schema[k] for k in ("gap_start", "gap_end")}),
                      inner.cast({"gap_start": pl.Datetime("us"), "gap_end": pl.Datetime("us")}),
                      pl.DataFrame(tail, schema={k: schema[k] for k in ("gap_start", "gap_end")})])
    return df, gaps.with_columns(dataset=pl.lit(dataset)).select(list(schema))


def _open_interest(store: Store, venue: str, symbol: str, lo: datetime, hi: datetime,
                   assumptions: dict[str, str]) -> pl.DataFrame:
    """OI of the finest period stored; empty (and said so) when the store has none."""
    df = store.open_interest(venue, symbol, lo, hi)
    empty = pl.DataFrame(schema={"ts": pl.Datetime("us"), "oi_base": pl.Float64, "oi_quote": pl.Float64})
    if df.height == 0:
        assumptions["open_interest"] = (
            f"no open-interest rows for {venue} {symbol} in [{lo:%Y-%m-%d}, {hi:%Y-%m-%d}): the position "
            "book is rebuilt from flows, its warm-up level pinned as oi_anchor_level says")
        return empty
    periods = sorted(df["period"].unique().to_list(), key=_period_seconds)
    chosen = periods[0]
    if len(periods) > 1:
        assumptions["open_interest"] = f"open interest at the finest stored period {chosen} (also stored: " \
                                       f"{', '.join(periods[1:])})"
    return df.filter(pl.col("period") == chosen).select(
        pl.col("ts").cast(pl.Datetime("us")), pl.col("oi_base").cast(pl.Float64),
        pl.col("oi_quote").cast(pl.Float64)).sort("ts")


def _period_seconds(period: str) -> float:
    units = {"m": 60, "h": 3600, "d": 86400}
    try:
        return float(period[:-1]) * units[period[-1]]
    except (KeyError, ValueError):
        return float("inf")
