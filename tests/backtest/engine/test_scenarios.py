"""Hand-computed scenarios: a handful of cohorts on 2-3 bar price paths (docs/MODEL.md).

Common set-up (``book``): bar 0 opens the whole book at mark close 100 (target pins it), later bars
are free with no voluntary flow (open/close volume shares 0), no trading fee. One size class of
5,000 USD (tier 1 of table A: MMR 0.4 %, cum 0), all new notional at 10x unless stated.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from backtest.engine import kernels as K
from backtest.engine.inputs import SymbolInputs
from backtest.engine.params import Params
from backtest.engine.replay import replay
from backtest.engine.results import conservation, summarize
from strategies.base import Fund, NoFund
from tests.support.model import LEGACY_LAW

TEN_X = (0, 0, 0, 1.0, 0, 0, 0, 0, 0, 0)


def params(**kw) -> Params:
    base = {**LEGACY_LAW}
    base.update(
        lev_neutral=TEN_X,
        lev_crowded=TEN_X,
        lev_hedger=TEN_X,
        lev_tilt=0.0,
        size_usd=(5000.0,),
        size_share=(1.0,),
        open_volume_share=0.0,
        close_volume_share=0.0,
        trading_fee=0.0,
        impact_cap=0.05,
    )
    base.update(kw)
    return Params.from_overrides(base)


def book(mark_rows, *, last_rows=None, volume=10.0, funding=None, target=1000.0) -> SymbolInputs:
    """Bars from (open, high, low, close) mark rows; the last price defaults to the mark."""
    mark = np.array(mark_rows, dtype=float)
    last = mark if last_rows is None else np.array(last_rows, dtype=float)
    n = len(mark)
    tgt = np.full(n, np.nan)
    tgt[0] = target
    return SymbolInputs.build(
        "BTCUSDT",
        np.arange(n) * 3600,
        last[:, 3],
        open=last[:, 0],
        high=last[:, 1],
        low=last[:, 2],
        volume=np.full(n, volume),
        mark=(mark[:, 0], mark[:, 1], mark[:, 2], mark[:, 3]),
        funding=funding,
        target=tgt,
    )


class CapitalFund(Fund):
    """Pays bad debt while capital lasts (a test double, not a design)."""

    name = "capital"

    def __init__(self, capital_usd: float) -> None:
        super().__init__(capital_usd)
        self.balance = capital_usd

    def receive(self, tick: int, usd: float) -> None:
        self.balance += usd

    def pay(self, tick: int, usd: float) -> float:
        paid = min(usd, self.balance)
        self.balance -= paid
        return paid

    def value(self, tick: int) -> float:
        return self.balance


def test_gap_through_bankruptcy_goes_to_adl():
    # Bar 0: N = 1000 USD per side at 100 -> long and short cohort, Q = 10 BTC each, w = 100/10 = 10.
    #   LP_long = (100 - 10 - 0/qa) / (1 - 0.004) = 90 / 0.996 = 90.36144578...
    # Bar 1: mark opens 95, low 85 -> long triggered, PT = min(LP, open) = 90.3614...
    #   last bar high 96, low 85, volume 10: sigma = ln(96/85)/sqrt(4 ln 2) = 0.0731;
    #   I = 1 * 0.0731 * sqrt(10/10) = 0.0731 > cap 0.05 -> I = 0.05.
    #   PF = 90.3614 * 0.95 = 85.8434; BP = 100 - 10 = 90; E = 10 * (85.8434 - 90) = -41.566 (bad debt).
    # NoFund pays 0 -> U = 41.566, phi = 1: ADL 10 BTC of the short at P_adl = 90;
    #   short withdraws 10 * (10 + (100 - 90)) = 200; haircut = 10 * (90 - 85.8434) = 41.566.
    inp = book([(100, 100, 100, 100), (95, 96, 85, 88)], last_rows=[(100, 100, 100, 100), (95, 96, 85, 88)])
    run = replay([inp], NoFund(), params())
    out = run.symbols["BTCUSDT"].out
    lp = 90 / 0.996
    pf = lp * 0.95
    bad = 10 * (90 - pf)
    assert out[1, K.O_LONG + K.O_X] == pytest.approx(10.0)
    assert out[1, K.O_LONG + K.O_IMPACT] == pytest.approx(0.05)
    assert out[1, K.O_LONG + K.O_LIQ_USD] == pytest.approx(10 * pf)
    assert out[1, K.O_LONG + K.O_BAD] == pytest.approx(bad)
    assert out[1, K.O_LONG + K.O_SURPLUS] == 0.0
    assert out[1, K.O_LONG + K.O_ADL_Q] == pytest.approx(10.0)
    assert out[1, K.O_LONG + K.O_ADL_USD] == pytest.approx(900.0)
    assert out[1, K.O_LONG + K.O_HAIRCUT] == pytest.approx(bad)
    cons = conservation(run)
    assert cons["deposits"] == pytest.approx(200.0)
    assert cons["withdrawals"] == pytest.approx(200.0)  # the short got 100 margin + 100 profit
    assert abs(cons["residual"]) < 1e-9
    assert run.symbols["BTCUSDT"].positions()[0].size == 0  # both sides gone: OI 0
    rec = summarize(run, "t", "none").record
    assert rec["bad_debt_usd"] == pytest.approx(bad)
    assert rec["adl_notional_usd"] == pytest.approx(900.0)
    assert rec["oi_min_usd"] == 0.0


def test_fund_pays_part_adl_takes_the_rest_absorption_the_remainder():
    # As above, but the fund holds 30: pays 30 of 41.566, U = 11.566.
    #   phi = 11.566 / 41.566 = 0.27826; q_adl = 10 phi = 2.7826 BTC at 90 (ADL notional 250.43);
    #   the other 7.2174 BTC are absorbed by the short at P_abs = (10 PF - 2.7826 PF) / 7.2174 = PF.
    #   short withdraws 2.7826 * (10 + 10) + 7.2174 * (10 + 100 - PF).
    inp = book([(100, 100, 100, 100), (95, 96, 85, 88)])
    fund = CapitalFund(30.0)
    run = replay([inp], fund, params())
    out = run.symbols["BTCUSDT"].out
    pf = 90 / 0.996 * 0.95
    bad = 10 * (90 - pf)
    phi = (bad - 30.0) / bad
    q_adl = 10 * phi
    assert run.fund_paid.sum() == pytest.approx(30.0)
    assert fund.balance == pytest.approx(0.0)
    assert out[1, K.O_LONG + K.O_ADL_Q] == pytest.approx(q_adl)
    assert out[1, K.O_LONG + K.O_ADL_USD] == pytest.approx(q_adl * 90)
    assert out[1, K.O_LONG + K.O_HAIRCUT] == pytest.approx(bad - 30.0)
    assert out[1, K.O_LONG + K.O_PABS] == pytest.approx(pf)
    cons = conservation(run)
    assert cons["withdrawals"] == pytest.approx(q_adl * 20 + (10 - q_adl) * (110 - pf))
    assert abs(cons["residual"]) < 1e-9


@pytest.mark.parametrize("mode,to_fund", [("margin", 1.0), ("fee", None)])
def test_surplus_margin_or_clearance_fee(mode, to_fund):
    # Mark low 90 < LP 90.3614, open 95; the last price is flat (high = low) -> sigma = 0 -> I = 0.
    #   PF = PT = 90.3614; leftover E = 10 * (90.3614 - 90) = 3.6145.
    #   margin mode: all 3.6145 to the fund. fee mode (0.2 %): 0.002 * 10 * 90.3614 = 1.8072 to the
    #   fund, 1.8072 back to the trader. The short absorbs 10 BTC at 90.3614:
    #   withdraws 10 * (10 + 100 - 90.3614) = 196.386.
    lp = 90 / 0.996
    inp = book([(100, 100, 100, 100), (95, 96, 90, 92)], last_rows=[(100, 100, 100, 100), (95, 95, 95, 95)])
    run = replay([inp], NoFund(), params(surplus_mode=mode, clearance_fee=0.002))
    out = run.symbols["BTCUSDT"].out
    leftover = 10 * (lp - 90)
    fee = 0.002 * 10 * lp
    assert out[1, K.O_LONG + K.O_IMPACT] == 0.0
    assert out[1, K.O_LONG + K.O_BAD] == 0.0
    expect = leftover if mode == "margin" else fee
    assert out[1, K.O_LONG + K.O_SURPLUS] == pytest.approx(expect)
    assert run.fund_received.sum() == pytest.approx(expect)
    cons = conservation(run)
    returned = 0.0 if mode == "margin" else leftover - fee
    assert cons["withdrawals"] == pytest.approx(10 * (110 - lp) + returned)
    assert abs(cons["residual"]) < 1e-9


def test_partial_liquidation_to_the_lower_bracket():
    # One size class of 100,000 USD: tier 2 of table A (floor 50k, MMR 0.5 %, cum 50).
    #   At 100: qa = 1000 BTC per account, w = 10, Q = 10 BTC (N = 1000).
    #   LP(tier 2) = (100 - 10 - 50/1000) / (1 - 0.005) = 89.95 / 0.995 = 90.40201.
    # Bar 1: mark low 90.38 (below 90.402, above the tier-1 LP 90/0.996 = 90.3614), open 95:
    #   stage 1 at PT = 90.40201: qa' = 50,000 / 90.40201 = 553.085; piece = 10 (1 - 0.553085) = 4.46915;
    #   remaining Q = 5.53085 in tier 1 (LP 90.3614 not reached -> stop).
    #   I = 0 (flat last price): surplus = 4.46915 * (90.40201 - 90) = 1.79665.
    lp2 = 89.95 / 0.995
    qa2 = 50_000 / lp2
    piece = 10 * (1 - qa2 / 1000)
    inp = book(
        [(100, 100, 100, 100), (95, 96, 90.38, 92)], last_rows=[(100, 100, 100, 100), (95, 95, 95, 95)]
    )
    run = replay([inp], NoFund(), params(size_usd=(100_000.0,)))
    st = run.symbols["BTCUSDT"]
    out = st.out
    assert out[1, K.O_LONG + K.O_EVENTS] == 1.0
    assert out[1, K.O_LONG + K.O_X] == pytest.approx(piece)
    assert out[1, K.O_LONG + K.O_SURPLUS] == pytest.approx(piece * (lp2 - 90))
    idx, side, q = st.positions()
    long_i, long_q = idx[side > 0][0], q[side > 0][0]
    assert long_q == pytest.approx(10 - piece)
    assert st.fs[K.QA, long_i] == pytest.approx(qa2)
    assert st.cs[K.TIER, long_i] == 0
    assert st.fs[K.LP, long_i] == pytest.approx(90 / 0.996)
    # the short absorbed the piece: long Q = short Q again
    assert st.acc[K.A_QL] == pytest.approx(st.acc[K.A_QS])
    assert abs(conservation(run)["residual"]) < 1e-9


def test_partial_then_full_in_one_bar():
    # Same book; mark low 90.0 crosses both LPs: stage 1 (piece 4.46915 at 90.40201), stage 2 at
    #   PT = 90.36145 closes the remaining 5.53085. Two events, X = 10.
    inp = book([(100, 100, 100, 100), (95, 96, 90.0, 92)], last_rows=[(100, 100, 100, 100), (95, 95, 95, 95)])
    run = replay([inp], NoFund(), params(size_usd=(100_000.0,)))
    out = run.symbols["BTCUSDT"].out
    lp2 = 89.95 / 0.995
    piece = 10 * (1 - 50_000 / lp2 / 1000)
    assert out[1, K.O_LONG + K.O_EVENTS] == 2.0
    assert out[1, K.O_LONG + K.O_X] == pytest.approx(10.0)
    expect = piece * (lp2 - 90) + (10 - piece) * (90 / 0.996 - 90)
    assert out[1, K.O_LONG + K.O_SURPLUS] == pytest.approx(expect)


def test_funding_moves_margin_and_liquidation_price():
    # Bar 1 settles +0.1 % at mark open 100: longs pay 0.001 * 100 = 0.1 per BTC: w_long 9.9, w_short 10.1.
    #   LP_long = (100 - 9.9) / 0.996 = 90.4618; mark low 90.40 now liquidates (it would not at 9.9 -> no).
    #   Net funding = 10 * 0.1 - 10 * 0.1 = 0.
    inp = book(
        [(100, 100, 100, 100), (100, 100, 90.40, 95)],
        funding=[0.0, 0.001],
        last_rows=[(100, 100, 100, 100), (100, 100, 100, 100)],
    )
    run = replay([inp], NoFund(), params())
    out = run.symbols["BTCUSDT"].out
    lp = 90.1 / 0.996
    assert out[1, K.O_LONG + K.O_X] == pytest.approx(10.0)
    assert out[1, K.O_LONG + K.O_SURPLUS] == pytest.approx(10 * (lp - 90.1))
    assert run.symbols["BTCUSDT"].acc[K.A_FUNDING_NET] == pytest.approx(0.0, abs=1e-12)
    # without funding the same bar liquidates nobody: 90.40 > 90 / 0.996 = 90.3614
    run0 = replay([book([(100, 100, 100, 100), (100, 100, 90.40, 95)])], NoFund(), params())
    assert run0.symbols["BTCUSDT"].out[1, K.O_LONG + K.O_X] == 0.0


def test_adl_ranks_by_pnl_pct_times_effective_leverage():
    # Half the notional at 5x, half at 20x (N = 1000 -> 500 each: Q = 5 BTC per cohort).
    #   long 20x: w = 5, LP = 95 / 0.996 = 95.3815; long 5x: w = 20, LP = 80 / 0.996 = 80.32.
    # Bar 1: mark open 99, low 94 -> only the 20x long; PF = 95.3815 * 0.95 = 90.6124 (cap),
    #   BP = 95, bad debt = 5 * (95 - 90.6124) = 21.938, all uncovered -> q_adl = 5 at P_adl = 95.
    # Shorts at P_adl = 95, u = 100 - 95 = 5:
    #   5x  (w 20): pnl% = 5/20 = 0.25, eff. lev = 95/(20+5) = 3.8 -> score 0.95
    #   20x (w 5):  pnl% = 5/5 = 1.0,  eff. lev = 95/(5+5) = 9.5 -> score 9.5  -> ADL'd first, fully.
    mix = (0, 0, 0.5, 0, 0.5, 0, 0, 0, 0, 0)
    p = params(lev_neutral=mix, lev_crowded=mix, lev_hedger=mix)
    # volume 1: sigma = ln(99/94)/sqrt(4 ln 2) = 0.0311, I = 0.0311 * sqrt(5/1) = 0.0696 -> cap 0.05
    inp = book([(100, 100, 100, 100), (99, 99, 94, 96)], volume=1.0)
    run = replay([inp], NoFund(), p)
    st = run.symbols["BTCUSDT"]
    pf = 95 / 0.996 * 0.95
    assert st.out[1, K.O_LONG + K.O_BAD] == pytest.approx(5 * (95 - pf))
    assert st.out[1, K.O_LONG + K.O_ADL_Q] == pytest.approx(5.0)
    idx, side, q = st.positions()
    shorts = {st.fs[K.LEV, i]: qi for i, s, qi in zip(idx, side, q, strict=True) if s < 0}
    assert shorts == {5.0: pytest.approx(5.0)}  # the 20x short is gone, the 5x short untouched
    assert abs(conservation(run)["residual"]) < 1e-9


def test_socialized_loss_charges_winners_pro_rata_to_profit():
    # Same bar as the ADL test but waterfall = socialized: U = 21.938 charged to the shorts'
    #   profit at mark close 96: both shorts have profit 5 * (100 - 96) = 20 -> 10.969 each;
    #   w drops by 10.969 / 5 = 2.1938 per BTC; positions stay; the 20x long is absorbed by both
    #   shorts pro rata (2.5 BTC each) at PF.
    mix = (0, 0, 0.5, 0, 0.5, 0, 0, 0, 0, 0)
    p = params(lev_neutral=mix, lev_crowded=mix, lev_hedger=mix, waterfall="socialized")
    run = replay([book([(100, 100, 100, 100), (99, 99, 94, 96)], volume=1.0)], NoFund(), p)
    st = run.symbols["BTCUSDT"]
    bad = 5 * (95 - 95 / 0.996 * 0.95)
    assert st.out[1, K.O_LONG + K.O_HAIRCUT] == pytest.approx(bad)
    assert st.out[1, K.O_LONG + K.O_ADL_Q] == 0.0
    idx, side, q = st.positions()
    shorts = {st.fs[K.LEV, i]: (qi, st.fs[K.W, i]) for i, s, qi in zip(idx, side, q, strict=True) if s < 0}
    assert shorts[5.0] == (pytest.approx(2.5), pytest.approx(20 - bad / 2 / 5))
    assert shorts[20.0] == (pytest.approx(2.5), pytest.approx(5 - bad / 2 / 5))
    assert abs(conservation(run)["residual"]) < 1e-9


def test_impact_square_root_law_below_cap():
    # X = 10 BTC, volume 1000, last high 101 low 99: sigma = ln(101/99)/sqrt(4 ln 2) = 0.012016;
    #   I = 1.0 * 0.012016 * sqrt(10/1000) = 0.0012016 (below the cap).
    sigma = math.log(101 / 99) / math.sqrt(4 * math.log(2))
    inp = book(
        [(100, 100, 100, 100), (95, 96, 89, 92)],
        last_rows=[(100, 100, 100, 100), (100, 101, 99, 100)],
        volume=1000.0,
    )
    run = replay([inp], NoFund(), params())
    assert run.symbols["BTCUSDT"].out[1, K.O_LONG + K.O_IMPACT] == pytest.approx(sigma * math.sqrt(0.01))


def test_take_over_keeps_part_of_the_last_piece_and_sells_it_from_the_next_open():
    # MODEL §5.6, tau = 3600 s on 1 h bars: f = 1 - exp(-1) = 0.63212...
    # Bar 0: 10 BTC long / 10 short at 100, w = 10, BP_long = 90, LP = 90 / 0.996 = 90.3614.
    # Bar 1: mark 95 / 96 / 85 / 88 -> the long (tier 1: one last piece of 10) triggers at PT = LP.
    #   Sold now: q_m = 10 f = 6.3212; taken over: q_k = 10 - q_m = 3.6788 at BP 90 (cost 331.09).
    #   Impact on what the bar sells: sigma = ln(96/85)/sqrt(4 ln 2) = 0.07307, I = sigma sqrt(6.3212/10)
    #   = 0.05810 -> capped at 0.05; PF = LP * 0.95 = 85.8434; bad debt on the sold part
    #   6.3212 * (90 - 85.8434) = 26.275 (the fund pays it: capital 1e6, no ADL).
    # Bar 2: mark 88 / 99 / 88 / 98 (a rebound). Offload u = f * 3.6788 = 2.3255 from the mark open 88:
    #   sigma = ln(99/88)/sqrt(4 ln 2) = 0.07075, I = min(0.05, 0.07075 sqrt(2.3255/10)) = 0.03412;
    #   fill = 88 * (1 - 0.03412) = 84.997; P&L = 2.3255 * (84.997 - 90) = -11.634 (bad debt).
    #   Inventory left 3.6788 - 2.3255 = 1.3533 at cost 90: unrealised at 98 = 1.3533 * 8 = 10.826.
    f = 1.0 - math.exp(-1.0)
    rows = [(100, 100, 100, 100), (95, 96, 85, 88), (88, 99, 88, 98)]
    inp = book(rows, last_rows=rows)
    run = replay([inp], CapitalFund(1e6), params(takeover_tau_s=3600.0))
    st = run.symbols["BTCUSDT"]
    out = st.out
    lp = 90 / 0.996
    q_m, q_k = 10 * f, 10 - 10 * f
    assert out[1, K.O_TK] == pytest.approx(q_k, rel=1e-12)
    assert out[1, K.O_LONG + K.O_X] == pytest.approx(q_m, rel=1e-12)
    assert out[1, K.O_LONG + K.O_LIQ_USD] == pytest.approx(10 * lp * 0.95, rel=1e-12)  # the whole piece
    assert out[1, K.O_LONG + K.O_BAD] == pytest.approx(q_m * (90 - lp * 0.95), rel=1e-12)
    u = f * q_k
    sigma = math.log(99 / 88) / math.sqrt(4 * math.log(2))
    fill = 88 * (1 - min(0.05, sigma * math.sqrt(u / 10)))
    assert out[2, K.O_OFF] == pytest.approx(u, rel=1e-12)
    assert out[2, K.O_LONG + K.O_BAD] == pytest.approx(u * (90 - fill), rel=1e-12)
    assert out[2, K.O_INV] == pytest.approx(q_k - u, rel=1e-12)
    res = summarize(run)
    assert res.record["fund_inventory_pnl_usd"] == pytest.approx((q_k - u) * (98 - 90), rel=1e-12)
    assert abs(conservation(run)["residual"]) < 1e-9
    # tau = 0 is the model without take-over: every last piece sold in its bar
    run0 = replay([inp], CapitalFund(1e6), params())
    assert run0.symbols["BTCUSDT"].out[1, K.O_TK] == 0.0
    assert run0.symbols["BTCUSDT"].out[1, K.O_LONG + K.O_X] == 10.0
