"""What a sweep worker receives (compact payloads and tasks) and how it evaluates a design quickly.

Why a design can be evaluated without the engine: a design influences the replay ONLY through what it
pays (MODEL §4 steps 5-6: ``paid < bad_debt`` sends the rest to ADL or socialized loss). While a
design pays every claim in full, the books evolve exactly as under any other fully-paying fund. So
one replay with a fund that pays everything (:class:`Plan`) records the per-tick surplus, claims and
``Market`` views; evaluating a design is feeding it that sequence (no engine). If it pays less than
asked at tick k, the engine resumes at tick k from the pay-all state (a checkpoint) with the design fed
up to k - 1; the result is identical to a full replay (tests/backtest/sweep/test_tasks.py proves it).

A worker gets each (event, model parameters) :class:`EventPayload` once (numpy arrays of the inputs
plus the design context), builds the :class:`Plan` once and keeps it for every task of that group.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from backtest.engine.inputs import SymbolInputs
from backtest.engine.params import Params
from backtest.engine.replay import Replay, RunState, replay, warmup_snapshot
from backtest.engine.results import Result, summarize
from strategies.base import Fund, Market

MAX_CHECKPOINTS = 4  # pay-all engine states kept per plan (~20 MB each for may2021)
KILL_ONCE_ENV = "BACKTEST_SWEEP_KILL"  # tests: PATH[:N]; the first N tasks to run kill their process

ROW_METRICS = (
    "bad_debt_usd",
    "fund_paid_usd",
    "shortfall_usd",
    "adl_notional_usd",
    "adl_haircut_usd",
    "unrecovered_usd",
    "liq_long_usd",
    "liq_short_usd",
    "surplus_usd",
    "oi_start_usd",
    "fund_start_usd",
    "fund_min_usd",
    "fund_end_usd",
    "max_drawdown_pct",
    "fund_return_pct",
    "capital_cost_usd",
    "coverage_ratio",
    "fund_premium_usd",
    "fund_payout_usd",
    "conservation_residual_usd",
)


@dataclass(frozen=True)
class EventPayload:
    """Everything a worker needs for one (event, model parameters) group: compact, pickled once."""

    key: str
    event_id: str
    inputs: tuple[SymbolInputs, ...]
    params: Params
    context: dict[str, Any]  # registry.event_context(event, venue=..., symbols=...) without the marks/OI
    window_s: float


@dataclass(frozen=True)
class Point:
    """One design parameter set: its hash (the table key), the validated spec, the values as JSON."""

    params_hash: str
    spec: Any  # strategies.config.DesignSpec
    params_json: str
    model_json: str


@dataclass(frozen=True)
class Task:
    """A batch of design points on one (event, model) group; the unit of retry and of one transaction."""

    group: str
    event: str
    design: str
    points: tuple[Point, ...]
    seed: int
    risk_free: float

    @property
    def keys(self) -> list[tuple[str, str, str, int]]:
        return [(self.event, self.design, p.params_hash, self.seed) for p in self.points]


def params_hash(spec: Any, params: Params) -> str:
    """Stable hash of every design parameter (with triggers) and every model parameter."""
    doc = {
        "design": spec.design,
        "label": spec.label,
        "params": _jsonable(spec.to_dict()),
        "model": _jsonable(params.to_dict()),
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:20]


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


class _PayAll(Fund):
    """Pays every claim in full and keeps nothing: the design-independent path."""

    name = "pay-all"

    def receive(self, tick: int, usd: float) -> None:
        pass

    def pay(self, tick: int, usd: float) -> float:
        return usd

    def value(self, tick: int) -> float:
        return 0.0


class _Recorder(_PayAll):
    """A pay-all fund that records the engine's calls in order."""

    def __init__(self) -> None:
        super().__init__(0.0)
        self.recv: dict[int, float] = {}
        self.pays: dict[int, list[float]] = {}
        self.markets: list[Market] = []

    def receive(self, tick: int, usd: float) -> None:
        self.recv[tick] = usd

    def pay(self, tick: int, usd: float) -> float:
        self.pays.setdefault(tick, []).append(usd)
        return usd

    def on_bar(self, tick: int, market: Market) -> None:
        self.markets.append(market)


def _frozen(m: Market) -> Market:
    """Read-only views: a plan's markets are shared by every design it evaluates."""
    return dataclasses.replace(
        m,
        mark=MappingProxyType(dict(m.mark)),
        oi_usd=MappingProxyType(dict(m.oi_usd)),
        liq_usd=MappingProxyType(dict(m.liq_usd)),
        funding_rate=MappingProxyType(dict(m.funding_rate)),
    )


@dataclass
class Evaluation:
    """One design on one plan: the engine-equivalent result and how it was obtained."""

    result: Result
    method: str  # fast | resumed | replay
    fail_tick: int | None


