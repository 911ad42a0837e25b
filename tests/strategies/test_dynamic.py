from __future__ import annotations

import math

import pytest
from hypothesis import given, settings

from loaders.errors import UserError
from strategies.dynamic import DynamicFund, DynamicParams
from strategies.registry import make_design
from tests.strategies.helpers import check_identity, play_random, steps, tick

approx = pytest.approx
DAY = 86400.0


def test_hand_computed_vol_mode() -> None:
    p = DynamicParams(k=1.0, horizon_h=24.0, vol_halflife_h=24.0, vol_prior=0.01, fee_rate=0.001,
                      max_mult=3.0, cap_mult=2.0, payout_interval_h=1.0)
    f = DynamicFund(p)
    # tick 1 (first seen, in window): σ = prior 1 %/day; target = 1 x 1e6 x 0.01 = 1e4 = start capital;
    # m = 1; fee 0.001 x 1e6 = 1,000 -> 11,000
    tick(f, 1, 100.0, ts=0.0, oi=1e6, liq=1e6)
    assert f.start_value == approx(1e4) and f.value(1) == approx(11_000.0)
    # tick 2, one half-life later, flat price: var halves -> σ = 0.01 / √2, target 7,071.07;
    # 9,000 paid -> 2,000; m = min(7071 / 2000, 3) = 3; fee 0.001 x 3 x 1e6 = 3,000 -> 5,000
    # (5,000 < 2 x target: no payout)
    assert tick(f, 2, 100.0, ts=DAY, oi=1e6, liq=1e6, pay=(9_000.0,)) == [9_000.0]
    assert f.sigma("BTCUSDT") == approx(0.01 / math.sqrt(2))
    assert f.mult == 3.0 and f.value(2) == approx(5_000.0)
    # tick 3: σ = 0.005, target 5,000; +20,000 -> 25,000; m = 1, no liquidations; payout 25,000 - 10,000
    tick(f, 3, 100.0, ts=2 * DAY, oi=1e6, receive=20_000.0)
    assert f.value(3) == approx(10_000.0)
    h = f.history()
    assert h["fee_inflow"] == approx([1_000.0, 3_000.0, 0.0])
    assert h["payout"] == approx([0.0, 0.0, 15_000.0])
    assert h["target_usd"] == approx([1e4, 1e4 / math.sqrt(2), 5e3])
    assert h["fee_mult"] == [1.0, 3.0, 1.0]
    check_identity(f)  # 10,000 + 20,000 + 4,000 - 9,000 - 15,000 = 10,000


def test_ewma_volatility_from_a_return() -> None:
    f = DynamicFund(DynamicParams(vol_prior=0.01, vol_halflife_h=24.0, horizon_h=24.0, capital_usd=1.0))
    tick(f, 0, 100.0, ts=0.0, in_window=False)
    tick(f, 1, 110.0, ts=DAY, in_window=False)  # weight 1/2 on the prior, 1/2 on ln(1.1)^2 per day
    assert f.sigma("BTCUSDT") == approx(math.sqrt(0.5 * 1e-4 + 0.5 * math.log(1.1) ** 2))
    assert not f.active


def test_hand_computed_cvar_mode() -> None:
    p = DynamicParams(capital_usd=1_000.0, target_mode="cvar", cvar_alpha=0.5, cvar_k=1.0, cvar_bucket_h=1.0,
                      cvar_lookback_d=1.0, fee_rate=0.0, payout_interval_h=3.0, cap_mult=1.0)
    f = DynamicFund(p)
    tick(f, 0, 1.0, ts=0.0)
    assert f.target() is None                     # no bad debt yet: no target, no payout
    tick(f, 1, 1.0, ts=3600.0, pay=(100.0,))      # asked in the bucket of the last tick seen (hour 0)
    tick(f, 2, 1.0, ts=7200.0, pay=(300.0,))      # hour 1
    # tick 3, hour 3: buckets [100, 300, 0, 0]; the worst half: (300 + 100) / 2 = 200 = target;
    # first payout check 3 h after the start: 1,000 - 400 = 600 held, 600 - 1 x 200 = 400 paid out
    tick(f, 3, 1.0, ts=10800.0)
    assert f.cvar() == approx(200.0) and f.target() == approx(200.0)
    assert f.value(3) == approx(200.0)
    assert f.history()["payout"] == approx([0.0, 0.0, 0.0, 400.0])
    check_identity(f)


def test_target_capital_needs_vol_mode() -> None:
    with pytest.raises(UserError, match='capital_usd = "target" needs target_mode'):
        make_design("dynamic", {"target_mode": "cvar"})
    with pytest.raises(UserError, match="no open interest"):
        DynamicFund().pay(0, 1.0)


@settings(max_examples=60, deadline=None)
@given(steps)
def test_identity_and_bounds(run: list[tuple]) -> None:
    f = DynamicFund(DynamicParams(target_mode="max", payout_interval_h=0.01))
    play_random(f, run)
    check_identity(f)
