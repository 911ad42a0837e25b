"""``static``: fixed USDT capital that grows only from liquidation surplus (Binance-like).

Also home of :class:`LedgerFund`, the bookkeeping every standard design shares: it starts the fund's
books when the event window starts, records one row per clock tick, and keeps the money identity

    value = start + Σ inflows − Σ outflows + Σ own P&L        (``breakdown()['residual']`` ≈ 0)

so that a report can say where every dollar of a fund's change came from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from strategies.base import Fund, Market
from strategies.config import MAX_CAPITAL_USD, param
from strategies.registry import register

BINANCE_MAY2021_USD = 291_853_183.0  # the default start capital before "event" (kept: fingerprints pin it)
CAPITAL_SOURCE = ("the catalog's fund_before for the venue (data/events.toml); else the fund/OI ratio of the "
                  "venue's listed fund nearest in time (docs/DESIGNS.md, Start capital)")
YEAR_S = 365.0 * 86400.0


def capital_from(value: float | str, context: dict[str, Any], design: str, key: str = "capital_usd") -> float:
    """A capital parameter's USD amount: a number, or ``"event"`` = the start capital that fits the event."""
    return capital_rule(value, context, design, key)[0]


def capital_rule(value: float | str, context: dict[str, Any], design: str,
                 key: str = "capital_usd") -> tuple[float, str]:
    """(USD amount, which rule gave it) of a capital parameter.

    ``"event"`` (the default of every design with a start capital) is one rule for every window, so that
    a fund is sized like the venue's fund of that time rather than of May 2021: the venue's fund listed
    in the catalog before the shock (context ``fund_before_usd``); else ``fund_oi_ratio`` (the venue's
    nearest listed fund divided by the replayed OI at that window's start, or the model parameter of
    that name) × the replayed OI at this window's start (context ``oi_start_usd``). backtest/capital.py
    puts both into the context; a number always wins.
    """
    if value != "event":
        return float(value), f"set: {key} = {float(value):,.0f}"
    usd = context.get("fund_before_usd")
    if usd is not None:
        src = context.get("fund_before_source") or "the catalog"
        return float(usd), f"the event's listed fund: {_short(usd)} ({src})"
    ratio, oi = context.get("fund_oi_ratio"), context.get("oi_start_usd")
    if ratio is not None and oi is not None:
        src = context.get("fund_oi_ratio_source") or "fund_oi_ratio"
        why = f"fund/OI {float(ratio):.2%} × replayed OI {_short(oi)} at the window start ({src})"
        return float(ratio) * float(oi), why
    from loaders.errors import UserError

    ev, venue = context.get("event_id"), context.get("venue") or "the venue"
    why = (f"{ev} lists no {venue} insurance fund before the shock and no fund/OI ratio is known" if ev
           else "no event given, so no fund size is known")
    raise UserError(f"{design}.{key} = \"event\": {why}; set a number ({design}.{key}=1e8) or the ratio "
                    f"(--set fund_oi_ratio=0.05)")


def capital_text(params: Any, context: dict[str, Any], design: str) -> str | None:
    """Which rule gave a design's start capital (None: the design has none), for reports and JSON."""
    cap = getattr(params, "capital_usd", None)
    if cap is None:
        return None
    coin = getattr(params, "capital_coin", 0.0)
    if coin == "event":
        return (f"the event's listed coin fund: {context.get('fund_before_coin', 0.0):,.0f} "
                f"{context.get('fund_before_coin_ccy', '')} ({context.get('fund_before_coin_source', '')})")
    if coin:
        return f"set: capital_coin = {float(coin):,.6g} coin"
    if cap == "target":
        return "the design's own target when the window opens"
    return capital_rule(cap, context, design)[1]


def _short(usd: float) -> str:
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(usd) >= scale:
            return f"{usd / scale:,.2f}{suffix}"
    return f"{usd:,.2f}"


