"""Hand-computed checks of the December 2026 model terms: the depth law (MODEL §5.3), OI regrowth
(§6), the venue surplus rule (§5.4) and bar coarsening for the resolution check.

Set-up as in test_scenarios.py: bar 0 opens the book at mark close 100 (pinned), later bars free,
no trading fee, one cohort per side unless stated.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from backtest.engine import kernels as K
from backtest.engine.book import regrowth
from backtest.engine.inputs import SymbolInputs, coarsen
from backtest.engine.liquidity import impact_scale
from backtest.engine.params import Params
from backtest.engine.replay import replay
from backtest.engine.results import conservation, summarize
from backtest.engine.venue_rules import CUM, MMR, TABLE_A, venue_rules
from strategies.base import NoFund
from tests.reference_engine import CappedFund, compare_results, run_reference

C = math.sqrt(4.0 * math.log(2.0))
TEN_X = (0, 0, 0, 1.0, 0, 0, 0, 0, 0, 0)


def params(**kw) -> Params:
    base = dict(lev_neutral=TEN_X, lev_crowded=TEN_X, lev_hedger=TEN_X, lev_tilt=0.0, size_usd=(5000.0,),
                size_share=(1.0,), open_volume_share=0.0, close_volume_share=0.0, trading_fee=0.0,
                impact_cap=0.5, impact_range="mark", impact_kappa=0.0, impact_beta=0.0, oi_regrow_s=0.0,
                surplus_mode="margin")
    base.update(kw)
    return Params.from_overrides(base)


def bars(mark_rows, *, dt=3600, last_rows=None, volume=10.0, target=1000.0, warm=1, **kw) -> SymbolInputs:
    mark = np.array(mark_rows, dtype=float)
    last = mark if last_rows is None else np.array(last_rows, dtype=float)
    n = len(mark)
    tgt = np.full(n, np.nan)
    tgt[:warm] = target
    return SymbolInputs.build("BTCUSDT", np.arange(n) * dt, last[:, 3], open=last[:, 0], high=last[:, 1],
                              low=last[:, 2], volume=np.full(n, volume),
                              mark=(mark[:, 0], mark[:, 1], mark[:, 2], mark[:, 3]), target=tgt,
                              in_window=np.arange(n) >= warm, **kw)


# -- §5.3 the depth law --------------------------------------------------------------------------

def test_impact_scale_by_hand():
    # three 1 h bars: mark ranges 100-110, 90-110, 100-100 (flat); last ranges differ
    inp = bars([(100, 110, 100, 105), (105, 110, 90, 95), (100, 100, 100, 100)],
               last_rows=[(100, 120, 100, 105), (105, 110, 80, 95), (100, 101, 99, 100)])
    s_mark = [math.log(1.1) / C, math.log(110 / 90) / C, 0.0]
    s_last = [math.log(1.2) / C, math.log(110 / 80) / C, math.log(101 / 99) / C]
    assert impact_scale(inp.bars, inp.dt, params()) == pytest.approx(s_mark, rel=1e-15)
    assert impact_scale(inp.bars, inp.dt, params(impact_range="last")) == pytest.approx(s_last, rel=1e-15)
    # beta: (60 / 3600)^0.5 on every bar of an hour
    got = impact_scale(inp.bars, inp.dt, params(impact_beta=0.5))
    assert got == pytest.approx([s * math.sqrt(60 / 3600) for s in s_mark], rel=1e-14)
    # kappa = 1, half-life = one bar: N0 = s0^2/dt (ratio 1), N1 = N0 + 0.5 (s0^2/dt - N0) = N0,
    # so S1 = s1 (s1 / s0); N2 = N1 + 0.5 (s1^2/dt - N1)
    got = impact_scale(inp.bars, inp.dt, params(impact_kappa=1.0, impact_norm_halflife_s=3600.0))
    assert got[0] == pytest.approx(s_mark[0], rel=1e-14)
    assert got[1] == pytest.approx(s_mark[1] * s_mark[1] / s_mark[0], rel=1e-14)
    assert got[2] == 0.0  # a flat bar has no impact whatever its normal level
    # the EWMA weight: a fourth bar (range 100-120) sees N3 = N2 + 0.5 (0 - N2), N2 = N1 + 0.5 (s1^2/dt - N1)
    inp4 = bars([(100, 110, 100, 105), (105, 110, 90, 95), (100, 100, 100, 100), (100, 120, 100, 110)])
    got = impact_scale(inp4.bars, inp4.dt, params(impact_kappa=1.0, impact_norm_halflife_s=3600.0))
    n1 = s_mark[0] ** 2 / 3600
    n2 = n1 + 0.5 * (s_mark[1] ** 2 / 3600 - n1)
    n3 = n2 + 0.5 * (0.0 - n2)
    s3 = math.log(1.2) / C
    assert got[3] == pytest.approx(s3 * s3 / math.sqrt(n3 * 3600), rel=1e-13)
    # a half-life of 3 bars weighs the past 2^(-1/3) per bar
    got = impact_scale(inp4.bars, inp4.dt, params(impact_kappa=1.0, impact_norm_halflife_s=3 * 3600.0))
    a = 1 - 2 ** (-1 / 3)
    m2 = n1 + a * (s_mark[1] ** 2 / 3600 - n1)
    m3 = m2 + a * (0.0 - m2)
    assert got[3] == pytest.approx(s3 * s3 / math.sqrt(m3 * 3600), rel=1e-13)


def test_a_venue_only_wick_moves_the_fill_only_with_the_last_range():
    # the long (10x, LP ~90.36) is liquidated in bar 1; the last price wicks to 60, the mark to 85
    rows = [(100, 100, 100, 100), (100, 100, 85, 95)]
    last = [(100, 100, 100, 100), (100, 100, 60, 95)]
    fills = {}
    for rng in ("mark", "last"):
        p = params(impact_range=rng, impact_y=1.0)
        res = summarize(replay([bars(rows, last_rows=last)], NoFund(), p))
        fills[rng] = res.record["liq_long_usd"]
    x = 1000.0 / 100  # the whole long book, base units
    lp = (100 - 10 - 0) / (1 - TABLE_A[0, MMR])  # w = EP/10, cum 0
    for rng, (hi, lo) in {"mark": (100, 85), "last": (100, 60)}.items():
        i = math.log(hi / lo) / C * math.sqrt(x / 10.0)
        assert fills[rng] == pytest.approx(x * lp * (1 - min(i, 0.5)), rel=1e-12)
    assert fills["mark"] > fills["last"]


# -- §6 regrowth ----------------------------------------------------------------------------------

def test_regrowth_reference_and_rate():
    inp = bars([(100, 100, 100, 100), (100, 100, 100, 80), (80, 80, 80, 80)], target=1000.0)
    mclose = inp.bars[:, K.B_MCLOSE]
    q_ref, rate = regrowth(inp.target, inp.in_window, mclose, inp.dt, params(oi_regrow_s=3600.0))
    assert q_ref == pytest.approx(10.0)  # 1000 USD at mark close 100
    assert rate == pytest.approx([0.0, 1 - math.exp(-1.0), 1 - math.exp(-1.0)])
    assert regrowth(inp.target, inp.in_window, mclose, inp.dt, params())[1].sum() == 0.0


def test_regrowth_opens_toward_the_pre_window_book_in_base_units():
    # bar 1 (in the window) liquidates the long (LP ~90.36) and its absorbers close the shorts: the book
    # is 0 after the waterfall; at bar 1's close (mark 80) regrowth opens r x (Q_ref x 80 - 0) with
    # r = 1 - exp(-1), bar 2 r x the remaining gap, and so on: 800 x (1 - (1 - r)^k) after k bars
    rows = [(100, 100, 100, 100), (100, 100, 85, 80), (80, 80, 80, 80), (80, 80, 80, 80)]
    inp = bars(rows, target=1000.0)
    p = params(oi_regrow_s=3600.0, impact_y=0.0)
    run = replay([inp], NoFund(), p)
    out = run.symbols["BTCUSDT"].out
    r = 1 - math.exp(-1.0)
    assert out[1, K.O_LONG + K.O_X] == pytest.approx(10.0)  # the whole pre-window book liquidated
    for k in (1, 2, 3):
        assert out[k, K.O_OPEN_USD] == pytest.approx(r * 800 * (1 - r) ** (k - 1))
        assert out[k, K.O_OI] == pytest.approx(800 * (1 - (1 - r) ** k))
    cons = conservation(run)
    assert abs(cons["residual"]) <= 1e-9 * cons["traded"]
    # in USD the book would regrow toward 1000; in base units toward 10 BTC = 800 USD at mark 80
    assert out[3, K.O_OI] < 800
    no = replay([inp], NoFund(), params(impact_y=0.0)).symbols["BTCUSDT"].out
    assert no[3, K.O_OI] == 0.0  # without regrowth nothing comes back


# -- §5.4 the venue surplus rule ------------------------------------------------------------------

def test_venue_rule_fee_on_the_partial_pieces_margin_on_the_last():
    """A 2M account (tier 4 of table A: MMR 2.5 %, cum 16,300) at 10x, one bar down to 80: the stages
    cut it to the 1M, 250k and 50k floors (partial pieces: the fund gets the 0.5 % fee, at most the
    margin left; the trader keeps the rest), then the tier-1 remainder is closed (all margin to the
    fund). Written out from MODEL §5.1/§5.4 with no impact."""
    rows = [(100, 100, 100, 100), (100, 100, 80, 80)]
    assert venue_rules("binanceusdm").surplus_rule()[0] == 0.005
    rate = 0.002  # below the tier-1 margin (0.4 %), so the last piece tells venue from fee mode
    inp = bars(rows, target=2_000_000.0, clearance_rate=rate)
    w, qa, q = 10.0, 20_000.0, 20_000.0  # one account: EP 100, margin 10 per unit
    fund = {"margin": 0.0, "fee": 0.0, "venue": 0.0}
    kept = {"margin": 0.0, "fee": 0.0, "venue": 0.0}
    binding = 0
    for k in (3, 2, 1, 0):  # 0-based tiers: 2.5 %, 1 %, 0.5 %, 0.4 %
        lp = (100 - w - TABLE_A[k, CUM] / qa) / (1 - TABLE_A[k, MMR])
        qa_after = min(qa, TABLE_A[k, 0] / lp) if k > 0 else 0.0
        piece = q * (1 - qa_after / qa)
        e = piece * (lp - (100 - w))
        fee = min(e, rate * piece * lp)
        binding += fee < e
        fund["margin"] += e
        fund["fee"] += fee
        fund["venue"] += fee if k > 0 else e
        kept["fee"] += e - fee
        kept["venue"] += (e - fee) if k > 0 else 0.0
        q, qa = q * (qa_after / qa) if k > 0 else 0.0, qa_after
    assert binding == 4  # the fee binds on every stage: the three modes differ
    res = {}
    for mode in ("margin", "fee", "venue"):
        p = params(size_usd=(2_000_000.0,), impact_y=0.0, surplus_mode=mode, clearance_fee=rate)
        run = replay([inp], NoFund(), p)
        res[mode] = summarize(run, "t", "none")
        assert res[mode].record["surplus_usd"] == pytest.approx(fund[mode], rel=1e-12), mode
        assert res[mode].record["liq_count"] == 4
        cons = conservation(run)
        assert abs(cons["residual"]) <= 1e-9 * cons["traded"]
    assert fund["fee"] < fund["venue"] < fund["margin"]
    # what the fund does not take stays with the trader: the withdrawals differ by exactly that
    wd = {}
    for m in ("margin", "venue"):
        p = params(size_usd=(2_000_000.0,), impact_y=0.0, surplus_mode=m, clearance_fee=rate)
        wd[m] = conservation(replay([inp], NoFund(), p))["withdrawals"]
    assert wd["venue"] - wd["margin"] == pytest.approx(kept["venue"], rel=1e-9)


def test_surplus_rule_comes_from_the_venue_by_period():
    rules = venue_rules("binanceusdm")
    rate, note = rules.surplus_rule(np.datetime64("2021-05-19").astype(object))
    assert rate == 0.005 and "0.5 %" in note and "Binance FAQ" in note
    assert rules.surplus_rule()[0] == 0.005


# -- the three terms together: the reference agrees on a small crash --------------------------------

@pytest.mark.parametrize("surplus", ["venue", "fee", "margin"])
def test_reference_agrees_with_all_terms_on(surplus):
    rows = [(100, 101, 99, 100), (100, 102, 98, 101), (101, 101, 70, 75), (75, 90, 74, 88), (88, 95, 87, 94)]
    inp = bars(rows, target=50_000.0, warm=2, volume=50.0)
    p = params(size_usd=(5000.0, 100_000.0, 2_000_000.0), size_share=(0.3, 0.3, 0.4),
               lev_neutral=(0.1, 0.1, 0.2, 0.2, 0.1, 0.1, 0.1, 0.05, 0.03, 0.02), impact_y=2.0,
               impact_kappa=1.0, impact_beta=0.3, impact_norm_halflife_s=7200.0, oi_regrow_s=7200.0,
               open_volume_share=0.01, close_volume_share=0.01, surplus_mode=surplus)
    fast = summarize(replay([inp], CappedFund(1e3), p))
    ref = run_reference([inp], CappedFund(1e3), p)
    assert compare_results(fast, ref) == []
    assert fast.record["liq_long_usd"] > 0 and fast.record["bad_debt_usd"] > 0


# -- coarsening (the resolution check) ---------------------------------------------------------------

def test_coarsen_merges_bars_like_an_exchange_kline():
    rows = [(100, 101, 99, 100), (100, 103, 97, 102), (102, 104, 101, 103), (103, 103, 90, 95)]
    inp = bars(rows, dt=60, volume=5.0, warm=2)
    inp.funding[1] = 0.001
    inp.tb[:] = [0.5, 0.7, 0.4, 0.6]
    out = coarsen(inp, 120)
    assert out.n == 2 and list(out.ts) == [0, 120] and list(out.dt) == [120.0, 120.0]
    b = out.bars
    assert (b[0, K.B_MOPEN], b[0, K.B_MHIGH], b[0, K.B_MLOW], b[0, K.B_MCLOSE]) == (100, 103, 97, 102)
    assert (b[1, K.B_OPEN], b[1, K.B_HIGH], b[1, K.B_LOW], b[1, K.B_CLOSE]) == (102, 104, 90, 95)
    assert b[0, K.B_VOL] == 10.0 and out.funding[0] == 0.001
    assert out.tb == pytest.approx([0.6, 0.5])
    assert list(out.in_window) == [False, True]
    assert math.isnan(out.target[1]) and out.target[0] == 1000.0


# -- calibrate: the fund of an outcome holds its balance at the interval start -------------------------

def test_interval_fund_holds_the_reported_balance_from_the_first_tick_of_the_interval():
    from backtest.calibrate import FundSeries
    from backtest.calibrate_run import IntervalFund

    clock = np.arange(6) * 3600
    fund = IntervalFund(100.0, 2 * 3600, clock)
    assert fund.first == 2
    # before the interval: covers all bad debt, keeps no surplus, holds the balance
    assert fund.pay(0, 500.0) == 500.0 and fund.value(0) == 100.0
    fund.receive(1, 7.0)
    assert fund.value(1) == 100.0
    # from tick 2: a static fund of 100
    fund.receive(2, 5.0)
    assert fund.pay(3, 30.0) == 30.0 and fund.value(3) == 75.0
    assert fund.pay(4, 500.0) == 75.0 and fund.value(4) == 0.0
    values = [100.0, 100.0, 105.0, 75.0, 0.0, 0.0]
    series = FundSeries(clock=clock, value=np.array(values), start_usd=100.0, symbols=("BTCUSDT",))
    from datetime import datetime, timedelta
    t0 = datetime(1970, 1, 1)
    # the change over [tick 2, tick 4): value after tick 3 minus value after tick 1 (= the balance)
    assert series.change(t0 + timedelta(hours=2), t0 + timedelta(hours=4)) == pytest.approx(-25.0)
