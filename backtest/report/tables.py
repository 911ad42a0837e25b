"""The comparison table (one row per design) and the designs × events matrix: as cells, rich tables, Parquet.

Cells are formatted once here so the terminal, the HTML page and the tests show the same text.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backtest.engine.results import Result


def money(x: Any) -> str:
    """USD with a k/M/B suffix; n/a for missing values."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:,.2f}{suffix}"
    return f"{x:,.2f}"


def pct(x: Any, signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:+.1f}%" if signed else f"{x:.1f}%"


def depleted(rec: dict[str, Any]) -> str:
    """'no', or 'yes' and the UTC time the fund was empty (MM-DD HH:MM); a design's ADL trigger (a claim
    paid short with money left) reads 'trigger' and its time, never 'yes'."""
    def when(at: str) -> str:
        return f" {at[5:10]} {at[11:16]}" if at else ""

    trig = rec.get("adl_trigger_at")
    if not rec.get("depleted"):
        return f"no · trigger{when(trig)}" if trig else "no"
    out = f"yes{when(rec.get('depleted_at') or '')}"
    return f"{out} (trigger{when(trig)})" if trig and trig < (rec.get("depleted_at") or "") else out


def ratio(x: Any) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x * 100:.2f}%"


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    fmt: Callable[[dict[str, Any]], str]
    help: str = ""


def _m(key: str) -> Callable[[dict[str, Any]], str]:
    return lambda r: money(r[key])


COMPARISON = (
    Column("design", "design", lambda r: str(r["design"])),
    Column("fund_start_usd", "fund start", _m("fund_start_usd"), "value when the window opens"),
    Column("fund_min_usd", "fund min", _m("fund_min_usd"), "lowest value in the window"),
    Column("fund_end_usd", "fund end", _m("fund_end_usd"), "value at the window end"),
    Column("max_drawdown_pct", "max drawdown", lambda r: pct(r["max_drawdown_pct"]), "fall from a peak"),
    Column("depleted", "depleted (UTC)", depleted,
           "fund empty (value ~0); 'trigger': the design sent a claim to ADL while it still held money"),
    Column("bad_debt_usd", "bad debt", _m("bad_debt_usd"), "bankrupt positions' deficit"),
    Column("fund_paid_usd", "covered by fund", _m("fund_paid_usd"), "bad debt the fund paid"),
    Column("surplus_usd", "surplus received", _m("surplus_usd"), "liquidation surplus in"),
    Column("adl_notional_usd", "ADL notional", _m("adl_notional_usd"), "winners' notional closed"),
    Column("adl_haircut_usd", "winners' haircut", _m("adl_haircut_usd"), "profit taken by ADL"),
    Column("fund_return_pct", "fund return", lambda r: pct(r["fund_return_pct"], signed=True),
           "end vs start, incl. hedge/funding/yield P&L"),
    Column("capital_cost_usd", "capital cost", _m("capital_cost_usd"), "rf × capital × window + premium"),
    Column("coverage_ratio", "fund/OI start", lambda r: ratio(r["coverage_ratio"]), "start capital / OI"),
)

ENGINE_ROWS = (
    ("liq_long_usd", "liq long"),
    ("liq_short_usd", "liq short"),
    ("peak_liq_usd_per_min", "peak liq/min"),
    ("oi_start_usd", "OI start"),
    ("oi_min_usd", "OI min"),
    ("conservation_residual_usd", "residual"),
)


def comparison_cells(results: Sequence[Result]) -> list[list[str]]:
    """One row of formatted cells per design, in COMPARISON order."""
    return [[c.fmt(r.record) for c in COMPARISON] for r in results]


