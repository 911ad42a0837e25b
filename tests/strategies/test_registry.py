from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

import strategies
from loaders.errors import UserError
from strategies import registry
from strategies.base import NoFund
from strategies.registry import event_context, make_design, names


def test_names_in_design_order() -> None:
    assert names() == ["none", "static", "static-coin", "dynamic", "hedged", "tranched", "reinsured"]


def test_unknown_design_lists_valid_names() -> None:
    with pytest.raises(UserError, match="unknown design 'statik'; valid: none, static, static-coin, dynamic"):
        make_design("statik")


def test_none_design() -> None:
    f = make_design("none")
    assert isinstance(f, NoFund) and f.pay(0, 5.0) == 0.0


def test_params_object_or_mapping() -> None:
    from strategies.static import StaticParams

    assert make_design("static", StaticParams(capital_usd=7.0)).value(0) == 7.0
    assert make_design("static", {"capital_usd": 5}).value(0) == 5.0
    with pytest.raises(UserError, match=r"capital_usd = '5': expected a number 0 <= x <= 1e\+12"):
        make_design("static", {"capital_usd": "5"})
    with pytest.raises(TypeError):
        make_design("static", object())


def test_a_design_added_in_one_file_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A user drops one module into strategies/: it is found, configurable and runnable by name."""
    (tmp_path / "halfpay.py").write_text(textwrap.dedent('''
        from dataclasses import dataclass
        from strategies.config import param
        from strategies.registry import register
        from strategies.static import StaticFund, StaticParams

        @dataclass(frozen=True)
        class HalfParams:
            capital_usd: float = param(100.0, "capital", lo=0.0)
            share: float = param(0.5, "share of each bad debt paid", lo=0.0, hi=1.0)

        @register("halfpay", params=HalfParams)
        class HalfPay(StaticFund):
            """Pays only a share of each bad debt."""
            name = "halfpay"

            def __init__(self, params, context):
                super().__init__(StaticParams(capital_usd=params.capital_usd), context)
                self.share = params.share

            def _pay(self, usd):
                return super()._pay(usd * self.share)
    '''), encoding="utf-8")
    monkeypatch.setattr(strategies, "__path__", [*strategies.__path__, str(tmp_path)])
    monkeypatch.setattr(registry, "_discovered", False)
    try:
        assert names()[-1] == "halfpay"
        f = make_design("halfpay", {"share": 0.25})
        assert f.pay(0, 40.0) == 10.0 and f.value(0) == 90.0
        with pytest.raises(UserError, match="valid: capital_usd, share, adl_drawdown"):
            make_design("halfpay", {"shares": 1})
    finally:
        registry.unregister("halfpay")
        sys.modules.pop("strategies.halfpay", None)


def test_duplicate_name_rejected() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        registry.add("static", lambda p, c: NoFund())


def test_event_context_duck_typed() -> None:
    class F:
        def __init__(self, venue: str, balance: float, currency: str) -> None:
            self.venue, self.balance, self.currency = venue, balance, currency
            self.fund, self.source = "IF", "src"

    class E:
        id = "mar2020"
        symbols = ("BTCUSDT", "ETHUSDT")
        fund_before = [F("bitmex", 35_508.0, "XBT"), F("binanceusdm", 12.9e6, "USDT"),
                       F("deribit", 391.0, "BTC")]

    ctx = event_context(E(), start_prices={"BTCUSDT": 7_900.0})
    assert ctx["fund_before_usd"] == 12.9e6 and ctx["fund_before_coin"] == 35_508.0
    assert ctx["fund_before_coin_ccy"] == "XBT" and ctx["symbols"] == ("BTCUSDT", "ETHUSDT")
    assert make_design("static", {"capital_usd": "event"}, ctx).value(0) == 12.9e6


def test_event_context_from_the_catalog() -> None:
    from backtest.events import load_catalog

    cat = load_catalog()
    ctx = event_context(cat.get("may2021"))
    assert ctx["fund_before_usd"] == 291_853_183.0 and "bitcointalk" in ctx["fund_before_source"]
    assert "fund_before_usd" not in event_context(cat.get("luna2022"))
