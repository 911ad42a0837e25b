"""Glue between the catalog/store, the design registry and the engine: load inputs, run designs, get records.

Used by ``backtest run``, ``backtest compare`` and the bench scripts; the engine itself never sees the
store. Designs are built only through ``strategies.registry`` with the run's context (the event's fund
before the shock, the window-open marks, the OI at the window start), so a design sees the same
context whichever command runs it.

The warm-up is design-independent (MODEL §4 step 5), so :func:`run_event` replays it ONCE per price
path and starts every design from a copy of that state (``replay.warmup_snapshot``); the records are
identical to full runs (tests/backtest/test_run_designs.py proves it on a recorded window).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from backtest.engine import kernels as K
from backtest.engine.inputs import SymbolInputs, catalog_oi_level, from_window
from backtest.engine.params import Params
from backtest.engine.replay import RunState, WarmupSnapshot, replay, warmup_snapshot
from backtest.engine.results import Result, summarize
from loaders.errors import UserError
from strategies.base import Fund
from strategies.config import DesignConfig, DesignSpec


def design_names() -> list[str]:
    """Every registered design, ``none`` first then the standard set (DESIGN §6)."""
    from strategies.registry import names

    return names()


def resolve_designs(
    labels: Sequence[str] | None, config: DesignConfig | None = None, option: str = "--designs"
) -> list[DesignSpec]:
    """Validated specs of ``labels`` (None: every registered design, then the config's variants)."""
    cfg = config if config is not None else DesignConfig()
    valid = cfg.labels
    if labels is None:
        labels = valid
    if not labels:
        raise UserError(f"{option}: no design given")
    seen: set[str] = set()
    for label in labels:
        if label not in valid:
            raise UserError(f"{option} {label}: unknown design; valid: {', '.join(valid)}")
        if label in seen:
            raise UserError(f"{option}: design '{label}' is repeated")
        seen.add(label)
    return cfg.specs(labels)


def make_fund(design: str | DesignSpec, context: Mapping[str, Any] | None = None) -> Fund:
    """A fresh fund of a design name or spec (unknown name -> UserError listing the valid ones)."""
    from strategies.registry import make_design

    if isinstance(design, str):
        (design,) = resolve_designs([design])
    return make_design(design, context=context)


def load_inputs(
    event: Any,
    venue: str,
    symbols: Sequence[str],
    params: Params,
    *,
    db: str | os.PathLike[str] | None = None,
    archive: str | os.PathLike[str] | None = None,
    progress: bool = False,
    ensure: bool = True,
    allow_download: bool = True,
    on_symbol: Callable[[str], None] | None = None,
) -> list[SymbolInputs]:
    """Fill the store if needed (archive first, then download; ``ensure=False``: the caller did), then load
    each symbol's window (``on_symbol(symbol)`` before each, for a progress display)."""
    from backtest.ensure import ensure_window
    from backtest.window import load_window
    from loaders.store import Store

    if ensure:
        ensure_window(db, event, venue, list(symbols), archive=archive, progress=progress,
                      allow_download=allow_download)
    out = []
    with Store(db, read_only=True) as store:
        for sym in symbols:
            if on_symbol is not None:
                on_symbol(sym)
            win = load_window(store, event, venue, sym)
            out.append(from_window(win, params, catalog_oi_level(event, sym)))
    return out


def run_context(
    event: Any, venue: str, snapshot: WarmupSnapshot, fund_oi_ratio: tuple[float, str] | None = None
) -> dict[str, Any]:
    """What a design may know when the window opens: catalog fund sizes, marks and OI at the window start,
    and the fund/OI ratio of the start-capital rule (``backtest.capital.fund_oi_ratio``) if the event
    lists no fund of the venue."""
    from strategies.registry import event_context

    return event_context(
        event,
        venue=venue,
        symbols=[i.symbol for i in snapshot.inputs],
        start_prices=snapshot.start_marks(),
        oi_start_usd=sum(snapshot.oi_start().values()),
        fund_oi_ratio=fund_oi_ratio,
    )


def run_design(
    event_id: str,
    spec: DesignSpec,
    inputs: list[SymbolInputs],
    params: Params,
    context: Mapping[str, Any],
    baseline: Result | None = None,
    snapshot: WarmupSnapshot | None = None,
) -> Result:
    """One (event, design) replay; ``baseline`` (a historical run) switches on the endogenous path.

    ``snapshot`` must have been taken on the same inputs, params and baseline flow (checked).
    """
    from strategies.registry import make_design

    if snapshot is None:
        base_flow = _baseline_flow(inputs, params, baseline)
    else:
        base_flow = snapshot.baseline_flow
        if (params.price_path == "endogenous") != (base_flow is not None):
            raise ValueError("the snapshot's price path does not match the params")
    fund = make_design(spec, context=context)
    run = replay(inputs, fund, params, baseline_flow=base_flow, snapshot=snapshot)
    assumptions: dict[str, str] = {}  # the price path is listed with the model parameters (param.price_path)
    for i in inputs:
        for k, v in i.assumptions.items():
            assumptions[f"{i.symbol}.{k}"] = v
    if base_flow is not None:
        assumptions["endo_baseline"] = (
            f"baseline forced flow from the historical run of '{params.endo_baseline}'"
        )
    assumptions[f"design.{spec.label}"] = spec.design
    for k, v in spec.to_dict().items():
        assumptions[f"design.{spec.label}.{k}"] = resolved_param(k, v, fund)
    for k in ("fund_before_source", "fund_before_coin_source", "fund_oi_ratio_source"):
        if k in context:
            assumptions[f"context.{k}"] = str(context[k])
    result = summarize(run, event_id, spec.label, assumptions)
    add_design_figures(result, run, spec, context)
    return result


def resolved_param(key: str, value: Any, fund: Fund) -> str:
    """A design parameter as the report lists it: the value the run used, e.g. an empty ``coin_symbol``
    becomes the symbol the design picked and the coin it holds."""
    if key == "coin_symbol":
        sym = str(value or getattr(fund, "symbol", "") or "")
        if not sym:
            return "(the event's first symbol)"
        coin = base_coin(sym)
        how = " = the event's first symbol" if not value else ""
        return f"{sym}{how} (holds {coin}, priced at the {sym} mark)"
    return str(value)


def base_coin(symbol: str) -> str:
    """The coin of a USD-margined pair: BTCUSDT -> BTC."""
    for quote in ("USDT", "USDC", "BUSD", "USD"):
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)]
    return symbol


