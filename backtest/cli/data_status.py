"""``backtest data status``: what the store holds per dataset, and how well it covers a crash window."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import click

from backtest.cli.options import db_option, events_file_option, format_option

#: What a window needs (table, type as shown, name in messages); as ``backtest.ensure`` judges it.
REQUIRED = (("candles", "last", "last-price candles"), ("candles", "mark", "mark candles"),
            ("funding", "funding", "funding"))
#: Coverage states: stored but with no row in the window; not in the store at all; a finer candle series
#: (recorded on crash days only, by design) with no recorded day in the window.
ABSENT, NOT_STORED, NOT_RECORDED = "absent", "not in store", "no recorded day"


@click.command("status")
@click.option("--event", "event_id", help="Also show coverage of this window (from start - warm-up to end).")
@events_file_option
@db_option
@format_option
def status(event_id: str | None, events_file: str | None, db: str | None, fmt: str) -> None:
    """Per dataset: first/last timestamp and row count; with --event, expected vs present bars, gaps,
    and the datasets the window needs that are absent (with the command that fills them).

    \b
    Example:
      backtest data status --event may2021
    """
    from loaders.store import Store

    event = None
    if event_id:
        from backtest.events import load_catalog

        event = load_catalog(events_file).get(event_id)
    with Store(db, read_only=True) as store:
        rows = dataset_status(store, event)
        db_path = str(store.path)
    if fmt == "json":
        out = {"db": db_path, "event": None, "datasets": [_jsonable(r) for r in rows]}
        if event is not None:
            out["event"] = {"id": event.id, "load_start": event.load_start.isoformat(),
                            "start": event.start.isoformat(), "end": event.end.isoformat(),
                            "absent": [{"venue": v, "symbol": s, "dataset": d}
                                       for v, s, d in absent_required(event, rows)],
                            "fill": _fill_hints(event, rows)}
        from backtest.finite import dumps

        click.echo(dumps(out, indent=2))
    else:
        _print_table(rows, db_path, event)


def dataset_status(store, event=None) -> list[dict[str, Any]]:  # noqa: ANN001 - Store/Event imported lazily
    """One record per stored dataset; with an event, only its venues/symbols, plus window coverage."""
    from loaders.coverage import TIMEFRAMES, coverage, timeframe_of

    q = store.query
    groups: list[dict[str, Any]] = []
    for r in q("SELECT venue, symbol, price_type, timeframe, min(ts) AS first, max(ts) AS last, "
               "count(*) AS n FROM candles GROUP BY ALL ORDER BY ALL").iter_rows(named=True):
        groups.append(dict(table="candles", venue=r["venue"], symbol=r["symbol"], type=r["price_type"],
                           timeframe=r["timeframe"], first=r["first"], last=r["last"], rows=r["n"],
                           where={"venue": r["venue"], "symbol": r["symbol"], "price_type": r["price_type"],
                                  "timeframe": r["timeframe"]}))
    for r in q("SELECT venue, symbol, min(ts) AS first, max(ts) AS last, count(*) AS n, "
               "mode(interval_h) AS iv FROM funding GROUP BY ALL ORDER BY ALL").iter_rows(named=True):
        iv = timedelta(hours=r["iv"] or 8)
        groups.append(dict(table="funding", venue=r["venue"], symbol=r["symbol"], type="funding",
                           timeframe=timeframe_of(iv) or f"{r['iv']:g}h", first=r["first"], last=r["last"],
                           rows=r["n"], where={"venue": r["venue"], "symbol": r["symbol"]}, step=iv))
    for r in q("SELECT venue, symbol, period, min(ts) AS first, max(ts) AS last, count(*) AS n "
               "FROM open_interest GROUP BY ALL ORDER BY ALL").iter_rows(named=True):
        groups.append(dict(table="open_interest", venue=r["venue"], symbol=r["symbol"], type="oi",
                           timeframe=r["period"], first=r["first"], last=r["last"], rows=r["n"],
                           where={"venue": r["venue"], "symbol": r["symbol"], "period": r["period"]}))
    for r in q("SELECT venue, symbol, min(ts) AS first, max(ts) AS last, count(*) AS n "
               "FROM liquidations GROUP BY ALL ORDER BY ALL").iter_rows(named=True):
        groups.append(dict(table="liquidations", venue=r["venue"], symbol=r["symbol"], type="liquidations",
                           timeframe="-", first=r["first"], last=r["last"], rows=r["n"],
                           where={"venue": r["venue"], "symbol": r["symbol"]}))
    for r in q("SELECT venue, fund, currency, min(ts) AS first, max(ts) AS last, count(*) AS n "
               "FROM insurance_fund GROUP BY ALL ORDER BY ALL").iter_rows(named=True):
        groups.append(dict(table="insurance_fund", venue=r["venue"], symbol=r["currency"],
                           type=f"fund:{r['fund']}", timeframe="-", first=r["first"], last=r["last"],
                           rows=r["n"],
                           where={"venue": r["venue"], "fund": r["fund"], "currency": r["currency"]}))
    if event is None:
        return [_public(g) for g in groups]

    start, end = event.load_start, event.end
    picked = [g for g in groups if g["venue"] in event.venues or g["symbol"] in event.symbols]
    for g in picked:
        where = " AND ".join(f"{k} = ?" for k in g["where"])
        ts = q(f"SELECT ts FROM {g['table']} WHERE {where} AND ts >= ? AND ts < ? ORDER BY ts",
               [*g["where"].values(), start, end])["ts"]
        step = g.get("step") or TIMEFRAMES.get(g["timeframe"])
        if step is None:  # event-like series (liquidations, fund snapshots): no grid to expect
            g["coverage"] = {"present": ts.len(), "expected": None, "gaps": None, "largest_gap": None}
            continue
        if g["table"] == "candles" and _has_coarser(g, groups):
            g["coverage"] = _recorded_days_coverage(ts, step, start, end)
            continue
        # Funding settles on its own schedule (BitMEX 04/12/20 UTC): anchor the grid on the series.
        anchor = g["first"] if g["table"] == "funding" else datetime(1970, 1, 1)
        cov = coverage(ts, step, start, end, anchor=anchor)
        g["coverage"] = {"expected": cov.expected, "present": cov.present, "gaps": cov.gaps,
                         "largest_gap": cov.largest_gap, "off_grid": cov.off_grid, "state": _state(cov),
                         "scope": "window"}
    # A dataset the window needs but the store lacks altogether gets its own row, said plainly.
    for venue in event.venues:
        for symbol in event.symbols:
            for table, kind, _ in REQUIRED:
                if not any((g["table"], g["venue"], g["symbol"], g["type"]) == (table, venue, symbol, kind)
                           for g in picked):
                    picked.append(dict(table=table, venue=venue, symbol=symbol, type=kind, timeframe="-",
                                       first=None, last=None, rows=0,
                                       coverage={"expected": None, "present": 0, "gaps": None,
                                                 "largest_gap": None, "state": NOT_STORED}))
    picked.sort(key=lambda g: (g["venue"], g["symbol"]))  # stable: table order within a symbol
    return [_public(g) for g in picked]


def _has_coarser(g: dict[str, Any], groups: list[dict[str, Any]]) -> bool:
    """Whether a coarser candle series of the same venue/symbol/type exists: then this finer one is a
    supplement the window loader uses only where it was recorded (1m on crash days), not a requirement."""
    from loaders.coverage import TIMEFRAMES

    mine = TIMEFRAMES.get(g["timeframe"])
    key = (g["venue"], g["symbol"], g["type"])
    return mine is not None and any(
        o["table"] == "candles" and (o["venue"], o["symbol"], o["type"]) == key
        and TIMEFRAMES.get(o["timeframe"], mine) > mine for o in groups)


def _recorded_days_coverage(ts, step: timedelta, start: datetime, end: datetime) -> dict[str, Any]:  # noqa: ANN001
    """Coverage of a supplement series over the UTC days it was recorded on inside [start, end): a 1m
    series that exists only on two crash days is complete when those days are, not "66,240 expected"."""
    from loaders.coverage import coverage

    days = sorted({t.date() for t in ts.to_list()})
    expected = present = gaps = off_grid = 0
    largest = timedelta(0)
    for d in days:
        lo = max(start, datetime(d.year, d.month, d.day))
        hi = min(end, lo.replace(hour=0, minute=0) + timedelta(days=1))
        cov = coverage(ts.filter((ts >= lo) & (ts < hi)), step, lo, hi, anchor=datetime(1970, 1, 1))
        expected += cov.expected
        present += cov.present
        gaps += cov.gaps
        off_grid += cov.off_grid
        largest = max(largest, cov.largest_gap)
    state = NOT_RECORDED if not days else "complete" if present == expected else "gaps"
    return {"expected": expected, "present": present, "gaps": gaps, "largest_gap": largest,
            "off_grid": off_grid, "state": state, "scope": "recorded_days",
            "recorded_days": [d.isoformat() for d in days]}


def _state(cov) -> str:  # noqa: ANN001 - loaders.coverage.Coverage (lazy)
    """One word for a grid series in the window; a series with no row there is absent, not "1 gap"."""
    if cov.present == cov.expected:
        return "complete"
    return ABSENT if cov.present == 0 else "gaps"


def absent_required(event, rows: list[dict[str, Any]]) -> list[tuple[str, str, str]]:  # noqa: ANN001
    """(venue, symbol, dataset name) the window needs and that has no row in it (stored or not)."""
    out = []
    for venue in event.venues:
        for symbol in event.symbols:
            for table, kind, name in REQUIRED:
                key = (table, venue, symbol, kind)
                present = sum((r.get("coverage") or {}).get("present") or 0 for r in rows
                              if (r["table"], r["venue"], r["symbol"], r["type"]) == key)
                if present == 0:
                    out.append((venue, symbol, name))
    return out


def _public(g: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in g.items() if k not in ("where", "step")}


def _jsonable(r: dict[str, Any]) -> dict[str, Any]:
    out = dict(r)
    for k in ("first", "last"):
        out[k] = r[k].isoformat() if r.get(k) else None
    cov = r.get("coverage")
    if cov is not None:
        cov = dict(cov)
        if isinstance(cov.get("largest_gap"), timedelta):
            cov["largest_gap_s"] = int(cov.pop("largest_gap").total_seconds())
        else:
            cov["largest_gap_s"] = cov.pop("largest_gap", None)
        out["coverage"] = cov
    return out


def _print_table(rows: list[dict[str, Any]], db: str, event) -> None:  # noqa: ANN001
    from rich.table import Table

    from backtest.cli.console import stdout_console
    from loaders.coverage import format_duration

    console = stdout_console()
    title = f"store {db}"
    if event is not None:
        title += f" — {event.id}: coverage of [{event.load_start:%Y-%m-%d %H:%M}, {event.end:%Y-%m-%d %H:%M})"
    table = Table(title=title, title_justify="left")
    cols = ["venue", "symbol", "type", "tf", "first ts", "last ts", "rows (all time)"]
    if event is not None:
        cols += ["measured over", "expected", "present", "gaps", "largest gap"]
    right = ("rows (all time)", "expected", "present", "gaps")
    for c in cols:
        table.add_column(c, justify="right" if c in right else "left")
    if not rows:
        console.print(f"{db}: the store holds no market data (import some with `backtest data import`)")
        return
    for r in rows:
        cells = [r["venue"], r["symbol"], r["type"], r["timeframe"],
                 f"{r['first']:%Y-%m-%d %H:%M}" if r["first"] else "-",
                 f"{r['last']:%Y-%m-%d %H:%M}" if r["last"] else "-", f"{r['rows']:,}"]
        if event is not None:
            cov = r.get("coverage") or {}
            exp = cov.get("expected")
            present = cov.get("present")
            state = cov.get("state")
            style = "" if exp is None or present == exp else "[yellow]"
            days = cov.get("recorded_days")
            if cov.get("scope") == "recorded_days":
                n = len(days or [])
                scope = (f"{n} recorded day{'s' if n != 1 else ''} (by design)" if n
                         else "recorded days only (none here)")
            else:
                scope = "window"
            if state == NOT_RECORDED:
                gaps, largest = "none recorded", "-"
                style = ""
            elif state in (ABSENT, NOT_STORED):
                gaps, largest = f"[yellow]{state}", "whole window"
            else:
                gaps = "-" if cov.get("gaps") is None else str(cov["gaps"])
                largest = "-" if cov.get("largest_gap") is None else format_duration(cov["largest_gap"])
            cells += [scope, "-" if exp is None else f"{exp:,}",
                      "-" if present is None else f"{style}{present:,}", gaps, largest]
        table.add_row(*cells)
    console.print(table)
    if event is not None and any((r.get("coverage") or {}).get("scope") == "recorded_days" for r in rows):
        console.print("Finer candles (1m, 15m) are recorded only on some days by design; the window uses "
                      "them there and the coarser series elsewhere, so they are measured over their recorded "
                      "days.", soft_wrap=True, highlight=False)
    if event is not None:
        absent = absent_required(event, rows)
        if absent:
            what = ", ".join(f"{s} {d}" for _, s, d in absent)
            fill = "; ".join(_fill_hints(event, rows))
            console.print(f"{event.id}: no {what} in the window. To fill it: {fill}",
                          soft_wrap=True, highlight=False, markup=False)


def _fill_hints(event, rows: list[dict[str, Any]]) -> list[str]:  # noqa: ANN001
    """The command per venue that fills the absent datasets of the window."""
    from backtest.ensure import fill_hint

    venues = dict.fromkeys(v for v, _, _ in absent_required(event, rows))
    return [fill_hint(event.id, v) for v in venues]
