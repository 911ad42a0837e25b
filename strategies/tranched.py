"""``tranched``: junior capital absorbs bad debt first, senior capital after; each tranche earns a yield.

Liquidation surplus goes to the junior tranche (the first-loss piece holds the residual upside). Each
tranche accrues its yield, ``rate per year × value × dt``, per tick into its value: the venue pays it
to the capital providers and it stays in the fund (an outside inflow, not money from traders).
Per tranche the history has its value, loss and yield; the summary its start, end, loss, yield, return.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from strategies.base import Market
from strategies.config import param
from strategies.registry import register
from strategies.static import YEAR_S, LedgerFund, capital_from, capital_param

TRANCHES = ("junior", "senior")


@dataclass(frozen=True)
class TranchedParams:
    capital_usd: float | str = capital_param("total start capital (USD)")
    junior_share: float = param(0.2, "junior (first-loss) share of the start capital", lo=0.0, hi=1.0,
                                source="assumption: a thin first-loss layer")
    junior_rate: float = param(0.20, "junior yield per year", lo=0.0, hi=10.0,
                               source="assumption: first-loss capital priced at ~4x the senior rate")
    senior_rate: float = param(0.05, "senior yield per year", lo=0.0, hi=10.0,
                               source="assumption: about the USD money-market rate of 2023–2025")


@register("tranched", params=TranchedParams)
class TranchedFund(LedgerFund):
    """Junior then senior capital; loss and yield per tranche."""

    name = "tranched"
    INFLOWS = ("received", "yield_junior", "yield_senior")
    TRACK = ("asked", "loss_junior", "loss_senior")

    def __init__(self, params: TranchedParams | None = None, context: dict[str, Any] | None = None) -> None:
        self.params = p = params or TranchedParams()
        super().__init__(capital_from(p.capital_usd, context or {}, self.name))
        self.junior = self.capital_usd * p.junior_share
        self.senior = self.capital_usd - self.junior
        self.start = {"junior": self.junior, "senior": self.senior}

    def _value(self) -> float:
        return self.junior + self.senior

    def _receive(self, usd: float) -> None:
        self.junior += usd

    def _pay(self, usd: float) -> float:
        j = min(usd, self.junior)
        s = min(usd - j, self.senior)
        self.junior -= j
        self.senior -= s
        self.book("loss_junior", j)
        self.book("loss_senior", s)
        return j + s

    def _act(self, market: Market, dt: float, revalue: bool) -> None:
        if dt <= 0.0:
            return
        yj = self.junior * self.params.junior_rate * dt / YEAR_S
        ys = self.senior * self.params.senior_rate * dt / YEAR_S
        self.junior += yj
        self.senior += ys
        self.book("yield_junior", yj)
        self.book("yield_senior", ys)

    def state(self) -> dict[str, float]:
        return {"junior_usd": self.junior, "senior_usd": self.senior}

    def summary(self) -> dict[str, Any]:
        out = super().summary()
        for t in TRANCHES:
            start, end = self.start[t], getattr(self, t)
            out[f"{t}_start_usd"] = start
            out[f"{t}_end_usd"] = end
            out[f"{t}_loss_usd"] = self._cum[f"loss_{t}"]
            out[f"{t}_yield_usd"] = self._cum[f"yield_{t}"]
            out[f"{t}_return"] = (end - start) / start if start > 0 else 0.0
        return out
