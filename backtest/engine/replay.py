"""Run several symbols on one clock against ONE shared fund (docs/MODEL.md §4).

The Python loop is over clock ticks only; per symbol and bar the work is two kernel calls
(``liquidate``, ``settle``) plus ``apply_funding`` on settlement bars. The fund design (a small
Python object) is called once per tick: receive surplus, pay bad debt, act, value.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from backtest.engine import kernels as K
from backtest.engine.book import side_weights, size_templates
from backtest.engine.inputs import SymbolInputs
from backtest.engine.params import LEVERAGE_BUCKETS, Params
from strategies.base import Fund, Market


@dataclass
class SymbolState:
    """Arrays of one symbol's book; created once, mutated by the kernels."""

    inp: SymbolInputs
    fs: np.ndarray
    cs: np.ndarray
    live: np.ndarray
    cnt: np.ndarray
    pc: np.ndarray
    out: np.ndarray
    acc: np.ndarray
    wl: np.ndarray
    ws: np.ndarray
    size_usd: np.ndarray
    size_share: np.ndarray
    size_tier: np.ndarray
    lev_eff: np.ndarray
    mult: np.ndarray  # price multiplier per bar (endogenous path), 1.0 historical
    paid: np.ndarray  # [T, 2] fund (or warm-up sink) payment per side
    uncovered: np.ndarray  # [T, 2]

    @classmethod
    def create(cls, inp: SymbolInputs, p: Params) -> SymbolState:
        t = inp.n
        size_usd, size_share, size_tier, lev_eff = size_templates(inp.brackets, p)
        cap = t * 2 * len(LEVERAGE_BUCKETS) * len(size_usd) + 1
        wl, ws = side_weights(inp.f_last, inp.tb, p)
        return cls(
            inp=inp,
            fs=np.zeros((cap, K.NFS)),
            cs=np.zeros((cap, K.NCS), np.int64),
            live=np.zeros(cap, np.int64),
            cnt=np.zeros(2, np.int64),
            pc=np.zeros((4096, K.NPC)),
            out=np.zeros((t, K.NOUT)),
            acc=np.zeros(K.NACC),
            wl=np.ascontiguousarray(wl),
            ws=np.ascontiguousarray(ws),
            size_usd=size_usd,
            size_share=size_share,
            size_tier=size_tier,
            lev_eff=np.ascontiguousarray(lev_eff),
            mult=np.ones(t),
            paid=np.zeros((t, 2)),
            uncovered=np.zeros((t, 2)),
        )


@dataclass
class RunState:
    """Everything a finished replay leaves behind, for ``results.summarize``."""

    params: Params
    fund: Fund
    clock: np.ndarray  # int64 seconds, sorted union of bar opens
    clock_in_window: np.ndarray
    fund_value: np.ndarray  # per tick, USD
    fund_received: np.ndarray  # per tick
    fund_paid: np.ndarray  # per tick
    sink_received: float
    sink_paid: float
    symbols: dict[str, SymbolState] = field(default_factory=dict)
    bar_at_tick: dict[str, np.ndarray] = field(default_factory=dict)  # symbol -> bar index or -1


def _pf(p: Params) -> np.ndarray:
    pf = np.zeros(K.NPF)
    pf[K.PF_Y] = p.impact_y
    pf[K.PF_CAP] = p.impact_cap
    pf[K.PF_SURPLUS_FEE] = 1.0 if p.surplus_mode == "fee" else 0.0
    pf[K.PF_CLEAR_FEE] = p.clearance_fee
    pf[K.PF_TRADE_FEE] = p.trading_fee
    pf[K.PF_SOCIAL] = 1.0 if p.waterfall == "socialized" else 0.0
    pf[K.PF_CVS] = p.close_volume_share
    pf[K.PF_OVS] = p.open_volume_share
    pf[K.PF_CLOSE_CAP] = p.close_cap
    pf[K.PF_PRUNE] = p.prune_frac
    return pf


