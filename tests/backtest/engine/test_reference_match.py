"""Property tests: the fast engine matches the reference engine on random small books and paths.

Random short paths (calm bars, crashes, spikes, gap opens, two-sided wicks, funding shocks) for one
to three symbols on one clock (1- and 2-minute bars mixed) with a shared fund (``none`` or a capped
fund), random parameters within their valid ranges, both waterfalls, both surplus modes, three
bracket tables. Every record metric, per-symbol figure and per-bar series must agree to 1e-9
relative (absolute floor 1e-9 x traded notional for values near 0); the integer counts (bars,
cohorts, liq_count, pruned_cohorts) exactly, in every run: the knife edges that used to let rounding
decide them are closed by the spec (MODEL §5.5 dust floor: a close of all but 1e-12 of a cohort or a
side closes all of it, a flow within 1e-12 of the bar's liquidations is 0; §5.4: a fill on the
bankruptcy price is not bankrupt for the ADL; §7.3: every alive cohort absorbs, so the two-sided
excess is equal and no side is left without the other). Every run also asserts that equal excess.
The hypothesis profile is deterministic (derandomized, no example database) and bounded so the file
runs in well under 60 s.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backtest.engine.inputs import SymbolInputs
from backtest.engine.kernels import B_MHIGH, B_MLOW
from backtest.engine.params import LEVERAGE_BUCKETS, Params
from backtest.engine.replay import replay
from backtest.engine.results import summarize
from backtest.engine.venue_rules import TABLE_A, TABLE_A2, TABLE_C
from strategies.base import NoFund
from tests.reference_engine import (
    CappedFund,
    compare_results,
    replay_reference,
    summarize_reference,
    unbalanced_bars,
)


def _floats(lo: float, hi: float):
    """Floats without subnormals: a quantity below 2.2e-308 has lost its precision, and the engines
    (fast: q x per-side scale G; reference: Q updated in place) round it differently (MODEL §4.10)."""
    return st.floats(lo, hi, allow_subnormal=False)


SETTINGS = settings(max_examples=200, derandomize=True, database=None, deadline=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

TABLES = {"A": TABLE_A, "A2": TABLE_A2, "C": TABLE_C}
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
BASE_STEP = 60


@st.composite
def weights(draw, n: int, min_nonzero: int = 1) -> tuple[float, ...]:
    """n non-negative weights summing to 1 (some exactly 0)."""
    raw = draw(st.lists(st.one_of(st.just(0.0), _floats(0.01, 1.0)), min_size=n, max_size=n))
    if sum(1 for x in raw if x > 0) < min_nonzero:
        raw[draw(st.integers(0, n - 1))] = 1.0
    total = sum(raw)
    w = [x / total for x in raw]
    w[max(range(n), key=lambda i: w[i])] += 1.0 - math.fsum(w)  # exact sum for Params validation
    return tuple(w)


@st.composite
def params_strategy(draw, **fixed) -> Params:
    sizes = draw(st.lists(st.sampled_from([1_000.0, 5_000.0, 60_000.0, 100_000.0, 700_000.0, 2_000_000.0,
                                           20_000_000.0]), min_size=1, max_size=3, unique=True))
    values = dict(
        impact_y=draw(_floats(0.0, 3.0)),
        impact_cap=draw(_floats(0.0, 0.5)),
        surplus_mode=draw(st.sampled_from(["margin", "fee"])),
        clearance_fee=draw(_floats(0.0, 0.05)),
        trading_fee=draw(_floats(0.0, 0.002)),
        waterfall=draw(st.sampled_from(["adl", "socialized"])),
        close_volume_share=draw(_floats(0.0, 1.0)),
        open_volume_share=draw(_floats(0.0, 1.0)),
        close_cap=draw(_floats(0.0, 1.0)),
        prune_frac=draw(st.sampled_from([0.0, 1e-9, 1e-4, 0.02])),
        funding_neutral=draw(_floats(0.0, 0.0005)),
        funding_ref=draw(_floats(1e-5, 0.01)),
        taker_ref=draw(_floats(0.01, 0.5)),
        lev_tilt=draw(_floats(0.0, 1.0)),
        lev_neutral=draw(weights(len(LEVERAGE_BUCKETS))),
        lev_crowded=draw(weights(len(LEVERAGE_BUCKETS))),
        lev_hedger=draw(weights(len(LEVERAGE_BUCKETS))),
        size_usd=tuple(sizes),
        size_share=draw(weights(len(sizes))),
    )
    # the law before the December 2026 model terms; model_terms() draws those
    values.update(impact_range="last", impact_kappa=0.0, impact_beta=0.0, oi_regrow_s=0.0)
    values.update(fixed)
    return Params(**values)


@st.composite
def model_terms(draw) -> dict:
    """The depth law (MODEL §5.3: range, collapse kappa, resolution beta), OI regrowth (§6), the
    venue surplus rule (§5.4) and the fund's take-over time constant (§5.6), over their valid ranges."""
    return dict(
        impact_range=draw(st.sampled_from(["mark", "last"])),
        impact_kappa=draw(st.one_of(st.just(0.0), _floats(0.0, 2.0))),
        impact_beta=draw(st.one_of(st.just(0.0), _floats(0.0, 1.0))),
        impact_ref_s=draw(st.sampled_from([30.0, 60.0, 3600.0])),
        impact_norm_halflife_s=draw(_floats(60.0, 1e6)),
        oi_regrow_s=draw(st.sampled_from([0.0, 60.0, 600.0, 1e6])),
        surplus_mode=draw(st.sampled_from(["venue", "margin", "fee"])),
        takeover_tau_s=draw(st.sampled_from([0.0, 30.0, 600.0, 3600.0, 1e7])),
    )


