"""Whole-replay properties on synthetic paths: conservation, balance, determinism, one shared fund."""

from __future__ import annotations

import numpy as np
import pytest

from backtest.engine import kernels as K
from backtest.engine.inputs import SymbolInputs
from backtest.engine.params import Params
from backtest.engine.replay import replay
from backtest.engine.results import RECORD_KEYS, conservation, summarize
from strategies.base import Fund, NoFund
from tests.support.model import LEGACY_LAW


def path(
    symbol: str,
    seed: int,
    n: int = 400,
    step: int = 3600,
    scale: float = 40000.0,
    crash_at: int = 300,
    warm: int = 150,
) -> SymbolInputs:
    rng = np.random.default_rng(seed)
    r = rng.normal(0, 0.008, n)
    r[crash_at : crash_at + 6] = -0.03
    r[crash_at + 20 : crash_at + 24] = 0.035
    c = scale * np.exp(np.cumsum(r))
    o = np.r_[scale, c[:-1]]
    h = np.maximum(o, c) * (1 + np.abs(rng.normal(0, 0.004, n)))
    lo = np.minimum(o, c) * (1 - np.abs(rng.normal(0, 0.004, n)))
    basis = 1 + rng.normal(0, 0.0005, n)
    funding = np.where(np.arange(n) % 8 == 0, rng.normal(0.0001, 0.0004, n), 0.0)
    win = np.arange(n) >= warm
    vol = rng.uniform(5e7, 2e8, n) / scale
    tb = np.where(np.arange(n) > crash_at - 30, rng.uniform(0.4, 0.6, n), 0.5)
    return SymbolInputs.build(
        symbol,
        np.arange(n) * step,
        c,
        open=o,
        high=h,
        low=lo,
        volume=vol,
        mark=(o * basis, h * basis, lo * basis, c * basis),
        funding=funding,
        tb=tb,
        in_window=win,
        target=np.where(win, np.nan, 1e9),
    )


class Capital(Fund):
    name = "capital"

    def __init__(self, capital_usd: float) -> None:
        super().__init__(capital_usd)
        self.balance = capital_usd
        self.calls: list[tuple[str, int, float]] = []

    def receive(self, tick: int, usd: float) -> None:
        self.calls.append(("receive", tick, usd))
        self.balance += usd

    def pay(self, tick: int, usd: float) -> float:
        paid = min(usd, self.balance)
        self.calls.append(("pay", tick, usd))
        self.balance -= paid
        return paid

    def value(self, tick: int) -> float:
        return self.balance


CASES = [
    {},
    {"waterfall": "socialized"},
    {"surplus_mode": "fee"},
    {"trading_fee": "0", "impact_y": "3", "prune_frac": "1e-4"},
    {"size_usd": "5000 300000 30000000", "size_share": "0.2 0.3 0.5"},
]


@pytest.mark.parametrize("overrides", CASES)
@pytest.mark.parametrize("capital", [0.0, 2e6])
def test_conservation_and_balance(overrides, capital):
    p = Params.from_overrides(overrides)
    inputs = [path("BTCUSDT", 1), path("ETHUSDT", 2, scale=2500.0, step=3600)]
    run = replay(inputs, Capital(capital), p)
    cons = conservation(run)
    assert abs(cons["residual"]) <= 1e-6 * cons["traded"] + 1e-6
    for st in run.symbols.values():
        _, side, q = st.positions()
        ql, qs = q[side > 0].sum(), q[side < 0].sum()
        assert ql == pytest.approx(qs, rel=1e-9)  # long notional = short notional
        assert st.acc[K.A_QL] == pytest.approx(ql, rel=1e-9)  # running total = direct sum
        assert abs(st.acc[K.A_FUNDING_NET]) <= 1e-9 * st.acc[K.A_TRADED]
    rec = summarize(run, "syn", "capital").record
    assert set(RECORD_KEYS) <= set(rec)
    assert rec["liq_long_usd"] > 0 and rec["liq_short_usd"] > 0
    assert rec["bad_debt_usd"] == pytest.approx(
        rec["fund_paid_usd"] + rec["adl_haircut_usd"] + rec["unrecovered_usd"]
    )


