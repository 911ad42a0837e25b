"""``reinsured``: a USD fund that buys excess-of-loss cover from an outside layer.

The fund pays a premium, ``premium_rate per year × layer size × dt``, per tick from its cash. The layer
covers the part of the cumulative bad debt the fund is asked during the run (one event) that lies
between ``attachment`` and ``limit`` (both fractions of the start capital): for an ask that takes the
cumulative ask from ``a`` to ``b`` the reinsurer pays ``max(0, min(b, limit) − max(a, attachment))``,
the fund pays the rest from its cash. A premium the cash cannot pay is recorded as owed (not paid).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from strategies.base import Market
from strategies.config import param
from strategies.registry import register
from strategies.static import YEAR_S, LedgerFund, capital_from, capital_param


@dataclass(frozen=True)
class ReinsuredParams:
    capital_usd: float | str = capital_param()
    attachment: float = param(0.5, "cover starts when the cumulative bad debt asked reaches this fraction of "
                              "the start capital", lo=0.0, hi=1000.0,
                              source="assumption: the fund keeps the first half of its capital at risk")
    limit: float = param(1.5, "cover ends at this fraction of the start capital (layer = limit − attachment)",
                         lo=0.0, hi=1000.0, source="assumption: a layer as large as the fund itself")
    premium_rate: float = param(0.10, "premium per year as a fraction of the layer size (rate on line)",
                                lo=0.0, hi=10.0,
                                source="assumption: order of catastrophe-layer rates on line (5–15 %)")

    def check(self) -> str:
        if self.limit < self.attachment:
            return f"limit = {self.limit:g} must be >= attachment = {self.attachment:g}"
        return ""


@register("reinsured", params=ReinsuredParams)
class ReinsuredFund(LedgerFund):
    """Pays a premium; an outside layer covers cumulative losses between an attachment and a limit."""

    name = "reinsured"
    INFLOWS = ("received", "recovery")
    OUTFLOWS = ("paid", "premium")
    TRACK = ("asked", "premium_owed")

    def __init__(self, params: ReinsuredParams | None = None, context: dict[str, Any] | None = None) -> None:
        self.params = p = params or ReinsuredParams()
        super().__init__(capital_from(p.capital_usd, context or {}, self.name))
        self.cash = self.capital_usd
        self.attach_usd = p.attachment * self.capital_usd
        self.limit_usd = p.limit * self.capital_usd
        self.cum_asked = 0.0

    def cover_available(self) -> float:
        """What the layer can still pay (USD)."""
        return max(0.0, self.limit_usd - max(self.cum_asked, self.attach_usd))

    def _value(self) -> float:
        return self.cash

    def _receive(self, usd: float) -> None:
        self.cash += usd

    def _pay(self, usd: float) -> float:
        a, b = self.cum_asked, self.cum_asked + usd
        self.cum_asked = b
        covered = max(0.0, min(b, self.limit_usd) - max(a, self.attach_usd))
        covered = min(covered, usd)
        if covered > 0.0:
            self.book("recovery", covered)
        own = min(usd - covered, self.cash)
        self.cash -= own
        return covered + own

    def _act(self, market: Market, dt: float, revalue: bool) -> None:
        due = self.params.premium_rate * (self.limit_usd - self.attach_usd) * dt / YEAR_S
        if due <= 0.0:
            return
        paid = min(due, self.cash)
        self.cash -= paid
        self.book("premium", paid)
        if due > paid:
            self.book("premium_owed", due - paid)

    def state(self) -> dict[str, float]:
        return {"cum_asked_usd": self.cum_asked,
                "cover_left_usd": self.cover_available()}

    def summary(self) -> dict[str, Any]:
        return {**super().summary(), "attachment_usd": self.attach_usd, "limit_usd": self.limit_usd,
                "cover_used_usd": self._cum["recovery"]}