@dataclass
class Plan:
    """The pay-all replay of one (event, model) group and what is needed to evaluate designs on it."""

    event_id: str
    inputs: tuple[SymbolInputs, ...]
    params: Params
    context: dict[str, Any]
    window_s: float
    snapshot: Any  # replay.WarmupSnapshot
    base: RunState  # the pay-all run (book path of every fully-paying design)
    k0: int
    recv: list[float]  # per tick: surplus handed to the fund (0 = no call)
    pays: list[tuple[float, ...]]  # per tick: the bad-debt claims in call order
    markets: list[Market]
    resume: bool = True  # False: a failing design is replayed in full from the warm-up (reference path)
    _ckpt: OrderedDict[int, Any] = field(default_factory=OrderedDict)

    @property
    def n(self) -> int:
        return len(self.markets)

    def make_fund(self, spec: Any) -> Fund:
        from strategies.registry import make_design

        return make_design(spec, context=self.context)

    def feed(self, fund: Fund, stop: int | None = None) -> tuple[np.ndarray, int | None]:
        """Feed the recorded calls (ticks < ``stop``); returns fund values, first tick paid short."""
        n = self.n
        fv = np.zeros(n)
        acts = type(fund).on_bar is not Fund.on_bar
        markets, recv, pays = self.markets, self.recv, self.pays
        for k in range(self.k0):
            if acts:
                fund.on_bar(k, markets[k])
            fv[k] = fund.value(k)
        for k in range(self.k0, n if stop is None else stop):
            r = recv[k]
            if r > 0.0:
                fund.receive(k, r)
            for bad in pays[k]:
                paid = float(fund.pay(k, bad))
                if not (0.0 <= paid <= bad) or math.isnan(paid):
                    raise ValueError(f"fund design {fund.name}: pay() returned {paid} for {bad} of bad debt")
                if paid != bad:
                    return fv, k
            if acts:
                fund.on_bar(k, markets[k])
            fv[k] = fund.value(k)
        return fv, None

    def first_shortfall(self, spec: Any) -> int | None:
        """The first tick the design pays a claim short (None: it pays everything): no engine involved."""
        return self.feed(self.make_fund(spec))[1]

    def evaluate(self, spec: Any) -> Evaluation:
        """The design's result, identical to ``api.run_design`` on the same inputs and params."""
        fund = self.make_fund(spec)
        fv, fail = self.feed(fund)
        if fail is None:
            run = dataclasses.replace(self.base, fund=fund, fund_value=fv)
            return Evaluation(self._result(run, spec), "fast", None)
        fund = self.make_fund(spec)
        if not self.resume:
            run = replay(
                self.inputs,
                fund,
                self.params,
                baseline_flow=self.snapshot.baseline_flow,
                snapshot=self.snapshot,
            )
            return Evaluation(self._result(run, spec), "replay", fail)
        fv, _ = self.feed(fund, stop=fail)
        eng = self._checkpoint(fail)
        eng.run_ticks(fail, eng.n, fund)
        run = eng.finish(fund)
        run.fund_value[:fail] = fv[:fail]
        return Evaluation(self._result(run, spec), "resumed", fail)

    def _checkpoint(self, tick: int) -> Replay:
        """A private copy of the pay-all engine state at the start of ``tick`` (nearest cached + steps)."""
        if tick in self._ckpt:
            self._ckpt.move_to_end(tick)
            return self._ckpt[tick].copy()
        below = [k for k in self._ckpt if k < tick]
        if below:
            start = max(below)
            eng = self._ckpt[start].copy()
        else:
            start, eng = self.k0, self.snapshot.restore()
        eng.run_ticks(start, tick, _PayAll())
        self._ckpt[tick] = eng
        while len(self._ckpt) > MAX_CHECKPOINTS:
            self._ckpt.popitem(last=False)
        return eng.copy()

    def _result(self, run: RunState, spec: Any) -> Result:
        from backtest.engine.api import add_design_figures

        result = summarize(run, self.event_id, spec.label)
        add_design_figures(result, run, spec, self.context)
        return result


