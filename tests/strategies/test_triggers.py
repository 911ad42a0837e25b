from __future__ import annotations

import pytest
from hypothesis import given, settings

from loaders.errors import UserError
from strategies.registry import make_design
from strategies.triggers import DrawdownTrigger
from tests.strategies.helpers import check_identity, play_random, steps, tick

H = 3600.0


def test_off_by_default_returns_the_design_itself() -> None:
    f = make_design("static", {"capital_usd": 1e6})
    assert not isinstance(f, DrawdownTrigger)


def test_hand_computed_drawdown_trigger() -> None:
    f = make_design("static", {"capital_usd": 100.0, "adl_drawdown": 0.3})
    assert isinstance(f, DrawdownTrigger) and f.name == "static"
    tick(f, 0, 1.0, ts=0.0)
    # peak 100 -> floor 70: 20 paid (80), then 10 of 20 (70, triggered), then nothing (held at -30 %)
    assert tick(f, 1, 1.0, ts=H, pay=(20.0, 20.0, 5.0)) == [20.0, 10.0, 0.0]
    assert f.value(1) == 70.0 and f.triggered and f.triggers == 1
    # +10 surplus: drawdown 20 % < 30 % -> pays again, down to the floor 70
    assert tick(f, 2, 1.0, ts=2 * H, receive=10.0, pay=(5.0, 20.0)) == [5.0, 5.0]
    assert f.triggers == 2
    # the 100 peak leaves the 8-h window: +5 -> 75 is the new peak -> floor 52.5, 22.5 paid of 50
    tick(f, 3, 1.0, ts=10 * H, receive=5.0)
    assert tick(f, 4, 1.0, ts=11 * H, pay=(50.0,)) == [pytest.approx(75.0 - 0.7 * 75.0)]
    h = f.history()
    assert h["adl_blocked"] == [0.0, 15.0, 15.0, 0.0, pytest.approx(50.0 - 22.5)]
    assert h["adl_trigger_on"] == [0.0, 1.0, 1.0, 0.0, 1.0]
    s = f.summary()
    assert s["adl_triggers"] == 3 and s["adl_blocked_usd"] == pytest.approx(57.5)
    check_identity(f.inner)


def test_cooldown_and_resume_level() -> None:
    f = make_design("static", {"capital_usd": 100.0, "adl_drawdown": 0.3, "adl_cooldown_h": 2.0,
                               "adl_resume": 0.1})
    tick(f, 0, 1.0, ts=0.0)
    assert tick(f, 1, 1.0, ts=H, pay=(40.0,)) == [30.0]           # triggered at t = 0 (last tick seen)
    assert tick(f, 2, 1.0, ts=2 * H, receive=25.0, pay=(1.0,)) == [0.0]   # dd 5 % but cooling down
    assert tick(f, 3, 1.0, ts=3 * H, pay=(1.0,)) == [1.0]         # 2 h passed, dd 5 % < 10 %
    g = make_design("static", {"capital_usd": 100.0, "adl_drawdown": 0.3, "adl_resume": 0.1})
    tick(g, 0, 1.0, ts=0.0)
    tick(g, 1, 1.0, ts=H, pay=(40.0,))
    assert tick(g, 2, 1.0, ts=2 * H, receive=15.0, pay=(1.0,)) == [0.0]   # dd 15 % > resume 10 %


def test_resume_above_trigger_rejected() -> None:
    with pytest.raises(UserError, match="adl_resume = 0.5 must be <= adl_drawdown = 0.3"):
        make_design("static", {"adl_drawdown": 0.3, "adl_resume": 0.5})


@settings(max_examples=60, deadline=None)
@given(steps)
def test_bounds_on_any_design(run: list[tuple]) -> None:
    for name in ("static", "hedged", "tranched"):
        f = make_design(name, {"capital_usd": 2e8, "adl_drawdown": 0.3}, {"symbols": ("BTCUSDT",)})
        play_random(f, run)
        check_identity(f.inner)
        assert f.value(0) >= 0.0
