"""The replays ``backtest calibrate`` needs besides its one ``none`` replay: one ``static`` fund per
insurance-fund outcome (``fund_change`` figure) of a window.

A fund covers a set of contracts (Binance's BTC/ETH USDⓈ-M fund in 2021; BTCUSDT's own fund in 2020),
so each figure is replayed on exactly its ``fund_symbols`` with a static fund that holds the reported
``before`` balance at the start of the figure's interval (:class:`IntervalFund`), and compared by the
pure :func:`backtest.calibrate.fund_change`. Used by the calibrate command and by
scripts/fit_calibration.py (same inputs: the window's loaded ``SymbolInputs`` and the model ``Params``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from backtest.calibrate import FundSeries, Row, fund_change, fund_change_not_replayed
from strategies.base import Fund

#: What a fund outcome is replayed with: fixed capital, grows only from liquidation surplus, pays bad
#: debt until empty (Binance-like, as strategies/static.py), holding the reported balance at the start
#: of the figure's interval.
FUND_DESIGN = "static"


class IntervalFund(Fund):
    """The venue's fund as the figure describes it: ``before`` USD at ``start`` (epoch seconds).

    Before ``start`` it covers every bad debt (the real fund did: it still held ``before`` then) and
    keeps no surplus, so the book reaches the interval as the venue's did, without ADL; from the first
    tick opening at or after ``start`` it is a static fund of ``before``: receives surplus, pays bad
    debt while it lasts. Starting a static fund at the window start instead would let days of earlier
    replayed flows decide its level on the interval (a fund emptied before the interval shows a small
    loss in it)."""

    name = FUND_DESIGN

    def __init__(self, before: float, start: float, clock: Any) -> None:
        super().__init__(before)
        import numpy as np

        self.first = int(np.searchsorted(np.asarray(clock), start, side="left"))
        self.balance = float(before)

    def receive(self, tick: int, usd: float) -> None:
        if tick >= self.first:
            self.balance += usd

    def pay(self, tick: int, usd: float) -> float:
        if tick < self.first:
            return usd
        paid = min(usd, self.balance)
        self.balance -= paid
        return paid

    def value(self, tick: int) -> float:
        return self.balance


def fund_rows(event: Any, inputs: Sequence[Any], params: Any, *, venue: str | None = None) -> list[Row]:
    """One calibration row per ``fund_change`` figure of ``event``, in catalog order.

    ``inputs``: the window's loaded ``SymbolInputs`` (a figure whose ``fund_symbols`` are not all
    loaded, or whose fund belongs to another venue than ``venue`` (default ``params.venue``), is shown
    but not replayed); ``params``: the model parameters of the replay. Each figure is replayed on its
    ``fund_symbols`` with an :class:`IntervalFund` holding ``before`` at ``measured_from``.
    """
    from datetime import datetime

    from backtest.engine.replay import replay
    from backtest.engine.results import summarize

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
            import numpy as np

            sub = [i for i in inputs if i.symbol in rep.fund_symbols]
            clock = np.unique(np.concatenate([i.ts for i in sub]))
            start = (rep.measured_from - datetime(1970, 1, 1)).total_seconds()
            fund = IntervalFund(float(rep.before), start, clock)
            result = summarize(replay(sub, fund, params), event.id, FUND_DESIGN)
            series = FundSeries.from_result(result, rep.before, [i.symbol for i in sub])
            rows.append(fund_change(event, name, rep, series))
    return rows


def implied_leverage(inputs: Sequence[Any], params: Any, result: Any) -> dict[str, float]:
    """Share of the new notional at >= 20x and >= 50x effective leverage in a replay (``result`` of any
    design on ``inputs``): over warm-up + window ("all") and over the window only. What the fitted
    leverage mix implies, to set against public statements (docs/CALIBRATION.md)."""
    import numpy as np

    from backtest.engine.book import leverage_share

    out = {}
    for label, at in ((">=20x", 20.0), (">=50x", 50.0)):
        for scope in ("all", "window"):
            num = den = 0.0
            for inp in inputs:
                opens = np.asarray(result.series[f"{inp.symbol}.open_usd"])
                mask = np.asarray(inp.in_window, bool) if scope == "window" else None
                w = float(opens.sum() if mask is None else opens[mask].sum())
                if w > 0:
                    num += w * leverage_share(inp, params, opens, at, mask)
                    den += w
            out[f"{label} {scope}"] = num / den if den > 0 else float("nan")
    return out
