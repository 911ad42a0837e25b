"""A report's data as polars frames and files, and back: what ``backtest report`` re-renders from.

An output directory holds ``results.parquet`` (one row per event x design, tables.results_frame),
``ticks.parquet`` (one row per window clock tick per event x design: the fund path and its flows),
``bars.parquet`` (one row per window bar per symbol per event x design: prices, forced flow, bad debt,
ADL, OI) and ``run.json`` (title, command, and per event the window, venue, model parameters and notes).
The page is always rendered from :func:`sections_from_frames`, live or from files, so a re-rendered
report is byte for byte the one the run wrote.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from backtest.engine.results import Result

META_FILE = "run.json"
TICKS_FILE = "ticks.parquet"
BARS_FILE = "bars.parquet"
FORMAT = 1

TICK_COLUMNS = {  # column -> (series key, meaning); documented in README ("Python API")
    "fund_value": ("fund_value", "fund value at the end of the tick (USD)"),
    "fund_received": ("fund_received", "liquidation surplus handed to the fund at the tick (USD)"),
    "fund_paid": ("fund_paid", "bad debt the fund paid at the tick (USD)"),
    "fund_asked": ("fund_asked", "bad debt offered to the fund at the tick (USD)"),
    "fund_shortfall": ("fund_shortfall", "bad debt the fund did not pay (went to ADL / loss) (USD)"),
    "liq_usd_per_min": ("liq_usd_per_min", "liquidated notional per minute, all symbols (USD/min)"),
    "oi_usd": ("oi_usd", "open interest per side, all symbols (USD)"),
}
BAR_COLUMNS = {  # column -> meaning (series key = "<symbol>.<column>")
    "liq_long_usd": "long notional liquidated in the bar (USD)",
    "liq_short_usd": "short notional liquidated in the bar (USD)",
    "bad_debt_usd": "bankrupt positions' deficit in the bar (USD)",
    "adl_notional_usd": "winners' notional closed by ADL in the bar (USD)",
    "oi_usd": "open interest per side at the bar's end (USD)",
    "market_flow": "forced flow sent to the market in the bar (signed, base units x price, USD)",
    "price_mult": "endogenous path: factor on the recorded price (1 = historical)",
}


@dataclass(frozen=True)
class SavedFund:
    """A catalog ``fund_before`` entry as the page shows it."""

    venue: str
    fund: str
    balance: float
    currency: str


@dataclass(frozen=True)
class SavedEvent:
    """The fields of ``backtest.events.Event`` a report reads, restored from run.json."""

    id: str
    title: str
    start: datetime
    end: datetime
    warmup: timedelta
    peak: datetime | None
    symbols: tuple[str, ...]
    fund_before: tuple[SavedFund, ...] = ()
    peak_note: str = ""


@dataclass
class SavedParams:
    """Model parameters as saved (a dict); the page reads ``price_path`` only."""

    values: dict[str, Any] = field(default_factory=dict)

    @property
    def price_path(self) -> str:
        return str(self.values.get("price_path", "historical"))

    def to_dict(self) -> dict[str, Any]:
        return dict(self.values)


def _iso(d: datetime | None) -> str | None:
    return d.isoformat() if d is not None else None


def _dt(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def event_meta(event: Any) -> dict[str, Any]:
    """The report's view of an event (duck-typed on backtest.events.Event) as JSON-able data."""
    return {
        "id": event.id,
        "title": event.title,
        "start": _iso(event.start),
        "end": _iso(event.end),
        "warmup_s": event.warmup.total_seconds(),
        "peak": _iso(event.peak),
        "peak_note": getattr(event, "peak_note", "") or "",
        "symbols": list(event.symbols),
        "fund_before": [
            {"venue": f.venue, "fund": f.fund, "balance": float(f.balance), "currency": f.currency}
            for f in getattr(event, "fund_before", ()) or ()
        ],
    }


def saved_event(d: dict[str, Any]) -> SavedEvent:
    return SavedEvent(
        id=d["id"], title=d["title"], start=_dt(d["start"]), end=_dt(d["end"]),  # type: ignore[arg-type]
        warmup=timedelta(seconds=d["warmup_s"]), peak=_dt(d.get("peak")), symbols=tuple(d["symbols"]),
        fund_before=tuple(SavedFund(**f) for f in d.get("fund_before", [])), peak_note=d.get("peak_note", ""),
    )


