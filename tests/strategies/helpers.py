"""Small drivers for design tests: build a Market, play a tick, check the money identity."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import strategies as st

from strategies.base import Fund, Market

SYM = "BTCUSDT"


def market(tick: int, price: float | None = None, *, ts: float | None = None, in_window: bool = True,
           oi: float | None = None, liq: float = 0.0, funding: float = 0.0, sym: str = SYM,
           extra: dict[str, float] | None = None) -> Market:
    """A one-symbol market at ``tick`` (ts = 60 s per tick unless given)."""
    mark = {} if price is None else {sym: price}
    mark.update(extra or {})
    return Market(tick=tick, ts=float(tick * 60 if ts is None else ts), in_window=in_window, mark=mark,
                  oi_usd={} if oi is None else {sym: oi}, liq_usd={sym: liq} if liq else {},
                  funding_rate={sym: funding} if funding else {})


def tick(fund: Fund, k: int, price: float | None, *, receive: float = 0.0, pay: tuple[float, ...] = (),
         **kw: Any) -> list[float]:
    """One engine tick (MODEL §4 step 5 then 11): receive, pay each amount, on_bar; returns the paid list."""
    if receive > 0.0:
        fund.receive(k, receive)
    paid = [fund.pay(k, x) for x in pay]
    fund.on_bar(k, market(k, price, **kw))
    return paid


def check_identity(fund: Any, rel: float = 1e-9) -> None:
    """Cumulative and per-row money identity: value = start + Σin − Σout + Σpnl."""
    b = fund.breakdown()
    scale = max(1.0, b["start_usd"], abs(b["end_usd"]), *(abs(v) for v in b.values()))
    assert abs(b["residual"]) <= rel * scale, b
    h = fund.history()
    prev = b["start_usd"]
    for i, v in enumerate(h.get("value_usd", [])):
        flow = (sum(h[n][i] for n in fund.INFLOWS) - sum(h[n][i] for n in fund.OUTFLOWS)
                + sum(h[n][i] for n in fund.PNL))
        assert math.isclose(v, prev + flow, rel_tol=rel, abs_tol=rel * scale), (i, v, prev, flow)
        prev = v


# A random run: per tick (price multiplier, surplus, bad debts, funding rate, liquidated notional).
steps = st.lists(
    st.tuples(st.floats(0.5, 1.5), st.floats(0.0, 5e7), st.lists(st.floats(0.0, 3e8), max_size=3),
              st.floats(-0.003, 0.003), st.floats(0.0, 5e9)),
    min_size=1, max_size=25)


def play_random(fund: Fund, run: list[tuple], *, start_price: float = 40_000.0, warmup: int = 3) -> None:
    """Warm-up ticks, then the random window; asserts paid <= asked and paid <= what the fund could pay."""
    price = start_price
    for k in range(warmup):
        fund.on_bar(k, market(k, price, in_window=False, oi=5e9))
    for i, (mult, surplus, debts, rate, liq) in enumerate(run):
        k = warmup + i
        if surplus > 0:
            fund.receive(k, surplus)
        for d in debts:
            before = fund.value(k)
            cover = getattr(fund, "cover_available", lambda: 0.0)()
            paid = fund.pay(k, d)
            assert 0.0 <= paid <= d
            assert paid <= before + cover + 1e-6 * max(1.0, before)
            assert fund.value(k) >= -1e-6 * max(1.0, before)
        price *= mult
        fund.on_bar(k, market(k, price, oi=5e9, liq=liq, funding=rate))
