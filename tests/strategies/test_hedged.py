from __future__ import annotations

import pytest
from hypothesis import given, settings

from strategies.hedged import HedgedFund, HedgedParams
from tests.strategies.helpers import SYM, check_identity, play_random, steps, tick

approx = pytest.approx


def test_hand_computed_sequence() -> None:
    f = HedgedFund(HedgedParams(capital_usd=300.0, hedge_share=1.0, hedge_leverage=2.0), {"symbols": (SYM,)})
    # tick 0 (window) at 100: invest 300 -> coin 300 x 2/3 / 100 = 2, short 2 @ 100, margin 300 / 3 = 100
    tick(f, 0, 100.0)
    assert (f.coin, f.short, f.entry) == (approx(2.0), approx(2.0), 100.0)
    assert (f.margin, f.cash) == (approx(100.0), 0.0)
    assert f.value(0) == approx(300.0)
    # tick 1 at 80, funding +0.1 %: coin -40, short +40, funding 0.001 x 2 x 100 (previous mark) = 0.2
    tick(f, 1, 80.0, funding=0.001)
    assert f.margin == approx(100.2) and f.value(1) == approx(300.2)
    # tick 2: +10 surplus to cash; 160.1 asked: 10 from cash, 150.1 = half of the pair's 160 + 100.2 + 40
    assert tick(f, 2, 80.0, receive=10.0, pay=(160.1,)) == [approx(160.1)]
    assert (f.coin, f.short, f.margin) == (approx(1.0), approx(1.0), approx(50.1))
    assert f.value(2) == approx(150.1)
    # tick 3 at 150: equity 50.1 + 1 x (100 - 150) = 0.1 < 0.4 % x 150 = 0.6 -> liquidated, 0.1 lost
    tick(f, 3, 150.0)
    assert f.short == 0.0 and f.liquidations == 1 and f.value(3) == approx(150.0)
    # tick 4 at 75: the coin is unhedged now
    tick(f, 4, 75.0)
    assert f.value(4) == approx(75.0)
    h = f.history()
    assert h["coin_pnl"] == approx([0.0, -40.0, 0.0, 70.0, -75.0])
    assert h["hedge_pnl"] == approx([0.0, 40.0, 0.0, -70.0, 0.0])
    assert h["funding"] == approx([0.0, 0.2, 0.0, 0.0, 0.0])
    assert h["hedge_liquidation"] == approx([0.0, 0.0, 0.0, -0.1, 0.0])
    assert h["hedge_liquidations"] == [0.0, 0.0, 0.0, 1.0, 1.0]
    # 300 + 10 - 160.1 - 45 - 30 + 0.2 - 0.1 = 75
    check_identity(f)
    assert f.summary()["hedge_liquidations"] == 1


def test_value_stable_in_a_crash_and_negative_funding_costs() -> None:
    f = HedgedFund(HedgedParams(capital_usd=1e6), {"symbols": (SYM,)})
    tick(f, 0, 50_000.0)
    tick(f, 1, 30_000.0, funding=-0.001)  # shorts pay: 0.001 x q x 50,000 with q = 1e6 x 2/3 / 50,000
    assert f.value(1) == approx(1e6 - 0.001 * (1e6 * 2 / 3))
    assert f.liquidations == 0


def test_partial_hedge_keeps_cash() -> None:
    f = HedgedFund(HedgedParams(capital_usd=1000.0, hedge_share=0.4, hedge_leverage=4.0), {"symbols": (SYM,)})
    tick(f, 0, 10.0)
    # 400 invested: coin 400 x 4/5 / 10 = 32, margin 80; 600 stays cash
    assert (f.cash, f.coin, f.margin) == (approx(600.0), approx(32.0), approx(80.0))
    assert tick(f, 1, 10.0, pay=(700.0,)) == [approx(700.0)]  # 600 cash + 100 of the 400 pair
    assert f.coin == approx(24.0)


@settings(max_examples=60, deadline=None)
@given(steps)
def test_identity_and_bounds(run: list[tuple]) -> None:
    f = HedgedFund(HedgedParams(capital_usd=2e8, hedge_leverage=1.5), {"symbols": (SYM,)})
    play_random(f, run)
    check_identity(f)
