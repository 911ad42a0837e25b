"""Reconstructed versus reported figures for one crash window (``backtest calibrate``).

Pure comparison logic: a replay's per-bar series (:class:`ModelSeries`) and a catalog event go in,
one :class:`Row` per reported figure comes out. Nothing here runs the engine or reads the store.

Like with like. The model replays Binance USDⓈ-M BTCUSDT + ETHUSDT; most reported totals are
all-venue and all-asset. A reported total is therefore scaled by two named, documented shares
(:class:`Shares`) before the ratio is taken, and the shares are printed with every row:
``venue_share`` (Binance's share of all-venue activity, by default the model's ``venue_share``) and
``asset_share`` (BTC+ETH share of all-asset liquidations). Fractions (long share, OI change) need
no scaling. Figures about another venue (BitMEX, Hyperliquid) are shown but not scored.

Lower bounds. CEX liquidation totals after April 2021 are lower bounds (throttled feeds,
shared/docs/EVENTS.md): such a row is ``consistent`` when the model is at or above it, up to
``LOWER_BOUND_MAX_RATIO`` (the largest published undercount, 4-6x, MECHANICS.md §1.8).

Each figure is measured over an interval of the replay. The catalog states it for figures whose scope
names one (``measured_from``/``measured_to``/``measured_why``, read off the scope text, not tuned), as
it states a change reported only as a bound (``change_bound``) and a figure not about the window
(``outside_window``: shown, not scored); any other figure uses the default rule of
:func:`interval_for`. The interval is printed with the row.

Insurance-fund outcomes (``fund_change`` figures: a venue fund's balance before -> after over a stated
interval) are compared with a replayed static fund that holds the reported ``before`` balance at the
start of that interval, on the symbols that fund covers (:func:`fund_change`; the replay itself is
``backtest.calibrate_run.fund_rows``): the fund's change over exactly [measured_from, measured_to)
next to the reported change ``after - before``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np

#: The largest published undercount of CEX liquidation totals (Bybit CEO: 4-6x, MECHANICS.md §1.8).
LOWER_BOUND_MAX_RATIO = 6.0
#: BTC+ETH share of all-asset liquidations: 0.67 and 0.55 in the two luna2022 24h totals
#: (BTC $346M + ETH $321M of $1.0B; $330M + $333M of $1.2B), BTC "about 50%" on 19 May 2021.
DEFAULT_ASSET_SHARE = 0.6

#: A fund row's error is asinh(change / s) with s = this share of the reported ``before`` balance:
#: ~ log-ratio when both changes are large and of one sign, smooth through 0, large for a wrong sign.
#: 0.1 %: the smallest reported change (Binance's -1.1 % on 19 May 2021) is 10 s, so a factor 2 off
#: costs ~log 2 there (with 1 % it was ~1 s and a model 10x too small cost only 0.8).
FUND_ERROR_SCALE = 0.001

_H = timedelta(hours=1)


@dataclass(frozen=True)
class Shares:
    """Scope scaling of all-venue / all-asset totals onto the model's Binance BTC+ETH replay."""

    venue_share: float
    asset_share: float = DEFAULT_ASSET_SHARE


