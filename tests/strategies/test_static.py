from __future__ import annotations

import pytest
from hypothesis import given, settings

from loaders.errors import UserError
from strategies.registry import make_design
from strategies.static import BINANCE_MAY2021_USD, StaticFund, StaticParams
from tests.strategies.helpers import check_identity, play_random, steps, tick


def test_default_capital_is_the_event_rule() -> None:
    assert StaticParams().capital_usd == "event"
    ctx = {"event_id": "may2021", "venue": "binanceusdm", "fund_before_usd": BINANCE_MAY2021_USD,
           "fund_before_source": "binanceusdm BTC/ETH fund: bitcointalk", "oi_start_usd": 6e9}
    assert StaticFund(context=ctx).value(0) == 291_853_183.0
    with pytest.raises(UserError, match="no event given"):
        StaticFund()


def test_hand_computed_sequence() -> None:
    f = StaticFund(StaticParams(capital_usd=100.0))
    tick(f, 0, 10.0, in_window=False)            # warm-up: books closed, value = capital
    assert not f.active and f.value(0) == 100.0
    assert tick(f, 1, 9.0, receive=20.0, pay=(50.0,)) == [50.0]   # 100 + 20 - 50 = 70
    assert f.value(1) == 70.0
    assert tick(f, 2, 8.0, pay=(30.0, 60.0)) == [30.0, 40.0]       # 70 - 30 = 40; only 40 of 60 left
    assert f.value(2) == 0.0
    assert tick(f, 3, 8.0, receive=5.0, pay=(10.0,)) == [5.0]      # surplus first, then 5 of 10
    h = f.history()
    assert h["tick"] == [1.0, 2.0, 3.0]
    assert h["value_usd"] == [70.0, 0.0, 0.0]
    assert h["received"] == [20.0, 0.0, 5.0]
    assert h["paid"] == [50.0, 70.0, 5.0]
    assert h["asked"] == [50.0, 90.0, 10.0]
    s = f.summary()
    assert s["start_usd"] == 100.0 and s["min_usd"] == 0.0 and s["max_drawdown"] == 1.0
    assert s["first_shortfall_tick"] == 2
    check_identity(f)


def test_event_capital_from_context() -> None:
    f = make_design("static", {"capital_usd": "event"}, {"fund_before_usd": 1.23e9})
    assert f.value(0) == 1.23e9
    with pytest.raises(UserError, match="luna2022 lists no binanceusdm insurance fund.*fund_oi_ratio"):
        make_design("static", {"capital_usd": "event"}, {"event_id": "luna2022", "venue": "binanceusdm"})


def test_negative_amounts_are_bugs() -> None:
    f = StaticFund(StaticParams(capital_usd=1.0))
    with pytest.raises(ValueError):
        f.pay(0, -1.0)
    with pytest.raises(ValueError):
        f.receive(0, float("nan"))


@settings(max_examples=60, deadline=None)
@given(steps)
def test_identity_and_bounds(run: list[tuple]) -> None:
    f = StaticFund(StaticParams(capital_usd=2e8))
    play_random(f, run)
    check_identity(f)
