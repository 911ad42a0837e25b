"""``hedged``: a delta-neutral fund: coin held long, hedged with a short perpetual on the same prices.

At the first window tick the fund puts ``hedge_share`` of its USD into the trade: it buys coin worth
``I × L/(L+1)`` and posts ``I/(L+1)`` as isolated margin of a short perpetual of the same quantity
(``L = hedge_leverage``), both at the mark close. Per tick: the coin and the short are revalued at the
mark (``coin_pnl`` + ``hedge_pnl`` ≈ 0), the short earns funding when the rate is positive (longs pay
shorts; rate × quantity × the previous mark ≈ the bar's mark open) into its margin, and the short is
liquidated when its equity ``M + q (E − P)`` falls below ``maint_margin_rate × q × P``: its remaining
equity is lost (``hedge_liquidation``) and the coin is left unhedged. Simplification: the check uses the
mark close (a design sees no intra-bar high); no trading fees on the hedge.

Bad debt is paid from USD cash first (surplus is kept in cash), then by unwinding coin and short pro
rata at the latest mark: each unit raises ``P + m + (E − P) = E + m``, independent of the price.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from strategies.base import Market
from strategies.config import param
from strategies.registry import register
from strategies.static import LedgerFund, capital_from, capital_param
from strategies.static_coin import coin_symbol


@dataclass(frozen=True)
class HedgedParams:
    capital_usd: float | str = capital_param()
    hedge_share: float = param(1.0, "share of the start capital in coin + short (the rest stays USD)",
                               lo=0.0, hi=1.0, source="the whole fund in the carry trade (the design)")
    hedge_leverage: float = param(2.0, "leverage of the short perp (margin = notional / leverage)", lo=0.0,
                                  lo_open=True, hi=125.0,
                                  source="assumption: 2x is liquidated only after a ~+49 % rise at 0.4 % MMR")
    maint_margin_rate: float = param(0.004, "maintenance margin rate of the short", lo=0.0, hi=0.5,
                                     source="Binance BTCUSDT first bracket 0.40 % (MECHANICS §1.1) [H]")
    coin_symbol: str = param("", "symbol of the coin and the hedge ('' = the event's first)",
                             source="the event's symbol order (first = BTC)")


@register("hedged", params=HedgedParams)
class HedgedFund(LedgerFund):
    """Coin long + short perpetual: value stable in a crash, earns/pays funding, hedge can be liquidated."""

    name = "hedged"
    PNL = ("coin_pnl", "hedge_pnl", "funding", "hedge_liquidation")

    def __init__(self, params: HedgedParams | None = None, context: dict[str, Any] | None = None) -> None:
        self.params = p = params or HedgedParams()
        ctx = context or {}
        super().__init__(capital_from(p.capital_usd, ctx, self.name))
        self.symbol = coin_symbol(p.coin_symbol, ctx, self.name)
        self.cash = self.capital_usd
        self.coin = 0.0  # long coin quantity
        self.short = 0.0  # short perp quantity
        self.entry = 0.0  # the short's entry price
        self.margin = 0.0  # the short's isolated margin (USD)
        self.set_up = False
        self.liquidations = 0
        self.liquidated_ts: float | None = None

    def _price(self) -> float:
        if not self.symbol and self.marks:
            self.symbol = next(iter(self.marks))
        return self.marks.get(self.symbol, 0.0)

    def hedge_equity(self, price: float) -> float:
        return self.margin + self.short * (self.entry - price)

    def _value(self) -> float:
        if self.coin == 0.0 and self.short == 0.0:
            return self.cash + self.margin
        price = self._price()
        return self.cash + self.coin * price + self.hedge_equity(price)

    def _receive(self, usd: float) -> None:
        self.cash += usd

    def _pay(self, usd: float) -> float:
        from_cash = min(usd, self.cash)
        self.cash -= from_cash
        rest = usd - from_cash
        if rest <= 0.0:
            return from_cash
        price = self._price()
        w = self.coin * price + self.hedge_equity(price)
        if w <= 0.0:
            return from_cash
        if rest < w:
            keep = 1.0 - rest / w
            self.coin *= keep
            self.short *= keep
            self.margin *= keep
            return usd
        self.coin = self.short = self.margin = 0.0
        return from_cash + w

    def _act(self, market: Market, dt: float, revalue: bool) -> None:
        price = self._price()
        if price <= 0.0:
            return
        old = self.prev_marks.get(self.symbol)
        if revalue and old is not None and price != old:
            if self.coin:
                self.book("coin_pnl", self.coin * (price - old))
            if self.short:
                self.book("hedge_pnl", -self.short * (price - old))
        rate = market.funding_rate.get(self.symbol, 0.0)
        if self.short > 0.0 and rate:
            f = rate * self.short * (old if old is not None else price)
            self.margin += f
            self.book("funding", f)
        if self.short > 0.0:
            eq = self.hedge_equity(price)
            if eq < self.params.maint_margin_rate * self.short * price:
                self.book("hedge_liquidation", -eq)
                self.short = self.margin = 0.0
                self.liquidations += 1
                self.liquidated_ts = market.ts
        if not self.set_up:
            self.set_up = True
            invest = self.params.hedge_share * self.cash
            lev = self.params.hedge_leverage
            if invest > 0.0:
                self.cash -= invest
                self.coin = invest * lev / (lev + 1.0) / price
                self.short = self.coin
                self.entry = price
                self.margin = invest / (lev + 1.0)

    def state(self) -> dict[str, float]:
        price = self.marks.get(self.symbol, 0.0)
        return {"coin": self.coin, "short": self.short, "price": price, "cash_usd": self.cash,
                "hedge_margin_usd": self.margin,
                "hedge_equity_usd": self.hedge_equity(price) if self.short else 0.0,
                "hedge_liquidations": float(self.liquidations)}

    def summary(self) -> dict[str, Any]:
        return {**super().summary(), "coin_symbol": self.symbol, "hedge_liquidations": self.liquidations,
                "hedge_liquidated_ts": self.liquidated_ts}