def test_shared_fund_sees_both_symbols_and_per_symbol_figures_add_up():
    inputs = [path("BTCUSDT", 3), path("ETHUSDT", 4, scale=2500.0)]
    fund = Capital(1e12)
    run = replay(inputs, fund, Params.from_overrides(LEGACY_LAW))  # a law with warm-up bad debt
    res = summarize(run, "syn", "capital")
    paid = sum(u for kind, _, u in fund.calls if kind == "pay")
    assert paid == pytest.approx(res.record["bad_debt_usd"])  # only window bars ask the fund
    assert run.sink_paid > 0  # warm-up bad debt went to the warm-up sink
    assert res.record["adl_notional_usd"] == 0.0  # a rich fund leaves nothing to ADL
    assert sum(f["liq_long_usd"] for f in res.per_symbol.values()) == pytest.approx(
        res.record["liq_long_usd"]
    )
    assert res.record["fund_end_usd"] == pytest.approx(fund.balance)


def test_mixed_resolutions_share_one_clock():
    # ETH at 1h, BTC at 1h then 1m for a stretch: the clock is the union; ETH has no bar on most minutes.
    eth = path("ETHUSDT", 5, n=48, scale=2500.0, crash_at=30, warm=10)
    ts = np.r_[np.arange(24) * 3600, 24 * 3600 + np.arange(120) * 60, 26 * 3600 + np.arange(22) * 3600]
    n = ts.shape[0]
    rng = np.random.default_rng(6)
    c = 40000 * np.exp(np.cumsum(rng.normal(0, 0.003, n)))
    btc = SymbolInputs.build(
        "BTCUSDT",
        ts,
        c,
        volume=np.full(n, 2000.0),
        in_window=np.arange(n) >= 10,
        target=np.where(np.arange(n) >= 10, np.nan, 1e9),
    )
    run = replay([btc, eth], NoFund(), Params())
    assert run.clock.shape[0] == n  # every ETH hour is also a BTC bar open
    assert (run.bar_at_tick["ETHUSDT"] >= 0).sum() == 48
    assert abs(conservation(run)["residual"]) <= 1e-6 * conservation(run)["traded"]


def test_deterministic_bit_identical():
    inputs = [path("BTCUSDT", 7)]
    a = summarize(replay(inputs, NoFund(), Params()), "s", "none")
    b = summarize(replay(inputs, NoFund(), Params()), "s", "none")
    assert a.record == b.record
    assert np.array_equal(a.series["BTCUSDT.market_flow"], b.series["BTCUSDT.market_flow"])


def test_endogenous_path():
    inputs = [path("BTCUSDT", 8)]
    hist = replay(inputs, NoFund(), Params())
    flow = hist.symbols["BTCUSDT"].out[:, K.O_FLOW].copy()
    # the baseline's own flow: no difference, the path is the recorded one
    same = replay(inputs, NoFund(), Params(price_path="endogenous"), baseline_flow={"BTCUSDT": flow})
    assert np.all(same.symbols["BTCUSDT"].mult == 1.0)
    assert np.array_equal(same.symbols["BTCUSDT"].out, hist.symbols["BTCUSDT"].out)
    # a baseline with no forced flow: this run's net selling pushes later prices down (A_t < 0 after
    # a bar with net long liquidations), and decays
    zero = replay(
        inputs, NoFund(), Params(price_path="endogenous"), baseline_flow={"BTCUSDT": np.zeros_like(flow)}
    )
    st = zero.symbols["BTCUSDT"]
    t = int(np.argmax(st.out[:, K.O_FLOW] < 0))
    assert st.mult[t + 1] < 1.0
    assert abs(conservation(zero)["residual"]) <= 1e-6 * conservation(zero)["traded"]


def test_fund_paying_more_than_asked_is_rejected():
    class Greedy(Capital):
        def pay(self, tick: int, usd: float) -> float:
            return usd * 2

    with pytest.raises(ValueError, match="pay"):
        replay([path("BTCUSDT", 9)], Greedy(1e9), Params())
