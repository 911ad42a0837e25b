"""Design frontiers: the least capital (or parameter value) that keeps every selected event free of ADL.

Per design and event, the frontier on the grid is the smallest swept value from which every larger
value paid every claim in full (robust to a non-monotone response: a passing value below a failing one
does not count). Across events the design's frontier is the largest per-event one (None when the grid's
top value still needs ADL somewhere). ``refine`` narrows a frontier between two grid values by bisection
on the fast path (no engine run: a design either pays everything or not), which assumes the response is
monotone between those two values. The capital cost of the choice is each event's start capital x the
risk-free rate x the window length (``backtest.metrics``).
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class EventFrontier:
    event: str
    values: list[float]  # swept values, ascending
    adl_usd: list[float]  # ADL notional at each value
    adl_free: list[bool]
    frontier: float | None  # smallest value from which all larger values are ADL-free
    below: float | None  # the largest failing value under the frontier (bisection bracket)
    refined: float | None = None
    start_usd: float | None = None  # at the design's frontier value
    capital_cost_usd: float | None = None

    @property
    def censored(self) -> str | None:
        """Where the grid hides the true frontier: "below" when its lowest value already passes (the
        frontier may be lower), "above" when its highest value still fails; None when bracketed."""
        if not self.values:
            return None
        if self.frontier is None:
            return "above"
        return "below" if self.frontier == self.values[0] else None


@dataclass
class DesignFrontier:
    design: str
    key: str
    events: dict[str, EventFrontier] = field(default_factory=dict)

    @property
    def frontier(self) -> float | None:
        vals = [e.frontier for e in self.events.values()]
        return None if not vals or any(v is None for v in vals) else max(vals)  # type: ignore[type-var]

    @property
    def refined(self) -> float | None:
        vals = [e.refined if e.refined is not None else e.frontier for e in self.events.values()]
        return None if not vals or any(v is None for v in vals) else max(vals)  # type: ignore[type-var]

    @property
    def censored(self) -> str | None:
        """As ``EventFrontier.censored`` for the design's frontier (the largest over the events)."""
        evs = list(self.events.values())
        if any(e.censored == "above" for e in evs):
            return "above"
        f = self.frontier
        at_max = [e for e in evs if e.frontier == f]
        return "below" if at_max and all(e.censored == "below" for e in at_max) else None

    @property
    def any_refined(self) -> bool:
        return any(e.refined is not None for e in self.events.values())

    @property
    def capital_cost_usd(self) -> float | None:
        costs = [e.capital_cost_usd for e in self.events.values()]
        return None if not costs or any(c is None for c in costs) else float(sum(costs))  # type: ignore[arg-type]


def swept_key(frame: Any, design: str) -> str:
    """The single design parameter that varies across a design's rows (else an error naming the choices)."""
    from loaders.errors import UserError

    rows = frame.filter(frame["design"] == design)
    params = [json.loads(p) for p in rows["params"].to_list()]
    varying = sorted({k for p in params for k in p if any(q.get(k) != p[k] for q in params)})
    numeric = [k for k in varying if all(isinstance(p.get(k), int | float) for p in params)]
    if len(numeric) != 1:
        raise UserError(
            f"--frontier {design}: need exactly one numeric swept parameter of {design}, found "
            f"{', '.join(numeric) or 'none'}; name it as {design}.<parameter>"
        )
    return numeric[0]


def frontiers(frame: Any, keys: dict[str, str] | None = None) -> list[DesignFrontier]:
    """One DesignFrontier per design in the results frame (rows of one sweep)."""
    out = []
    for design in sorted(set(frame["design"].to_list()), key=frame["design"].to_list().index):
        key = (keys or {}).get(design) or swept_key(frame, design)
        rows = frame.filter(frame["design"] == design)
        df = DesignFrontier(design, key)
        for ev in sorted(set(rows["event"].to_list()), key=rows["event"].to_list().index):
            er = rows.filter(rows["event"] == ev)
            pts = sorted(
                (float(json.loads(p)[key]), float(a or 0.0), bool(f), float(s or 0.0), float(c or 0.0))
                for p, a, f, s, c in zip(
                    er["params"],
                    er["adl_notional_usd"],
                    er["adl_free"],
                    er["fund_start_usd"],
                    er["capital_cost_usd"],
                    strict=True,
                )
            )
            values = [p[0] for p in pts]
            free = [p[2] for p in pts]
            front = below = None
            for i in range(len(pts) - 1, -1, -1):
                if not free[i]:
                    below = values[i]
                    break
                front = values[i]
            e = EventFrontier(
                ev, values, [p[1] for p in pts], free, front, below if front is not None else None
            )
            df.events[ev] = e
        f = df.frontier
        for e in df.events.values():
            if f is not None and f in e.values:
                e.start_usd, e.capital_cost_usd = pts_of(rows, e.event, key, f)
        out.append(df)
    return out