@dataclass
class ModelSeries:
    """What the comparison needs from a replay: per-symbol bar series (ts in epoch seconds)."""

    symbols: tuple[str, ...]
    ts: dict[str, np.ndarray]
    dt: dict[str, np.ndarray]
    in_window: dict[str, np.ndarray]
    liq_long: dict[str, np.ndarray]
    liq_short: dict[str, np.ndarray]
    oi: dict[str, np.ndarray]
    funding: dict[str, np.ndarray]  # rate settled at each bar open (0 if none)
    clock: np.ndarray
    clock_in_window: np.ndarray
    liq_per_min: np.ndarray  # per clock tick, all symbols

    @classmethod
    def from_result(cls, result: Any, inputs: list[Any]) -> ModelSeries:
        """From an engine ``Result`` (its series) and the ``SymbolInputs`` it was run on."""
        s = result.series
        syms = tuple(i.symbol for i in inputs)
        return cls(
            symbols=syms,
            ts={i.symbol: np.asarray(i.ts) for i in inputs},
            dt={i.symbol: np.asarray(i.dt) for i in inputs},
            in_window={i.symbol: np.asarray(i.in_window) for i in inputs},
            liq_long={k: np.asarray(s[f"{k}.liq_long_usd"]) for k in syms},
            liq_short={k: np.asarray(s[f"{k}.liq_short_usd"]) for k in syms},
            oi={k: np.asarray(s[f"{k}.oi_usd"]) for k in syms},
            funding={i.symbol: np.asarray(i.funding) for i in inputs},
            clock=np.asarray(s["clock"]),
            clock_in_window=np.asarray(s["in_window"], bool),
            liq_per_min=np.asarray(s["liq_usd_per_min"]),
        )

    # -- measurements ------------------------------------------------------------------------
    def liquidations(self, start: datetime, end: datetime, symbols: tuple[str, ...]) -> tuple[float, float]:
        """(long USD, short USD) liquidated in bars opening in [start, end)."""
        a, b = _epoch(start), _epoch(end)
        lo = sh = 0.0
        for k in symbols:
            m = (self.ts[k] >= a) & (self.ts[k] < b)
            lo += float(self.liq_long[k][m].sum())
            sh += float(self.liq_short[k][m].sum())
        return lo, sh

    def oi_at(self, when: datetime, symbols: tuple[str, ...]) -> float:
        """Σ OI at the close of the last bar opening before ``when`` (each symbol's latest bar)."""
        t = _epoch(when)
        total = 0.0
        for k in symbols:
            i = int(np.searchsorted(self.ts[k], t, side="left")) - 1
            total += float(self.oi[k][max(i, 0)])
        return total

    def oi_min(self, start: datetime, end: datetime, symbols: tuple[str, ...]) -> float:
        a, b = _epoch(start), _epoch(end)
        ticks = self.clock[(self.clock >= a) & (self.clock < b)]
        return min((self.oi_at(_dt(int(t) + 1), symbols) for t in ticks), default=math.nan)

    def peak_time(self) -> datetime | None:
        """Open time of the clock tick with the highest liquidated USD per minute in the window."""
        rate = np.where(self.clock_in_window, self.liq_per_min, -1.0)
        if rate.size == 0 or rate.max() <= 0:
            return None
        return _dt(int(self.clock[int(np.argmax(rate))]))

    def funding_extreme(self, symbol: str, sign: float) -> float:
        f = self.funding[symbol][self.in_window[symbol] & (self.funding[symbol] != 0)]
        if f.size == 0:
            return math.nan
        return float(f.min() if sign < 0 else f.max())


@dataclass
class FundSeries:
    """A replayed fund's value per clock tick: ``value[i]`` is its value after the tick that opens at
    ``clock[i]`` (epoch seconds)."""

    clock: np.ndarray
    value: np.ndarray
    start_usd: float  # the capital it started with (its value before any tick)
    symbols: tuple[str, ...]  # the symbols it covered
    design: str = "static"

    @classmethod
    def from_result(cls, result: Any, start_usd: float, symbols: tuple[str, ...] | list[str]) -> FundSeries:
        """From an engine ``Result`` of a fund design (its ``clock`` and ``fund_value`` series)."""
        return cls(clock=np.asarray(result.series["clock"]),
                   value=np.asarray(result.series["fund_value"], float),
                   start_usd=float(start_usd), symbols=tuple(symbols),
                   design=str(result.record.get("design_type") or result.record.get("design") or "static"))

    def value_before(self, when: datetime) -> float:
        """The value at the last tick opening before ``when`` (all flows up to ``when``), else the start."""
        i = int(np.searchsorted(self.clock, _epoch(when), side="left")) - 1
        return float(self.value[i]) if i >= 0 else self.start_usd

    def change(self, start: datetime, end: datetime) -> float:
        """The fund's change over [start, end)."""
        return self.value_before(end) - self.value_before(start)


@dataclass
class Row:
    """One reported figure next to its reconstruction."""

    metric: str  # liquidations | long_share | oi_change | funding_extreme | peak_time | fund_change
    figure: str
    reported: float | None
    model: float | None  # in the model's own scope (Binance BTCUSDT/ETHUSDT)
    comparable: float | None  # the reported figure mapped onto the model's scope (x shares)
    ratio: float | None  # model / comparable; None where a ratio means nothing (peak timing: see ``model``)
    unit: str
    interval: str
    scope: str
    scale: str
    source: str
    confidence: str
    lower_bound: bool
    verdict: str
    scored: bool
    error: float | None = None  # the term the fit minimises (see ``error_terms``)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Calibration:
    event: str
    shares: Shares
    rows: list[Row] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.event, "venue_share": self.shares.venue_share,
                "asset_share": self.shares.asset_share, "lower_bound_max_ratio": LOWER_BOUND_MAX_RATIO,
                "rows": [r.to_dict() for r in self.rows]}


