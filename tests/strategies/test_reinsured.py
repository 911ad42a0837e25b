from __future__ import annotations

import pytest
from hypothesis import given, settings

from loaders.errors import UserError
from strategies.registry import make_design
from strategies.reinsured import ReinsuredFund, ReinsuredParams
from strategies.static import YEAR_S
from tests.strategies.helpers import check_identity, play_random, steps, tick

T = YEAR_S / 10


def test_hand_computed_sequence() -> None:
    # capital 100: layer covers cumulative asks between 50 and 150; premium 10 % x 100 a year = 1 per tick
    f = ReinsuredFund(ReinsuredParams(capital_usd=100.0, attachment=0.5, limit=1.5, premium_rate=0.1))
    tick(f, 0, 1.0, ts=0.0)
    assert tick(f, 1, 1.0, ts=T, pay=(30.0,)) == [30.0]      # cum 0->30: all own; cash 70 - 1 = 69
    assert f.value(1) == pytest.approx(69.0)
    assert tick(f, 2, 1.0, ts=2 * T, pay=(60.0,)) == [60.0]  # cum 30->90: 40 covered, 20 own; 49 - 1 = 48
    assert f.value(2) == pytest.approx(48.0)
    assert tick(f, 3, 1.0, ts=3 * T, pay=(100.0,)) == [100.0]  # cum 90->190: 60 covered (to 150), 40 own
    assert f.value(3) == pytest.approx(7.0)
    assert tick(f, 4, 1.0, ts=4 * T, pay=(20.0,)) == [pytest.approx(7.0)]  # layer used up; 7 cash left
    h = f.history()
    assert h["recovery"] == [0.0, 0.0, 40.0, 60.0, 0.0]
    assert h["premium"] == pytest.approx([0.0, 1.0, 1.0, 1.0, 0.0])
    assert h["premium_owed"] == pytest.approx([0.0, 0.0, 0.0, 0.0, 1.0])
    assert f.summary()["cover_used_usd"] == 100.0
    check_identity(f)  # 100 + 100 recovered - 197 paid - 3 premium = 0


def test_limit_below_attachment_rejected() -> None:
    with pytest.raises(UserError, match="limit = 0.2 must be >= attachment = 0.5"):
        make_design("reinsured", {"limit": 0.2})


@settings(max_examples=60, deadline=None)
@given(steps)
def test_identity_and_bounds(run: list[tuple]) -> None:
    f = ReinsuredFund(ReinsuredParams(capital_usd=2e8, attachment=0.2, limit=0.9))
    play_random(f, run)
    check_identity(f)