def pts_of(rows: Any, event: str, key: str, value: float) -> tuple[float | None, float | None]:
    er = rows.filter(rows["event"] == event)
    for p, s, c in zip(er["params"], er["fund_start_usd"], er["capital_cost_usd"], strict=True):
        if float(json.loads(p)[key]) == value:
            return s, c
    return None, None


def single_points(frame: Any, designs: Sequence[str]) -> list[dict[str, Any]]:
    """The rows of designs that have no single swept number (no frontier): shown as run, never dropped.

    ``parameters`` lists only what varies across the design's rows (empty: one point, its configured values).
    """
    out = []
    for design in designs:
        rows = frame.filter(frame["design"] == design)
        params = [json.loads(p) for p in rows["params"].to_list()]
        varying = sorted({k for p in params for k in p if any(q.get(k) != p[k] for q in params)})
        for r, p in zip(rows.iter_rows(named=True), params, strict=True):
            out.append(
                {
                    "design": design,
                    "event": r["event"],
                    "parameters": ", ".join(f"{k}={p.get(k)}" for k in varying),
                    "adl_free": bool(r["adl_free"]),
                    "adl_notional_usd": r["adl_notional_usd"],
                    "fund_start_usd": r["fund_start_usd"],
                    "fund_min_usd": r["fund_min_usd"],
                    "capital_cost_usd": r["capital_cost_usd"],
                }
            )
    return out


POINTS_TITLE = "Designs without one swept number (no frontier): their points as run"
POINT_HEADERS = ("design", "event", "parameters", "ADL-free", "ADL notional", "fund start", "fund minimum",
                 "capital cost")


def _point_cells(r: dict[str, Any]) -> list[str]:
    return [
        r["design"],
        r["event"],
        r["parameters"] or "as configured",
        "yes" if r["adl_free"] else "no",
        _money(r["adl_notional_usd"]),
        _money(r["fund_start_usd"]),
        _money(r["fund_min_usd"]),
        _money(r["capital_cost_usd"]),
    ]


def points_table(points: Sequence[dict[str, Any]], title: str) -> Any:
    from rich.table import Table

    t = Table(title=title)
    for c in POINT_HEADERS:
        t.add_column(c, justify="left" if c in ("design", "event", "parameters") else "right")
    for r in points:
        t.add_row(*_point_cells(r))
    return t


def refine(
    first_shortfall: Callable[[float], int | None],
    lo: float,
    hi: float,
    *,
    rtol: float = 1e-4,
    log: bool = True,
    max_iter: int = 60,
) -> float:
    """Smallest value in (lo, hi] with no shortfall, to ``rtol`` (lo must fail, hi must pass)."""
    if first_shortfall(hi) is not None:
        raise ValueError(f"refine: {hi:g} does not pass")
    if first_shortfall(lo) is None:
        return lo
    for _ in range(max_iter):
        if hi - lo <= rtol * abs(hi):
            break
        mid = math.sqrt(lo * hi) if log and lo > 0 else (lo + hi) / 2.0
        if first_shortfall(mid) is None:
            hi = mid
        else:
            lo = mid
    return hi


# ----- output


def _money(x: float | None) -> str:
    from backtest.report.tables import money

    return money(x)


#: How a censored frontier is written (the grid value it is bounded by follows).
BOUND = {"below": "≤ ", "above": "> "}
#: The same, as the Parquet/JSON column ``frontier_censored`` says it.
CENSORED = {"below": "at_lowest_grid_value", "above": "above_highest_grid_value"}


