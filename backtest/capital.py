"""Start capital of designs with ``capital_usd = "event"``: the fund/OI ratio for windows without a fund.

The rule (``strategies.static.capital_rule``): the venue's fund listed in the catalog before the shock;
else ``fund_oi_ratio`` × the replayed OI at the window start. This module supplies the ratio: the model
parameter ``fund_oi_ratio`` when it is set (> 0), else the venue's listed fund nearest in time (by window
start) divided by the replayed OI at THAT window's start, so a May 2022 window gets a fund as large,
relative to its book, as May 2021's was. The reference OI is the warm-up's (design-independent), replayed
with the run's own model parameters: the ratio compares like with like. One warm-up per reference window
and parameter set per process (cached).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any

USD = ("USD", "USDT", "USDC")

_OI_CACHE: dict[tuple[str, str, str, str], float] = {}


def listed_fund(event: Any, venue: str) -> Any | None:
    """The event's USD fund of ``venue`` before the shock (catalog ``fund_before``), if any."""
    for f in getattr(event, "fund_before", ()) or ():
        if f.venue == venue and str(f.currency).upper() in USD:
            return f
    return None


def reference_event(event: Any, venue: str, catalog: Iterable[Any]) -> Any | None:
    """The other catalog window with a listed ``venue`` fund whose start is nearest to ``event``'s."""
    cands = [e for e in catalog if e.id != event.id and listed_fund(e, venue) is not None]
    if not cands:
        return None
    return min(cands, key=lambda e: (abs((e.start - event.start).total_seconds()), e.start))


def fund_oi_ratio(
    event: Any,
    venue: str,
    params: Any,
    *,
    catalog: Iterable[Any] | None = None,
    db: str | os.PathLike[str] | None = None,
    archive: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> tuple[float, str] | None:
    """(ratio, source) for the context, or None when the event lists its own fund (no ratio needed) or no
    window of the venue lists one (then a design with ``"event"`` capital says so and asks for a number).

    Loads the reference window (filling the store from the archive or by download like any run).
    """
    if listed_fund(event, venue) is not None:
        return None
    if params.fund_oi_ratio > 0:
        return float(params.fund_oi_ratio), f"--set fund_oi_ratio={params.fund_oi_ratio:g}"
    if catalog is None:
        from backtest.events import load_catalog

        catalog = load_catalog()
    ref = reference_event(event, venue, catalog)
    if ref is None:
        return None
    fund = listed_fund(ref, venue)
    oi = reference_oi(ref, venue, params, db=db, archive=archive, progress=progress)
    if not oi > 0:
        return None
    ratio = float(fund.balance) / oi
    return ratio, (f"{ref.id}, the nearest window listing a {venue} fund: {_money(fund.balance)} / "
                   f"replayed OI {_money(oi)} at its window start")


def reference_oi(
    ref: Any,
    venue: str,
    params: Any,
    *,
    db: str | os.PathLike[str] | None = None,
    archive: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> float:
    """Replayed OI (USD, all the window's symbols) when ``ref``'s window opens, from its warm-up alone."""
    from backtest.engine.api import _historical, load_inputs
    from backtest.engine.replay import warmup_snapshot

    hist = params if params.price_path == "historical" else _historical(params)
    key = (ref.id, venue, json.dumps(hist.to_dict(), sort_keys=True, default=str), str(db))
    if key not in _OI_CACHE:
        inputs = load_inputs(ref, venue, list(ref.symbols), hist, db=db, archive=archive, progress=progress)
        snap = warmup_snapshot(inputs, hist)
        _OI_CACHE[key] = float(sum(snap.oi_start().values()))
    return _OI_CACHE[key]


def _money(x: float) -> str:
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:,.2f}{suffix}"
    return f"{x:,.2f}"
