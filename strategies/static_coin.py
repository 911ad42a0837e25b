"""``static-coin``: the ``static`` flows, but the capital is held in the coin (BitMEX-like XBT fund).

Inflows arrive in USD and are converted to coin at the tick's mark close (``on_bar``); bad debt is paid
from USD not yet converted, then by selling coin at the latest mark the design has seen. ``pay`` runs
before the tick's ``on_bar``, so that is the previous tick's close (simplification: within a bar the
fund cannot know a better price). The fund's USD value falls with the coin in a crash, exactly when the
bad debt arrives: the point of comparing it with ``static``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from loaders.errors import UserError
from strategies.base import Market
from strategies.config import MAX_CAPITAL_COIN, param
from strategies.registry import register
from strategies.static import LedgerFund, capital_from, capital_param


def coin_symbol(value: str, context: dict[str, Any], design: str) -> str:
    """The symbol pricing the coin: the parameter, else the run's first symbol ('' = not known yet).

    A symbol the run does not replay would never get a mark, so the design would silently hold USD:
    refused by name when the run's symbols are known."""
    syms = context.get("symbols") or ()
    if value:
        if syms and value not in syms:
            raise UserError(f"{design}.coin_symbol = {value!r}: not a symbol of this run; valid: "
                            f"{', '.join(syms)}")
        return value
    return syms[0] if syms else ""


@dataclass(frozen=True)
class StaticCoinParams:
    capital_usd: float | str = capital_param("start capital (USD), bought as coin at the first window "
                                               "tick's mark (default as static)")
    capital_coin: float | str = param(0.0, "start capital in coin instead (0 = use capital_usd); \"event\" "
                                      "= the event's listed coin fund (mar2020: BitMEX 35,508 XBT)",
                                      kind="float", lo=0.0, hi=MAX_CAPITAL_COIN, words=("event",),
                                      source="BitMEX fund 35,508 XBT on 11 Mar 2020 (EVENTS.md) [M]")
    coin_symbol: str = param("", "symbol whose mark prices the coin ('' = the event's first symbol, "
                             "e.g. BTCUSDT)", source="the event's symbol order (first = BTC)")


@register("static-coin", params=StaticCoinParams)
class StaticCoinFund(LedgerFund):
    """Static flows, capital held in the coin: its USD value falls with the price (BitMEX-like)."""

    name = "static-coin"
    currency = "coin"
    PNL = ("coin_pnl",)

    def __init__(self, params: StaticCoinParams | None = None, context: dict[str, Any] | None = None) -> None:
        self.params = p = params or StaticCoinParams()
        ctx = context or {}
        self.symbol = coin_symbol(p.coin_symbol, ctx, self.name)
        self.coin = 0.0
        self.cash = 0.0
        if p.capital_coin == "event":
            if ctx.get("fund_before_coin") is None:
                ev = ctx.get("event_id") or "this run"
                raise UserError(f"static-coin.capital_coin = \"event\": {ev} lists no coin-denominated "
                                f"fund before the shock (EVENTS.md BitMEX 35,508 XBT, mar2020): set a number")
            self.coin = float(ctx["fund_before_coin"])
        elif p.capital_coin > 0:
            self.coin = float(p.capital_coin)
        else:
            self.cash = capital_from(p.capital_usd, ctx, self.name)
        start = ctx.get("start_prices", {}).get(self.symbol) if self.symbol else None
        super().__init__(self.cash + (self.coin * start if start else 0.0))
        if start:
            self.marks[self.symbol] = float(start)

    def _price(self) -> float:
        if not self.symbol and self.marks:
            self.symbol = next(iter(self.marks))
        p = self.marks.get(self.symbol)
        if p is None:
            if self.coin > 0.0:
                raise ValueError(f"static-coin: no mark for {self.symbol or 'the coin'} yet (pass "
                                 f"context['start_prices'] or let the engine call on_bar first)")
            return 0.0
        return p

    def _value(self) -> float:
        return self.cash + (self.coin * self._price() if self.coin > 0.0 else 0.0)

    def _receive(self, usd: float) -> None:
        self.cash += usd

    def _pay(self, usd: float) -> float:
        from_cash = min(usd, self.cash)
        self.cash -= from_cash
        rest = usd - from_cash
        if rest <= 0.0 or self.coin <= 0.0:
            return from_cash
        price = self._price()
        need = rest / price
        if need < self.coin:
            self.coin -= need
            return usd
        paid = from_cash + self.coin * price
        self.coin = 0.0
        return paid

    def _act(self, market: Market, dt: float, revalue: bool) -> None:
        price = self._price()
        old = self.prev_marks.get(self.symbol)
        if revalue and self.coin > 0.0 and old is not None and price != old:
            self.book("coin_pnl", self.coin * (price - old))
        if self.cash > 0.0 and price > 0.0:  # USD received this tick (or the start capital) into coin
            self.coin += self.cash / price
            self.cash = 0.0

    def state(self) -> dict[str, float]:
        return {"coin": self.coin, "price": self.marks.get(self.symbol, 0.0), "cash_usd": self.cash}

    def summary(self) -> dict[str, Any]:
        return {**super().summary(), "coin_symbol": self.symbol, "coin_end": self.coin}
