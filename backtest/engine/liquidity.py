"""The depth the forced flow meets: the per-bar scale of the square-root impact law (MODEL §5.3).

The fill of a liquidation piece is its trigger moved by ``I = min(impact_cap, Y x S_t x sqrt(X / V_t))``
(X the side's liquidated quantity, V the bar's traded volume). ``S_t`` is the bar's volatility
corrected twice, each time by a named, fitted exponent:

    S_t = sigma_t x (sigma_t / sigma_N,t)^kappa x (impact_ref_s / dt_t)^beta

- ``sigma_t``: Parkinson volatility of the bar, ``ln(high / low) / sqrt(4 ln 2)``, of the mark range
  (``impact_range = mark``: what the liquidation engine sees, without the venue-only wicks of the
  last price) or of the last-price range.
- **Depth collapse** (``kappa``): books thin when volatility jumps above its normal level; sigma_N,t is
  the 'normal' volatility over the bar's length, from an exponentially weighted mean of the variance
  rate sigma^2 / dt of the bars *before* t (half-life ``impact_norm_halflife_s``). kappa = 0 is the plain
  square-root law, where depth already scales as 1/sigma.
- **Resolution bridge** (``beta``): the same crash on 1 h bars and on 1 m bars must cost about the same.
  With the bar's own sigma and forced quantity, an hour that holds a directional cascade gives a far
  larger impact than its sixty minutes (X and sigma both grow with the bar length); ``(ref / dt)^beta``
  scales a bar's law to the reference length (beta = 0.5: a random walk; 1: a straight move). beta is
  fitted on the recorded days that exist at both resolutions (docs/CALIBRATION.md).

kappa = beta = 0 with ``impact_range = last`` is the law before December 2026. Pure numpy/numba over
the bar arrays: no I/O, no polars.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from backtest.engine.kernels import B_HIGH, B_LOW, B_MHIGH, B_MLOW
from backtest.engine.params import Params

SQRT_4LN2 = math.sqrt(4.0 * math.log(2.0))


def bar_sigma(bars: np.ndarray, source: str) -> np.ndarray:
    """Parkinson volatility of every bar from its mark or last-price range (0 for a flat bar)."""
    hi, lo = (B_MHIGH, B_MLOW) if source == "mark" else (B_HIGH, B_LOW)
    return _parkinson(np.ascontiguousarray(bars[:, hi]), np.ascontiguousarray(bars[:, lo]))


@njit(cache=True)
def _parkinson(high: np.ndarray, low: np.ndarray) -> np.ndarray:
    """ln(high / low) / sqrt(4 ln 2) with the C library's log (numpy's vectorised log may differ in the
    last bit, and a last-bit difference can flip a knife-edge close between the engines)."""
    out = np.zeros(high.shape[0])
    for t in range(high.shape[0]):
        if low[t] > 0.0 and high[t] > low[t]:
            out[t] = math.log(high[t] / low[t]) / SQRT_4LN2
    return out


@njit(cache=True)
def _scale(sigma: np.ndarray, dt: np.ndarray, kappa: float, beta: float, ref: float,
           halflife: float) -> np.ndarray:
    """S_t in one loop with the C library's exp and pow, in the order MODEL §5.3 writes them (the
    reference engine computes the same expressions; numpy's vectorised power can differ in the last bit)."""
    n = sigma.shape[0]
    out = np.empty(n)
    if n == 0:
        return out
    normal = sigma[0] * sigma[0] / dt[0]
    ln2 = math.log(2.0)
    for t in range(n):
        s = sigma[t]
        if kappa != 0.0:
            sigma_n = math.sqrt(normal * dt[t])
            ratio = s / sigma_n if sigma_n > 0.0 else 1.0
            s = s * math.pow(ratio, kappa)
        if beta != 0.0:
            s = s * math.pow(ref / dt[t], beta)
        out[t] = s
        a = 1.0 - math.exp(-(dt[t] * ln2) / halflife)
        normal = normal + a * (sigma[t] * sigma[t] / dt[t] - normal)
    return out


def impact_scale(bars: np.ndarray, dt: np.ndarray, p: Params) -> np.ndarray:
    """S_t of every bar (the factor that multiplies ``impact_y x sqrt(X / V)``)."""
    sigma = bar_sigma(bars, p.impact_range)
    return _scale(sigma, np.ascontiguousarray(dt, dtype=float), p.impact_kappa, p.impact_beta,
                  p.impact_ref_s, p.impact_norm_halflife_s)