def build_plan(payload: EventPayload) -> Plan:
    """Warm-up once, then one pay-all replay that records every call a design would get."""
    inputs, params = list(payload.inputs), payload.params
    hist = (
        params
        if params.price_path == "historical"
        else Params.from_overrides({**params.to_dict(), "price_path": "historical"})
    )
    hsnap = warmup_snapshot(inputs, hist)
    ctx = dict(payload.context)
    ctx["start_prices"] = dict(hsnap.start_marks())
    ctx["oi_start_usd"] = float(sum(hsnap.oi_start().values()))
    snap = hsnap
    if params.price_path == "endogenous":
        from backtest.engine.api import resolve_designs, run_design

        (base_spec,) = resolve_designs([params.endo_baseline], None, "--set endo_baseline")
        baseline = run_design(payload.event_id, base_spec, inputs, hist, ctx, snapshot=hsnap)
        flow = {i.symbol: baseline.series[f"{i.symbol}.market_flow"] for i in inputs}
        snap = warmup_snapshot(inputs, params, baseline_flow=flow)
    rec = _Recorder()
    base = replay(inputs, rec, params, baseline_flow=snap.baseline_flow, snapshot=snap)
    n = base.clock.shape[0]
    return Plan(
        event_id=payload.event_id,
        inputs=tuple(inputs),
        params=params,
        context=ctx,
        window_s=payload.window_s,
        snapshot=snap,
        base=base,
        k0=snap.k0,
        recv=[float(rec.recv.get(k, 0.0)) for k in range(n)],
        pays=[tuple(rec.pays.get(k, ())) for k in range(n)],
        markets=[_frozen(m) for m in rec.markets],
    )


def row_of(ev: Evaluation, window_s: float, risk_free: float) -> dict[str, Any]:
    """The table row of one evaluation: headline record figures and the fund metrics."""
    from backtest.metrics import fund_metrics

    r = ev.result
    m = fund_metrics(r, window_s=window_s, risk_free=risk_free)
    rec = {**r.record, **m}
    short = float(np.sum(r.series["fund_shortfall"]))
    rec["shortfall_usd"] = short
    rec["fund_premium_usd"] = float(rec.get("fund_premium_usd") or 0.0)
    rec["fund_payout_usd"] = float(rec.get("fund_payout_usd") or 0.0)
    row: dict[str, Any] = {k: (None if rec.get(k) is None else float(rec[k])) for k in ROW_METRICS}
    row["adl_free"] = ev.fail_tick is None
    row["depleted"] = bool(m["depleted"])
    row["depleted_at"] = m["depleted_at"]
    row["method"] = ev.method
    row["fail_tick"] = ev.fail_tick
    row["fail_ts"] = int(r.series["clock"][ev.fail_tick]) if ev.fail_tick is not None else None
    return row


# ----- the worker side: payloads arrive once, plans are cached per process

_PAYLOADS: dict[str, EventPayload] = {}
_PLANS: dict[str, Plan] = {}


def worker_init(payloads: bytes, parent: int) -> None:
    """Process-pool initializer: end with the parent (see :func:`die_with_parent`), keep the payloads."""
    die_with_parent(parent)
    install_payloads(payloads)


def die_with_parent(parent: int, poll_s: float = 0.5) -> None:
    """Exit this worker when process ``parent`` is gone (kill -9 of a sweep left ~1 GB workers behind).

    A daemon thread polls the parent pid: when the parent dies the worker is re-parented, so
    ``getppid()`` changes. Polling works wherever the pool runs, unlike a Linux-only death signal,
    which also fires when the *thread* that spawned the worker ends."""
    import threading
    import time

    if os.getppid() != parent:
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(poll_s)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


def install_payloads(payloads: dict[str, EventPayload] | bytes) -> None:
    """Process-pool initializer (and in-process setup): keep the payloads for the tasks to come."""
    import pickle

    if isinstance(payloads, bytes):
        payloads = pickle.loads(payloads)
    _PAYLOADS.update(payloads)


def plan_for(group: str, payload: EventPayload | None = None) -> Plan:
    plan = _PLANS.get(group)
    if plan is None:
        pl = payload if payload is not None else _PAYLOADS[group]
        plan = _PLANS[group] = build_plan(pl)
    return plan


def run_task(task: Task, payload: EventPayload | None = None) -> list[dict[str, Any]]:
    """Evaluate every point of a task; one row per point (keys + metrics), every figure finite."""
    from backtest.finite import check_results

    _maybe_die()
    plan = plan_for(task.group, payload)
    rows = []
    for p in task.points:
        ev = plan.evaluate(p.spec)
        row = {
            "event": task.event,
            "design": task.design,
            "params_hash": p.params_hash,
            "seed": task.seed,
            "params": p.params_json,
            "model": p.model_json,
        }
        row.update(row_of(ev, plan.window_s, task.risk_free))
        check_results([row], context=f"design {p.params_json}, model {p.model_json}")
        rows.append(row)
    return rows


def clear_cache() -> None:
    """Forget payloads and plans (tests)."""
    _PAYLOADS.clear()
    _PLANS.clear()


def _maybe_die() -> None:
    """Fault injection for tests: ``PATH[:N]`` kills the first N tasks' processes."""
    spec = os.environ.get(KILL_ONCE_ENV)
    if not spec:
        return
    path, _, count = spec.rpartition(":") if spec.rpartition(":")[2].isdigit() else (spec, "", "1")
    for i in range(int(count)):
        try:
            fd = os.open(f"{path}.{i}", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            continue
        os.close(fd)
        os._exit(17)