def _epoch_dt(ts: np.ndarray) -> Any:
    import polars as pl

    return pl.Series(np.asarray(ts, np.int64) * 1_000_000).cast(pl.Datetime("us"))


def tick_frame(results: Sequence[Result]) -> Any:
    """One row per window clock tick per (event, design): the fund path and its flows."""
    import polars as pl

    parts = []
    for r in results:
        s = r.series
        win = np.asarray(s["in_window"], bool)
        cols: dict[str, Any] = {
            "event": [str(r.record["event"])] * int(win.sum()),
            "design": [str(r.record["design"])] * int(win.sum()),
            "ts": _epoch_dt(np.asarray(s["clock"])[win]),
        }
        for col, (key, _) in TICK_COLUMNS.items():
            cols[col] = np.asarray(s[key], float)[win]
        parts.append(pl.DataFrame(cols))
    return pl.concat(parts) if parts else pl.DataFrame()


def bar_frame(results: Sequence[Result], prices: dict[str, dict[str, Any]]) -> Any:
    """One row per window bar per symbol per (event, design): recorded prices, the replay's per-bar figures.

    ``prices``: plots.window_prices(inputs) (window bars: open time, length, last and mark close).
    """
    import polars as pl

    parts = []
    for r in results:
        s = r.series
        for sym, p in prices.items():
            ts = np.asarray(s[f"{sym}.ts"])
            keep = np.isin(ts, p["ts"])
            n = int(keep.sum())
            cols: dict[str, Any] = {
                "event": [str(r.record["event"])] * n,
                "design": [str(r.record["design"])] * n,
                "symbol": [sym] * n,
                "ts": _epoch_dt(ts[keep]),
                "bar_s": np.asarray(p["dt"], float),
                "last": np.asarray(p["last"], float),
                "mark": np.asarray(p["mark"], float),
            }
            for col in BAR_COLUMNS:
                cols[col] = np.asarray(s[f"{sym}.{col}"], float)[keep]
            parts.append(pl.DataFrame(cols))
    return pl.concat(parts) if parts else pl.DataFrame()


def run_meta(sections: Sequence[Any], *, title: str, command: str, matrix: bool) -> dict[str, Any]:
    """run.json: what the page needs besides the frames."""
    return {
        "format": FORMAT,
        "title": title,
        "command": command,
        "matrix": matrix,
        "sections": [
            {"event": event_meta(s.event), "venue": s.venue, "params": _jsonable(s.params.to_dict()),
             "risk_free": s.risk_free, "notes": list(s.notes)}
            for s in sections
        ],
    }


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


@dataclass
class ReportData:
    """Everything a page is rendered from (see the module docstring)."""

    meta: dict[str, Any]
    results: Any  # polars DataFrame (results.parquet)
    ticks: Any
    bars: Any


def report_data(sections: Sequence[Any], *, title: str, command: str, matrix: bool) -> ReportData:
    """The frames of live sections (backtest.report.html.EventSection)."""
    import polars as pl

    from backtest.report.tables import results_frame

    results = [r for s in sections for r in s.results]
    bars = [bar_frame(s.results, s.prices) for s in sections]
    return ReportData(
        meta=run_meta(sections, title=title, command=command, matrix=matrix),
        results=results_frame(results),
        ticks=tick_frame(results),
        bars=pl.concat([b for b in bars if b.height]) if any(b.height for b in bars) else pl.DataFrame(),
    )


def write_data(data: ReportData, directory: Path) -> list[Path]:
    """results.parquet, ticks.parquet, bars.parquet and run.json into ``directory``."""
    from backtest.report.html import TABLE_FILE

    out = []
    for name, frame in ((TABLE_FILE, data.results), (TICKS_FILE, data.ticks), (BARS_FILE, data.bars)):
        frame.write_parquet(directory / name)
        out.append(directory / name)
    (directory / META_FILE).write_text(json.dumps(data.meta, indent=1, ensure_ascii=False) + "\n", "utf-8")
    out.append(directory / META_FILE)
    return out


