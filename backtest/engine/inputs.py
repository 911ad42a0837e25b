"""MarketWindow -> plain numpy arrays per symbol (the only engine module that touches polars).

Also derives the per-bar model inputs of docs/MODEL.md §1: the funding settled at each bar open,
the last settled rate, the taker-buy share and the OI anchor (§6).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backtest.engine.kernels import (
    B_CLOSE,
    B_HIGH,
    B_LOW,
    B_MCLOSE,
    B_MHIGH,
    B_MLOW,
    B_MOPEN,
    B_OPEN,
    B_VOL,
    B_VUSD,
    NB,
)
from backtest.engine.params import Params
from loaders.errors import UserError


@dataclass
class SymbolInputs:
    """One symbol's bars as arrays (ts in seconds since the epoch, UTC)."""

    symbol: str
    ts: np.ndarray  # int64 seconds, bar open
    dt: np.ndarray  # float seconds
    bars: np.ndarray  # [T, NB], columns B_* of kernels.py
    in_window: np.ndarray  # bool
    funding: np.ndarray  # rate settled at the bar open (0 if none)
    f_last: np.ndarray  # latest settled rate with ts <= bar ts
    tb: np.ndarray  # taker-buy share (0.5 unknown)
    target: np.ndarray  # OI anchor USD per side, NaN where the book is free
    brackets: np.ndarray  # [J, 5]
    clearance_rate: float = 0.005  # venue's clearance fee on partial-liquidation pieces (surplus_mode venue)
    assumptions: dict[str, str] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.ts.shape[0])

    @classmethod
    def build(
        cls,
        symbol: str,
        ts,
        close,
        *,
        open=None,
        high=None,
        low=None,
        volume=None,
        vusd=None,
        mark=None,
        dt=None,
        in_window=None,
        funding=None,
        f_last=None,
        tb=None,
        target=None,
        brackets=None,
        clearance_rate=None,
        params: Params | None = None,
    ) -> SymbolInputs:
        """Arrays from plain sequences (tests, synthetic paths). ``mark``: (open, high, low, close)
        tuple of sequences, default = the last-price bars. ``f_last`` defaults to the carried
        ``funding`` settlements (``params.funding_neutral`` before the first). ``clearance_rate``
        defaults to the venue's latest surplus rule."""
        from backtest.engine.venue_rules import TABLE_A, venue_rules

        params = params or Params()
        ts = np.asarray(ts, dtype=np.int64)
        n = ts.shape[0]
        c = np.asarray(close, dtype=float)
        o = c.copy() if open is None else np.asarray(open, dtype=float)
        h = np.maximum(o, c) if high is None else np.asarray(high, dtype=float)
        lo = np.minimum(o, c) if low is None else np.asarray(low, dtype=float)
        v = np.ones(n) if volume is None else np.asarray(volume, dtype=float)
        bars = np.empty((n, NB))
        bars[:, B_OPEN], bars[:, B_HIGH], bars[:, B_LOW], bars[:, B_CLOSE], bars[:, B_VOL] = o, h, lo, c, v
        bars[:, B_VUSD] = v * c if vusd is None else np.asarray(vusd, dtype=float)
        mo, mh, ml, mc = (o, h, lo, c) if mark is None else (np.asarray(x, dtype=float) for x in mark)
        bars[:, B_MOPEN], bars[:, B_MHIGH], bars[:, B_MLOW], bars[:, B_MCLOSE] = mo, mh, ml, mc
        fund = np.zeros(n) if funding is None else np.asarray(funding, dtype=float)
        if f_last is None:
            f_last = np.empty(n)
            cur = params.funding_neutral
            for i in range(n):
                if fund[i] != 0.0:
                    cur = fund[i]
                f_last[i] = cur
        if dt is None:
            dt = np.diff(ts, append=ts[-1] + (ts[-1] - ts[-2] if n > 1 else 60)).astype(float)
        return cls(
            symbol=symbol,
            ts=ts,
            dt=np.asarray(dt, dtype=float),
            bars=bars,
            in_window=np.ones(n, bool) if in_window is None else np.asarray(in_window, bool),
            funding=fund,
            f_last=np.asarray(f_last, dtype=float),
            tb=np.full(n, 0.5) if tb is None else np.asarray(tb, dtype=float),
            target=np.full(n, np.nan) if target is None else np.asarray(target, dtype=float),
            brackets=TABLE_A.copy() if brackets is None else np.asarray(brackets, dtype=float),
            clearance_rate=(venue_rules(params.venue).surplus_rule()[0]
                            if clearance_rate is None and params.surplus_mode == "venue"
                            else cls.clearance_rate if clearance_rate is None else float(clearance_rate)),
        )


