"""Fund metrics of one (event, design) run, from the engine's Result (DESIGN §7).

The engine's record already has the fund's start/min/end value; this adds what a reader compares
designs by: the worst fall from a peak, whether (and when) the fund could no longer pay a claim in
full, its return over the window (hedge, funding and yield P&L are in its value), what holding the
capital cost, and how large it was against the market it insured.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import numpy as np

from backtest.engine.results import Result

DEFAULT_RISK_FREE = 0.04
RISK_FREE_SOURCE = (
    "assumption: 4 %/yr, a round figure for USD T-bill yields (≈0 % in 2020–21, 4–5 % in 2023–25); "
    "set --risk-free per event for a closer figure"
)
YEAR_S = 365.0 * 86400.0
METRIC_KEYS = (
    "fund_start_usd",
    "fund_min_usd",
    "fund_end_usd",
    "max_drawdown_pct",
    "depleted",
    "depleted_at",
    "adl_trigger_at",
    "fund_return_pct",
    "capital_cost_usd",
    "coverage_ratio",
)
DEPLETED_FRACTION = 1e-6  # a fund worth less than this share of its start is empty


def fund_metrics(result: Result, *, window_s: float, risk_free: float = DEFAULT_RISK_FREE) -> dict[str, Any]:
    """The METRIC_KEYS of one run.

    ``window_s``: length of the event window (seconds) over which the capital is held.
    ``fund_min_usd``: the lowest value over the whole window *including its start*: the first window
    tick already holds that bar's inflow, so the ticks alone could put the minimum above the start.
    ``depleted``: the fund was empty: its value reached ~0 (a claim it could not pay in full leaves it
    there); ``depleted_at``: the first such tick (ISO UTC bar open). A design without capital (``none``)
    is depleted at its first claim. ``adl_trigger_at``: the first claim the design paid short while it
    still held money (a drawdown trigger or a per-claim cap sent the rest to ADL): a trigger, not
    depletion. ``fund_return_pct`` = (end − start + excess paid out to the venue)
    / start: a payout is a distribution, not a loss; None when the fund starts empty.
    ``capital_cost_usd`` = start × risk_free × window years + any premium the design reports paid.
    """
    if not (math.isfinite(window_s) and window_s >= 0):
        raise ValueError(f"window_s must be a finite number >= 0, got {window_s}")
    if not (math.isfinite(risk_free) and -1.0 < risk_free < 1.0):
        raise ValueError(f"risk_free must be a yearly rate between -1 and 1, got {risk_free}")
    rec, s = result.record, result.series
    start, end = float(rec["fund_start_usd"]), float(rec["fund_end_usd"])
    win = np.asarray(s["in_window"], bool)
    value = np.asarray(s["fund_value"], float)[win]
    clock = np.asarray(s["clock"])[win]
    fmin = min(start, float(value.min())) if value.size else start
    running_peak = np.maximum.accumulate(np.r_[start, value])[1:] if value.size else np.zeros(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(running_peak > 0.0, 1.0 - value / running_peak, 0.0)
    max_dd = float(max(dd.max(), 0.0)) * 100.0 if dd.size else 0.0
    depleted_tick, trigger_tick = _first_depleted(s, win, value, start)
    oi = float(rec.get("oi_start_usd") or 0.0)
    premium = float(rec.get("fund_premium_usd") or 0.0)
    payout = float(rec.get("fund_payout_usd") or 0.0)
    return {
        "fund_start_usd": start,
        "fund_min_usd": fmin,
        "fund_end_usd": end,
        "max_drawdown_pct": max_dd,
        "depleted": depleted_tick is not None,
        "depleted_at": _iso(int(clock[depleted_tick])) if depleted_tick is not None else None,
        "adl_trigger_at": _iso(int(clock[trigger_tick])) if trigger_tick is not None else None,
        "fund_return_pct": (end - start + payout) / start * 100.0 if start > 0.0 else None,
        "capital_cost_usd": start * risk_free * window_s / YEAR_S + premium,
        "coverage_ratio": start / oi if oi > 0.0 else None,
    }


def add_fund_metrics(
    results: list[Result], *, window_s: float, risk_free: float = DEFAULT_RISK_FREE
) -> list[Result]:
    """Write the metrics into each result's record (and the rate into its assumptions); returns them."""
    for r in results:
        r.record.update(fund_metrics(r, window_s=window_s, risk_free=risk_free))
        r.assumptions["risk_free"] = f"{risk_free:g}/yr ({RISK_FREE_SOURCE})"
        r.assumptions["capital_cost"] = (
            "start capital × risk-free rate × window length + the premium the design reports paid"
        )
        r.assumptions["fund_return"] = (
            "(end value − start value + excess the design paid out to the venue) / start value; hedge, "
            "funding, yield and premium flows are in the value"
        )
        r.assumptions["depleted"] = (
            f"the fund's value fell below {DEPLETED_FRACTION:g} of its start (a fund without capital: its "
            "first claim); a claim paid short while money was left is an ADL trigger of the design, "
            "reported as 'trigger', not as depletion"
        )
    return results


def _first_depleted(
    s: dict[str, Any], win: np.ndarray, value: np.ndarray, start: float
) -> tuple[int | None, int | None]:
    """Indices (among window ticks) of the first empty fund, and of the first claim paid short with
    money left (a design's trigger). Without start capital every short claim counts as depletion."""
    empty_at: int | None = None
    trigger_at: int | None = None
    short_ticks = np.zeros(0, dtype=np.int64)
    if "fund_shortfall" in s:
        asked = np.asarray(s["fund_asked"], float)[win]
        short = np.asarray(s["fund_shortfall"], float)[win]
        short_ticks = np.flatnonzero(short > 1e-6 + 1e-9 * asked)
    if start <= 0.0:
        return (int(short_ticks[0]) if short_ticks.size else None), None
    if value.size:
        hit = np.flatnonzero(value <= DEPLETED_FRACTION * start)
        if hit.size:
            empty_at = int(hit[0])
        with_money = short_ticks[value[short_ticks] > DEPLETED_FRACTION * start]
        if with_money.size:
            trigger_at = int(with_money[0])
    return empty_at, trigger_at


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
