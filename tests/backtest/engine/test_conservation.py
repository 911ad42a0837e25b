"""Conservation on random runs, for both engines (docs/MODEL.md §8).

Money: ``|residual| <= 1e-6 x traded notional`` on every random run (the identity is computed by
each engine from its own independent accumulators). Quantity: long Q = short Q after every bar,
from the reference's per-bar state and from the fast engine's cohort arrays after each bar (the
fast engine is causal, so its state after bar t is the final state of a run cut after bar t).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import assume, given, settings

from backtest.engine import kernels as K  # state-dump layout only (column ids of the cohort arrays)
from backtest.engine.inputs import SymbolInputs
from backtest.engine.replay import replay
from backtest.engine.results import conservation, summarize
from tests.backtest.engine.test_reference_match import SETTINGS, books, fund_factories, params_strategy
from tests.reference_engine import CappedFund, replay_reference, summarize_reference, unequal_excess_bars


def _cut(inp: SymbolInputs, end_ts: int) -> SymbolInputs:
    keep = inp.ts <= end_ts
    arrays = {f.name: getattr(inp, f.name)[keep] for f in dataclasses.fields(inp)
              if isinstance(getattr(inp, f.name), np.ndarray) and f.name != "brackets"}
    return dataclasses.replace(inp, **arrays)


def _fast_side_q(run) -> dict[str, tuple[float, float]]:
    out = {}
    for sym, st in run.symbols.items():
        live = st.live[: st.cnt[K.C_LIVE]]
        q, side = st.fs[live, K.Q], st.cs[live, K.SIDE]
        out[sym] = (float(q[side > 0].sum()), float(q[side < 0].sum()))
    return out


def _balanced(q_long: float, q_short: float, scale: float) -> bool:
    return abs(q_long - q_short) <= 1e-9 * scale + 1e-300


@SETTINGS
@given(inputs=books(), p=params_strategy(), fund_factory=fund_factories())
def test_money_is_conserved_by_both_engines(inputs, p, fund_factory):
    ref_run = replay_reference(inputs, fund_factory(), p)
    assume(not unequal_excess_bars(ref_run))  # the known MODEL §7.3 gap, see the xfail test below
    fast_run = replay(inputs, fund_factory(), p)
    fast = summarize(fast_run)
    ref = summarize_reference(ref_run)
    for name, rec in (("fast", fast.record), ("reference", ref.record)):
        assert rec["traded_usd"] > 0
        assert abs(rec["conservation_residual_usd"]) <= 1e-6 * rec["traded_usd"], name
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
    assume(not unequal_excess_bars(run))  # the known MODEL §7.3 gap, see the xfail test below
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


@pytest.mark.xfail(strict=True, reason=(
    "spec gap, both engines: MODEL §7.3 excludes cohorts triggered this bar from absorption, so when both "
    "sides liquidate and partially-liquidated remainders survive, the long and short excess differ, the "
    "outside LP crosses only min(e_long, e_short), long Q != short Q and money is not conserved"))
def test_two_sided_partial_liquidation_keeps_the_books_balanced():
    from tests.backtest.engine.test_reference_scenarios import FLAT, params, sym

    # size 100k (tier 2), 10x, Q 2000 per side at 100. Bar 1: low 90.38 hits only the long's tier-2 LP
    # (90.402): piece 893.83, the rest (1106.17) survives in tier 1 (LP 90.361). High 109.52 hits only
    # the short's tier-2 LP (110.05/1.005 = 109.502): piece 1086.78 at qa' = 50k/PT, the rest 913.22
    # survives (tier-1 LP 109.562). No untriggered cohort is left to absorb: e_long = 893.83,
    # e_short = 1086.78; the LP crosses 893.83 and 192.95 short liquidations stay unmatched.
    p = params(size_usd=(100_000.0,))
    inp = sym([FLAT, (100, 109.52, 90.38, 100), (100, 100, 100, 95)], targets=(200_000.0,))
    ref = replay_reference([inp], CappedFund(0.0), p)
    fast = replay([inp], CappedFund(0.0), p)
    rec = ref.books["BTCUSDT"].records[1]
    (q_long, q_short), = _fast_side_q(fast).values()
    assert _balanced(rec.q_long, rec.q_short, 2000.0) and _balanced(q_long, q_short, 2000.0)
    for cons in (conservation(fast), summarize_reference(ref).record):
        residual = cons.get("residual", cons.get("conservation_residual_usd"))
        assert abs(residual) <= 1e-6 * 200_000