def coarsen(inp: SymbolInputs, step_s: int) -> SymbolInputs:
    """The same path on bars of ``step_s`` seconds (UTC-aligned): finer bars are merged, coarser kept.

    OHLC of last and mark price: first open, highest high, lowest low, last close; volume, quote volume
    and funding summed; taker-buy share volume-weighted; the OI anchor and ``in_window`` of the last
    merged bar. Used to test that the replay does not depend on the bar length (docs/CALIBRATION.md:
    the resolution check), never by a normal run.
    """
    key = inp.ts // step_s
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    ends = np.r_[starts[1:], inp.n] - 1
    b = inp.bars
    out = np.empty((starts.shape[0], NB))
    for col in (B_OPEN, B_MOPEN):
        out[:, col] = b[starts, col]
    for col in (B_CLOSE, B_MCLOSE):
        out[:, col] = b[ends, col]
    for col in (B_HIGH, B_MHIGH):
        out[:, col] = np.maximum.reduceat(b[:, col], starts)
    for col in (B_LOW, B_MLOW):
        out[:, col] = np.minimum.reduceat(b[:, col], starts)
    for col in (B_VOL, B_VUSD):
        out[:, col] = np.add.reduceat(b[:, col], starts)
    buy = np.add.reduceat(inp.tb * b[:, B_VOL], starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        tb = np.where(out[:, B_VOL] > 0.0, buy / out[:, B_VOL], 0.5)
    return SymbolInputs(
        symbol=inp.symbol,
        ts=inp.ts[starts].copy(),
        dt=np.add.reduceat(inp.dt, starts),
        bars=out,
        in_window=inp.in_window[ends].copy(),
        funding=np.add.reduceat(inp.funding, starts),
        f_last=inp.f_last[starts].copy(),
        tb=tb,
        target=inp.target[ends].copy(),
        brackets=inp.brackets.copy(),
        clearance_rate=inp.clearance_rate,
        assumptions={**inp.assumptions, "bars": f"coarsened to {step_s} s bars (resolution check)"},
    )


def base_asset(symbol: str) -> str:
    for quote in ("USDT", "USDC", "BUSD", "USD"):
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)]
    return symbol


def catalog_oi_level(event: Any, symbol: str) -> tuple[float, str] | None:
    """The reported all-venue OI level *before* the shock for the symbol's base asset, if any."""
    base = base_asset(symbol)
    for name, r in getattr(event, "reported", {}).items():
        if r.kind == "oi_change" and r.before and r.unit == "USD" and base in r.scope.split(",")[0]:
            return float(r.before), f"catalog {event.id}.{name}: {r.before:,.0f} USD ({r.scope})"
    return None


