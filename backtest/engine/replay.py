"""Run several symbols on one clock against ONE shared fund (docs/MODEL.md §4).

The Python loop is over clock ticks only; per symbol and bar the work is two kernel calls
(``liquidate``, ``settle``) plus ``apply_funding`` on settlement bars. The fund design (a small
Python object) is called once per tick: receive surplus, pay bad debt, act, value.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from backtest.engine import kernels as K
from backtest.engine.book import offload_share, regrowth, side_weights, size_templates
from backtest.engine.inputs import SymbolInputs
from backtest.engine.liquidity import impact_scale
from backtest.engine.params import LEVERAGE_BUCKETS, Params
from strategies.base import Fund, Market


@dataclass
class SymbolState:
    """Arrays of one symbol's book; created once, mutated by the kernels."""

    inp: SymbolInputs
    fs: np.ndarray
    cs: np.ndarray
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
    cand: np.ndarray  # [cap] int64 scratch: rows picked by a scan (triggered, prunable)
    bst: np.ndarray  # [NBST, blocks] bounds per block of rows (kernels.py: BLOCK)
    sg: np.ndarray  # [2, NSG] per-side scale G and scaled sums: base-unit Q of cohort i = fs[Q, i] * G
    pf: np.ndarray  # kernel parameters (the run's, with this symbol's clearance-fee rate)
    imp: np.ndarray  # [T] depth scale of the impact law (liquidity.impact_scale)
    rg_rate: np.ndarray  # [T] OI regrowth rate per bar (book.regrowth)
    q_ref: float  # OI regrowth reference level, base units per side
    inv: np.ndarray  # [3, 2] quantity, cost of the fund's long / short take-over inventory and the
    # outside liquidity provider's net position (kernels.INV_LP; MODEL §5.6, §7.3)
    f_sell: np.ndarray  # [T] share of the inventory (and of a last piece) sold per bar (book.offload_share)

    @classmethod
    def create(cls, inp: SymbolInputs, p: Params) -> SymbolState:
        t = inp.n
        size_usd, size_share, size_tier, lev_eff = size_templates(inp.brackets, p)
        cap = t * 2 * len(LEVERAGE_BUCKETS) * len(size_usd) + 1
        wl, ws = side_weights(inp.f_last, inp.tb, p)
        pf = _pf(p)
        if p.surplus_mode == "venue":
            pf[K.PF_CLEAR_FEE] = inp.clearance_rate
        q_ref, rg_rate = regrowth(inp.target, inp.in_window, inp.bars[:, K.B_MCLOSE], inp.dt, p)
        return cls(
            inp=inp,
            fs=np.zeros((K.NFS, cap)),
            cs=np.zeros((K.NCS, cap), np.int64),
            cnt=np.zeros(K.NCNT, np.int64),
            pc=np.zeros((4096, K.NPC)),
            out=np.zeros((t, K.NOUT)),
            acc=np.zeros(K.ACC_SIZE),
            wl=np.ascontiguousarray(wl),
            ws=np.ascontiguousarray(ws),
            size_usd=size_usd,
            size_share=size_share,
            size_tier=size_tier,
            lev_eff=np.ascontiguousarray(lev_eff),
            mult=np.ones(t),
            paid=np.zeros((t, 2)),
            uncovered=np.zeros((t, 2)),
            cand=np.zeros(cap, np.int64),
            bst=np.zeros((K.NBST, cap // K.BLOCK + 2)),
            sg=K.new_scale(),
            pf=pf,
            imp=impact_scale(inp.bars, inp.dt, p),
            rg_rate=rg_rate,
            q_ref=q_ref,
            inv=np.zeros((K.NINV, 2)),
            f_sell=offload_share(inp.dt, p),
        )

    def positions(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Live cohorts' row indices, sides (+1 long, -1 short) and quantities in base units."""
        return K.base_quantities(self.fs, self.cs, self.cnt, self.sg)

    def copy(self) -> SymbolState:
        """Own copies of every mutable array; the inputs are shared (never written)."""
        return SymbolState(
            inp=self.inp,
            q_ref=self.q_ref,
            **{f.name: getattr(self, f.name).copy() for f in dataclasses.fields(self)
               if f.name not in ("inp", "q_ref")},
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


SURPLUS_MODES = {"margin": K.SURPLUS_MARGIN, "fee": K.SURPLUS_FEE, "venue": K.SURPLUS_VENUE}


def _pf(p: Params) -> np.ndarray:
    pf = np.zeros(K.NPF)
    pf[K.PF_Y] = p.impact_y
    pf[K.PF_CAP] = p.impact_cap
    pf[K.PF_SURPLUS] = SURPLUS_MODES[p.surplus_mode]
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
    snapshot: WarmupSnapshot | None = None,
) -> RunState:
    """Replay the symbols on one clock with one shared fund.

    ``baseline_flow`` (symbol -> per-bar market flow of the baseline run) switches the price path to
    ``endogenous`` (MODEL §9); without it the recorded path is used. ``snapshot`` (from
    :func:`warmup_snapshot` on the same inputs, params and baseline) skips re-running the warm-up: the
    design is only shown the recorded warm-up ticks, which is all a full run would show it.
    """
    p = params or Params()
    if snapshot is None:
        run, k0 = Replay(inputs, p, baseline_flow), 0
    else:
        snapshot.check(inputs, p, baseline_flow)
        run, k0 = snapshot.restore(), snapshot.k0
    acts = type(fund).on_bar is not Fund.on_bar
    if snapshot is not None:
        for k, m in enumerate(snapshot.markets):
            if acts:
                fund.on_bar(k, _copy_market(m))
            run.fund_value[k] = fund.value(k)
    for k in range(k0, run.n):
        run.step(k, fund, acts)
    return run.finish(fund)


@dataclass
class WarmupSnapshot:
    """Engine state after the warm-up ticks, shared by every design replayed on the same window.

    The warm-up is design-independent (MODEL §4 step 5): before the first tick holding an in-window
    bar no surplus or bad debt reaches the fund, so the books evolve identically whatever the design;
    a design only sees the per-tick ``Market`` views, kept here in order.
    """

    inputs: tuple[SymbolInputs, ...]
    params: Params
    baseline_flow: dict[str, np.ndarray] | None
    k0: int  # first tick holding an in-window bar (= number of warm-up ticks)
    markets: list[Market]
    _run: Replay

    def check(self, inputs: Sequence[SymbolInputs], params: Params, baseline_flow: object) -> None:
        same = len(inputs) == len(self.inputs)
        same = same and all(a is b for a, b in zip(inputs, self.inputs, strict=False))
        if not same or params != self.params or baseline_flow is not self.baseline_flow:
            raise ValueError("warm-up snapshot was taken on other inputs, params or baseline flow")

    def restore(self) -> Replay:
        """A private copy of the warm-up state (the snapshot itself is never mutated)."""
        return self._run.copy()

    def start_marks(self) -> dict[str, float]:
        """Mark close of each symbol's last warm-up bar (the price when the window opens)."""
        return {s: float(st.inp.bars[i, K.B_MCLOSE] * st.mult[i]) for s, st, i in self._last_warm()}

    def oi_start(self) -> dict[str, float]:
        """Open interest per side (USD) of each symbol at its last warm-up bar (results' oi_start_usd)."""
        return {s: float(st.out[i, K.O_OI]) for s, st, i in self._last_warm()}

    def _last_warm(self) -> list[tuple[str, SymbolState, int]]:
        out = []
        for sym, st in self._run.states.items():
            warm = np.flatnonzero(~st.inp.in_window)
            out.append((sym, st, int(warm[-1]) if warm.size else 0))
        return out


def warmup_snapshot(
    inputs: Sequence[SymbolInputs],
    params: Params | None = None,
    *,
    baseline_flow: dict[str, np.ndarray] | None = None,
) -> WarmupSnapshot:
    """Run the warm-up ticks once (no design involved) and keep the state for :func:`replay`."""
    p = params or Params()
    run = Replay(inputs, p, baseline_flow)
    win = np.flatnonzero(run.in_win_tick)
    k0 = int(win[0]) if win.size else run.n
    rec = _WarmupRecorder()
    for k in range(k0):
        run.step(k, rec, True)
    return WarmupSnapshot(tuple(inputs), p, baseline_flow, k0, rec.markets, run)


class _WarmupRecorder(Fund):
    """Stands in for the design during the shared warm-up: keeps the Market views, takes no money."""

    name = "warm-up"

    def __init__(self) -> None:
        super().__init__(0.0)
        self.markets: list[Market] = []

    def receive(self, tick: int, usd: float) -> None:
        raise AssertionError("no surplus reaches the fund in the warm-up")

    def pay(self, tick: int, usd: float) -> float:
        raise AssertionError("no bad debt reaches the fund in the warm-up")

    def on_bar(self, tick: int, market: Market) -> None:
        self.markets.append(market)

    def value(self, tick: int) -> float:
        return 0.0


def _copy_market(m: Market) -> Market:
    """Each design gets its own dicts, so one that mutates its view cannot affect the next."""
    return dataclasses.replace(m, mark=dict(m.mark), oi_usd=dict(m.oi_usd), liq_usd=dict(m.liq_usd),
                               funding_rate=dict(m.funding_rate))


class Replay:
    """The mutable state of one replay, stepped one clock tick at a time (MODEL §4).

    :func:`replay` is the usual entry. Callers that resume from a saved state (the sweep replays a
    design from the tick where it first deviates from a pay-all run) use :meth:`copy`,
    :meth:`run_ticks` and :meth:`finish` on a state from :meth:`WarmupSnapshot.restore`.
    """

    def __init__(
        self, inputs: Sequence[SymbolInputs], p: Params, baseline_flow: dict[str, np.ndarray] | None
    ) -> None:
        self.p = p
        if len({i.symbol for i in inputs}) != len(inputs):
            raise ValueError("each symbol may appear once")
        self.states = {i.symbol: SymbolState.create(i, p) for i in inputs}
        self.clock = np.unique(np.concatenate([i.ts for i in inputs]))
        n = self.n = self.clock.shape[0]
        self.bar_at: dict[str, np.ndarray] = {}
        self.in_win_tick = np.zeros(n, bool)
        for sym, st in self.states.items():
            idx = np.searchsorted(self.clock, st.inp.ts)
            m = np.full(n, -1, np.int64)
            m[idx] = np.arange(st.inp.n)
            self.bar_at[sym] = m
            self.in_win_tick[idx] |= st.inp.in_window
        self.baseline_flow = baseline_flow
        self.endo = baseline_flow is not None
        self.decay_a = {sym: 0.0 for sym in self.states}
        self.fund_value = np.zeros(n)
        self.f_recv = np.zeros(n)
        self.f_paid = np.zeros(n)
        self.sink_recv = 0.0
        self.sink_paid = 0.0
        # per tick: the (symbol, bar) pairs that have a bar starting there
        self.ticks: list[list[tuple[str, int]]] = [[] for _ in range(n)]
        for sym, st in self.states.items():
            for k, t in zip(np.searchsorted(self.clock, st.inp.ts).tolist(), range(st.inp.n), strict=True):
                self.ticks[k].append((sym, t))

    def copy(self) -> Replay:
        new = copy.copy(self)
        new.states = {s: st.copy() for s, st in self.states.items()}
        new.decay_a = dict(self.decay_a)
        new.fund_value = self.fund_value.copy()
        new.f_recv = self.f_recv.copy()
        new.f_paid = self.f_paid.copy()
        return new

    def run_ticks(self, start: int, stop: int, fund: Fund) -> None:
        """Step ticks ``start .. stop - 1`` with ``fund`` (the ticks before ``start`` must be done)."""
        acts = type(fund).on_bar is not Fund.on_bar
        for k in range(start, stop):
            self.step(k, fund, acts)

    def step(self, k: int, fund: Fund, acts: bool) -> None:
        """One clock tick; ``acts`` = the design overrides ``on_bar`` (else no Market view is built)."""
        p, endo = self.p, self.endo
        active = [(sym, self.states[sym], t) for sym, t in self.ticks[k]]
        # 1-4: funding, liquidation, execution, surplus / bad debt
        for sym, st, t in active:
            inp = st.inp
            if endo and t > 0:
                _endogenous_step(st, sym, t, self.baseline_flow, self.decay_a, p)
            mult = st.mult[t]
            if inp.funding[t] != 0.0:
                K.apply_funding(
                    inp.funding[t],
                    inp.bars[t, K.B_MOPEN] * mult,
                    st.fs,
                    st.cs,
                    st.cnt,
                    inp.brackets,
                    st.acc,
                    st.sg,
                    st.bst,
                )
                if st.inv[:, K.INV_Q].any():
                    # positions outside the trader book pay (long) or earn (short) funding: into their cost
                    st.inv[:, K.INV_C] += inp.funding[t] * inp.bars[t, K.B_MOPEN] * mult * st.inv[:, K.INV_Q]
            while True:
                need = K.liquidate(
                    t, mult, inp.bars, st.imp, st.fs, st.cs, st.cnt, st.pc, inp.brackets, st.pf, st.out,
                    st.acc, st.sg, st.cand, st.bst, st.inv, st.f_sell[t],
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
                self.sink_recv += s
        if surplus > 0.0:
            fund.receive(k, surplus)
            self.f_recv[k] = surplus
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
                    self.f_paid[k] += paid
                else:
                    paid = bad
                    self.sink_paid += bad
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
                st.q_ref,
                st.rg_rate[t],
                st.fs,
                st.cs,
                st.cnt,
                inp.brackets,
                st.wl,
                st.ws,
                st.size_usd,
                st.size_share,
                st.size_tier,
                st.lev_eff,
                st.pf,
                st.out,
                st.acc,
                st.sg,
                st.cand,
                st.bst,
                st.inv,
            )
        # 11: the design acts and is valued (the Market view is built only for designs that use it)
        if acts:
            market = Market(
                tick=k,
                ts=float(self.clock[k]),
                in_window=bool(self.in_win_tick[k]),
                mark={sym: st.inp.bars[t, K.B_MCLOSE] * st.mult[t] for sym, st, t in active},
                oi_usd={sym: st.out[t, K.O_OI] for sym, st, t in active},
                liq_usd={
                    sym: st.out[t, K.O_LONG + K.O_LIQ_USD] + st.out[t, K.O_SHORT + K.O_LIQ_USD]
                    for sym, st, t in active
                },
                funding_rate={sym: float(st.inp.funding[t]) for sym, st, t in active},
            )
            fund.on_bar(k, market)
        self.fund_value[k] = fund.value(k)

    def finish(self, fund: Fund) -> RunState:
        for st in self.states.values():
            K.compact(st.fs, st.cs, st.cnt, st.bst)  # rows [0, C_ROWS) then hold exactly the open cohorts
        return RunState(
            params=self.p,
            fund=fund,
            clock=self.clock,
            clock_in_window=self.in_win_tick,
            fund_value=self.fund_value,
            fund_received=self.f_recv,
            fund_paid=self.f_paid,
            sink_received=self.sink_recv,
            sink_paid=self.sink_paid,
            symbols=self.states,
            bar_at_tick=self.bar_at,
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
    flow = st.out[t - 1, K.O_FLOW]
    b = base[t - 1] if base is not None else 0.0
    d = flow - b
    if abs(d) <= K.DUST_REL * (abs(flow) + abs(b)):
        d = 0.0  # the same flow up to rounding in the two runs (MODEL §5.5)
    c = 0.0
    if d != 0.0:
        c = math.copysign(
            K.impact(p.impact_y, p.impact_cap, st.imp[t - 1], inp.bars[t - 1, K.B_VOL], abs(d)),
            d,
        )
    a = (decay_a[sym] + c) * math.exp(-(inp.ts[t] - inp.ts[t - 1]) / p.endo_decay_s)
    decay_a[sym] = a
    st.mult[t] = math.exp(a)


Engine = Callable[..., RunState]
