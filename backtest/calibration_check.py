"""Flag a replayed window whose reconstruction falls outside the range of its reported figures.

A report's numbers are only as good as the window's calibration (docs/CALIBRATION.md): oct2025's
liquidations come out at 0.67x the reported Binance lower bound, so its fund drawdowns are
understated. ``backtest calibrate`` shows every row; a run or compare report carries one warning line
per *scored* row outside its range, so nobody reads such a window without knowing.

Ranges (of the comparisons in ``backtest.calibrate``): a liquidation total reported as a lower bound
1-6x it (6 = the largest published undercount), any other total within x2; a long share within 0.15
(the fit's error scale); an OI change whose remaining fraction is within x2; the peak within 6 hours.
"""

from __future__ import annotations

import math
from typing import Any

#: Tolerances of each comparison (see the module docstring).
TOTAL_WITHIN = 2.0
LONG_SHARE_WITHIN = 0.15
OI_REMAINING_WITHIN = 2.0
PEAK_WITHIN_H = 6.0
_LOG_OI = math.log(OI_REMAINING_WITHIN)


def out_of_range(row: Any) -> str | None:
    """Why a scored calibration row is outside its range, in words, or None when it is inside."""
    from backtest.calibrate import LOWER_BOUND_MAX_RATIO

    if not row.scored:
        return None
    if row.metric == "liquidations" and row.ratio is not None:
        lo, hi = (1.0, LOWER_BOUND_MAX_RATIO) if row.lower_bound else (1 / TOTAL_WITHIN, TOTAL_WITHIN)
        if not lo <= row.ratio <= hi:
            what = "the reported lower bound" if row.lower_bound else "the reported total"
            return f"liquidations {row.ratio:.2f}x {what} (range {lo:g}-{hi:g}x)"
    elif row.metric == "long_share" and row.error is not None and abs(row.error) > LONG_SHARE_WITHIN:
        return f"long share {row.model:.2f} vs reported {row.reported:.2f} (range ±{LONG_SHARE_WITHIN:g})"
    elif row.metric == "oi_change" and row.error is not None and abs(row.error) > _LOG_OI:
        return (f"OI change {row.model:+.0%} vs reported {row.reported:+.0%} (remaining OI off by more "
                f"than x{OI_REMAINING_WITHIN:g})")
    elif row.metric == "peak_time" and row.model is not None and abs(row.model) > PEAK_WITHIN_H:
        return f"liquidation peak {row.model:+.1f} h from the catalog peak (range ±{PEAK_WITHIN_H:g} h)"
    return None


def window_warnings(event: Any, results: list[Any], inputs: list[Any], params: Any) -> list[str]:
    """One line per scored calibration row of ``event`` outside its range, measured on the run's replay
    (the ``none`` design's when it ran: calibrate's own choice; else the first design's).

    Only for the replay the figures are mapped onto (Binance USDⓈ-M, every symbol of the window): a
    ``--symbols BTCUSDT`` run would compare BTC alone with BTC+ETH totals and warn for nothing."""
    from backtest.calibrate import ModelSeries, Shares, compare

    replayed = {i.symbol for i in inputs}
    if not results or params.venue != "binanceusdm" or replayed != set(event.symbols):
        return []
    run = next((r for r in results if r.record.get("design") == "none"), results[0])
    cal = compare(event, ModelSeries.from_result(run, inputs), Shares(params.venue_share))
    out = []
    for row in cal.rows:
        why = out_of_range(row)
        if why is not None:
            out.append(f"calibration warning: {event.id} {row.figure}: {why}; read this window's fund "
                       f"figures with care (backtest calibrate --event {event.id}, docs/CALIBRATION.md)")
    return out