def _num(key: str, x: float) -> str:
    return _money(x) if key.endswith("_usd") else f"{x:.6g}"


def _val(key: str, x: float | None, censored: str | None = None, top: float | None = None) -> str:
    """The frontier as read: exact, "≤ lowest grid value" or "> highest grid value"."""
    if censored == "above":
        return BOUND["above"] + _num(key, top) if top is not None else "not reached"
    if x is None:
        return "not reached"
    return BOUND.get(censored or "", "") + _num(key, x)


def table_rows(fronts: Sequence[DesignFrontier]) -> list[dict[str, Any]]:
    """One row per (design, event) plus the design's ALL row: the frontier as a plain table."""
    rows = []
    for d in fronts:
        for e in d.events.values():
            rows.append(
                {
                    "design": d.design,
                    "parameter": d.key,
                    "event": e.event,
                    "frontier": e.frontier,
                    "frontier_censored": CENSORED.get(e.censored or ""),
                    "grid_top": e.values[-1] if e.values else None,
                    "refined": e.refined,
                    "max_adl_failing_usd": max(
                        (a for a, f in zip(e.adl_usd, e.adl_free, strict=True) if not f), default=0.0
                    ),
                    "start_usd_at_design_frontier": e.start_usd,
                    "capital_cost_usd_at_design_frontier": e.capital_cost_usd,
                }
            )
        rows.append(
            {
                "design": d.design,
                "parameter": d.key,
                "event": "ALL",
                "frontier": d.frontier,
                "frontier_censored": CENSORED.get(d.censored or ""),
                "grid_top": max((e.values[-1] for e in d.events.values() if e.values), default=None),
                "refined": d.refined if d.any_refined else None,
                "max_adl_failing_usd": None,
                "start_usd_at_design_frontier": None,
                "capital_cost_usd_at_design_frontier": d.capital_cost_usd,
            }
        )
    return rows


def rich_table(fronts: Sequence[DesignFrontier], title: str) -> Any:
    from rich.table import Table

    t = Table(title=title)
    for c in HEADERS:
        t.add_column(c, justify="left" if c in ("design", "parameter", "event") else "right")
    for r in table_rows(fronts):
        t.add_row(*_cells(r))
    return t


#: Column headers: the start and cost columns are taken at the DESIGN's frontier (the largest over the
#: events), not at the row's own event frontier, and the table must say so.
HEADERS = (
    "design",
    "parameter",
    "event",
    "frontier (grid)",
    "refined",
    "fund start at design frontier",
    "capital cost at design frontier",
    "ADL below frontier (max)",
)


def notes(fronts: Sequence[DesignFrontier]) -> list[str]:
    """One line per censored frontier: what the bound means and how to widen the grid."""
    out = []
    for d in fronts:
        for e in d.events.values():
            if e.censored == "below":
                lo = _num(d.key, e.values[0])
                out.append(
                    f"{d.design} {e.event}: ≤ {lo}: the lowest grid value already avoids ADL, so the "
                    f"frontier may be lower; widen --grid {d.design}.{d.key} below {lo}"
                )
            elif e.censored == "above":
                hi = _num(d.key, e.values[-1])
                out.append(
                    f"{d.design} {e.event}: > {hi}: ADL even at the highest grid value; widen --grid "
                    f"{d.design}.{d.key} above {hi}"
                )
    return out


