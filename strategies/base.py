"""The fund-design interface the replay engine calls, and the ``none`` design.

A design is one small Python class in its own module: the engine hands it the liquidation surplus
(``receive``), asks it to cover bad debt (``pay``, which returns what it actually pays: the rest
goes to ADL or socialized loss), lets it act once per clock tick (``on_bar``: rebalance, accrue
yield, pay out excess) and asks its value in USD (``value``). Ticks are integer indexes into the
replay clock; ``Market`` says what the design may look at on that tick.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Market:
    """What a design sees at a clock tick: per symbol the latest mark close, OI and forced flow."""

    tick: int
    ts: float  # seconds since the epoch, UTC, of the tick's bar open
    in_window: bool
    mark: dict[str, float] = field(default_factory=dict)  # symbol -> mark close (USD)
    oi_usd: dict[str, float] = field(default_factory=dict)  # symbol -> open interest per side (USD)
    liq_usd: dict[str, float] = field(default_factory=dict)  # symbol -> liquidated notional this tick
    funding_rate: dict[str, float] = field(default_factory=dict)  # symbol -> rate settled now, else 0


class Fund:
    """Base class of fund designs. Subclasses override what they need; amounts are USD >= 0."""

    name = "base"
    currency = "USD"

    def __init__(self, capital_usd: float = 0.0) -> None:
        if not capital_usd >= 0.0:
            raise ValueError(f"{self.name}: start capital must be >= 0, got {capital_usd}")
        self.capital_usd = float(capital_usd)

    def receive(self, tick: int, usd: float) -> None:
        """An inflow (liquidation surplus)."""
        raise NotImplementedError

    def pay(self, tick: int, usd: float) -> float:
        """Asked to cover ``usd`` of bad debt; returns the amount paid, 0 <= paid <= usd."""
        raise NotImplementedError

    def on_bar(self, tick: int, market: Market) -> None:
        """Once per clock tick after the bar's waterfall (rebalance, accrue, pay out)."""

    def value(self, tick: int) -> float:
        """Value of the fund in USD at the tick."""
        raise NotImplementedError


class NoFund(Fund):
    """``none``: no insurance fund. Surplus is not kept, every deficit goes to ADL (the baseline).

    The surplus still leaves the traders (the venue keeps it), so it is counted as received; the
    fund's value stays 0 because the design holds no capital.
    """

    name = "none"

    def __init__(self, capital_usd: float = 0.0) -> None:
        super().__init__(0.0)
        self.received_usd = 0.0

    def receive(self, tick: int, usd: float) -> None:
        self.received_usd += usd

    def pay(self, tick: int, usd: float) -> float:
        return 0.0

    def value(self, tick: int) -> float:
        return 0.0


DESIGNS: dict[str, type[Fund]] = {"none": NoFund}
