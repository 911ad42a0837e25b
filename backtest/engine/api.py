"""Glue between the catalog/store and the engine: load a window's inputs, run designs, get records.

Used by ``backtest run`` and ``scripts/bench_engine.py``; the engine itself never sees the store.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from backtest.engine.inputs import SymbolInputs, catalog_oi_level, from_window
from backtest.engine.params import Params
from backtest.engine.replay import replay
from backtest.engine.results import Result, summarize
from loaders.errors import UserError
from strategies.base import DESIGNS, Fund


def design_names() -> list[str]:
    return list(DESIGNS)


def make_fund(design: str, event: Any = None) -> Fund:
    """A fresh fund object of a registered design (unknown name -> UserError listing the valid ones)."""
    try:
        cls = DESIGNS[design]
    except KeyError:
        raise UserError(f"--designs {design}: unknown design; valid: {', '.join(DESIGNS)}") from None
    return cls()


def load_inputs(
    event: Any,
    venue: str,
    symbols: Sequence[str],
    params: Params,
    *,
    db: str | os.PathLike[str] | None = None,
    archive: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> list[SymbolInputs]:
    """Fill the store if needed (archive first, then download), then load each symbol's window."""
    from backtest.ensure import ensure_window
    from backtest.window import load_window
    from loaders.store import Store

    ensure_window(db, event, venue, list(symbols), archive=archive, progress=progress)
    out = []
    with Store(db, read_only=True) as store:
        for sym in symbols:
            win = load_window(store, event, venue, sym)
            out.append(from_window(win, params, catalog_oi_level(event, sym)))
    return out


def run_design(
    event_id: str,
    design: str,
    inputs: list[SymbolInputs],
    params: Params,
    event: Any = None,
    baseline: Result | None = None,
) -> Result:
    """One (event, design) replay; ``baseline`` (a historical run) switches on the endogenous path."""
    base_flow = None
    if params.price_path == "endogenous":
        if baseline is None:
            raise ValueError("the endogenous path needs the baseline run's forced flow")
        base_flow = {i.symbol: baseline.series[f"{i.symbol}.market_flow"] for i in inputs}
    run = replay(inputs, make_fund(design, event), params, baseline_flow=base_flow)
    assumptions: dict[str, str] = {"price_path": params.price_path}
    for i in inputs:
        for k, v in i.assumptions.items():
            assumptions[f"{i.symbol}.{k}"] = v
    if base_flow is not None:
        assumptions["endo_baseline"] = (
            f"baseline forced flow from the historical run of '{params.endo_baseline}'"
        )
    return summarize(run, event_id, design, assumptions)


def run_event(event: Any, designs: Sequence[str], inputs: list[SymbolInputs], params: Params) -> list[Result]:
    """Every design on one window; the endogenous path first runs the baseline design historically."""
    for d in designs:
        make_fund(d)
    baseline = None
    if params.price_path == "endogenous":
        make_fund(params.endo_baseline)
        hist = Params.from_overrides({**params.to_dict(), "price_path": "historical"})
        baseline = run_design(event.id, params.endo_baseline, inputs, hist, event)
    return [run_design(event.id, d, inputs, params, event, baseline) for d in designs]
