"""Conservation on random runs, for both engines (docs/MODEL.md §8).

Money: ``|residual| <= 1e-12 x traded notional`` on every random run (the identity is computed by
each engine from its own independent accumulators; observed <= 2e-16, i.e. rounding). Quantity:
long Q = short Q after every bar, from the reference's per-bar state and from the fast engine's
cohort arrays after each bar (the fast engine is causal, so its state after bar t is the final state
of a run cut after bar t).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings

from backtest.engine.inputs import SymbolInputs
from backtest.engine.replay import replay
from backtest.engine.results import conservation, summarize
from tests.backtest.engine.test_reference_match import SETTINGS, books, fund_factories, params_strategy
from tests.reference_engine import CappedFund, replay_reference, summarize_reference, unbalanced_bars


def _cut(inp: SymbolInputs, end_ts: int) -> SymbolInputs:
    keep = inp.ts <= end_ts
    arrays = {f.name: getattr(inp, f.name)[keep] for f in dataclasses.fields(inp)
              if isinstance(getattr(inp, f.name), np.ndarray) and f.name != "brackets"}
    return dataclasses.replace(inp, **arrays)


def _fast_side_q(run) -> dict[str, tuple[float, float]]:
    out = {}
    for sym, st in run.symbols.items():
        _, side, q = st.positions()
        out[sym] = (float(q[side > 0].sum()), float(q[side < 0].sum()))
    return out


def _balanced(q_long: float, q_short: float, scale: float) -> bool:
    return abs(q_long - q_short) <= 1e-9 * scale + 1e-300


@SETTINGS
@given(inputs=books(), p=params_strategy(), fund_factory=fund_factories())
def test_money_is_conserved_by_both_engines(inputs, p, fund_factory):
    ref_run = replay_reference(inputs, fund_factory(), p)
    assert not unbalanced_bars(ref_run)  # MODEL §5.6, §7.3: positions balance
    fast_run = replay(inputs, fund_factory(), p)
    fast = summarize(fast_run)
    ref = summarize_reference(ref_run)
    for name, rec in (("fast", fast.record), ("reference", ref.record)):
        assert rec["traded_usd"] > 0
        assert abs(rec["conservation_residual_usd"]) <= 1e-12 * rec["traded_usd"], name
    # the fast engine's own identity, recomputed from its accumulators
    cons = conservation(fast_run)
    assert cons["trader_pnl"] == fast.record["trader_pnl_usd"]
    # funding is a transfer between traders: zero-sum because long Q = short Q
    for rec in (fast.record, ref.record):
        assert abs(rec["funding_net_usd"]) <= 1e-9 * rec["traded_usd"]


@settings(SETTINGS, max_examples=60)
@given(inputs=books(), p=params_strategy(), fund_factory=fund_factories())
def test_long_q_equals_short_q_after_every_bar(inputs, p, fund_factory):
    run = replay_reference(inputs, fund_factory(), p)
    assert not unbalanced_bars(run)  # MODEL §5.6, §7.3: positions balance
    for sym, book in run.books.items():
        scale = max(max(r.q_long, r.q_short) for r in book.records)
        for t, r in enumerate(book.records):
            assert _balanced(r.q_long, r.q_short, scale), f"reference {sym} bar {t}: {r.q_long}, {r.q_short}"
    clock = sorted({int(x) for i in inputs for x in i.ts})
    for tick in clock:
        fast_run = replay([_cut(i, tick) for i in inputs], fund_factory(), p)
        for sym, (q_long, q_short) in _fast_side_q(fast_run).items():
            scale = max(max(r.q_long, r.q_short) for r in run.books[sym].records)
            assert _balanced(q_long, q_short, scale), f"fast {sym} tick {tick}: {q_long} vs {q_short}"


def test_two_sided_partial_liquidation_keeps_the_books_balanced():
    from tests.backtest.engine.test_reference_scenarios import FLAT, both, check, check_series, params, sym

    # size 100k (tier 2 of table A: floor 50k, MMR 0.5 %, cum 50), 10x, qa = 1000, Q 2000 per side at 100.
    # Bar 1 (mark 100 -> high 109.52, low 90.38, close 100):
    #   long:  tier-2 LP = (100 - 10 - 50/1000)/0.995 = 90.4020 >= 90.38 -> PT_L = 90.4020,
    #          qa' = 50,000/PT_L = 553.085, piece_L = 2000 (1 - 0.553085) = 893.83, rest_L = 1106.17
    #          in tier 1 (LP 90/0.996 = 90.3614 < 90.38: no second stage)
    #   short: tier-2 LP = (100 + 10 + 50/1000)/1.005 = 109.5025 <= 109.52 -> PT_S = 109.5025,
    #          qa' = 50,000/PT_S = 456.61, piece_S = 2000 (1 - 0.45661) = 1086.78, rest_S = 913.22
    #          in tier 1 (LP 110/1.004 = 109.5618 > 109.52)
    #   no impact (impact_y 0), both leftovers > 0 (E = piece x (PT_L - 90), piece x (110 - PT_S)).
    #   MODEL §7.3: every alive cohort of the other side absorbs, the triggered remainders included:
    #   rest_S absorbs piece_L, rest_L absorbs piece_S, no excess, no outside LP.
    #   long Q = rest_L - piece_S = 19.39 = rest_S - piece_L = short Q.
    p = params(size_usd=(100_000.0,))
    inp = sym([FLAT, (100, 109.52, 90.38, 100), (100, 100, 100, 95)], targets=(200_000.0,))
    r = both([inp], p, lambda: CappedFund(0.0))  # also: engines agree, |residual| <= 1e-9 x traded
    pt_l, pt_s = 89.95 / 0.995, 110.05 / 1.005
    rest_l, rest_s = 2 * 50_000 / pt_l, 2 * 50_000 / pt_s
    piece_l, piece_s = 2000 - rest_l, 2000 - rest_s
    left = rest_l - piece_s
    assert left == pytest.approx(rest_s - piece_l, rel=1e-12)
    check(r, "liq_count", 2)
    check(r, "liq_long_usd", piece_l * pt_l)
    check(r, "liq_short_usd", piece_s * pt_s)
    check(r, "surplus_usd", piece_l * (pt_l - 90) + piece_s * (110 - pt_s))
    check(r, "bad_debt_usd", 0)
    check_series(r, "BTCUSDT.oi_usd", [200_000, left * 100, left * 95])
    check_series(r, "BTCUSDT.market_flow", [0, piece_s - piece_l, 0])
    rec = r[2].books["BTCUSDT"].records[1]
    assert rec.excess == [0.0, 0.0]
    assert _balanced(rec.q_long, rec.q_short, 2000.0)
    (q_long, q_short), = _fast_side_q(replay([inp], CappedFund(0.0), p)).values()
    assert q_long == pytest.approx(left, rel=1e-12) and _balanced(q_long, q_short, 2000.0)
