"""Parameters (validation names the option) and venue margin rules (MECHANICS §1.1/§1.2)."""

from __future__ import annotations

from datetime import date

import pytest

from backtest.engine.params import Params
from backtest.engine.venue_rules import (
    CUM,
    TABLE_A,
    TABLE_C,
    bankruptcy_price,
    liquidation_price,
    tier_of,
    venue_rules,
)
from loaders.errors import UserError


def test_defaults_are_valid_and_listed():
    p = Params()
    a = p.assumptions()
    assert a["param.impact_y"] == str(p.impact_y) and "param.lev_neutral" in a
    for key in ("impact_kappa", "impact_beta", "impact_range", "oi_regrow_s", "surplus_mode"):
        assert f"param.{key}" in a  # the December 2026 terms are listed in every report


@pytest.mark.parametrize(
    "overrides,needle",
    [
        ({"nope": "1"}, "unknown parameter; valid:"),
        ({"lev_tilt": "-1"}, "lev_tilt"),
        ({"waterfall": "pray"}, "valid: adl, socialized"),
        ({"size_share": "0.5 0.6 0"}, "sum to 1.1"),
        ({"lev_neutral": "1 0"}, "needs 10 weights"),
        ({"impact_y": "abc"}, "expected a number"),
        ({"venue": "kraken"}, "valid: binanceusdm"),
        ({"size_usd": "1000 2000"}, "one share per size class"),
    ],
)
def test_bad_parameters_name_the_option(overrides, needle):
    with pytest.raises(UserError, match=needle):
        Params.from_overrides(overrides)


def test_text_overrides_are_coerced():
    p = Params.from_overrides({"impact_y": "0.5", "size_usd": "1000,2000", "size_share": "0.5 0.5"})
    assert p.impact_y == 0.5 and p.size_usd == (1000.0, 2000.0)


def test_cum_matches_published_values():
    # Table A cum column as published (MECHANICS §1.1) -- computed here from floors and MMRs
    assert list(TABLE_A[:, CUM]) == [
        0,
        50,
        1300,
        16300,
        266300,
        1266300,
        2516300,
        5016300,
        25016300,
        100016300,
    ]
    assert TABLE_C[2, CUM] == 950 and TABLE_C[-1, CUM] == 421481450


def test_liquidation_price_matches_binance_example():
    # MECHANICS §1.2: isolated long 1 BTC at 50,000, WB 5,000, MMR 0.4 %, cum 0 -> 45,180.7
    assert liquidation_price(1, 50_000, 5_000, 1.0, 0.004, 0.0) == pytest.approx(45_180.72, abs=0.01)
    assert bankruptcy_price(1, 50_000, 5_000) == 45_000
    assert bankruptcy_price(-1, 50_000, 5_000) == 55_000


def test_tiers_and_tables_by_date():
    assert tier_of(TABLE_A, 5_000) == 0 and tier_of(TABLE_A, 50_000) == 1 and tier_of(TABLE_A, 2e6) == 3
    assert tier_of(TABLE_A, 1e12) == 9
    rules = venue_rules("binanceusdm")
    assert rules.brackets("BTCUSDT", date(2021, 5, 19))[1].startswith("binanceusdm brackets: table A ")
    assert "table C" in rules.brackets("BTCUSDT", date(2025, 10, 10))[1]
    assert "table A'" in rules.brackets("BTCUSDT", date(2023, 1, 1))[1]
    assert "ETHUSDT" in rules.brackets("ETHUSDT", date(2021, 5, 19))[1]
    with pytest.raises(UserError, match="valid: binanceusdm"):
        venue_rules("okx")
