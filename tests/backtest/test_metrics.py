"""Fund metrics on hand-built results: every figure checked against a hand computation."""

from __future__ import annotations

import numpy as np
import pytest

from backtest.engine.results import Result
from backtest.metrics import METRIC_KEYS, YEAR_S, add_fund_metrics, fund_metrics

HOUR = 3600


def result(values, *, start, asked=None, short=None, warm=2, oi=1e9, premium=0.0, design="x") -> Result:
    """A run with ``warm`` warm-up ticks (value = start) then the window ticks ``values``, one per hour."""
    n = warm + len(values)
    series = {
        "clock": np.arange(n, dtype=np.int64) * HOUR + 1_621_000_800,  # 2021-05-14 14:00 UTC
        "in_window": np.arange(n) >= warm,
        "fund_value": np.r_[np.full(warm, start), values].astype(float),
    }
    if asked is not None:
        series["fund_asked"] = np.r_[np.zeros(warm), asked].astype(float)
        series["fund_shortfall"] = np.r_[np.zeros(warm), short].astype(float)
    rec = {
        "design": design,
        "fund_start_usd": float(start),
        "fund_end_usd": float(values[-1]),
        "fund_min_usd": float(min(values)),
        "oi_start_usd": oi,
        "fund_premium_usd": premium,
    }
    return Result(record=rec, per_symbol={}, series=series)


def test_hand_computed_fund():
    # 100 -> 120 (peak) -> 60 -> 90: drawdown 50 % from the 120 peak, return -10 %
    r = result([100.0, 120.0, 60.0, 90.0], start=100.0, asked=[0, 0, 60, 0], short=[0, 0, 0, 0], oi=2000.0)
    m = fund_metrics(r, window_s=10 * 86400, risk_free=0.0365)
    assert set(m) == set(METRIC_KEYS)
    assert m["max_drawdown_pct"] == pytest.approx(50.0)
    assert m["fund_min_usd"] == 60.0 and m["fund_end_usd"] == 90.0
    assert m["fund_return_pct"] == pytest.approx(-10.0)
    assert m["depleted"] is False and m["depleted_at"] is None
    assert m["capital_cost_usd"] == pytest.approx(100.0 * 0.0365 * 10 / 365)
    assert m["coverage_ratio"] == pytest.approx(0.05)


def test_depleted_at_first_short_claim_with_premium():
    # third window tick: asked 80, paid the 50 it had left -> shortfall 30, the fund is empty
    r = result([100.0, 50.0, 0.0, 5.0], start=100.0, asked=[0, 50, 80, 0], short=[0, 0, 30, 0], premium=7.0)
    m = fund_metrics(r, window_s=YEAR_S, risk_free=0.05)
    assert m["depleted"] is True and m["adl_trigger_at"] is None
    assert m["depleted_at"] == "2021-05-14T18:00:00Z"  # clock[2 warm-up + 2]
    assert m["capital_cost_usd"] == pytest.approx(100.0 * 0.05 + 7.0)


def test_a_claim_paid_short_with_money_left_is_a_trigger_not_depletion():
    """adl_drawdown=0.3 on 20M: the design stops paying at 17.03M; the fund was never empty."""
    r = result([20e6, 18e6, 17.03e6, 21.6e6], start=20e6, asked=[0, 2e6, 5e6, 0], short=[0, 0, 5e6, 0])
    m = fund_metrics(r, window_s=4 * HOUR)
    assert m["depleted"] is False and m["depleted_at"] is None
    assert m["adl_trigger_at"] == "2021-05-14T18:00:00Z"
    assert m["fund_min_usd"] == 17.03e6 and m["fund_return_pct"] == pytest.approx(8.0)
    from backtest.report.tables import depleted

    assert depleted({**r.record, **m}) == "no · trigger 05-14 18:00"
    emptied = fund_metrics(result([20e6, 0.0], start=20e6, asked=[0, 25e6], short=[0, 5e6]), window_s=HOUR)
    assert depleted(emptied) == "yes 05-14 17:00"


def test_fund_minimum_counts_the_start_capital():
    """The first window tick already holds that bar's inflow: a fund that only grew has its start as
    minimum (was: 291.89M minimum above a 291.85M start, 'min 100.0 %' in the matrix)."""
    r = result([291.89e6, 292.5e6, 293.0e6], start=291.85e6)
    m = fund_metrics(r, window_s=3 * HOUR)
    assert m["fund_min_usd"] == 291.85e6 <= m["fund_start_usd"]


def test_depleted_when_value_reaches_zero_without_a_short_claim():
    r = result([50.0, 0.0, 10.0], start=50.0, asked=[0, 50, 0], short=[0, 0, 0])
    m = fund_metrics(r, window_s=3 * HOUR)
    assert m["depleted"] and m["depleted_at"] == "2021-05-14T17:00:00Z"
    assert m["max_drawdown_pct"] == pytest.approx(100.0)


def test_float_noise_is_not_a_shortfall():
    r = result([100.0, 40.0], start=100.0, asked=[0, 60.0], short=[0, 1e-9])
    assert fund_metrics(r, window_s=HOUR)["depleted"] is False


def test_no_fund_design():
    r = result([0.0, 0.0, 0.0], start=0.0, asked=[0, 5.0, 0], short=[0, 5.0, 0], design="none")
    m = fund_metrics(r, window_s=HOUR)
    assert m["depleted"] and m["depleted_at"] == "2021-05-14T17:00:00Z"
    assert m["fund_return_pct"] is None and m["max_drawdown_pct"] == 0.0
    assert m["capital_cost_usd"] == 0.0 and m["coverage_ratio"] == 0.0


def test_payouts_are_distributions_not_losses():
    r = result([100.0, 60.0], start=100.0)
    r.record["fund_payout_usd"] = 50.0  # the fund grew to 110 and paid 50 of excess to the venue
    assert fund_metrics(r, window_s=HOUR)["fund_return_pct"] == pytest.approx(10.0)


def test_no_open_interest_gives_no_ratio():
    assert fund_metrics(result([1.0], start=1.0, oi=0.0), window_s=HOUR)["coverage_ratio"] is None


def test_add_fund_metrics_writes_record_and_assumptions():
    rs = [result([100.0, 90.0], start=100.0), result([5.0, 6.0], start=5.0)]
    add_fund_metrics(rs, window_s=HOUR, risk_free=0.02)
    assert rs[1].record["fund_return_pct"] == pytest.approx(20.0)
    assert "0.02/yr" in rs[0].assumptions["risk_free"]


@pytest.mark.parametrize(
    "kw", [{"window_s": -1.0}, {"window_s": float("nan")}, {"window_s": 1.0, "risk_free": 2.0}]
)
def test_bad_arguments(kw):
    with pytest.raises(ValueError):
        fund_metrics(result([1.0], start=1.0), **kw)
