"""Every numeric design parameter has a finite domain; values the replay cannot use are refused (issue 14)."""

from __future__ import annotations

import pytest

from loaders.errors import UserError
from strategies.config import fields_of, load_config
from strategies.registry import entry, make_design, names
from strategies.triggers import TriggerParams


def _numeric_fields():
    for name in names():
        for key, f in fields_of(entry(name).params).items():
            if f.metadata.get("kind") in ("float", "int"):
                yield name, key, f.metadata
    for key, f in fields_of(TriggerParams).items():
        if f.metadata.get("kind") in ("float", "int"):
            yield "trigger", key, f.metadata


def test_every_numeric_design_parameter_is_bounded_on_both_sides():
    unbounded = [f"{d}.{k}" for d, k, m in _numeric_fields() if m["lo"] is None or m["hi"] is None]
    assert not unbounded, f"state lo and hi for {unbounded}"


@pytest.mark.parametrize("text", ["static.capital_usd=1e308", "static.capital_usd=1e13",
                                  "dynamic.capital_usd=inf", "static-coin.capital_coin=1e300",
                                  "tranched.capital_usd=nan"])
def test_capital_beyond_the_bound_is_refused(text):
    with pytest.raises(UserError, match="expected a number 0 <= x <="):
        load_config(sets=[text])


def test_capital_bound_in_a_designs_file_names_the_line(tmp_path):
    path = tmp_path / "designs.toml"
    path.write_text('[big]\ndesign = "static"\ncapital_usd = 1e308\n')
    with pytest.raises(UserError, match=r"designs.toml:3: \[big\] capital_usd = 1e\+308"):
        load_config(path)


def test_target_capital_with_k_zero_is_refused():
    with pytest.raises(UserError, match='capital_usd = "target" with k = 0'):
        load_config(sets=["dynamic.k=0"])
    load_config(sets=["dynamic.capital_usd=1e6", "dynamic.k=0"])  # a fixed capital may ignore the target


@pytest.mark.parametrize("design", ["static-coin", "hedged"])
def test_coin_symbol_outside_the_run_is_refused(design):
    ctx = {"symbols": ("BTCUSDT", "ETHUSDT"), "start_prices": {"BTCUSDT": 1.0, "ETHUSDT": 1.0}}
    needle = rf"{design}.coin_symbol = 'FOOUSDT': not a symbol of this run; valid: BTCUSDT, ETHUSDT"
    with pytest.raises(UserError, match=needle):
        make_design(design, {"coin_symbol": "FOOUSDT", "capital_usd": 1e6}, ctx)
    assert make_design(design, {"coin_symbol": "ETHUSDT", "capital_usd": 1e6}, ctx).symbol == "ETHUSDT"
