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
