"""ADL triggers usable with any design: a wrapper that sends bad debt to ADL before the fund is empty.

Drawdown trigger (OKX: a fall of 30 % from the fund's peak within 8 hours; Bybit grouped pools: PnL
drawdown −30 % vs the 8-h max, ADL until the ratio recovers above a stop level; MECHANICS §3–4): the
fund pays bad debt only down to ``(1 − adl_drawdown) × peak``, where the peak is the fund's highest
value over the last ``adl_window_h`` hours (end-of-tick values plus the value at the moment of the
call). The part it does not pay goes to ADL (Bybit's worked example: the bankruptcy price is recomputed
so the drawdown is held at −30 %). Once triggered, the fund pays nothing until its drawdown is back
below ``adl_resume`` (Bybit's adlStopRatio) and ``adl_cooldown_h`` hours have passed.

Simplification: ``pay`` is called before the tick's ``on_bar``, so the 8-h window is measured from the
previous tick's time (one bar of slack).

Binance's "maximum net notional = 100 % of the fund" check is NOT offered: it caps the bankrupt
*positions* the fund takes over, and ``pay`` is given only the USD amount of bad debt, not the notional
taken over; it needs an engine hook (e.g. the bankrupt notional per pay call).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from strategies.base import Fund, Market
from strategies.config import param

OKX_BYBIT = ("OKX: 30 % fall from the fund's peak within 8 h; Bybit: insurancePnlRatio −0.30 over 8 h "
             "(MECHANICS §3–4) [H/M]")


@dataclass(frozen=True)
class TriggerParams:
    """ADL-trigger options accepted by every design (all off by default: Binance/BitMEX-like funds)."""

    adl_drawdown: float = param(0.0, "ADL when the fund has fallen this fraction below its peak of the last "
                                "adl_window_h hours; 0 = off (0.30 at OKX/Bybit)", lo=0.0, hi=1.0,
                                hi_open=True, source=OKX_BYBIT)
    adl_window_h: float = param(8.0, "look-back of the drawdown peak (hours)", lo=0.0, lo_open=True,
                                hi=24.0 * 365, source=OKX_BYBIT)
    adl_resume: float = param(-1.0, "after a trigger, pay again only once the drawdown is below this "
                              "fraction; -1 = same as adl_drawdown", lo=-1.0, hi=1.0,
                              source="Bybit adlStopRatio (value not published; assumption)")
    adl_cooldown_h: float = param(0.0, "after a trigger, pay nothing for at least this many hours",
                                  lo=0.0, hi=24.0 * 365, source="assumption (no venue publishes one)")

    def check(self) -> str:
        if self.adl_resume > self.adl_drawdown > 0.0:
            return (f"adl_resume = {self.adl_resume:g} must be <= adl_drawdown = {self.adl_drawdown:g} "
                    f"(or -1 for the same value)")
        return ""

    @property
    def enabled(self) -> bool:
        return self.adl_drawdown > 0.0


def with_triggers(fund: Fund, params: TriggerParams | None) -> Fund:
    """``fund`` wrapped by the drawdown trigger when it is on, else ``fund`` itself."""
    if params is None or not params.enabled:
        return fund
    return DrawdownTrigger(fund, params)


class DrawdownTrigger(Fund):
    """Wraps a design: limits what it pays so its drawdown vs the rolling peak stays at the trigger level."""

    def __init__(self, inner: Fund, params: TriggerParams) -> None:
        super().__init__(inner.capital_usd)
        self.inner = inner
        self.params = params
        self.name = inner.name
        self.currency = inner.currency
        self.label = getattr(inner, "label", inner.name)
        self.resume = params.adl_drawdown if params.adl_resume < 0 else params.adl_resume
        self._hist: deque[tuple[float, float]] = deque()  # (ts, end-of-tick value), window ticks
        self.ts: float | None = None
        self.triggered = False
        self.triggered_at: float | None = None
        self.triggers = 0
        self.blocked_usd = 0.0
        self._blocked_now = 0.0
        self._rows: dict[str, list[float]] = {"tick": [], "adl_trigger_on": [], "adl_blocked": []}

    def __getattr__(self, name: str) -> Any:  # history() extras, params, breakdown ... of the design
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def _peak(self, now: float) -> float:
        if self.ts is not None:
            while self._hist and self._hist[0][0] < self.ts - self.params.adl_window_h * 3600.0:
                self._hist.popleft()
        return max([now, *(v for _, v in self._hist)])

    def _drawdown(self, tick: int) -> float:
        v = self.inner.value(tick)
        peak = self._peak(v)
        return 0.0 if peak <= 0.0 else 1.0 - v / peak

    def receive(self, tick: int, usd: float) -> None:
        self.inner.receive(tick, usd)

    def pay(self, tick: int, usd: float) -> float:
        if self.triggered and not self._may_resume(tick):
            self._blocked_now += usd
            self.blocked_usd += usd
            return 0.0
        self.triggered = False
        v = self.inner.value(tick)
        floor = (1.0 - self.params.adl_drawdown) * self._peak(v)
        allowed = max(v - floor, 0.0)
        ask = min(usd, allowed)
        paid = self.inner.pay(tick, ask) if ask > 0.0 else 0.0
        if ask < usd:
            self.triggered = True
            self.triggered_at = self.ts
            self.triggers += 1
            self._blocked_now += usd - ask
            self.blocked_usd += usd - ask
        return paid

    def _may_resume(self, tick: int) -> bool:
        if self.triggered_at is not None and self.ts is not None and \
                self.ts - self.triggered_at < self.params.adl_cooldown_h * 3600.0:
            return False
        return self._drawdown(tick) < self.resume - 1e-12  # float noise at the floor is not a recovery

    def on_bar(self, tick: int, market: Market) -> None:
        self.ts = market.ts
        self.inner.on_bar(tick, market)
        if market.in_window:
            self._hist.append((market.ts, self.inner.value(tick)))
            if self.triggered and self._may_resume(tick):
                self.triggered = False
            self._rows["tick"].append(float(tick))
            self._rows["adl_trigger_on"].append(1.0 if self.triggered else 0.0)
            self._rows["adl_blocked"].append(self._blocked_now)
            self._blocked_now = 0.0

    def value(self, tick: int) -> float:
        return self.inner.value(tick)

    def history(self) -> dict[str, list[float]]:
        """The design's history with the trigger's columns (aligned by tick)."""
        inner = self.inner.history() if hasattr(self.inner, "history") else {}
        if not inner:
            return {k: list(v) for k, v in self._rows.items()}
        at = {t: i for i, t in enumerate(self._rows["tick"])}
        out = dict(inner)
        for col in ("adl_trigger_on", "adl_blocked"):
            out[col] = [self._rows[col][at[t]] if t in at else 0.0 for t in inner["tick"]]
        return out

    def summary(self) -> dict[str, Any]:
        base = self.inner.summary() if hasattr(self.inner, "summary") else {"design": self.name}
        return {**base, "adl_triggers": self.triggers, "adl_blocked_usd": self.blocked_usd}