BAR_KINDS = ("calm", "calm", "crash", "spike", "gap_down", "gap_up", "wicks", "flat")


@st.composite
def symbol_inputs(draw, symbol: str, step: int, n: int, warm_ts: int, table: str) -> SymbolInputs:
    """One symbol's random path: last-price OHLC, a mark with a small basis, volumes, funding, OI anchors."""
    price = draw(_floats(5.0, 60_000.0))
    rows, marks = [], []
    for _ in range(n):
        kind = draw(st.sampled_from(BAR_KINDS))
        size = draw(_floats(0.0, 1.0))
        gap = {"gap_down": -0.05 - 0.4 * size, "gap_up": 0.05 + 0.6 * size}.get(kind, 0.0)
        ret = {"calm": 0.06 * (size - 0.5), "crash": -0.05 - 0.45 * size, "spike": 0.05 + 0.8 * size,
               "flat": 0.0}.get(kind, 0.0)
        o = price * (1.0 + gap)
        c = o * (1.0 + ret)
        wick = draw(_floats(0.0, 0.3)) if kind == "wicks" else draw(_floats(0.0, 0.02))
        h = max(o, c) * (1.0 + wick)
        lo = min(o, c) * (1.0 - min(wick, 0.9))
        basis = draw(_floats(-0.003, 0.003))
        rows.append((o, h, lo, c))
        marks.append(tuple(x * (1.0 + basis) for x in (o, h, lo, c)))
        price = c
    rows_a, marks_a = np.array(rows), np.array(marks)
    ts = np.arange(n, dtype=np.int64) * step
    notional = draw(_floats(1e5, 1e7))
    volume = np.array([draw(st.one_of(st.just(0.0), _floats(0.05, 3.0))) if i % 4 == 3 else
                       draw(_floats(0.05, 3.0)) for i in range(n)]) * notional / rows_a[:, 3]
    vusd = np.array([draw(_floats(0.01, 2.0)) for _ in range(n)]) * notional
    funding = np.array([draw(st.one_of(st.just(0.0), st.just(0.0), _floats(-0.003, 0.003),
                                       _floats(-0.03, 0.03))) for _ in range(n)])
    tb = np.array([draw(st.one_of(st.just(0.5), _floats(0.3, 0.7))) for _ in range(n)])
    in_window = ts >= warm_ts
    level = draw(_floats(2e5, 5e6))
    target = np.array([level * draw(_floats(0.8, 1.25)) if not in_window[i]
                       else draw(st.one_of(st.just(math.nan), st.just(math.nan), _floats(1e5, 6e6)))
                       for i in range(n)])
    return SymbolInputs.build(
        symbol, ts, rows_a[:, 3], open=rows_a[:, 0], high=rows_a[:, 1], low=rows_a[:, 2], volume=volume,
        vusd=vusd, mark=tuple(marks_a[:, j] for j in range(4)), funding=funding, tb=tb, in_window=in_window,
        target=target, brackets=TABLES[table],
    )