def replay(
    inputs: Sequence[SymbolInputs],
    fund: Fund,
    params: Params | None = None,
    *,
    baseline_flow: dict[str, np.ndarray] | None = None,
) -> RunState:
    """Replay the symbols on one clock with one shared fund.

    ``baseline_flow`` (symbol -> per-bar market flow of the baseline run) switches the price path to
    ``endogenous`` (MODEL §9); without it the recorded path is used.
    """
    p = params or Params()
    pf = _pf(p)
    if len({i.symbol for i in inputs}) != len(inputs):
        raise ValueError("each symbol may appear once")
    states = {i.symbol: SymbolState.create(i, p) for i in inputs}
    clock = np.unique(np.concatenate([i.ts for i in inputs]))
    n = clock.shape[0]
    bar_at: dict[str, np.ndarray] = {}
    in_win_tick = np.zeros(n, bool)
    for sym, st in states.items():
        idx = np.searchsorted(clock, st.inp.ts)
        m = np.full(n, -1, np.int64)
        m[idx] = np.arange(st.inp.n)
        bar_at[sym] = m
        in_win_tick[idx] |= st.inp.in_window
    endo = baseline_flow is not None
    decay_a = {sym: 0.0 for sym in states}
    fund_value = np.zeros(n)
    f_recv = np.zeros(n)
    f_paid = np.zeros(n)
    sink_recv = 0.0
    sink_paid = 0.0
    acts = type(fund).on_bar is not Fund.on_bar
    # per tick: the (symbol, state, bar) triples that have a bar starting there
    ticks: list[list[tuple[str, SymbolState, int]]] = [[] for _ in range(n)]
    for sym, st in states.items():
        for k, t in zip(np.searchsorted(clock, st.inp.ts).tolist(), range(st.inp.n), strict=True):
            ticks[k].append((sym, st, t))
    for k in range(n):
        active = ticks[k]
        # 1-4: funding, liquidation, execution, surplus / bad debt
        for sym, st, t in active:
            inp = st.inp
            if endo and t > 0:
                _endogenous_step(st, sym, t, baseline_flow, decay_a, p)
            mult = st.mult[t]
            if inp.funding[t] != 0.0:
                K.apply_funding(
                    inp.funding[t],
                    inp.bars[t, K.B_MOPEN] * mult,
                    st.fs,
                    st.cs,
                    st.live,
                    st.cnt,
                    inp.brackets,
                    st.acc,
                )
            while True:
                need = K.liquidate(
                    t, mult, inp.bars, st.fs, st.cs, st.live, st.cnt, st.pc, inp.brackets, pf, st.out, st.acc
                )
                if need <= st.pc.shape[0]:
                    break
                st.pc = np.zeros((2 * need, K.NPC))
        # 5: the fund (warm-up bars go to the warm-up sink)
        surplus = 0.0
        for _sym, st, t in active:
            s = st.out[t, K.O_LONG + K.O_SURPLUS] + st.out[t, K.O_SHORT + K.O_SURPLUS]
            if st.inp.in_window[t]:
                surplus += s
            else:
                sink_recv += s
        if surplus > 0.0:
            fund.receive(k, surplus)
            f_recv[k] = surplus
        for _sym, st, t in active:
            for side, o in ((0, K.O_LONG), (1, K.O_SHORT)):
                bad = st.out[t, o + K.O_BAD]
                if bad <= 0.0:
                    continue
                if st.inp.in_window[t]:
                    paid = float(fund.pay(k, bad))
                    if not (0.0 <= paid <= bad) or math.isnan(paid):
                        raise ValueError(
                            f"fund design {fund.name}: pay() returned {paid} for {bad} of bad debt"
                        )
                    f_paid[k] += paid
                else:
                    paid = bad
                    sink_paid += bad
                st.paid[t, side] = paid
                st.uncovered[t, side] = bad - paid
        # 6-10: waterfall, absorption, closes, opens, prune
        for _sym, st, t in active:
            inp = st.inp
            K.settle(
                t,
                st.mult[t],
                inp.bars,
                st.uncovered[t, 0],
                st.uncovered[t, 1],
                inp.target[t],
                st.fs,
                st.cs,
                st.live,
                st.cnt,
                inp.brackets,
                st.wl,
                st.ws,
                st.size_usd,
                st.size_share,
                st.size_tier,
                st.lev_eff,
                pf,
                st.out,
                st.acc,
            )
        # 11: the design acts and is valued (the Market view is built only for designs that use it)
        if acts:
            market = Market(
                tick=k,
                ts=float(clock[k]),
                in_window=bool(in_win_tick[k]),
                mark={sym: st.inp.bars[t, K.B_MCLOSE] * st.mult[t] for sym, st, t in active},
                oi_usd={sym: st.out[t, K.O_OI] for sym, st, t in active},
                liq_usd={
                    sym: st.out[t, K.O_LONG + K.O_LIQ_USD] + st.out[t, K.O_SHORT + K.O_LIQ_USD]
                    for sym, st, t in active
                },
            )
            fund.on_bar(k, market)
        fund_value[k] = fund.value(k)
    return RunState(
        params=p,
        fund=fund,
        clock=clock,
        clock_in_window=in_win_tick,
        fund_value=fund_value,
        fund_received=f_recv,
        fund_paid=f_paid,
        sink_received=sink_recv,
        sink_paid=sink_paid,
        symbols=states,
        bar_at_tick=bar_at,
    )


def _endogenous_step(
    st: SymbolState,
    sym: str,
    t: int,
    baseline_flow: dict[str, np.ndarray],
    decay_a: dict[str, float],
    p: Params,
) -> None:
    """Price multiplier of bar t from the impact of past flow differences (MODEL §9)."""
    inp = st.inp
    base = baseline_flow.get(sym)
    d = st.out[t - 1, K.O_FLOW] - (base[t - 1] if base is not None else 0.0)
    c = 0.0
    if d != 0.0:
        c = math.copysign(
            K.impact(
                p.impact_y,
                p.impact_cap,
                inp.bars[t - 1, K.B_HIGH],
                inp.bars[t - 1, K.B_LOW],
                inp.bars[t - 1, K.B_VOL],
                abs(d),
            ),
            d,
        )
    a = (decay_a[sym] + c) * math.exp(-(inp.ts[t] - inp.ts[t - 1]) / p.endo_decay_s)
    decay_a[sym] = a
    st.mult[t] = math.exp(a)


Engine = Callable[..., RunState]
