"""Position-book reconstruction inputs: how new open interest splits into cohorts (MODEL §6).

Vectorised over bars: the crowding signal from funding and taker-buy share tilts each side's
leverage mix from ``lev_neutral`` toward ``lev_crowded`` (the crowded side) or ``lev_hedger``
(the other side). Size classes decide the bracket (tier) and cap the leverage at its maximum.
"""

from __future__ import annotations

import numpy as np

from backtest.engine.params import LEVERAGE_BUCKETS, Params
from backtest.engine.venue_rules import MAXLEV, tier_of


def crowding(f_last: np.ndarray, tb: np.ndarray, p: Params) -> np.ndarray:
    """x in [-1, 1] per bar; x > 0 means longs are crowded."""
    x = (f_last - p.funding_neutral) / p.funding_ref + (tb - 0.5) / p.taker_ref
    return np.clip(x, -1.0, 1.0)


def side_weights(f_last: np.ndarray, tb: np.ndarray, p: Params) -> tuple[np.ndarray, np.ndarray]:
    """Leverage-bucket weights per bar for new longs and new shorts, each [T, 10], rows sum to 1."""
    x = crowding(f_last, tb, p)
    neu, cro, hed = (np.asarray(v, dtype=float) for v in (p.lev_neutral, p.lev_crowded, p.lev_hedger))

    def mix(xs: np.ndarray) -> np.ndarray:
        a_plus = p.lev_tilt * np.maximum(xs, 0.0)[:, None]
        a_minus = p.lev_tilt * np.maximum(-xs, 0.0)[:, None]
        return neu[None, :] + a_plus * (cro - neu)[None, :] + a_minus * (hed - neu)[None, :]

    return mix(x), mix(-x)


def size_templates(brackets: np.ndarray, p: Params) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(size_usd [Z], size_share [Z], tier [Z] 0-based, effective leverage [10, Z])."""
    size_usd = np.asarray(p.size_usd, dtype=float)
    tiers = np.array([tier_of(brackets, s) for s in size_usd], dtype=np.int64)
    lev = np.minimum(np.asarray(LEVERAGE_BUCKETS)[:, None], brackets[tiers, MAXLEV][None, :])
    return size_usd, np.asarray(p.size_share, dtype=float), tiers, lev


def regrowth(target: np.ndarray, in_window: np.ndarray, mark_close: np.ndarray, dt: np.ndarray,
             p: Params) -> tuple[float, np.ndarray]:
    """(Q_ref, rate per bar) of OI regrowth in the free book (MODEL §6).

    Q_ref is the OI anchor at the last warm-up bar in base units (anchor / mark close there): the
    pre-window book the market rebuilds toward after liquidations removed part of it. ``rate[t]`` =
    1 - exp(-dt / oi_regrow_s) on free in-window bars (no anchor), else 0; no warm-up, no anchor or
    ``oi_regrow_s = 0``: no regrowth.
    """
    rate = np.zeros(target.shape[0])
    warm = np.flatnonzero(~np.asarray(in_window, bool))
    if p.oi_regrow_s <= 0.0 or warm.size == 0:
        return 0.0, rate
    last = int(warm[-1])
    if not np.isfinite(target[last]) or mark_close[last] <= 0.0:
        return 0.0, rate
    q_ref = float(target[last] / mark_close[last])
    free = np.asarray(in_window, bool) & np.isnan(target)
    rate[free] = -np.expm1(-np.asarray(dt, float)[free] / p.oi_regrow_s)
    return q_ref, rate


def leverage_share(inp, p: Params, open_usd: np.ndarray, at_least: float,
                   bars: np.ndarray | None = None) -> float:
    """Share of the new notional (both sides, weighted by each bar's opens) at an effective leverage of
    at least ``at_least`` (docs/CALIBRATION.md: what the fitted mix implies). ``bars``: a boolean mask
    of the bars to count (default all)."""
    wl, ws = side_weights(inp.f_last, inp.tb, p)
    _, size_share, _, lev_eff = size_templates(inp.brackets, p)
    at = (lev_eff >= at_least).astype(float) @ size_share  # per bucket: share of its notional at >= L
    per_bar = 0.5 * ((wl + ws) @ at)
    w = np.asarray(open_usd, float) if bars is None else np.where(bars, open_usd, 0.0)
    return float((w * per_bar).sum() / w.sum()) if w.sum() > 0 else float("nan")


def offload_share(dt: np.ndarray, p: Params) -> np.ndarray:
    """Share of the fund's taken-over inventory sold in each bar (MODEL §5.6).

    ``1 - exp(-dt / takeover_tau_s)``: an exponential offload in real time, so 60 one-minute bars sell
    what one hour bar sells. ``takeover_tau_s = 0``: exactly 1 (every last piece is sold in its own bar,
    the model before the take-over).
    """
    dt = np.asarray(dt, float)
    if p.takeover_tau_s <= 0.0:
        return np.ones(dt.shape[0])
    return -np.expm1(-dt / p.takeover_tau_s)
