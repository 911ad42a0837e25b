"""The HTML report: ONE self-contained file (CSS inline, plots as base64 PNG, no script, no network).

``write_report`` writes the page and the results table (Parquet) into a staging directory beside the
target and moves them into place only when both are complete, so a failure leaves nothing half-written.
"""

from __future__ import annotations

import base64
import html
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from backtest.engine.results import Result
from backtest.report import plots, tables
from backtest.report.glyphs import displayable
from loaders.errors import UserError

REPORT_FILE = "report.html"
ZOOM_HOURS = 6.0  # the crash-hours zoom: peak ± this many hours
TABLE_FILE = "results.parquet"


@dataclass
class EventSection:
    """One event's runs and what the page says about them."""

    event: Any  # backtest.events.Event
    results: list[Result]
    prices: dict[str, dict[str, Any]]  # plots.window_prices(inputs)
    venue: str
    params: Any  # backtest.engine.params.Params
    risk_free: float
    notes: list[str] = field(default_factory=list)


# ----- staging


def remove_stale_stages(parent: Path, prefix: str) -> list[Path]:
    """Remove staging folders ``<prefix><pid>-*`` left by a process that no longer runs (a kill -9
    during ``--out`` cannot clean up after itself); folders of live processes are left alone."""
    removed = []
    for d in parent.glob(f"{prefix}*"):
        pid = d.name[len(prefix):].split("-", 1)[0]
        if not d.is_dir() or not pid.isdigit() or _alive(int(pid)):
            continue
        shutil.rmtree(d, ignore_errors=True)
        removed.append(d)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def staged_output(out: str | os.PathLike[str]) -> Iterator[Path]:
    """A private directory to write into; on success its files replace those in ``out``, else it is removed.

    Checked on entry (before any long work): ``out`` must be a directory or not exist yet with an
    existing, writable parent. Unwritable -> UserError naming ``--out``.
    """
    target = Path(out)
    if target.exists() and not target.is_dir():
        raise UserError(f"--out {out}: exists and is not a directory")
    parent = target if target.is_dir() else target.parent
    if not parent.is_dir():
        raise UserError(f"--out {out}: parent directory {parent} does not exist")
    prefix = f".{target.name or 'report'}.tmp-"
    remove_stale_stages(parent, prefix)
    try:
        stage = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=parent))
        umask = os.umask(0o022)
        os.umask(umask)
        stage.chmod(0o777 & ~umask)  # mkdtemp makes it private; the report dir is an ordinary one
    except OSError as e:
        raise UserError(f"--out {out}: cannot write there ({e.strerror or e})") from None
    try:
        yield stage
        if target.is_dir():
            for f in sorted(stage.iterdir()):
                os.replace(f, target / f.name)
            stage.rmdir()
        else:
            os.rename(stage, target)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def write_report(
    stage: Path,
    sections: Sequence[EventSection],
    *,
    title: str,
    command: str,
    matrix: bool = False,
) -> tuple[Path, Path]:
    """Write the page, results.parquet and the data ``backtest report`` re-renders it from (ticks.parquet,
    bars.parquet, run.json: backtest/report/frames.py) into ``stage`` (see :func:`staged_output`).

    The page is rendered from the frames, not from the live results, so a re-rendered page is identical.
    """
    from backtest.report.frames import report_data, write_data

    data = report_data(sections, title=title, command=command, matrix=matrix)
    write_data(data, stage)
    return write_page(stage, data), stage / TABLE_FILE


def write_page(directory: Path, data: Any) -> Path:
    """report.html of a report's data (frames.ReportData) into ``directory``."""
    from backtest.report.frames import sections_from_frames

    meta = data.meta
    page = render(sections_from_frames(data), title=meta["title"], command=meta["command"],
                  matrix=bool(meta["matrix"]))
    html_path = directory / REPORT_FILE
    html_path.write_text(page, encoding="utf-8")
    return html_path


# ----- page


CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:#1d2330;
margin:0;background:#f5f6f8;line-height:1.45}
main{max-width:1240px;margin:0 auto;padding:28px 32px 60px;background:#fff;box-shadow:0 0 12px #0001}
h1{font-size:25px;margin:0 0 4px}h2{font-size:19px;margin:34px 0 8px;border-bottom:2px solid #e3e6eb;
padding-bottom:4px}h3{font-size:15px;margin:22px 0 6px}
.sub{color:#5b6475;font-size:13.5px;margin:0 0 14px}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:3px 16px;font-size:13px;margin:10px 0 18px}
dl.meta dt{color:#5b6475}dl.meta dd{margin:0}
table{border-collapse:collapse;font-size:12.5px;margin:8px 0 6px}
th,td{padding:5px 7px;border-bottom:1px solid #e3e6eb;text-align:right;white-space:nowrap}
th{background:#f0f2f5;font-weight:600;vertical-align:bottom;white-space:normal}
td:first-child,th:first-child{text-align:left;font-weight:600}
tbody tr:hover{background:#fafbfc}
.wrap{overflow-x:auto}
td.bad{color:#b42318}td.good{color:#067647}
table.kv td,table.kv th{text-align:left;white-space:normal;vertical-align:top}
table.kv td:first-child{white-space:nowrap;font-family:ui-monospace,Menlo,Consolas,monospace;font-weight:500}
figure{margin:14px 0 22px}figure img{max-width:100%;border:1px solid #e3e6eb}
figcaption{font-size:12.5px;color:#5b6475;margin-top:4px}
.note{font-size:12.5px;color:#5b6475}
details summary{cursor:pointer;font-weight:600;margin:8px 0}
"""


def _e(x: Any) -> str:
    return html.escape(displayable(str(x)), quote=True)


def _img(png: bytes, alt: str, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{_e(alt)}">'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


def _from_epoch(t: int) -> datetime:
    from datetime import UTC

    return datetime.fromtimestamp(t, UTC).replace(tzinfo=None)


def _utc(d: datetime | None) -> str:
    return d.strftime("%Y-%m-%d %H:%M UTC") if d is not None else "-"


def comparison_html(results: Sequence[Result], table_id: str) -> str:
    head = "".join(f'<th title="{_e(c.help)}">{_e(c.label)}</th>' for c in tables.COMPARISON)
    rows = []
    for r, cells in zip(results, tables.comparison_cells(results), strict=True):
        tds = []
        for c, v in zip(tables.COMPARISON, cells, strict=True):
            cls = ""
            if c.key == "depleted":
                cls = ' class="bad"' if r.record.get("depleted") else ' class="good"'
            elif c.key == "adl_notional_usd":
                cls = ' class="bad"' if r.record["adl_notional_usd"] > 0 else ' class="good"'
            tds.append(f"<td{cls}>{_e(v)}</td>")
        rows.append(f'<tr data-design="{_e(r.record["design"])}">{"".join(tds)}</tr>')
    return (
        f'<div class="wrap"><table class="comparison" id="{_e(table_id)}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def matrix_html(sections: Sequence[EventSection]) -> str:
    by_event = {s.event.id: s.results for s in sections}
    designs, events, cells = tables.matrix(by_event)
    head = "<th>design</th>" + "".join(f"<th>{_e(ev)}</th>" for ev in events)
    rows = []
    for d in designs:
        tds = [f"<td>{_e(d)}</td>"]
        for ev in events:
            rec = cells.get((d, ev))
            if rec is None:
                tds.append("<td>-</td>")
                continue
            cls = "good" if tables.survived(rec) else "bad"
            tds.append(f'<td class="{cls}">{_e(tables.matrix_cell(rec))}</td>')
        rows.append(f'<tr data-design="{_e(d)}">{"".join(tds)}</tr>')
    return (
        f'<div class="wrap"><table class="matrix" id="matrix"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
        '<p class="note">Each cell: survived without ADL? (yes = every bad-debt claim was covered) · lowest '
        "fund value as % of its start · ADL notional (USD).</p>"
    )


def _kv(rows: Sequence[tuple[str, str]], table_id: str = "") -> str:
    ident = f' id="{_e(table_id)}"' if table_id else ""
    body = "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in rows)
    head = "<thead><tr><th>name</th><th>value</th></tr></thead>"
    return f'<table class="kv"{ident}>{head}<tbody>{body}</tbody></table>'


def _event_meta(s: EventSection) -> str:
    ev = s.event
    syms = ", ".join(s.prices) or ", ".join(ev.symbols)
    funds = "; ".join(f"{f.balance:,.0f} {f.currency} ({f.venue}, {f.fund})" for f in ev.fund_before) or "-"
    items = [
        ("window", f"{_utc(ev.start)} → {_utc(ev.end)}"),
        ("warm-up", f"{ev.warmup.days} days before the window (builds the book; the fund is not involved)"),
        ("peak", f"{_utc(ev.peak)} {ev.peak_note}".strip()),
        ("venue / symbols", f"{s.venue} / {syms}"),
        ("price path", s.params.price_path),
        ("fund before the event", funds),
        *(("start capital", line) for line in tables.capital_lines(s.results)),
        ("risk-free rate", f"{s.risk_free:.2%}/yr (capital cost)"),
    ]
    return '<dl class="meta">' + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in items) + "</dl>"


def _design_params(results: Sequence[Result]) -> str:
    rows = []
    for r in results:
        label = str(r.record["design"])
        prefix = f"design.{label}."
        own = {k[len(prefix):]: v for k, v in r.assumptions.items() if k.startswith(prefix)}
        params = [f"{k} = {v}" for k, v in own.items()]
        rule = r.record.get("capital_rule")
        if rule:
            params.insert(0, f"start capital {tables.money(r.record.get('fund_start_usd'))} = {rule}")
        detail = r.record.get("design_detail") or {}
        extra = [
            _account(k, v, own)
            for k, v in detail.items()
            if k not in ("design", "label", "start_usd", "end_usd", "min_usd") and k not in own
            and v is not None
        ]
        rows.append(
            f"<tr><td>{_e(label)}</td><td>{_e(r.record.get('design_type', label))}</td>"
            f"<td>{_e('; '.join(params) or '(no parameters)')}</td>"
            f"<td>{_e('; '.join(extra) or '-')}</td></tr>"
        )
    return (
        '<table class="kv designs"><thead><tr><th>design</th><th>type</th><th>parameters (as used)</th>'
        f"<th>design's own accounts over the window</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _account(key: str, value: Any, params: dict[str, str]) -> str:
    """One account line; a coin amount is named in its coin, not formatted as USD."""
    if key == "coin_end":
        coin = params.get("coin_symbol", "").split(" (holds ")[-1].split(",")[0] or "coin"
        return f"coin held at the end = {float(value):,.6g} {coin}"
    return f"{key} = {_num(value)}"


def _num(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return str(v)
    return tables.money(v) if abs(v) >= 1000 else f"{v:.4g}"


def _assumptions(s: EventSection) -> list[tuple[str, str]]:
    """One line per fact: model parameters (leverage and size vectors with their buckets), then each
    symbol's data assumptions, design-independent context and the metric definitions."""
    seen: dict[str, str] = {}
    for r in s.results:
        for k, v in r.assumptions.items():
            if not k.startswith("design."):
                seen.setdefault(k, v)
    return sorted((k, _vector_text(k, v)) for k, v in seen.items())


def _vector_text(key: str, value: str) -> str:
    """Leverage mixes as 'bucket share' pairs (2x 68.8 % · 3x 14.0 % …), size classes in USD; else as is."""
    from backtest.engine.params import LEV_MIXES, LEVERAGE_BUCKETS

    name = key.removeprefix("param.")
    try:
        nums = [float(x) for x in value.split()]
    except ValueError:
        return value
    if name in LEV_MIXES and len(nums) == len(LEVERAGE_BUCKETS):
        return " · ".join(f"{b:g}x {w * 100:.3g} %" for b, w in zip(LEVERAGE_BUCKETS, nums, strict=True))
    if name == "size_usd":
        return " · ".join(tables.money(x).replace(".00", "") for x in nums)
    if name == "size_share":
        return " · ".join(f"{x * 100:.3g} %" for x in nums)
    return value


def _section(s: EventSection, heading: str) -> str:
    ev = s.event
    res = s.results
    peak = ev.peak
    parts = [heading, _event_meta(s), "<h3>Comparison</h3>", comparison_html(res, f"comparison-{ev.id}")]
    parts.append(
        '<p class="note">Fund values in USD; bad debt covered = what the fund paid; ADL notional = winners\' '
        "positions closed by auto-deleveraging, haircut = their profit given up; return includes hedge, "
        "funding and yield P&amp;L and counts excess paid out to the venue as kept; "
        "capital cost = start × risk-free rate × window length + premium paid; "
        "depleted = the fund was empty (value ≈ 0), time in UTC; trigger = the design sent a claim to ADL "
        "while it still held money (e.g. a drawdown trigger).</p>"
    )
    for note in s.notes:
        parts.append(f'<p class="note">{_e(note)}</p>')
    if s.prices:
        parts.append(
            _img(
                plots.price_and_flow(s.prices, res[0], peak),
                f"{ev.id} price and forced flow",
                "Recorded last and mark price (USD, each symbol's bar length in the title) and the replay's "
                f"forced flow (liquidated notional; bars of every length summed into UTC hours, so symbols "
                f"on 1-minute and 1-hour bars compare; longs up, shorts down) of design "
                f"{res[0].record['design']}, with each symbol's bad debt. Dotted line: peak {_utc(peak)}.",
            )
        )
        lo, hi = plots.crash_window(res, peak, ZOOM_HOURS)
        parts.append("<h3>The crash hours</h3>")
        parts.append(
            _img(
                plots.crash_zoom(s.prices, res, peak, ZOOM_HOURS),
                f"{ev.id} crash hours",
                f"{_utc(_from_epoch(lo))} → {_utc(_from_epoch(hi))}: "
                + ("the peak" if peak is not None else "the bar with the most liquidations per minute")
                + f" ± {ZOOM_HOURS:g} h. Price, forced flow per bar in USD per minute of the bar (bar "
                "lengths in each title), fund value as % of each design's start, and ADL notional "
                "accumulated from the zoom's start (total in the legend).",
            )
        )
    parts.append("<h3>Fund value per design</h3>")
    parts.append(
        _img(plots.fund_panels(res, peak), f"{ev.id} fund value per design",
             "Fund value per design as % of its own start capital, each panel on its own scale (dashed: "
             "100 %); the title gives the start capital, the lowest and the end value. The start capital's "
             "rule is in the design table below. UTC.")
    )
    parts.append(
        _img(plots.bad_debt_and_surplus(res, peak), f"{ev.id} cumulative bad debt and surplus",
             "Cumulative bad debt offered to each design's fund and cumulative liquidation surplus it "
             "received over the window (USD, totals in the legend).")
    )
    parts.append(
        _img(plots.cumulative_adl(res, peak), f"{ev.id} cumulative ADL per design",
             "Cumulative ADL notional per design over the event window (USD, all symbols, UTC).")
    )
    if any(r.record.get("money_identity") for r in res):
        parts.append(
            _img(plots.waterfall(res), f"{ev.id} where each fund's change came from",
                 "Where each fund's change came from (the money identity of docs/DESIGNS.md): + inflows "
                 "(surplus, fee share, yield, recovery), − outflows (bad debt paid, premium, payout), ± the "
                 "fund's own P&L (coin, hedge, funding), = end − start. Green in, red out, blue net.")
        )
    parts.append("<h3>Designs and their parameters</h3>")
    parts.append(_design_params(res))
    parts.append("<h3>Modelling assumptions and parameters</h3>")
    parts.append(
        '<p class="note">Every model parameter (docs/MODEL.md §10) and what each window\'s data needed '
        "assumed; design parameters are listed above.</p>"
    )
    parts.append(_kv(_assumptions(s), f"assumptions-{ev.id}"))
    return "\n".join(parts)


def _toc(sections: Sequence[EventSection], matrix: bool) -> str:
    """Links to the matrix and to each window's section: a several-window page is many screens tall."""
    items = ['<li><a href="#designs-x-events">Designs × events</a></li>'] if matrix else []
    items += [f'<li><a href="#event-{_e(s.event.id)}">{_e(s.event.id)}: {_e(s.event.title)}</a></li>'
              for s in sections]
    return f'<nav class="toc" id="contents"><h2>Contents</h2><ul>{"".join(items)}</ul></nav>'


def render(sections: Sequence[EventSection], *, title: str, command: str, matrix: bool = False) -> str:
    """The whole page as text."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version("crash-backtest")
    except PackageNotFoundError:
        ver = "dev"
    body = [f"<h1>{_e(title)}</h1>",
            f'<p class="sub">crash-backtest {_e(ver)} · <code>{_e(command)}</code></p>']
    if matrix or len(sections) > 1:
        body.append(_toc(sections, matrix))
    if matrix:
        body.append('<h2 id="designs-x-events">Designs × events</h2>')
        body.append(matrix_html(sections))
    for s in sections:
        heading = (f'<h2 id="event-{_e(s.event.id)}">{_e(s.event.id)}: {_e(s.event.title)}</h2>'
                   if matrix or len(sections) > 1 else "")
        body.append(_section(s, heading))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head>"
        f"<body><main>{''.join(body)}</main></body></html>\n"
    )