def from_window(win: Any, params: Params, oi_level: tuple[float, str] | None = None) -> SymbolInputs:
    """Arrays and model inputs from a ``backtest.window.MarketWindow`` (MODEL §1, §6)."""
    import polars as pl

    from backtest.engine.venue_rules import venue_rules

    b = win.bars.sort("ts")
    if b.height == 0:
        raise UserError(f"{win.event_id} {win.venue} {win.symbol}: no bars in the window")
    ts = (b["ts"].cast(pl.Datetime("us")).dt.epoch("s")).to_numpy().astype(np.int64)
    n = ts.shape[0]
    bars = np.empty((n, NB))
    for col, name in (
        (B_OPEN, "open"),
        (B_HIGH, "high"),
        (B_LOW, "low"),
        (B_CLOSE, "close"),
        (B_VOL, "volume"),
        (B_MOPEN, "mark_open"),
        (B_MHIGH, "mark_high"),
        (B_MLOW, "mark_low"),
        (B_MCLOSE, "mark_close"),
    ):
        bars[:, col] = b[name].cast(pl.Float64).to_numpy()
    qv = b["quote_volume"].cast(pl.Float64).to_numpy() if "quote_volume" in b.columns else np.full(n, np.nan)
    bars[:, B_VUSD] = np.where(np.isnan(qv), bars[:, B_VOL] * bars[:, B_CLOSE], qv)
    if (
        not np.isfinite(bars).all()
        or (bars[:, [B_OPEN, B_HIGH, B_LOW, B_CLOSE, B_MOPEN, B_MHIGH, B_MLOW, B_MCLOSE]] <= 0).any()
    ):
        raise UserError(f"{win.event_id} {win.venue} {win.symbol}: bars with missing or non-positive prices")
    dt = b["dt_s"].cast(pl.Float64).to_numpy()
    in_window = b["in_window"].to_numpy().astype(bool)
    tbv = (
        b["taker_buy_volume"].cast(pl.Float64).to_numpy()
        if "taker_buy_volume" in b.columns
        else np.full(n, np.nan)
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        tb = np.where(np.isfinite(tbv) & (bars[:, B_VOL] > 0), tbv / bars[:, B_VOL], 0.5)

    # funding: each settlement applies at the first bar opening at or after it
    funding = np.zeros(n)
    f_last = np.full(n, params.funding_neutral)
    if win.funding.height:
        f = win.funding.sort("ts")
        fts = (f["ts"].cast(pl.Datetime("us")).dt.epoch("s")).to_numpy().astype(np.int64)
        rate = f["rate"].cast(pl.Float64).to_numpy()
        at = np.searchsorted(ts, fts, side="left")
        ok = (at < n) & (fts >= ts[0])
        np.add.at(funding, at[ok], rate[ok])
        last = np.searchsorted(fts, ts, side="right") - 1
        f_last = np.where(last >= 0, rate[np.clip(last, 0, None)], params.funding_neutral)

    assumptions = dict(win.assumptions)
    target = np.full(n, np.nan)
    oi = win.open_interest
    if oi is not None and oi.height:
        o = oi.sort("ts")
        ots = (o["ts"].cast(pl.Datetime("us")).dt.epoch("s")).to_numpy().astype(np.int64)
        oq = (
            o["oi_quote"].cast(pl.Float64).to_numpy()
            if "oi_quote" in o.columns
            else np.full(len(ots), np.nan)
        )
        ob = o["oi_base"].cast(pl.Float64).to_numpy() if "oi_base" in o.columns else np.full(len(ots), np.nan)
        j = np.searchsorted(ots, ts, side="right") - 1
        jj = np.clip(j, 0, None)
        fresh = (j >= 0) & (ts - ots[jj] <= params.oi_max_age_s)
        val = np.where(np.isfinite(oq[jj]), oq[jj], ob[jj] * bars[:, B_CLOSE])
        target = np.where(fresh & np.isfinite(val), val, np.nan)
        assumptions["oi_anchor"] = f"observed OI pins the book where present ({int(fresh.sum())} bars)"
    warm = ~in_window
    pin = warm & np.isnan(target)
    if not warm.any():
        pin = np.zeros(n, bool)
        pin[0] = np.isnan(target[0])
    if pin.any():
        if oi_level is not None:
            level = params.venue_share * oi_level[0]
            assumptions["oi_anchor_level"] = (
                f"warm-up OI pinned at venue_share {params.venue_share:g} x {oi_level[1]} = {level:,.0f} USD"
            )
        else:
            ref = warm if warm.any() else np.ones(n, bool)
            days = dt[ref].sum() / 86400.0
            daily = bars[ref, B_VUSD].sum() / days if days > 0 else 0.0
            level = params.oi_volume_ratio * daily
            assumptions["oi_anchor_level"] = (
                f"no OI level known: warm-up OI pinned at oi_volume_ratio {params.oi_volume_ratio:g} x "
                f"mean daily volume {daily:,.0f} USD = {level:,.0f} USD"
            )
        target = np.where(pin, level, target)
    rules = venue_rules(params.venue)
    brackets, note = rules.brackets(win.symbol, win.start)
    assumptions["brackets"] = note
    rate = SymbolInputs.clearance_rate
    if params.surplus_mode == "venue":
        rate, assumptions["surplus_rule"] = rules.surplus_rule(win.start)
    return SymbolInputs(
        symbol=win.symbol,
        ts=ts,
        dt=dt,
        bars=bars,
        in_window=in_window,
        funding=funding,
        f_last=f_last,
        tb=tb,
        target=target,
        brackets=brackets,
        clearance_rate=rate,
        assumptions=assumptions,
    )
