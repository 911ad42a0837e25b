"""Golden fingerprints of the recorded crash windows: how one (event, design) run is summarised.

A fingerprint is the key metrics rounded to ``SIG_DIGITS`` significant digits plus a SHA-256 of the
per-bar event log (every symbol's liquidated long/short USD, bad debt, ADL notional, OI, and the
fund's value, received and paid per tick) rounded to ``LOG_SIG_DIGITS`` digits. Any amount below
``FLOOR`` (a cent, or a hundredth of a count) counts as 0: such values are rounding residue of
10^11-USD sums (an ``unrecovered_usd`` of 2e-6 USD is the difference of two 10^6-USD figures) and
flip sign when the engine merely sums in another order. Rounding keeps the fingerprint stable across
CPUs and summation orders (last-bit noise) while any real change moves it: a changed model moves
figures far beyond the 6th digit.
Used by tests/regression/test_fingerprints.py and scripts/regen_fingerprints.py.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np

EVENTS = ("mar2020", "may2020", "may2021", "luna2022", "ftx2022", "aug2024", "oct2025")
FINGERPRINTS = Path(__file__).with_name("fingerprints.json")
SIG_DIGITS = 9
LOG_SIG_DIGITS = 6
FLOOR = 0.01
METRICS = (
    "liq_count", "liq_accounts", "liq_long_usd", "liq_short_usd", "peak_liq_usd_per_min", "bad_debt_usd",
    "surplus_usd", "fund_paid_usd", "fund_start_usd", "fund_end_usd", "fund_min_usd", "adl_notional_usd",
    "adl_haircut_usd", "unrecovered_usd", "oi_start_usd", "oi_min_usd", "traded_usd", "trader_pnl_usd",
    "warmup_fund_change_usd", "cohorts", "bars",
)
LOG_SERIES = ("liq_long_usd", "liq_short_usd", "bad_debt_usd", "adl_notional_usd", "oi_usd")
TICK_SERIES = ("fund_value", "fund_received", "fund_paid")


def round_sig(x: float, digits: int = SIG_DIGITS) -> float:
    if abs(x) < FLOOR:
        return 0.0
    if not math.isfinite(x):
        return float(x)
    return float(f"{x:.{digits - 1}e}")


def log_hash(result: Any) -> str:
    h = hashlib.sha256()
    syms = sorted(result.per_symbol)
    arrays = [result.series[f"{s}.{name}"] for s in syms for name in LOG_SERIES]
    arrays += [result.series[name] for name in TICK_SERIES]
    for a in arrays:
        r = np.vectorize(lambda v: round_sig(float(v), LOG_SIG_DIGITS), otypes=[float])(np.asarray(a, float))
        h.update(r.tobytes())
    return h.hexdigest()[:16]


def fingerprint(result: Any) -> dict[str, Any]:
    rec = result.record
    out: dict[str, Any] = {k: round_sig(float(rec[k])) for k in METRICS}
    out["event_log_sha256"] = log_hash(result)
    return out


@dataclass
class EventRuns:
    """Every standard design on one window (warm-up shared), with each run's final engine state."""

    event: Any
    inputs: list[Any]
    params: Any
    results: dict[str, Any] = field(default_factory=dict)
    states: dict[str, Any] = field(default_factory=dict)


def pinned_capital() -> Any:
    """A design config starting every design that has a start capital at 291.85M (the default before the
    "event" rule, strategies/static.py): the fingerprints watch the engine, so a fund size in the catalog
    or the capital rule (tests/backtest/test_capital.py covers it) does not move them."""
    from strategies.config import DesignConfig, fields_of
    from strategies.registry import entry, names
    from strategies.static import BINANCE_MAY2021_USD

    raw = {d: {"capital_usd": BINANCE_MAY2021_USD} for d in names()
           if fields_of(entry(d).params).get("capital_usd") is not None
           and fields_of(entry(d).params)["capital_usd"].default == "event"}
    return DesignConfig(raw=raw)


def run_recorded(event_id: str, db: str | Path, archive: str | Path) -> EventRuns:
    """Replay all registered designs on a recorded window with the default parameters (capital pinned)."""
    from backtest.engine import api
    from backtest.engine.params import Params
    from backtest.events import load_catalog

    event = load_catalog().get(event_id)
    params = Params()
    inputs = api.load_inputs(event, params.venue, list(event.symbols), params, db=db, archive=archive)
    states: list[Any] = []
    real_replay = api.replay

    def capture(*args: Any, **kwargs: Any) -> Any:  # keep each design's final RunState for invariants
        state = real_replay(*args, **kwargs)
        states.append(state)
        return state

    with mock.patch.object(api, "replay", capture):
        results = api.run_event(event, None, inputs, params, config=pinned_capital())
    runs = EventRuns(event, inputs, params)
    for res, st in zip(results, states, strict=True):
        runs.results[res.record["design"]] = res
        runs.states[res.record["design"]] = st
    return runs


def diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Readable lines of what moved between two fingerprints of one case."""
    lines = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if a == b:
            continue
        if isinstance(a, float) and isinstance(b, float) and a:
            lines.append(f"  {k}: {a:.9g} -> {b:.9g} ({(b - a) / abs(a):+.3%})")
        else:
            lines.append(f"  {k}: {a} -> {b}")
    return lines