class LedgerFund(Fund):
    """Shared bookkeeping: activation at the window start, per-tick history, money identity, summary.

    Subclasses say which flows they have (``INFLOWS``/``OUTFLOWS``: amounts >= 0; ``PNL``: signed),
    which per-tick amounts to track without being flows (``TRACK``) and which state to record each
    tick (``state()``), and implement ``_value``, ``_receive``, ``_pay`` and optionally ``_observe``
    (every tick, warm-up included: estimators), ``_start`` (books open) and ``_act`` (window ticks).
    The engine calls no receive/pay in the warm-up; the books open at the first window call or tick.
    """

    INFLOWS: tuple[str, ...] = ("received",)
    OUTFLOWS: tuple[str, ...] = ("paid",)
    PNL: tuple[str, ...] = ()
    TRACK: tuple[str, ...] = ("asked",)

    def __init__(self, capital_usd: float) -> None:
        super().__init__(capital_usd)
        self.label = self.name
        self.active = False
        self.start_value = 0.0
        self.ts: float | None = None  # ts of the latest on_bar
        self.prev_marks: dict[str, float] = {}
        self.marks: dict[str, float] = {}  # latest mark per symbol (absent on ticks without its bar)
        names = (*self.INFLOWS, *self.OUTFLOWS, *self.PNL, *self.TRACK)
        self._cum = dict.fromkeys(names, 0.0)
        self._now = dict.fromkeys(names, 0.0)
        self._rows: dict[str, list[float]] = {}
        self._peak = -math.inf
        self._max_dd = 0.0
        self._min = math.inf
        self._first_short_tick: int | None = None

    # ----- what subclasses implement
    def _value(self) -> float:
        raise NotImplementedError

    def _receive(self, usd: float) -> None:
        raise NotImplementedError

    def _pay(self, usd: float) -> float:
        raise NotImplementedError

    def _observe(self, market: Market) -> None:
        """Every tick (warm-up included), after ``marks`` is updated: estimators."""

    def _start(self) -> None:
        """The books open (first window call); holdings are set, ``start_value`` not yet taken."""

    def _act(self, market: Market, dt: float, revalue: bool) -> None:
        """Window ticks, after marks are updated: revalue (if the books were open before this tick: from
        ``prev_marks`` to ``marks``), accrue over ``dt`` seconds, rebalance; book every change."""

    def state(self) -> dict[str, float]:
        """Per-tick state columns (tranche values, coin held, ...)."""
        return {}

    # ----- bookkeeping helpers
    def book(self, name: str, usd: float) -> None:
        self._cum[name] += usd
        self._now[name] += usd

    def _open(self) -> None:
        if not self.active:
            self.active = True
            self._start()
            self.start_value = self._value()
            self._peak = self._min = self.start_value

    # ----- the engine's interface
    def receive(self, tick: int, usd: float) -> None:
        if not usd >= 0.0:
            raise ValueError(f"{self.name}: receive() needs an amount >= 0, got {usd}")
        self._open()
        self._receive(usd)
        self.book("received", usd)

    def pay(self, tick: int, usd: float) -> float:
        if not usd >= 0.0:
            raise ValueError(f"{self.name}: pay() needs an amount >= 0, got {usd}")
        self._open()
        paid = min(max(self._pay(usd), 0.0), usd)
        self.book("asked", usd)
        self.book("paid", paid)
        if paid < usd and self._first_short_tick is None:
            self._first_short_tick = tick
        return paid

    def on_bar(self, tick: int, market: Market) -> None:
        self.prev_marks = dict(self.marks)
        self.marks.update({s: p for s, p in market.mark.items() if p > 0.0 and math.isfinite(p)})
        prev_ts, self.ts = self.ts, market.ts
        self._observe(market)
        was_active = self.active
        if market.in_window:
            self._open()
        if not self.active:
            return
        dt = 0.0 if prev_ts is None or not was_active else max(market.ts - prev_ts, 0.0)
        self._act(market, dt, was_active)
        v = self._value()
        self._peak = max(self._peak, v)
        self._min = min(self._min, v)
        if self._peak > 0:
            self._max_dd = max(self._max_dd, 1.0 - v / self._peak)
        row = {"tick": float(tick), "ts": market.ts, "value_usd": v, **self._now, **self.state()}
        if not self._rows:
            self._rows = {k: [] for k in row}
        for k, x in row.items():
            self._rows[k].append(x)
        self._now = dict.fromkeys(self._now, 0.0)

    def value(self, tick: int) -> float:
        return self._value() if self.active else self.capital_usd

    # ----- reports
    def history(self) -> dict[str, list[float]]:
        """Per window tick: tick, ts, value_usd, every flow of the tick, the state columns."""
        return {k: list(v) for k, v in self._rows.items()}

    def breakdown(self) -> dict[str, float]:
        """Cumulative flows since the books opened and the identity's residual (≈ 0)."""
        end = self._value() if self.active else self.capital_usd
        out = {"start_usd": self.start_value, **self._cum, "end_usd": end}
        cum = self._cum
        out["residual"] = end - (self.start_value + sum(cum[n] for n in self.INFLOWS)
                                 - sum(cum[n] for n in self.OUTFLOWS) + sum(cum[n] for n in self.PNL))
        return out

    def summary(self) -> dict[str, Any]:
        """Headline figures: start/end/min, max drawdown, totals, first tick a payment fell short."""
        b = self.breakdown()
        return {"design": self.name, "label": self.label, "start_usd": b["start_usd"],
                "end_usd": b["end_usd"],
                "min_usd": self._min if self.active else self.capital_usd, "max_drawdown": self._max_dd,
                "first_shortfall_tick": self._first_short_tick,
                **{k: v for k, v in b.items() if k not in ("start_usd", "end_usd")}}


def capital_param(doc: str = "start capital (USD)") -> Any:
    """The ``capital_usd`` parameter most designs share: a number or "event" (the default: capital_rule)."""
    return param("event", doc + "; \"event\" = the venue's fund listed for the event, else fund_oi_ratio × "
                 "the OI at the window start", kind="float", lo=0.0, hi=MAX_CAPITAL_USD, words=("event",),
                 source=CAPITAL_SOURCE)


@dataclass(frozen=True)
class StaticParams:
    capital_usd: float | str = capital_param()


@register("static", params=StaticParams)
class StaticFund(LedgerFund):
    """Fixed USD capital; grows only from liquidation surplus, pays bad debt until empty (Binance-like)."""

    name = "static"

    def __init__(self, params: StaticParams | None = None, context: dict[str, Any] | None = None) -> None:
        self.params = params or StaticParams()
        super().__init__(capital_from(self.params.capital_usd, context or {}, self.name))
        self.cash = self.capital_usd

    def _value(self) -> float:
        return self.cash

    def _receive(self, usd: float) -> None:
        self.cash += usd

    def _pay(self, usd: float) -> float:
        paid = min(usd, self.cash)
        self.cash -= paid
        return paid
