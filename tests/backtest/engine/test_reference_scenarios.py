"""Hand-computed micro scenarios, asserted on BOTH engines (fast numba engine and tests/reference_engine).

Every expected number is derived by hand from docs/MODEL.md in the comments and written as plain
arithmetic here (never by calling either engine's formulas). Common set-up (``params``/``sym``):
bar 0 (warm-up) opens the whole book at mark 100, pinned by the OI target; later bars are free with
no voluntary flow (close/open volume shares 0), no trading fee, no impact (impact_y 0, volume 1 > 0).
One size class of 5,000 USD: tier 1 of table A (MMR 0.4 %, cum 0), all notional at 10x unless stated.
Bars are 60 s apart, so liquidated USD per minute = liquidated USD of the bar.

10x cohort at 100: w = 100/10 = 10, qa = 5000/100 = 50, BP_long = 90, BP_short = 110,
LP_long = (100 - 10 - 0/50)/(1 - 0.004) = 90/0.996 = 90.3614..., LP_short = 110/1.004 = 109.5617...
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from backtest.engine.inputs import SymbolInputs
from backtest.engine.params import Params
from backtest.engine.replay import replay
from backtest.engine.results import summarize
from strategies.base import NoFund
from tests.reference_engine import CappedFund, compare_results, replay_reference, summarize_reference
from tests.support.model import LEGACY_LAW

BUCKETS = (2, 3, 5, 10, 20, 25, 50, 75, 100, 125)


def weights(**by_lev: float) -> tuple[float, ...]:
    """Leverage weights from e.g. x10=0.5, x2=0.5."""
    return tuple(by_lev.get(f"x{b}", 0.0) for b in BUCKETS)


TEN_X = weights(x10=1.0)
LP_LONG = 90 / 0.996  # 10x long at 100, tier 1
LP_SHORT = 110 / 1.004  # 10x short at 100, tier 1
SIGMA_ONE = math.exp(math.sqrt(4 * math.log(2)))  # high/low ratio whose Parkinson sigma is exactly 1


def params(**kw) -> Params:
    base = {**LEGACY_LAW, **dict(lev_neutral=TEN_X, lev_crowded=TEN_X, lev_hedger=TEN_X, lev_tilt=0.0,
                                 size_usd=(5000.0,), size_share=(1.0,), open_volume_share=0.0,
                                 close_volume_share=0.0, trading_fee=0.0, impact_y=0.0, prune_frac=0.0)}
    base.update(kw)
    return Params.from_overrides(base)


def sym(mark_rows, *, name="BTCUSDT", last_rows=None, volume=1.0, vusd=None, targets=(1000.0,), warm=1,
        funding=None, tb=None) -> SymbolInputs:
    """Bars from (open, high, low, close) mark rows; the last price defaults to the mark."""
    mark = np.array(mark_rows, dtype=float)
    last = mark if last_rows is None else np.array(last_rows, dtype=float)
    n = len(mark)
    target = np.full(n, np.nan)
    target[: len(targets)] = targets
    return SymbolInputs.build(
        name, np.arange(n) * 60, last[:, 3], open=last[:, 0], high=last[:, 1], low=last[:, 2],
        volume=np.broadcast_to(np.asarray(volume, dtype=float), (n,)).copy(),
        vusd=None if vusd is None else np.asarray(vusd, dtype=float),
        mark=(mark[:, 0], mark[:, 1], mark[:, 2], mark[:, 3]), funding=funding, tb=tb,
        in_window=np.arange(n) >= warm, target=target,
    )


FLAT = (100.0, 100.0, 100.0, 100.0)


def both(inputs, p: Params, fund_factory=NoFund, baseline_flow=None):
    """(fast result, reference result, reference run); also asserts the two agree on everything."""
    fast = summarize(replay(inputs, fund_factory(), p, baseline_flow=baseline_flow))
    run = replay_reference(inputs, fund_factory(), p, baseline_flow=baseline_flow)
    ref = summarize_reference(run)
    assert compare_results(fast, ref) == []
    for r in (fast, ref):  # conservation holds in every scenario
        assert abs(r.record["conservation_residual_usd"]) <= 1e-9 * max(r.record["traded_usd"], 1.0)
    return fast, ref, run


def check(results, key: str, expected: float, per_symbol: str | None = None) -> None:
    for r in results[:2]:
        got = r.record[key] if per_symbol is None else r.per_symbol[per_symbol][key]
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-9), (key, got, expected)


def check_series(results, key: str, expected: list[float]) -> None:
    for r in results[:2]:
        assert [float(x) for x in r.series[key]] == pytest.approx(expected, rel=1e-9, abs=1e-9), key


def test_liquidation_at_lp_surplus_and_absorption():
    # bar 1: mark low 89 <= LP_long 90.36 -> trigger PT = min(LP, mark_open 100) = LP; fill = PT (no impact)
    # leftover E = Q (w + PF - EP) = 10 (10 + 90.3614 - 100) = 3.6145 >= 0 -> surplus to the fund
    # the short (LP 109.56 > high 100) absorbs all 10 at P_abs = PF; both books are then empty
    r = both([sym([FLAT, (100, 100, 89, 95)])], params(), lambda: CappedFund(0.0))
    surplus = 10 * (10 + LP_LONG - 100)
    check(r, "liq_count", 1)
    check(r, "liq_accounts", 10 / 50)  # piece / qa
    check(r, "liq_long_usd", 10 * LP_LONG)
    check(r, "liq_short_usd", 0)
    check(r, "peak_liq_usd_per_min", 10 * LP_LONG / (60 / 60))
    check(r, "surplus_usd", surplus)
    check(r, "bad_debt_usd", 0)
    check(r, "fund_end_usd", surplus)
    check(r, "oi_start_usd", 10 * 100)
    check(r, "oi_min_usd", 0)
    # trader pnl = Wd - D = 10 (10 - (LP - 100)) - 2 * 10 * 10 = -surplus
    check(r, "trader_pnl_usd", -surplus)
    check_series(r, "BTCUSDT.oi_usd", [1000, 0])
    check_series(r, "BTCUSDT.market_flow", [0, -10])  # 10 sold by liquidated longs, nothing ADL'd


def test_gap_open_fills_from_the_open_and_the_fund_pays_the_bad_debt():
    # bar 1 opens at 85 < LP: PT = min(90.36, 85) = 85; E = 10 (10 + 85 - 100) = -50 -> bad debt 50,
    # the fund (capital 100) pays all 50, no uncovered loss, no ADL; the short absorbs at 85:
    # Wd = 10 (10 + 100 - 85) = 250, trader pnl = 250 - 200 = +50 = what the fund paid
    r = both([sym([FLAT, (85, 86, 84, 86)])], params(), lambda: CappedFund(100.0))
    check(r, "liq_long_usd", 850)
    check(r, "bad_debt_usd", 50)
    check(r, "fund_paid_usd", 50)
    check(r, "fund_end_usd", 50)
    check(r, "fund_min_usd", 50)
    check(r, "fund_start_usd", 100)
    check(r, "adl_notional_usd", 0)
    check(r, "unrecovered_usd", 0)
    check(r, "trader_pnl_usd", 50)


@pytest.mark.parametrize(("side", "cap", "impact"), [
    ("long", 0.25, 0.05),  # I = Y sigma sqrt(X/volume) = 0.1 * 1 * sqrt(10/40) = 0.05 < cap
    ("long", 0.02, 0.02),  # capped
    ("short", 0.25, 0.05),
])
def test_square_root_impact_and_cap(side, cap, impact):
    # last-price bar 1: low 80, high 80 e^sqrt(4 ln 2) -> sigma = ln(high/low)/sqrt(4 ln 2) = 1; volume 40
    last1 = (80.0, 80.0 * SIGMA_ONE, 80.0, 80.0)
    mark1 = (100, 100, 89, 95) if side == "long" else (100, 111, 100, 105)
    r = both([sym([FLAT, mark1], last_rows=[FLAT, last1], volume=40.0)], params(impact_y=0.1, impact_cap=cap),
             lambda: CappedFund(1e6))
    if side == "long":
        fill = LP_LONG * (1 - impact)  # PF = PT (1 - I), PT = LP
        check(r, "liq_long_usd", 10 * fill)
        check(r, "bad_debt_usd", 10 * (90 - fill))  # BP 90 above the fill
    else:
        fill = LP_SHORT * (1 + impact)  # PF = PT (1 + I), PT = LP (mark high 111 >= 109.56)
        check(r, "liq_short_usd", 10 * fill)
        check(r, "bad_debt_usd", 10 * (fill - 110))
    check(r, "fund_paid_usd", r[1].record["bad_debt_usd"])


def test_clearance_fee_surplus_mode():
    # same bar as the first scenario; E = 10 (LP - 90) = 3.6145; fee = 0.001 * q * PF = 0.01 LP = 0.9036
    # -> the fund gets min(E, fee) = 0.9036, the liquidated trader gets E - fee back
    # trader pnl = 10 (110 - LP) + (E - fee) - 200 = -fee
    r = both([sym([FLAT, (100, 100, 89, 95)])], params(surplus_mode="fee", clearance_fee=0.001),
             lambda: CappedFund(0.0))
    fee = 0.001 * 10 * LP_LONG
    check(r, "surplus_usd", fee)
    check(r, "fund_end_usd", fee)
    check(r, "trader_pnl_usd", -fee)


@pytest.mark.parametrize("rate", [0.0, 0.01])
def test_funding_transfer_moves_the_liquidation_price(rate):
    # funding 1 % at mark_open 100: long w = 10 - 0.01*100 = 9, short w = 11 (longs pay shorts);
    # LP_long = (100 - 9)/0.996 = 91.3655 >= low 91 -> liquidated; without funding LP 90.36 < 91: nothing.
    # zero-sum: 10 * 1 paid by the long = 10 * 1 received by the short
    r = both([sym([FLAT, (100, 100, 91, 95)], funding=[0, rate])], params(), lambda: CappedFund(0.0))
    check(r, "funding_net_usd", 0)
    if rate:
        lp = 91 / 0.996
        check(r, "liq_long_usd", 10 * lp)
        check(r, "surplus_usd", 10 * (9 + lp - 100))
        # trader pnl: short Wd 10 (11 - (lp - 100)) - D 200 = -surplus
        check(r, "trader_pnl_usd", -10 * (9 + lp - 100))
    else:
        check(r, "liq_count", 0)
        check_series(r, "BTCUSDT.oi_usd", [1000, 950])


@pytest.mark.parametrize("low", [90.38, 90.0])
def test_partial_liquidation_to_the_lower_bracket(low):
    # size 100,000 USD: tier 2 of table A (floor 50k, MMR 0.5 %, cum 50); qa = 1000, N = 200,000 -> Q = 2000
    # LP tier 2 = (100 - 10 - 50/1000)/(1 - 0.005) = 89.95/0.995 = 90.4020 >= low -> stage 1 at PT = 90.4020:
    # qa' = min(1000, 50,000/PT) = 553.085, piece = 2000 (1 - qa'/1000) = 893.83, Q -> 1106.17, tier 1
    # stage 2: tier-1 LP = 90/0.996 = 90.3614: hit when low = 90.0 (whole rest, k = 1), not when low = 90.38
    p = params(size_usd=(100_000.0,))
    r = both([sym([FLAT, (100, 100, low, 95)], targets=(200_000.0,))], p, lambda: CappedFund(0.0))
    pt1 = 89.95 / 0.995
    qa1 = 50_000 / pt1
    piece1 = 2000 * (1 - qa1 / 1000)
    rest = 2000 * (qa1 / 1000)
    surplus1 = piece1 * (10 + pt1 - 100)
    if low > LP_LONG:
        check(r, "liq_count", 1)
        check(r, "liq_accounts", piece1 / 1000)
        check(r, "liq_long_usd", piece1 * pt1)
        check(r, "surplus_usd", surplus1)
        # the short absorbs piece1 of its 2000; OI = remaining long Q x mark close 95
        check_series(r, "BTCUSDT.oi_usd", [200_000, rest * 95])
    else:
        check(r, "liq_count", 2)
        check(r, "liq_accounts", piece1 / 1000 + rest / qa1)  # = 0.894 + 2 accounts
        check(r, "liq_long_usd", piece1 * pt1 + rest * LP_LONG)
        check(r, "surplus_usd", surplus1 + rest * (10 + LP_LONG - 100))
        check_series(r, "BTCUSDT.oi_usd", [200_000, 0])


def ab_book(bar2, bar3=None):
    """Two entries per bucket: A at 100 (bar 0), B at 105 (bar 1, target 2 x 2100 -> N = 2100 per side)."""
    rows = [FLAT, (105.0, 105.0, 105.0, 105.0), bar2] + ([bar3] if bar3 else [])
    return rows


def test_adl_ranking_partial_last_cohort_and_haircut():
    # book: buckets 2x and 10x at half weight each.
    # bar 0 @100, N 2000: L2A, L10A, S2A, S10A with Q = 1000/100 = 10; w: 2x 50, 10x 10
    # bar 1 @105, OI 2100 -> N = 4200 - 2100 = 2100: L2B, L10B, S2B, S10B with Q = 10; w 52.5 / 10.5
    # bar 2 gaps to 85: L10A (LP 90.36) and L10B (LP 94.5/0.996 = 94.88) fill at 85:
    #   bad debt = 10 (90 - 85) + 10 (94.5 - 85) = 50 + 95 = 145; X_long = 20
    #   fund pays 43.5 -> U = 101.5, phi = 0.7, q_adl = 14, P_adl = (900 + 945)/20 = 92.25, VWAP_b = 85
    #   scores pnl% x eff_lev = u/w x P_adl/(w + u):
    #     S10B: 12.75/10.5 x 92.25/23.25 = 4.818 > S10A: 7.75/10 x 92.25/17.75 = 4.028
    #     > S2B: 12.75/52.5 x 92.25/65.25 = 0.343 > S2A: 7.75/50 x 92.25/57.75 = 0.248
    #   -> S10B closes whole (10), S10A partially (4 of 10); haircut 14 x 7.25 = 101.5 = U; unrecovered 0
    #   absorption: need 6 at P_abs = (20 x 85 - 14 x 85)/6 = 85 from S10A 6, S2A 10, S2B 10 (share 6/26)
    #   -> S10A keeps 6 x 20/26 = 4.615
    # bar 3 spikes to 112: only S10A's LP (109.56) is hit (S10B's would be 115.5/1.004 = 115.04, gone anyway)
    #   -> liq_short_usd = 4.615 x 109.5618; had the ranking been reversed, S10B (LP 115.04) would remain
    #   and bar 3 would liquidate nothing.
    p = params(lev_neutral=weights(x2=0.5, x10=0.5), lev_crowded=TEN_X, lev_hedger=TEN_X)
    inp = sym(ab_book((85, 86, 84, 86), (100, 112, 100, 100)), targets=(2000.0, 4200.0), warm=2)
    r = both([inp], p, lambda: CappedFund(43.5))
    check(r, "bad_debt_usd", 145)
    check(r, "fund_paid_usd", 43.5)
    check(r, "adl_notional_usd", 14 * 92.25)
    check(r, "adl_haircut_usd", 101.5)
    check(r, "unrecovered_usd", 0)
    check_series(r, "BTCUSDT.adl_notional_usd", [0, 0, 14 * 92.25, 0])
    s10a_left = 6 * 20 / 26
    check_series(r, "BTCUSDT.liq_short_usd", [0, 0, 0, s10a_left * LP_SHORT])
    # flow bar 2: -(X_long - filled) = -(20 - 14) = -6
    check_series(r, "BTCUSDT.market_flow", [0, 0, -6, s10a_left])


def test_both_sides_liquidated_too_few_winners_and_outside_liquidity():
    # buckets 2x (0.3) and 10x (0.7), N 1000: L2 Q 3, L10 Q 7, S2 Q 3, S10 Q 7 at 100.
    # bar 1: mark 100 -> high 120, low 80, volume 0 -> I = impact_cap = 0.2 on both sides.
    #   L10: PT = min(90.3614, 100), PF = 0.8 PT = 72.2892, bad = 7 (90 - 72.2892) = 7 x 17.7108
    #   S10: PT = max(109.5618, 100), PF = 1.2 PT = 131.4741, bad = 7 (131.4741 - 110) = 7 x 21.4741
    #   2x cohorts safe (LP 50.2 / 149.4). No fund: U = bad debt, phi = 1, q_adl = 7 per side
    #   longs' loss: P_adl = 90, winners: S2 only (u = 10), 3 < 7 -> filled 3, haircut 3 x 17.7108,
    #     unrecovered 4 x 17.7108; need 4 at P_abs = 72.2892, no short left -> excess 4
    #   shorts' loss: P_adl = 110, winners: L2 (u = 10) -> filled 3, unrecovered 4 x 21.4741; excess 4
    #   outside LP: lp_pnl = 4 (131.4741 - 72.2892) (it buys the longs' 4 and sells to the shorts' 4)
    p = params(lev_neutral=weights(x2=0.3, x10=0.7), impact_cap=0.2)
    r = both([sym([FLAT, (100, 120, 80, 100)], volume=0.0)], p)
    pf_l, pf_s = 0.8 * LP_LONG, 1.2 * LP_SHORT
    gap_l, gap_s = 90 - pf_l, pf_s - 110
    check(r, "bad_debt_usd", 7 * gap_l + 7 * gap_s)
    check(r, "adl_notional_usd", 3 * 90 + 3 * 110)
    check(r, "adl_haircut_usd", 3 * gap_l + 3 * gap_s)
    check(r, "unrecovered_usd", 4 * gap_l + 4 * gap_s)
    # trader pnl = Wd - D = [3 (50 + 10) + 3 (50 + 10)] - [3*50 + 7*10] * 2 = 360 - 440 = -80
    check(r, "trader_pnl_usd", -80)
    # residual = trader_pnl + lp_pnl - unrecovered = 0 -> lp_pnl = 80 + unrecovered
    assert 4 * (pf_s - pf_l) == pytest.approx(80 + 4 * gap_l + 4 * gap_s, rel=1e-12)
    check_series(r, "BTCUSDT.oi_usd", [1000, 0])


@pytest.mark.parametrize(("close", "capital"), [(97.0, 0.0), (86.0, 43.5)])
def test_socialized_loss(close, capital):
    # one 10x bucket, A at 100 and B at 105 (Q 10 each per side), bar 2 gaps to 85 as in the ADL scenario:
    # bad debt 145, U = 145 - paid. Profits of the shorts at mark_close:
    #   close 97: S_A 10 (100 - 97) = 30, S_B 10 (105 - 97) = 80 -> 110 < U = 145: charged 110, unrecovered 35
    #   close 86, fund pays 43.5: S_A 140, S_B 190 = 330 >= U = 101.5: charged 101.5, unrecovered 0
    # positions stay open, then absorb all 20 at 85 (share 1).
    inp = sym(ab_book((85, max(86.0, close), 84, close)), targets=(1000.0, 2100.0), warm=2)
    r = both([inp], params(waterfall="socialized"), lambda: CappedFund(capital))
    u = 145 - capital
    profits = 10 * (100 - close) + 10 * (105 - close)
    check(r, "adl_haircut_usd", min(u, profits))
    check(r, "unrecovered_usd", u - min(u, profits))
    check(r, "adl_notional_usd", 0)
    # trader pnl = Wd - D; D = 2 (10 x 10) + 2 (10 x 10.5) = 410;
    # Wd = shorts' equity at 85 minus the charge = 10 (10 + 15) + 10 (10.5 + 20) - charged = 555 - charged
    check(r, "trader_pnl_usd", 555 - min(u, profits) - 410)


def test_voluntary_closes_opens_pinned_and_free_with_trading_fee():
    # flat 100, fee 0.1 %. bar 0: N = 1000 (pinned). bar 1 (pinned 1500, vusd 400):
    #   c = min(0.5, 0.25 x 400 / 1000) = 0.1 -> close 100 USD per side; N = 1500 - 1000 (1 - 0.1) = 600
    # bar 2 (free, vusd 200): c = 0.25 x 200 / 1500 = 1/30 -> close 50 per side; N = 0.5 x 200 = 100
    #   OI = 1500 - 50 + 100 = 1550
    # traded = 2 (1000 + 100 + 600 + 50 + 100) = 3700; fees 3.7; flat prices -> trader pnl = -fees
    p = params(close_volume_share=0.25, open_volume_share=0.5, trading_fee=0.001)
    inp = sym([FLAT, FLAT, FLAT], vusd=[0.0, 400.0, 200.0], targets=(1000.0, 1500.0))
    r = both([inp], p)
    check_series(r, "BTCUSDT.oi_usd", [1000, 1500, 1550])
    check(r, "traded_usd", 3700)
    check(r, "trader_pnl_usd", -3.7)
    check(r, "cohorts", 6)


def test_crowding_split_tilts_the_leverage_mix():
    # tb 0.55 -> x = (0.55 - 0.5)/0.1 = 0.5 (funding neutral): a+ = 0.5 for longs, a- = 0.5 for shorts
    # longs: 0.5 neutral(10x) + 0.5 crowded(100x); shorts: 0.5 neutral(10x) + 0.5 hedger(2x) -> 4 cohorts
    # bar 1 low 99: the 100x long (w = 1, LP = 99/0.996 = 99.3976) is liquidated, Q = 500/100 = 5
    p = params(lev_crowded=weights(x100=1.0), lev_hedger=weights(x2=1.0), lev_tilt=1.0)
    r = both([sym([FLAT, (100, 100, 99, 99.5)], tb=[0.55, 0.5])], p, lambda: CappedFund(0.0))
    check(r, "cohorts", 4)
    check(r, "liq_long_usd", 5 * 99 / 0.996)
    check(r, "surplus_usd", 5 * (1 + 99 / 0.996 - 100))


def test_two_symbols_share_one_fund_receive_before_pay():
    # tick 1: BTCUSDT liquidates at LP with surplus 10 (LP - 90) = 3.6145; ETHUSDT gaps to 85: bad debt 50.
    # the fund (capital 0) first receives 3.6145, then pays it to ETH's bad debt -> U = 46.3855
    # ADL on ETH: phi = U/50, q_adl = 10 phi, P_adl = 90, haircut = q_adl (90 - 85) = U
    btc = sym([FLAT, (100, 100, 89, 95)], name="BTCUSDT")
    eth = sym([FLAT, (85, 86, 84, 86)], name="ETHUSDT")
    r = both([eth, btc], params(), lambda: CappedFund(0.0))
    surplus = 10 * (LP_LONG - 90)
    u = 50 - surplus
    check(r, "fund_paid_usd", surplus)
    check(r, "fund_paid_usd", surplus, per_symbol="ETHUSDT")
    check(r, "fund_end_usd", 0)
    check(r, "adl_notional_usd", 10 * u / 50 * 90)
    check(r, "adl_haircut_usd", u)
    check(r, "unrecovered_usd", 0)
    check(r, "surplus_usd", surplus, per_symbol="BTCUSDT")
    check(r, "peak_liq_usd_per_min", 10 * LP_LONG + 850)  # both bars at tick 1, 1-minute bars


def test_warmup_sink_takes_warmup_losses_not_the_design_fund():
    # the gap bar (bad debt 50) is in the warm-up: the sink pays it, the design fund is not called
    r = both([sym([FLAT, (85, 86, 84, 86), (86, 86, 86, 86)], warm=2)], params(), lambda: CappedFund(100.0))
    check(r, "bad_debt_usd", 0)
    check(r, "liq_count", 0)
    check(r, "fund_end_usd", 100)
    check(r, "fund_paid_usd", 0)
    check(r, "warmup_fund_change_usd", -50)


def test_prune_then_rebalance_keeps_long_q_equal_short_q():
    # tb 0.7 -> x = clip(2) = 1: longs crowded (10x 0.9, 2x 0.1), shorts hedgers (10x 0.5, 2x 0.5)
    # N 1000 at 100: longs Q 9 and 1, shorts 5 and 5. prune_frac 0.2: long threshold 2 -> the long 2x
    # (Q 1) is closed; shorts' threshold 2: none. Rebalance (MODEL §4.10): shorts close 1/10 pro rata.
    # OI = 9 x 100 = 900; fees 0.1 % of (2000 opened + 100 pruned + 100 rebalanced) = 2.2
    p = params(lev_crowded=weights(x10=0.9, x2=0.1), lev_hedger=weights(x10=0.5, x2=0.5), lev_tilt=1.0,
               prune_frac=0.2, trading_fee=0.001)
    r = both([sym([FLAT, FLAT], tb=[0.7, 0.5])], p)
    check_series(r, "BTCUSDT.oi_usd", [900, 900])
    check(r, "pruned_cohorts", 1, per_symbol="BTCUSDT")
    check(r, "trader_pnl_usd", -2.2)
    book = r[2].books["BTCUSDT"]
    assert book.records[0].q_long == pytest.approx(9) and book.records[0].q_short == pytest.approx(9)


def test_endogenous_multiplier_from_past_flow():
    # baseline flow 0; bar 1 sells 10 (long liquidation, sigma 1, volume 40, Y 0.1):
    # c_1 = -min(0.25, 0.1 x 1 x sqrt(10/40)) = -0.05; bar 2 mult = exp(c_1 exp(-(120 - 60)/1800))
    last1 = (80.0, 80.0 * SIGMA_ONE, 80.0, 80.0)
    inp = sym([FLAT, (100, 100, 89, 95), (95, 95, 95, 95)], last_rows=[FLAT, last1, FLAT], volume=40.0)
    p = params(impact_y=0.1, price_path="endogenous")
    r = both([inp], p, lambda: CappedFund(1e6), baseline_flow={"BTCUSDT": np.zeros(3)})
    check_series(r, "BTCUSDT.price_mult", [1.0, 1.0, math.exp(-0.05 * math.exp(-60 / 1800))])


def test_fill_on_the_bankruptcy_price_is_not_bankrupt_for_the_adl():
    # 3x at 100: w = 100/3, BP_long = 200/3 = 66.667, LP = (200/3)/0.996 = 66.934. Bar 1: low 60, volume 0
    # -> I = impact_cap = 0.004 = tier-1 MMR, so PF = LP (1 - 0.004) = 200/3 = BP: E = 10 (w + PF - 100) = 0,
    # in floating point -7e-14 or 0 depending on the formula. MODEL §5.4: bankrupt for the ADL only if
    # E < -1e-9 x q x PF, so no ADL (before the rule, a rounding-negative E put all 10 units into q_adl:
    # an ADL of 666.67 USD in one engine and none in the other). The short absorbs all 10 at PF.
    p = params(lev_neutral=weights(x3=1.0), lev_crowded=weights(x3=1.0), lev_hedger=weights(x3=1.0),
               impact_cap=0.004)
    r = both([sym([FLAT, (100, 100, 60, 70)], volume=0.0)], p)
    check(r, "liq_long_usd", 10 * 200 / 3)
    check(r, "bad_debt_usd", 0)
    check(r, "surplus_usd", 0)
    check(r, "unrecovered_usd", 0)
    for res in r[:2]:
        assert res.record["adl_notional_usd"] == 0.0
    check_series(r, "BTCUSDT.market_flow", [0, -10])
    check_series(r, "BTCUSDT.oi_usd", [1000, 0])


def test_dust_floor_closes_the_whole_absorbing_side():
    # tb 0.7 -> x = 1: longs crowded (10x 0.2, 20x 0.4, 25x 0.4), shorts hedgers (2x 0.5, 3x 0.5); N = 1000
    # at 97.3: long Q = 1000 x (0.2, 0.4, 0.4)/97.3, short Q = 1000 x (0.5, 0.5)/97.3; both sum to 10.2775,
    # but in floating point the longs' sum is 1 ulp below the shorts' (10.27749229188078 vs ...781).
    # Bar 1 (low 80) liquidates every long (LPs 87.9 / 92.8 / 93.8), the shorts absorb need = X_long out of
    # avail = 1 ulp more: MODEL §5.5, need >= avail (1 - 1e-12) closes every short whole, OI = 0 exactly.
    # Bar 2 spikes to 150, above both shorts' LPs (2x: 145.95/1.004 = 145.4, 3x: 129.2): nothing is left
    # (a pro-rata share need/avail = 1 - 1e-16 would have left two dust shorts, liquidated there: 5 pieces).
    price = 97.3
    p = params(lev_crowded=weights(x10=0.2, x20=0.4, x25=0.4), lev_hedger=weights(x2=0.5, x3=0.5),
               lev_tilt=1.0)
    inp = sym([(price,) * 4, (price, price, 80, 85), (85, 150, 85, 150)], tb=[0.7, 0.5, 0.5])
    r = both([inp], p)
    assert (0.2 * 1000 / price + 0.4 * 1000 / price) + 0.4 * 1000 / price < 0.5 * 1000 / price * 2
    check(r, "cohorts", 5)
    check(r, "liq_count", 3)
    for res in r[:2]:
        assert [float(x) for x in res.series["BTCUSDT.oi_usd"]][1:] == [0.0, 0.0]
    assert r[2].books["BTCUSDT"].alive() == []
