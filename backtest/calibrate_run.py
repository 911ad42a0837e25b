"""The replays ``backtest calibrate`` needs besides its one ``none`` replay: one ``static`` fund per
insurance-fund outcome (``fund_change`` figure) of a window.

A fund covers a set of contracts (Binance's BTC/ETH USDⓈ-M fund in 2021; BTCUSDT's own fund in 2020),
so each figure is replayed on exactly its ``fund_symbols`` with the ``static`` design started at the
reported ``before`` balance, and compared by the pure :func:`backtest.calibrate.fund_change`. Used by
the calibrate command and, later, by scripts/fit_calibration.py (same inputs: the window's loaded
``SymbolInputs`` and the model ``Params``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from backtest.calibrate import FundSeries, Row, fund_change, fund_change_not_replayed

#: The design a fund outcome is replayed with: fixed capital, grows only from liquidation surplus,
#: pays bad debt until empty (Binance-like; strategies/static.py).
FUND_DESIGN = "static"


def fund_rows(event: Any, inputs: Sequence[Any], params: Any, *, venue: str | None = None) -> list[Row]:
    """One calibration row per ``fund_change`` figure of ``event``, in catalog order.

    ``inputs``: the window's loaded ``SymbolInputs`` (a figure whose ``fund_symbols`` are not all
    loaded, or whose fund belongs to another venue than ``venue`` (default ``params.venue``), is shown
    but not replayed); ``params``: the model parameters of the replay.
    """
    from backtest.engine.api import run_event
    from strategies.config import load_config

    venue = venue or params.venue
    loaded = {i.symbol for i in inputs}
    rows = []
    for name, rep in event.reported.items():
        if rep.kind != "fund_change":
            continue
        missing = [s for s in rep.fund_symbols if s not in loaded]
        if rep.venue != venue:
            why = f"a {rep.venue} fund; the replay is {venue}"
            rows.append(fund_change_not_replayed(event, name, rep, why))
        elif missing:
            rows.append(fund_change_not_replayed(event, name, rep, f"{', '.join(missing)} not loaded"))
        else:
            sub = [i for i in inputs if i.symbol in rep.fund_symbols]
            config = load_config(sets=[f"{FUND_DESIGN}.capital_usd={float(rep.before)!r}"])
            (result,) = run_event(event, [FUND_DESIGN], sub, params, config=config, venue=venue)
            series = FundSeries.from_result(result, rep.before, [i.symbol for i in sub])
            rows.append(fund_change(event, name, rep, series))
    return rows
