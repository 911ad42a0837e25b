from __future__ import annotations

import pytest
from hypothesis import given, settings

from strategies.static import YEAR_S
from strategies.tranched import TranchedFund, TranchedParams
from tests.strategies.helpers import check_identity, play_random, steps, tick

approx = pytest.approx
T = YEAR_S / 10  # a tenth of a year between ticks keeps the yields round


def test_hand_computed_sequence() -> None:
    f = TranchedFund(TranchedParams(capital_usd=1000.0, junior_share=0.2, junior_rate=0.2, senior_rate=0.05))
    tick(f, 0, 1.0, ts=0.0)                      # books open: junior 200, senior 800
    # tick 1: +50 to junior (250); 300 asked: junior 250, senior 50 -> 750; yield 750 x 5 % x 0.1 = 3.75
    assert tick(f, 1, 1.0, ts=T, receive=50.0, pay=(300.0,)) == [300.0]
    assert (f.junior, f.senior) == (0.0, approx(753.75))
    # tick 2: +100 to junior; yields 100 x 20 % x 0.1 = 2 and 753.75 x 5 % x 0.1 = 3.76875
    tick(f, 2, 1.0, ts=2 * T, receive=100.0)
    assert (f.junior, f.senior) == (approx(102.0), approx(757.51875))
    h = f.history()
    assert h["loss_junior"] == [0.0, 250.0, 0.0] and h["loss_senior"] == [0.0, 50.0, 0.0]
    assert h["yield_senior"] == approx([0.0, 3.75, 3.76875])
    assert h["junior_usd"] == approx([200.0, 0.0, 102.0])
    s = f.summary()
    assert s["junior_loss_usd"] == 250.0 and s["senior_loss_usd"] == 50.0
    assert s["junior_yield_usd"] == approx(2.0) and s["senior_yield_usd"] == approx(7.51875)
    assert s["senior_return"] == approx((757.51875 - 800) / 800)
    check_identity(f)  # 1000 + 150 - 300 + 2 + 7.51875 = 859.51875


def test_senior_untouched_until_junior_is_gone() -> None:
    f = TranchedFund(TranchedParams(capital_usd=100.0, junior_share=0.3))
    assert tick(f, 0, 1.0, pay=(29.0,)) == [29.0]
    assert f.senior == 70.0 and f.junior == approx(1.0)


@settings(max_examples=60, deadline=None)
@given(steps)
def test_identity_and_bounds(run: list[tuple]) -> None:
    f = TranchedFund(TranchedParams(capital_usd=2e8))
    play_random(f, run)
    check_identity(f)
    assert f.junior >= 0.0 and f.senior >= 0.0
