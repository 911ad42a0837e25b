"""``dynamic``: a fund sized to risk, charging more when under-funded, paying out what it does not need.

Target size (``target_mode``):
- ``vol``: ``k × Σ_symbols OI × σ_h``; σ_h = volatility over ``horizon_h`` estimated from the marks the
  design sees (EWMA of squared tick log-returns per second, time-decayed with ``vol_halflife_h``, seeded
  with ``vol_prior``), OI = the engine's open interest per side.
- ``cvar``: ``cvar_k × CVaR_alpha`` of the bad debt the design was asked per ``cvar_bucket_h`` bucket
  over ``cvar_lookback_d`` days (empty buckets count as 0). The engine does not show the design the
  warm-up's bad debt, so before its first bad debt the target is undefined: no payout, no fee boost.
- ``max``: the larger of the two.

Fee share: each window tick the fund books ``fee_rate × m × Σ liquidated notional`` as an inflow, with
``m = clip(target / value, 1, max_mult)``: the fee rises as the fund falls short of its risk-based
target. THIS MONEY COMES FROM TRADERS (a liquidation fee on the liquidated notional) and the engine's
book does not deduct it from anyone: the engine must account it (charge it to liquidated traders, or
report it as an outside inflow); it is reported separately as ``fee_inflow``.

Payout: at most once per ``payout_interval_h`` (the first check one interval after the window starts)
the excess above ``cap_mult × target`` is paid out (to the venue) and recorded as ``payout``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from loaders.errors import UserError
from strategies.base import Market
from strategies.config import MAX_CAPITAL_USD, param
from strategies.registry import register
from strategies.static import LedgerFund, capital_from

BITMEX_COVERAGE = ("k = 0.11 / 0.0314: Binance's fund/OI coverage 0.11x (BitMEX post after 10 Oct 2025, "
                   "MECHANICS §2) at a daily BTC volatility of 3.14 % (≈ 60 % a year, order of magnitude)")


@dataclass(frozen=True)
class DynamicParams:
    capital_usd: float | str = param("target", "start capital (USD); \"target\" = the target size when the "
                                     "window starts; \"event\" = the venue's fund listed for the event, else "
                                     "fund_oi_ratio × the OI at the window start", kind="float",
                                     lo=0.0, hi=MAX_CAPITAL_USD, words=("target", "event"),
                                     source="a dynamic fund starts at its own target")
    target_mode: str = param("vol", "what sets the target size", choices=("vol", "cvar", "max"),
                             source="DESIGN §6 (k × OI × volatility, or a CVaR of recent bad debt)")
    k: float = param(3.5, "vol mode: target = k × OI (per side, USD) × σ over horizon_h", lo=0.0, hi=1000.0,
                     source=BITMEX_COVERAGE)
    horizon_h: float = param(24.0, "horizon of σ (hours)", lo=0.0, lo_open=True, hi=24.0 * 365,
                             source="one day: the coverage ratio above is read against daily volatility")
    vol_halflife_h: float = param(24.0, "half-life of the EWMA volatility estimate (hours)", lo=0.0,
                                  lo_open=True, hi=24.0 * 365,
                                  source="assumption: reacts within a day (RiskMetrics 0.94 daily: ~11 days)")
    vol_prior: float = param(0.0314, "σ per day before any return is seen (seeds the EWMA)", lo=0.0, hi=1.0,
                             source="BTC realised vol ~60 %/year = 3.14 %/day (order of magnitude)")
    cvar_alpha: float = param(0.999, "cvar mode: confidence level", lo=0.5, hi=1.0, hi_open=True,
                              source="Binance: fund minimum 'based on a 99.9% …' (MECHANICS §1.5) [H]")
    cvar_k: float = param(1.0, "cvar mode: target = cvar_k × CVaR", lo=0.0, hi=1000.0, source="assumption")
    cvar_bucket_h: float = param(24.0, "cvar mode: bad debt summed per bucket of this many hours", lo=0.0,
                                 lo_open=True, hi=24.0 * 365, source="assumption: daily losses")
    cvar_lookback_d: float = param(30.0, "cvar mode: look-back (days)", lo=0.0, lo_open=True, hi=3650.0,
                                   source="assumption: one month")
    fee_rate: float = param(0.0004, "fee share: fraction of liquidated notional booked as inflow at m = 1",
                            lo=0.0, hi=0.1,
                            source="Binance taker fee 0.04 % (MODEL §10) on the liquidation order")
    max_mult: float = param(3.0, "largest fee multiplier m when the fund is below target", lo=1.0, hi=100.0,
                            source="dYdX: liquidation fee 0.5 % by default, up to 1.5 % (MECHANICS §6)")
    cap_mult: float = param(2.0, "excess above cap_mult × target is paid out", lo=1.0, hi=1000.0,
                            source="assumption: keep up to twice the target")
    payout_interval_h: float = param(24.0, "payouts are checked at most this often (hours)", lo=0.0,
                                     lo_open=True, hi=24.0 * 365,
                                     source="OKX books the fund's P&L daily (MECHANICS §4)")

    def check(self) -> str:
        if self.capital_usd == "target" and self.target_mode == "cvar":
            return ("capital_usd = \"target\" needs target_mode = \"vol\" or \"max\" (a cvar target is "
                    "unknown when the window starts); set a number or \"event\"")
        if self.capital_usd == "target" and self.k == 0.0:
            return "capital_usd = \"target\" with k = 0 is a fund of 0: set k > 0, a number or \"event\""
        return ""


@register("dynamic", params=DynamicParams)
class DynamicFund(LedgerFund):
    """Target = k × OI × σ (or CVaR of bad debt); fee share rising below target; excess paid out."""

    name = "dynamic"
    INFLOWS = ("received", "fee_inflow")
    OUTFLOWS = ("paid", "payout")

    def __init__(self, params: DynamicParams | None = None, context: dict[str, Any] | None = None) -> None:
        self.params = p = params or DynamicParams()
        msg = p.check()
        if msg:
            raise UserError(f"dynamic: {msg}")
        ctx = context or {}
        cap = 0.0 if p.capital_usd == "target" else capital_from(p.capital_usd, ctx, self.name)
        super().__init__(cap)
        self.cash = cap
        self.var_rate: dict[str, float] = {}  # symbol -> EWMA variance of log-returns per second
        self.obs_ts: dict[str, float] = {}
        self.oi: dict[str, float] = {}
        self.buckets: dict[int, float] = {}
        self.seen_bad_debt = False
        self.first_bucket = 0
        self.last_payout_check: float | None = None
        self.mult = 1.0
        self._target: float | None = None

    # ----- estimators (every tick, warm-up included)
    def _observe(self, market: Market) -> None:
        p = self.params
        tau = p.vol_halflife_h * 3600.0 / math.log(2.0)
        for sym, price in market.mark.items():
            if not price > 0.0:
                continue
            prev, pts = self.prev_marks.get(sym), self.obs_ts.get(sym)
            var = self.var_rate.setdefault(sym, p.vol_prior ** 2 / 86400.0)
            if prev is not None and pts is not None and market.ts > pts:
                dt = market.ts - pts
                w = math.exp(-dt / tau)
                self.var_rate[sym] = w * var + (1.0 - w) * math.log(price / prev) ** 2 / dt
            self.obs_ts[sym] = market.ts
        for sym, oi in market.oi_usd.items():
            if math.isfinite(oi) and oi >= 0.0:
                self.oi[sym] = oi
        self._target = None

    def sigma(self, sym: str) -> float:
        """σ over the horizon for a symbol (the prior if no mark seen)."""
        var = self.var_rate.get(sym, self.params.vol_prior ** 2 / 86400.0)
        return math.sqrt(var * self.params.horizon_h * 3600.0)

    def vol_target(self) -> float:
        return self.params.k * sum(oi * self.sigma(sym) for sym, oi in self.oi.items())

    def cvar(self) -> float | None:
        """CVaR_alpha of bucketed bad debt over the look-back; None before any bad debt was asked."""
        if not self.seen_bad_debt:
            return None
        p = self.params
        width = p.cvar_bucket_h * 3600.0
        now = self._bucket()
        n_look = max(1, math.ceil(p.cvar_lookback_d * 86400.0 / width))
        n = max(1, min(n_look, now - self.first_bucket + 1))
        vals = sorted((v for b, v in self.buckets.items() if now - n < b <= now), reverse=True)
        vals += [0.0] * (n - len(vals))
        tail = max(1, math.ceil((1.0 - p.cvar_alpha) * n - 1e-9))
        return sum(vals[:tail]) / tail

    def target(self) -> float | None:
        """The current target size (USD), or None when undefined (cvar mode before any bad debt)."""
        if self._target is not None:
            return self._target
        mode = self.params.target_mode
        vt = self.vol_target() if mode in ("vol", "max") else None
        cv = self.cvar() if mode in ("cvar", "max") else None
        cvt = None if cv is None else self.params.cvar_k * cv
        vals = [x for x in (vt, cvt) if x is not None]
        return max(vals) if vals else None

    def _bucket(self) -> int:
        return int(math.floor((self.ts or 0.0) / (self.params.cvar_bucket_h * 3600.0)))

    # ----- ledger hooks
    def _start(self) -> None:
        self.first_bucket = self._bucket()
        if self.params.capital_usd == "target":
            t = self.vol_target()
            if not t > 0.0:
                raise UserError("dynamic: capital_usd = \"target\" but no open interest was seen before the "
                                 "window starts; set capital_usd to a number")
            self.cash = self.capital_usd = t

    def _value(self) -> float:
        return self.cash

    def value(self, tick: int) -> float:
        if not self.active and self.params.capital_usd == "target":
            return self.vol_target()  # what the fund will hold when the window opens
        return super().value(tick)

    def _receive(self, usd: float) -> None:
        self.cash += usd

    def _pay(self, usd: float) -> float:
        if usd > 0.0:
            b = self._bucket()
            self.buckets[b] = self.buckets.get(b, 0.0) + usd
            self.seen_bad_debt = True
        paid = min(usd, self.cash)
        self.cash -= paid
        return paid

    def _act(self, market: Market, dt: float, revalue: bool) -> None:
        p = self.params
        target = self.target()
        if target is None or target <= 0.0:
            self.mult = 1.0
        else:
            self.mult = p.max_mult if self.cash <= 0.0 else min(max(target / self.cash, 1.0), p.max_mult)
        fee = p.fee_rate * self.mult * sum(x for x in market.liq_usd.values() if x > 0.0)
        if fee > 0.0:
            self.cash += fee
            self.book("fee_inflow", fee)
        if self.last_payout_check is None:
            self.last_payout_check = market.ts
        elif market.ts - self.last_payout_check >= p.payout_interval_h * 3600.0:
            self.last_payout_check = market.ts
            if target is not None and target > 0.0 and self.cash > p.cap_mult * target:
                out = self.cash - p.cap_mult * target
                self.cash -= out
                self.book("payout", out)
        self._target = target

    def state(self) -> dict[str, float]:
        t = self._target
        return {"target_usd": math.nan if t is None else t, "fee_mult": self.mult}

    def summary(self) -> dict[str, Any]:
        return {**super().summary(), "target_mode": self.params.target_mode}