def compare(event: Any, model: ModelSeries, shares: Shares) -> Calibration:
    """Every liquidation, long-share, OI-change and funding figure of ``event``, plus the peak timing."""
    out = Calibration(event.id, shares)
    binance = {n: interval_for(event, n, r)[:2] for n, r in event.reported.items()
               if r.kind == "liquidations" and scope_of(r.scope, model.symbols)[0] == "binance"}
    for name, rep in event.reported.items():
        row = None
        if rep.kind == "liquidations":
            row = _liquidations(event, name, rep, model, shares)
            same = _same_span(interval_for(event, name, rep)[:2], binance)
            if same and row.scored and scope_of(rep.scope, model.symbols)[0] == "all":
                # a Binance-only total covers the same span: score that one. An all-venue total needs
                # venue_share, and Binance's reported share differs by era (0.12 of the long
                # liquidations on 19 May 2021, 0.39 on 5 Aug 2024, 0.13 on 10 Oct 2025)
                row = replace(row, scored=False, error=None,
                              verdict=f"{row.verdict} (not scored: Binance-only {same} covers the span)")
        elif rep.kind == "long_share":
            row = _long_share(event, name, rep, model)
        elif rep.kind == "oi_change":
            row = _oi_change(event, name, rep, model)
        elif rep.kind == "funding_extreme":
            row = _funding(event, name, rep, model)
        if row is not None:
            out.rows.append(_outside_window(row, rep) if rep.outside_window else row)
    if event.peak is not None:
        out.rows.append(_peak(event, model))
    return out


def _same_span(span: tuple[datetime, datetime], others: dict[str, tuple[datetime, datetime]]) -> str:
    """The first of ``others`` whose interval overlaps at least half of ``span`` (else '')."""
    a, b = span
    for name, (c, d) in others.items():
        if (min(b, d) - max(a, c)) >= 0.5 * (b - a):
            return name
    return ""


# -- scope -------------------------------------------------------------------------------------

def scope_of(scope: str, model_symbols: tuple[str, ...]) -> tuple[str | None, tuple[str, ...], bool]:
    """(venue class, symbols to measure, all-asset?) from a figure's scope text.

    venue class: ``all`` (all venues), ``binance`` (Binance only) or None (another venue).
    """
    s = scope.lower()
    if s.startswith("all venues") or "all venues" in s or "aggregate" in s or "total crypto" in s:
        venue = "all"
    elif s.startswith("binance"):
        venue = "binance"
    else:
        venue = None
    head = s.split(",")[0]
    btc_only = ("btc" in head or "xbt" in head) and "eth" not in head
    syms = tuple(k for k in model_symbols if k.startswith("BTC")) if btc_only else model_symbols
    return venue, syms or model_symbols, not btc_only


def interval_for(event: Any, name: str, rep: Any) -> tuple[datetime, datetime, str]:
    """Where a figure is measured: the catalog's interval, else 24h ending at ``at``, else peak ± 12h."""
    if rep.measured is not None:
        return rep.measured
    if rep.at is not None:
        return rep.at - 24 * _H, rep.at, "24h ending at the figure's time"
    if event.peak is not None:
        return event.peak - 12 * _H, event.peak + 12 * _H, "peak +/- 12h (figure has no time)"
    return event.start, event.end, "whole window"


def _base(rep: Any, metric: str, name: str, start: datetime, end: datetime, why: str) -> dict[str, Any]:
    return dict(metric=metric, figure=name, unit=rep.unit, scope=rep.scope, source=rep.source,
                confidence=rep.confidence, lower_bound=rep.lower_bound,
                interval=f"{_fmt(start)} -> {_fmt(end)} ({why})")


def _liquidations(event: Any, name: str, rep: Any, model: ModelSeries, shares: Shares) -> Row:
    start, end, why = interval_for(event, name, rep)
    venue, syms, all_assets = scope_of(rep.scope, model.symbols)
    lo, sh = model.liquidations(start, end, syms)
    total = lo + sh
    base = _base(rep, "liquidations", name, start, end, why)
    if venue is None:
        return Row(**base, reported=rep.value, model=total, comparable=None, ratio=None,
                   scale="another venue: no share assumption", verdict="not comparable (other venue)",
                   scored=False, note=rep.note)
    factor, parts = 1.0, []
    if venue == "all":
        factor *= shares.venue_share
        parts.append(f"venue_share {shares.venue_share:g}")
    if all_assets:
        factor *= shares.asset_share
        parts.append(f"asset_share {shares.asset_share:g}")
    comparable = rep.value * factor
    ratio = total / comparable if comparable > 0 else None
    return Row(**base, reported=rep.value, model=total, comparable=comparable, ratio=ratio,
               scale=" x ".join(parts) or "1 (same scope)", verdict=_verdict_total(ratio, rep.lower_bound),
               scored=ratio is not None, error=_total_error(ratio, rep.lower_bound), note=rep.note)