def comparison_table(results: Sequence[Result], title: str) -> Any:
    """Rich table: metric rows × design columns (fits a terminal better with many designs)."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("metric", no_wrap=True)
    for r in results:
        table.add_column(str(r.record["design"]), justify="right", no_wrap=True)
    cells = comparison_cells(results)
    for j, col in enumerate(COMPARISON[1:], start=1):
        table.add_row(col.label, *(row[j] for row in cells), end_section=col.key == "coverage_ratio")
    for key, label in ENGINE_ROWS:
        table.add_row(label, *(money(r.record[key]) for r in results))
    table.add_row("liquidations (pieces)", *(f"{r.record['liq_count']:,.0f}" for r in results))
    table.add_row("cohorts", *(f"{r.record['cohorts']:,}" for r in results))
    return table


def capital_lines(results: Sequence[Result]) -> list[str]:
    """Which rule gave each design's start capital, designs with the same rule and amount on one line."""
    groups: dict[tuple[str, str], list[str]] = {}
    for r in results:
        rule = r.record.get("capital_rule")
        if rule:
            key = (money(r.record.get("fund_start_usd")), str(rule))
            groups.setdefault(key, []).append(str(r.record["design"]))
    return [f"{', '.join(ds)}: {amount} = {rule}" for (amount, rule), ds in groups.items()]


# ----- designs × events matrix (backtest compare)


def survived(rec: dict[str, Any]) -> bool:
    """The window passed with no ADL: every bad-debt claim was covered (no winner lost profit)."""
    return rec["adl_notional_usd"] <= 0.0 and rec["adl_haircut_usd"] <= 0.0


def min_fund_pct(rec: dict[str, Any]) -> float | None:
    start = rec["fund_start_usd"]
    return rec["fund_min_usd"] / start * 100.0 if start > 0 else None


def matrix_cell(rec: dict[str, Any]) -> str:
    ok = "yes" if survived(rec) else "NO"
    return f"{ok} · min {pct(min_fund_pct(rec))} · ADL {money(rec['adl_notional_usd'])}"


def matrix(by_event: dict[str, Sequence[Result]]) -> tuple[list[str], list[str], dict[tuple[str, str], dict]]:
    """(designs in first-seen order, event ids, (design, event) -> record)."""
    designs: list[str] = []
    cells: dict[tuple[str, str], dict] = {}
    for ev, results in by_event.items():
        for r in results:
            d = str(r.record["design"])
            if d not in designs:
                designs.append(d)
            cells[(d, ev)] = r.record
    return designs, list(by_event), cells


def matrix_table(by_event: dict[str, Sequence[Result]], title: str) -> Any:
    from rich.table import Table

    designs, events, cells = matrix(by_event)
    caption = "survived without ADL? · min fund as % of start · ADL notional"
    table = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
    table.add_column("design", no_wrap=True)
    for ev in events:
        table.add_column(ev, no_wrap=True)
    for d in designs:
        table.add_row(d, *(matrix_cell(cells[(d, ev)]) if (d, ev) in cells else "-" for ev in events))
    return table


# ----- Parquet


def results_frame(results: Sequence[Result], extra: dict[str, Any] | None = None) -> Any:
    """One row per (event, design): every scalar record field, nested fields as JSON text."""
    import polars as pl

    rows = []
    for r in results:
        row: dict[str, Any] = dict(extra or {})
        for k, v in r.record.items():
            if isinstance(v, dict | list | tuple):
                row[k] = json.dumps(v, default=str)  # key order kept: the report lists accounts in it
            elif hasattr(v, "item"):
                row[k] = v.item()
            else:
                row[k] = v
        row["per_symbol"] = json.dumps(r.per_symbol, sort_keys=True)
        row["survived_without_adl"] = survived(r.record)
        rows.append(row)
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    schema = {k: _dtype(pl, [row.get(k) for row in rows]) for k in keys}
    return pl.DataFrame([{k: row.get(k) for k in keys} for row in rows], schema=schema, orient="row")


def _dtype(pl: Any, values: list[Any]) -> Any:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return pl.Boolean
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return pl.Int64
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return pl.Float64
    return pl.String


def write_parquet(frame: Any, path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    frame.write_parquet(path)
    return path
