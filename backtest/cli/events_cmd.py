"""``backtest events``: list the crash windows and their headline reported figures."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import click

from backtest.cli.options import events_file_option, format_option

if TYPE_CHECKING:
    from backtest.events import Event


@click.command("events")
@events_file_option
@format_option
def events(events_file: str | None, fmt: str) -> None:
    """List the crash windows in the event catalog.

    Reported figures come from press and venue statements (see data/events.toml for scope,
    source and confidence); a leading >= marks a throttled CEX total, which is a lower bound.
    """
    from backtest.events import load_catalog

    catalog = load_catalog(events_file)
    if fmt == "json":
        click.echo(catalog.to_json())
        return
    from rich.table import Table

    from backtest.cli.console import stdout_console

    table = Table(title="Crash windows", show_lines=False)
    table.add_column("id", no_wrap=True)
    for col in ("title", "window (UTC)", "warm-up", "symbols", "liquidations (reported)",
                "OI change", "funding extreme", "fund before"):
        table.add_column(col, overflow="fold")
    for e in catalog:
        table.add_row(
            e.id,
            e.title,
            f"{_when(e.start)} -> {_when(e.end)}",
            f"{e.warmup.total_seconds() / 86400:g}d",
            ", ".join(e.symbols),
            _liquidations(e),
            _oi(e),
            _funding(e),
            "; ".join(f"{_money(f.balance)} {f.currency} ({f.venue})" for f in e.fund_before) or "-",
        )
    stdout_console().print(table)


def _when(ts: datetime) -> str:
    return f"{ts:%Y-%m-%d}" if (ts.hour, ts.minute, ts.second) == (0, 0, 0) else f"{ts:%Y-%m-%d %H:%M}"


def _money(x: float) -> str:
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.4g}{suffix}"
    return f"{x:g}"


def _amount(value: float, unit: str) -> str:
    return f"${_money(value)}" if unit == "USD" else f"{_money(value)} {unit}"


def _liquidations(e: Event) -> str:
    r = e.first("liquidations")
    if r is None or r.value is None:
        return "-"
    text = ("≥" if r.lower_bound else "") + _amount(r.value, r.unit)
    share = e.first("long_share")
    if share is not None and share.value is not None:
        text += f", {share.value:.0%} long"
    return text


def _oi(e: Event) -> str:
    r = e.first("oi_change")
    if r is None:
        return "-"
    if r.before is not None and r.after is not None:
        text = f"{_amount(r.before, r.unit)} -> {_amount(r.after, r.unit)}"
    elif r.after is not None:
        text = f"-> {_amount(r.after, r.unit)}"
    else:
        text = ""
    change = r.change
    if change is not None:
        text = f"{text} ({change:+.0%})".strip()
    elif r.value is not None:
        text = f"{text} {_amount(r.value, r.unit)}".strip()
    return text


def _funding(e: Event) -> str:
    r = e.first("funding_extreme")
    if r is None or r.value is None:
        return "-"
    when = f" ({r.at:%d %b %H:%M})" if r.at else ""
    return f"{r.value * 100:+.4f}%{when}"