def _long_share(event: Any, name: str, rep: Any, model: ModelSeries) -> Row:
    start, end, why = interval_for(event, name, rep)
    venue, syms, _ = scope_of(rep.scope, model.symbols)
    lo, sh = model.liquidations(start, end, syms)
    share = lo / (lo + sh) if lo + sh > 0 else None
    diff = None if share is None else share - rep.value
    other = venue is None
    return Row(**_base(rep, "long_share", name, start, end, why), reported=rep.value, model=share,
               comparable=rep.value, ratio=None if share is None else share / rep.value,
               scale="fraction (no scaling)" + ("; other venue" if other else ""),
               verdict="n/a (no liquidations)" if diff is None else f"{diff:+.2f}",
               scored=diff is not None, error=diff, note=rep.note)


def _oi_change(event: Any, name: str, rep: Any, model: ModelSeries) -> Row:
    _venue, syms, _ = scope_of(rep.scope, model.symbols)
    if rep.measured is not None:
        start, end, why = rep.measured
        after = model.oi_at(end, syms)
    elif rep.at is not None:
        start, end, why = rep.at - 24 * _H, rep.at, "24h ending at the figure's time"
        after = model.oi_at(end, syms)
    else:
        start = event.peak - 24 * _H if event.peak else event.start
        end = event.peak + 12 * _H if event.peak else event.end
        why = "OI 24h before the peak -> lowest OI up to 12h after it"
        after = model.oi_min(start, end, syms)
    before = model.oi_at(start, syms)
    change = after / before - 1.0 if before > 0 else None
    base = _base(rep, "oi_change", name, start, end, why)
    scale = "fraction (no scaling); measured on " + "+".join(syms)
    bound = (rep.change_bound, rep.change_bound_sense) if rep.change_bound is not None else None
    reported = bound[0] if bound else rep.change
    if reported is None or change is None:
        return Row(**base, reported=reported, model=change, comparable=None, ratio=None, scale=scale,
                   verdict="n/a", scored=False, note=rep.note)
    # error in log of the remaining fraction: -50% vs -25% counts like -25% vs 0%
    err = math.log(max(1.0 + change, 1e-6) / (1.0 + reported))
    if bound:
        err = max(err, 0.0) if bound[1] == "at_most" else min(err, 0.0)
        scale += f"; reported as a bound (change {'<=' if bound[1] == 'at_most' else '>='} {bound[0]:g})"
    ratio = change / reported if reported else None
    verdict = "consistent with the bound" if bound and err == 0 else f"log-error {err:+.2f}"
    return Row(**base, reported=reported, model=change, comparable=reported, ratio=ratio, scale=scale,
               verdict=verdict, scored=True, error=err, note=rep.note)


def _outside_window(row: Row, rep: Any) -> Row:
    """A figure the catalog marks as not about the window: its reconstruction is shown, never scored."""
    return replace(row, reported=rep.value, comparable=None, ratio=None, error=None, scored=False,
                   verdict="not comparable: " + rep.outside_window)


def _funding(event: Any, name: str, rep: Any, model: ModelSeries) -> Row:
    _venue, syms, _ = scope_of(rep.scope, model.symbols)
    sym = syms[0]
    value = model.funding_extreme(sym, -1.0 if rep.value < 0 else 1.0)
    ratio = value / rep.value if rep.value else None
    return Row(**_base(rep, "funding_extreme", name, event.start, event.end, "window"), reported=rep.value,
               model=value, comparable=rep.value, ratio=ratio, scale=f"input check on {sym}",
               verdict="input (recorded), not a model output", scored=False, note=rep.note)