def plot(d: DesignFrontier) -> bytes:
    """ADL notional vs the swept value, one line per event (frontier marked)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    from backtest.report.plots import render_png

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for e in d.events.values():
        (line,) = ax.plot(e.values, e.adl_usd, marker="o", ms=3, lw=1.2, label=e.event)
        if e.frontier is not None:
            ax.axvline(e.frontier, color=line.get_color(), lw=0.8, ls=":")
    vals = [v for e in d.events.values() for v in e.values]
    if vals and min(vals) > 0 and max(vals) / min(vals) > 20:
        ax.set_xscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: _money(y)))
    if d.key.endswith("_usd"):
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: _money(x)))
    ax.set_xlabel(f"{d.design}.{d.key}")
    ax.set_ylabel("ADL notional (USD)")
    ax.set_title(f"{d.design}: ADL notional vs {d.key} (dotted: per-event frontier)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return render_png(fig)  # the reports' renderer: drawable glyphs, same layout and metadata


def write_report(
    out: str | Path,
    fronts: Sequence[DesignFrontier],
    frame: Any,
    *,
    title: str,
    command: str,
    points: Sequence[dict[str, Any]] = (),
) -> Path:
    """``frontier.html`` (self-contained: inline CSS, PNG plots) + ``frontier.parquet`` + ``sweep.parquet``,
    written to a staging directory and moved into place only when complete."""
    import polars as pl

    from backtest.report.html import staged_output

    with staged_output(out) as stage:
        pl.DataFrame(table_rows(fronts), infer_schema_length=None).write_parquet(stage / "frontier.parquet")
        frame.write_parquet(stage / "sweep.parquet")
        page = render(fronts, title=title, command=command, points=points)
        (stage / "frontier.html").write_text(page, encoding="utf-8")
    return Path(out) / "frontier.html"


def render(
    fronts: Sequence[DesignFrontier], *, title: str, command: str, points: Sequence[dict[str, Any]] = ()
) -> str:
    e = html.escape
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title><style>"
        "body{font-family:sans-serif;max-width:70em;margin:1em auto;color:#222}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
        "text-align:right}td:first-child,th:first-child,td:nth-child(2),td:nth-child(3){text-align:left}"
        "code{background:#f4f4f4}</style></head><body>",
        f"<h1>{e(title)}</h1><p><code>{e(command)}</code></p>",
        "<p>Frontier: the smallest swept value from which every larger grid value paid every bad-debt "
        "claim in full (no ADL) in the event; the design's frontier is the largest over the events. "
        "<em>Refined</em>: bisection between grid values on the fast path (assumes a monotone response "
        "there). Capital cost: start capital × risk-free rate × window length at the design's frontier."
        " ≤ x: the lowest grid value x already avoids ADL (the frontier may be lower); > x: ADL even at "
        "the highest grid value x.</p><table id='frontier'><tr>"
        + "".join(f"<th>{e(h)}</th>" for h in HEADERS)
        + "</tr>",
    ]
    for r in table_rows(fronts):
        cells = _cells(r)
        bold = r["event"] == "ALL"
        parts.append(
            "<tr>"
            + "".join(f"<td>{'<b>' if bold else ''}{e(str(c))}{'</b>' if bold else ''}</td>" for c in cells)
            + "</tr>"
        )
    parts.append("</table>")
    hints = notes(fronts)
    if hints:
        parts.append("<ul class='notes'>" + "".join(f"<li>{e(h)}</li>" for h in hints) + "</ul>")
    if points:
        parts.append(
            f"<h2>{e(POINTS_TITLE)}</h2><table id='points'><tr>"
            + "".join(f"<th>{e(h)}</th>" for h in POINT_HEADERS)
            + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in _point_cells(r)) + "</tr>" for r in points)
            + "</table>"
        )
    for d in fronts:
        png = base64.b64encode(plot(d)).decode()
        parts.append(
            f"<h2>{e(d.design)}</h2><img alt='ADL notional vs {e(d.key)} for {e(d.design)}' "
            f"src='data:image/png;base64,{png}'>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)


_UNCENSOR = {v: k for k, v in CENSORED.items()}


def _cells(r: dict) -> list[str]:
    """One frontier row as display strings (shared by the terminal and the HTML table)."""
    return [
        r["design"],
        r["parameter"],
        r["event"],
        _val(r["parameter"], r["frontier"], _UNCENSOR.get(r["frontier_censored"]), r["grid_top"]),
        "" if r["refined"] is None else _val(r["parameter"], r["refined"],
                                              _UNCENSOR.get(r["frontier_censored"]), r["grid_top"]),
        _money(r["start_usd_at_design_frontier"]) if r["event"] != "ALL" else "",
        _money(r["capital_cost_usd_at_design_frontier"]),
        "" if r["max_adl_failing_usd"] is None else _money(r["max_adl_failing_usd"]),
    ]