@st.composite
def books(draw, max_symbols: int = 3) -> list[SymbolInputs]:
    """1..3 symbols on one clock: the same span, 1- or 2-minute bars, a common warm-up end."""
    n_sym = draw(st.integers(1, max_symbols))
    n = 2 * draw(st.integers(2, 10))  # base (1-minute) bars: 4..20
    warm_ts = BASE_STEP * 2 * draw(st.integers(1, n // 2 - 1))
    table = draw(st.sampled_from(sorted(TABLES)))
    out = []
    for i in range(n_sym):
        step = BASE_STEP * draw(st.sampled_from([1, 1, 2]))
        out.append(draw(symbol_inputs(SYMBOLS[i], step, n * BASE_STEP // step, warm_ts, table)))
    return out


@st.composite
def fund_factories(draw):
    """A factory (both engines need their own fresh fund): ``none`` or a capped fund."""
    if draw(st.booleans()):
        return NoFund
    capital = draw(_floats(0.0, 50_000.0))
    pay_cap = draw(st.one_of(st.just(math.inf), _floats(0.0, 20_000.0)))
    max_balance = draw(st.one_of(st.just(math.inf), _floats(0.0, 100_000.0)))
    return lambda: CappedFund(capital, pay_cap=pay_cap, max_balance=max_balance)


def run_both(inputs, fund_factory, p: Params, baseline=None):
    """(fast result, reference result, mismatches)."""
    fast = summarize(replay(inputs, fund_factory(), p, baseline_flow=baseline and baseline[0]))
    run = replay_reference(inputs, fund_factory(), p, baseline_flow=baseline and baseline[1])
    ref = summarize_reference(run)
    assert not unbalanced_bars(run)
    return fast, ref, compare_results(fast, ref)


@SETTINGS
@given(inputs=books(), p=params_strategy(), fund_factory=fund_factories())
def test_fast_engine_matches_reference(inputs, p, fund_factory):
    _, _, mismatches = run_both(inputs, fund_factory, p)
    assert mismatches == []


@settings(SETTINGS, max_examples=60)
@given(inputs=books(max_symbols=2), p=params_strategy(price_path="endogenous", endo_decay_s=600.0),
       fund_factory=fund_factories())
def test_fast_engine_matches_reference_on_the_endogenous_path(inputs, p, fund_factory):
    # the baseline: a historical run of the ``none`` design, by each engine itself
    hist = Params(**{**p.to_dict(), "price_path": "historical",
                     **{k: tuple(v) for k, v in p.to_dict().items() if isinstance(v, list)}})
    base_fast, base_ref, _ = run_both(inputs, NoFund, hist)
    flows = ({i.symbol: np.asarray(base_fast.series[f"{i.symbol}.market_flow"]) for i in inputs},
             {i.symbol: list(base_ref.series[f"{i.symbol}.market_flow"]) for i in inputs})
    _, _, mismatches = run_both(inputs, fund_factory, p, baseline=flows)
    assert mismatches == []


@settings(SETTINGS, max_examples=60)
@given(inputs=books(), p=params_strategy(), fund_factory=fund_factories())
def test_fast_engine_from_a_warmup_snapshot_matches_reference(inputs, p, fund_factory):
    # ``backtest run`` replays the warm-up once and starts every design from the snapshot
    from backtest.engine.replay import warmup_snapshot

    snap = warmup_snapshot(inputs, p)
    run = replay_reference(inputs, fund_factory(), p)
    fast = summarize(replay(inputs, fund_factory(), p, snapshot=snap))
    assert compare_results(fast, summarize_reference(run)) == []


@settings(SETTINGS, max_examples=120)
@given(inputs=books(), data=st.data(), fund_factory=fund_factories())
def test_fast_engine_matches_reference_with_the_depth_law_regrowth_and_venue_surplus(inputs, data,
                                                                                      fund_factory):
    p = data.draw(params_strategy(**data.draw(model_terms())))
    for inp in inputs:  # the venue's clearance-fee rate on partial-liquidation pieces (§5.4)
        inp.clearance_rate = data.draw(_floats(0.0, 0.05))
        # a mark range that differs from the last-price range, so impact_range mark | last matters
        widen = np.array(data.draw(st.lists(_floats(0.0, 0.2), min_size=inp.n, max_size=inp.n)))
        inp.bars[:, B_MHIGH] *= 1.0 + widen
        inp.bars[:, B_MLOW] *= 1.0 - 0.5 * widen
    _, _, mismatches = run_both(inputs, fund_factory, p)
    assert mismatches == []
