"""The fund interface and the ``none`` design."""

from __future__ import annotations

import pytest

from strategies.base import DESIGNS, Fund, Market, NoFund


def test_none_pays_nothing_and_holds_nothing():
    f = NoFund()
    f.receive(3, 125.0)
    assert f.pay(4, 1e6) == 0.0
    f.on_bar(4, Market(tick=4, ts=0.0, in_window=True))
    assert f.value(4) == 0.0
    assert f.received_usd == 125.0
    assert DESIGNS["none"] is NoFund


def test_negative_capital_is_rejected():
    class Some(Fund):
        name = "some"

    with pytest.raises(ValueError, match="capital"):
        Some(-1.0)
