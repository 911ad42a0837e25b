"""Tables printed to a pipe or a CI log keep their natural width instead of rich's 80-column fallback."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from backtest.cli.console import UNBOUNDED_WIDTH, stdout_console
from backtest.cli.events_cmd import events
from backtest.events import load_catalog


def test_piped_events_table_is_not_folded():
    # CliRunner's stdout is not a terminal, like `backtest events | cat` or a CI log
    res = CliRunner().invoke(events, [], env={"COLUMNS": None})
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert any(len(line) > 80 for line in lines)
    header = next(line for line in lines if "liquidations (reported)" in line)
    assert "funding extreme" in header and "fund before" in header  # one header row, nothing folded
    for e in load_catalog().events:
        row = next((line for line in lines if f" {e.id} " in line), None)
        assert row is not None, e.id
        assert e.title in row and ", ".join(e.symbols) in row


def test_explicit_columns_still_wins(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("COLUMNS", "100")
    assert stdout_console().width == 100
    res = CliRunner().invoke(events, [], env={"COLUMNS": "100"})
    assert res.exit_code == 0 and max(len(line) for line in res.output.splitlines()) <= 100


def test_non_terminal_console_is_unbounded(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    console = stdout_console()  # pytest captures stdout: not a terminal
    assert not console.is_terminal and console.width == UNBOUNDED_WIDTH


def test_a_wide_run_table_is_stacked_on_an_80_column_terminal_not_cut():
    """Seven designs at 80 columns: was 'st…' / '29…' in every cell; now stacked tables, whole cells."""
    import io

    from rich.console import Console

    from backtest.cli.console import print_table, stacked
    from backtest.engine.api import run_event
    from backtest.engine.params import Params
    from backtest.metrics import add_fund_metrics
    from backtest.report.tables import comparison_table
    from tests.backtest.test_run_designs import FakeEvent, synthetic_inputs

    ev = FakeEvent()
    results = run_event(ev, None, synthetic_inputs(), Params())
    add_fund_metrics(results, window_s=(ev.end - ev.start).total_seconds())
    designs = [r.record["design"] for r in results]
    assert len(designs) >= 7
    table = comparison_table(results, "may2021: a title long enough to wrap on a narrow terminal")
    buf = io.StringIO()
    console = Console(file=buf, width=80, force_terminal=True, color_system=None)
    print_table(console, table)
    text = buf.getvalue()
    assert "…" not in text and max(len(x) for x in text.splitlines()) <= 80
    for d in designs:
        assert f" {d} " in text
    parts = stacked(table, 80)
    assert len(parts) >= 2 and all(p.columns[0].header == "metric" for p in parts)
    assert sum(len(p.columns) - 1 for p in parts) == len(designs)
    assert [len(list(p.columns[0].cells)) for p in parts] == [len(list(table.columns[0].cells))] * len(parts)
    assert stacked(table, 400) == [table]  # fits: unchanged
