from __future__ import annotations

import pytest
from hypothesis import given, settings

from loaders.errors import UserError
from strategies.registry import make_design
from strategies.static_coin import StaticCoinFund, StaticCoinParams
from tests.strategies.helpers import SYM, check_identity, play_random, steps, tick


def test_hand_computed_sequence() -> None:
    f = StaticCoinFund(StaticCoinParams(capital_usd=100.0), {"symbols": (SYM,)})
    tick(f, 0, 10.0, in_window=False)                 # warm-up: nothing bought yet
    assert f.coin == 0.0 and f.value(0) == 100.0
    # tick 1: books open at 100 USD cash; +20 surplus; at the close (8) 120 USD buy 15 coin
    assert tick(f, 1, 8.0, receive=20.0) == []
    assert f.coin == 15.0 and f.value(1) == 120.0
    # tick 2: 40 bad debt sold at the latest mark 8 -> 5 coin, 10 left; close 4: 10 x (4 - 8) = -40
    assert tick(f, 2, 4.0, pay=(40.0,)) == [40.0]
    assert f.coin == 10.0 and f.value(2) == 40.0
    # tick 3: 100 asked, the 10 coin fetch 10 x 4 = 40
    assert tick(f, 3, 5.0, pay=(100.0,)) == [40.0]
    assert f.coin == 0.0 and f.value(3) == 0.0
    h = f.history()
    assert h["value_usd"] == [120.0, 40.0, 0.0]
    assert h["coin_pnl"] == [0.0, -40.0, 0.0]
    assert h["coin"] == [15.0, 10.0, 0.0]
    b = f.breakdown()  # 100 + 20 - 80 - 40 = 0
    assert (b["start_usd"], b["received"], b["paid"], b["coin_pnl"]) == (100.0, 20.0, 80.0, -40.0)
    check_identity(f)


def test_loses_value_in_a_crash_where_static_does_not() -> None:
    ctx = {"symbols": (SYM,)}
    coin = make_design("static-coin", {"capital_usd": 1e6}, ctx)
    usd = make_design("static", {"capital_usd": 1e6}, ctx)
    for f in (coin, usd):
        tick(f, 0, 100.0)
        tick(f, 1, 50.0)   # price halves
    assert usd.value(1) == 1e6
    assert coin.value(1) == pytest.approx(5e5)


def test_capital_in_coin_from_event() -> None:
    ctx = {"symbols": ("XBTUSD",), "fund_before_coin": 35_508.0, "start_prices": {"XBTUSD": 7_900.0}}
    f = make_design("static-coin", {"capital_coin": "event"}, ctx)
    assert f.value(0) == pytest.approx(35_508.0 * 7_900.0)
    tick(f, 1, 5_000.0, sym="XBTUSD")
    assert f.value(1) == pytest.approx(35_508.0 * 5_000.0)
    check_identity(f)
    with pytest.raises(UserError, match="no coin-denominated"):
        make_design("static-coin", {"capital_coin": "event"}, {"event_id": "may2021"})


def test_coin_symbol_other_than_first() -> None:
    p = StaticCoinParams(capital_usd=100.0, coin_symbol="ETHUSDT")
    f = StaticCoinFund(p, {"symbols": (SYM, "ETHUSDT")})
    tick(f, 0, 50_000.0, extra={"ETHUSDT": 4.0})
    assert f.coin == 25.0


@settings(max_examples=60, deadline=None)
@given(steps)
def test_identity_and_bounds(run: list[tuple]) -> None:
    f = StaticCoinFund(StaticCoinParams(capital_usd=2e8), {"symbols": (SYM,)})
    play_random(f, run)
    check_identity(f)