def _peak(event: Any, model: ModelSeries) -> Row:
    t = model.peak_time()
    hours = None if t is None else (t - event.peak).total_seconds() / 3600.0
    return Row(metric="peak_time", figure="peak", reported=0.0, model=hours, comparable=None,
               ratio=None, unit="hours (model - catalog peak)", interval=f"window; model peak {_fmt(t)}",
               scope=event.peak_note or "catalog peak", source="data/events.toml peak", confidence="H",
               lower_bound=False, verdict="n/a" if hours is None else f"{hours:+.1f} h",
               scale="bar resolution", scored=hours is not None,
               error=None if hours is None else hours / 24.0, note=f"catalog peak {_fmt(event.peak)}")


def fund_change(event: Any, name: str, rep: Any, fund: FundSeries) -> Row:
    """A ``fund_change`` figure next to a replayed fund started at its ``before`` balance.

    Both are changes over exactly [measured_from, measured_to): model = the replayed fund's change,
    reported = ``after - before``. Verdict: "within x2" (same sign, ratio in [0.5, 2]), "wrong sign",
    else the ratio. Error: asinh(model / s) - asinh(reported / s), s = FUND_ERROR_SCALE x ``before``.
    """
    start, end, why = rep.measured
    model = fund.change(start, end)
    reported = rep.delta
    ratio = model / reported + 0.0 if reported else None  # + 0.0: no "-0.00" for an unchanged fund
    s = FUND_ERROR_SCALE * rep.before
    err = math.asinh(model / s) - math.asinh(reported / s)
    if ratio is None:
        verdict = "n/a (reported change 0)"
    elif ratio < 0:
        verdict = "wrong sign"
    elif 0.5 <= ratio <= 2.0:
        verdict = "within x2"
    else:
        verdict = f"ratio {ratio:.2f}"
    row = Row(**_base(rep, "fund_change", name, start, end, why), reported=reported, model=model,
              comparable=reported, ratio=ratio, scale=_fund_scale(rep, fund), verdict=verdict, scored=True,
              error=err, note=rep.note)
    if rep.outside_window:
        return replace(row, comparable=None, ratio=None, error=None, scored=False,
                       verdict="not comparable: " + rep.outside_window)
    return row


def fund_change_not_replayed(event: Any, name: str, rep: Any, reason: str) -> Row:
    """A ``fund_change`` figure calibrate could not replay (another venue, symbols not loaded): shown only."""
    start, end, why = rep.measured
    return Row(**_base(rep, "fund_change", name, start, end, why), reported=rep.delta, model=None,
               comparable=None, ratio=None, scale=f"{rep.venue} {rep.fund} on {'+'.join(rep.fund_symbols)}",
               verdict=f"not replayed: {reason}", scored=False, note=rep.note)


def _fund_scale(rep: Any, fund: FundSeries) -> str:
    return (f"{fund.design} fund started at {fund.start_usd:,.0f} {rep.unit} (reported before) at the "
            f"interval start, replayed on {'+'.join(fund.symbols)} ({rep.venue} {rep.fund}); "
            f"error scale {FUND_ERROR_SCALE:g} x before")


def _verdict_total(ratio: float | None, lower_bound: bool) -> str:
    if ratio is None:
        return "n/a"
    if lower_bound:
        if ratio < 1:
            return "below the reported lower bound"
        if ratio > LOWER_BOUND_MAX_RATIO:
            return f"above {LOWER_BOUND_MAX_RATIO:g}x the lower bound"
        return "consistent (reported is a lower bound)"
    return f"ratio {ratio:.2f}"


def _total_error(ratio: float | None, lower_bound: bool) -> float | None:
    """log-ratio; one-sided for lower bounds (0 inside [1, LOWER_BOUND_MAX_RATIO])."""
    if ratio is None or ratio <= 0:
        return None if ratio is None else math.log(1e-6)
    e = math.log(ratio)
    if lower_bound:
        return min(e, 0.0) if e < math.log(LOWER_BOUND_MAX_RATIO) else e - math.log(LOWER_BOUND_MAX_RATIO)
    return e


def error_terms(cal: Calibration) -> dict[str, float]:
    """Scored rows -> their error (the fit's loss terms; scripts/fit_calibration.py)."""
    return {f"{cal.event}.{r.figure}": float(r.error) for r in cal.rows if r.scored and r.error is not None}


def _epoch(t: datetime) -> int:
    return int((t - datetime(1970, 1, 1)).total_seconds())


def _dt(s: int) -> datetime:
    return datetime(1970, 1, 1) + timedelta(seconds=s)


def _fmt(t: datetime | None) -> str:
    return "-" if t is None else t.strftime("%Y-%m-%d %H:%M")