def run_event(
    event: Any,
    designs: Sequence[str] | Sequence[DesignSpec] | None,
    inputs: list[SymbolInputs],
    params: Params,
    *,
    config: DesignConfig | None = None,
    venue: str | None = None,
    share_warmup: bool = True,
    on_step: Callable[[str], None] | None = None,
    fund_oi_ratio: tuple[float, str] | None = None,
) -> list[Result]:
    """Every design on one window (None: all registered designs); the endogenous path first runs the
    baseline design historically. ``on_step(label)`` is called before each replay (progress display).
    ``fund_oi_ratio``: from ``backtest.capital.fund_oi_ratio``, needed by ``"event"`` capital only when
    the event lists no fund of the venue.
    """
    specs = (
        list(designs)
        if designs and all(isinstance(d, DesignSpec) for d in designs)
        else resolve_designs(designs, config)  # type: ignore[arg-type]
    )
    venue = venue or params.venue
    step = on_step or (lambda _label: None)
    hist = params if params.price_path == "historical" else _historical(params)
    step("warm-up")
    hist_snap = warmup_snapshot(inputs, hist)
    context = run_context(event, venue, hist_snap, fund_oi_ratio)
    baseline = None
    snap = hist_snap
    if params.price_path == "endogenous":
        (base_spec,) = resolve_designs([params.endo_baseline], None, "--set endo_baseline")
        step(f"baseline {base_spec.label}")
        baseline = run_design(event.id, base_spec, inputs, hist, context, snapshot=hist_snap)
        step("warm-up (endogenous)")
        snap = warmup_snapshot(inputs, params, baseline_flow=_baseline_flow(inputs, params, baseline))
    out = []
    for spec in specs:
        step(spec.label)
        out.append(
            run_design(
                event.id, spec, inputs, params, context, baseline, snapshot=snap if share_warmup else None
            )
        )
    return out


def _historical(params: Params) -> Params:
    return Params.from_overrides({**params.to_dict(), "price_path": "historical"})


def _baseline_flow(
    inputs: list[SymbolInputs], params: Params, baseline: Result | None
) -> dict[str, np.ndarray] | None:
    if params.price_path != "endogenous":
        return None
    if baseline is None:
        raise ValueError("the endogenous path needs the baseline run's forced flow")
    return {i.symbol: baseline.series[f"{i.symbol}.market_flow"] for i in inputs}


def add_design_figures(
    result: Result, run: RunState, spec: DesignSpec, context: Mapping[str, Any] | None = None
) -> None:
    """Add to a summarized run what only the design knows: per-tick claims and shortfalls (for
    'depleted when'), the design's own summary, premium and payouts, and which rule gave its start
    capital (``capital_rule``; None for a design without one)."""
    from strategies.static import capital_text

    n = run.clock.shape[0]
    asked = np.zeros(n)
    short = np.zeros(n)
    for st in run.symbols.values():
        ticks = np.searchsorted(run.clock, st.inp.ts)
        w = st.inp.in_window
        bad = st.out[:, K.O_LONG + K.O_BAD] + st.out[:, K.O_SHORT + K.O_BAD]
        np.add.at(asked, ticks[w], bad[w])
        np.add.at(short, ticks[w], st.uncovered[w].sum(axis=1))
    result.series["fund_asked"] = asked
    result.series["fund_shortfall"] = short
    rec = result.record
    rec["design_type"] = spec.design
    rec["capital_rule"] = capital_text(spec.params, dict(context or {}), spec.label)
    fund = run.fund
    summary = fund.summary() if hasattr(fund, "summary") else {}
    rec["design_detail"] = {k: _plain(v) for k, v in summary.items()}
    rec["money_identity"] = money_identity(fund, summary)
    rec["fund_premium_usd"] = float(summary.get("premium", 0.0) or 0.0)
    rec["fund_payout_usd"] = float(summary.get("payout", 0.0) or 0.0)
    history = fund.history() if hasattr(fund, "history") else {}
    for k, v in history.items():
        result.series[f"design.{k}"] = np.asarray(v, float)


def money_identity(fund: Fund, summary: Mapping[str, Any]) -> dict[str, Any] | None:
    """Where the fund's change came from (strategies/static.py LedgerFund): start, each inflow (+), outflow
    (-) and own P&L (signed), end, residual; None for a design without the ledger (``none``)."""
    if "start_usd" not in summary or "residual" not in summary:
        return None

    def terms(names: Sequence[str]) -> dict[str, float]:
        return {n: float(summary.get(n, 0.0) or 0.0) for n in names}

    return {"start": float(summary["start_usd"]), "inflows": terms(getattr(fund, "INFLOWS", ())),
            "outflows": terms(getattr(fund, "OUTFLOWS", ())), "pnl": terms(getattr(fund, "PNL", ())),
            "end": float(summary["end_usd"]), "residual": float(summary["residual"])}


def _plain(v: Any) -> Any:
    """JSON-safe scalar (numpy -> Python, NaN/inf -> None)."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v