def read_data(path: str | Path) -> ReportData:
    """A saved report's data: ``path`` is its directory or its results.parquet. Missing or unreadable
    files -> UserError naming the file and what to do."""
    import polars as pl

    from backtest.report.html import TABLE_FILE
    from loaders.errors import InputError, UserError

    p = Path(path)
    directory = p.parent if p.is_file() else p
    if not directory.is_dir():
        raise UserError(f"RESULTS {path}: no such directory or file")
    files = {name: directory / name for name in (TABLE_FILE, TICKS_FILE, BARS_FILE, META_FILE)}
    for name, f in files.items():
        if not f.is_file():
            raise InputError(f, f"missing: {name} is written by `backtest run/compare --out` beside "
                                f"{TABLE_FILE}; re-run with --out to get a complete results directory")
    try:
        meta = json.loads(files[META_FILE].read_text("utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(files[META_FILE], f"not readable JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else meta
        raise InputError(files[META_FILE], f"unknown format {got!r} (this version reads format {FORMAT})")
    frames = []
    for name in (TABLE_FILE, TICKS_FILE, BARS_FILE):
        try:
            frames.append(pl.read_parquet(files[name]))
        except Exception as e:  # polars raises several types for a damaged file
            raise InputError(files[name], f"not a readable Parquet file ({type(e).__name__}: {e})") from None
    return ReportData(meta, *frames)


def _record(row: dict[str, Any]) -> dict[str, Any]:
    rec = {}
    for k, v in row.items():
        if k in ("per_symbol", "survived_without_adl"):
            continue
        if isinstance(v, str) and k in JSON_FIELDS:
            v = json.loads(v)
        rec[k] = v
    return rec


JSON_FIELDS = ("assumptions", "design_detail", "money_identity")


def sections_from_frames(data: ReportData) -> list[Any]:
    """EventSections (with Results whose series hold the window ticks and bars) from a report's data."""
    import polars as pl

    from backtest.report.html import EventSection

    out = []
    for sm in data.meta["sections"]:
        ev = saved_event(sm["event"])
        rows = data.results.filter(pl.col("event") == ev.id)
        ticks = data.ticks.filter(pl.col("event") == ev.id) if data.ticks.height else data.ticks
        bars = data.bars.filter(pl.col("event") == ev.id) if data.bars.height else data.bars
        results = []
        prices: dict[str, dict[str, Any]] = {}
        for row in rows.iter_rows(named=True):
            design = row["design"]
            rec = _record(row)
            per_symbol = json.loads(row["per_symbol"]) if row.get("per_symbol") else {}
            t = ticks.filter(pl.col("design") == design) if ticks.height else ticks
            clock = t["ts"].dt.epoch("s").to_numpy().astype(np.int64) if t.height else np.zeros(0, np.int64)
            series: dict[str, Any] = {"clock": clock, "in_window": np.ones(clock.shape[0], bool)}
            for col, (key, _) in TICK_COLUMNS.items():
                series[key] = t[col].to_numpy().astype(float) if t.height else np.zeros(0)
            b = bars.filter(pl.col("design") == design) if bars.height else bars
            for sym in dict.fromkeys(b["symbol"].to_list()) if b.height else ():
                bs = b.filter(pl.col("symbol") == sym)
                ts = bs["ts"].dt.epoch("s").to_numpy().astype(np.int64)
                series[f"{sym}.ts"] = ts
                for col in BAR_COLUMNS:
                    series[f"{sym}.{col}"] = bs[col].to_numpy().astype(float)
                if sym not in prices:
                    prices[sym] = {"ts": ts, "dt": bs["bar_s"].to_numpy().astype(float),
                                   "last": bs["last"].to_numpy().astype(float),
                                   "mark": bs["mark"].to_numpy().astype(float)}
            assumptions = rec.get("assumptions") or {}
            results.append(Result(record=rec, per_symbol=per_symbol, series=series, assumptions=assumptions))
        params = SavedParams(dict(sm.get("params") or {}))
        out.append(EventSection(ev, results, prices, sm["venue"], params, float(sm["risk_free"]),
                                list(sm.get("notes") or [])))
    return out

