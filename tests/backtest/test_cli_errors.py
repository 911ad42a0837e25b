"""Issue 14: one error path. Every command given a bad file, interruption, a full disk or a failing
store ends in one line naming the file or option and a non-zero exit, never a traceback."""

from __future__ import annotations

import errno

import pytest

from tests.support.cli import run_cli

WINDOW = """
[mywin]
title = "My window"
start = 2023-03-10T00:00:00Z
end = 2023-03-12T00:00:00Z
symbols = ["BTCUSDT"]
venues = ["binanceusdm"]
"""
FUND = """
[[mywin.fund_before]]
venue = "binanceusdm"
fund = "USDT"
balance = {balance}
currency = "USDT"
source = "test"
"""


def _one_line_error(code: int, out: str, err: str, needle: str, expected_code: int = 2) -> None:
    assert code == expected_code, (code, out, err)
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert needle in lines[0], lines[0]
    assert "Traceback" not in err + out


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400", "1e6", "1e9", "-1"])
@pytest.mark.parametrize("command", [["events"], ["run", "--event", "mywin", "--quiet"],
                                     ["calibrate", "--event", "mywin"]])
def test_bad_warmup_days_in_an_events_file(tmp_path, capsys, value, command):
    path = tmp_path / "ev.toml"
    path.write_text(WINDOW + f"warmup_days = {value}\n")
    db = tmp_path / "m.duckdb"
    code, out, err = run_cli([*command, "--events-file", str(path),
                              *(["--db", str(db)] if command[0] != "events" else [])], capsys)
    _one_line_error(code, out, err, f"{path}")
    assert "warmup_days" in err and "from 0 to 365" in err
    assert not db.exists()


@pytest.mark.parametrize("balance", ["nan", "inf"])
def test_a_non_finite_fund_balance_is_refused(tmp_path, capsys, balance):
    path = tmp_path / "ev.toml"
    path.write_text(WINDOW + FUND.format(balance=balance))
    db = str(tmp_path / "m.duckdb")
    code, out, err = run_cli(["run", "--event", "mywin", "--events-file", str(path), "--db", db,
                              "--set", "static.capital_usd=event", "--quiet"], capsys)
    _one_line_error(code, out, err, "balance")


BAD_BYTES = b"[static]\ncapital_usd = 1e8\n# \xff\xfe caf\xe9\n"


@pytest.mark.parametrize("command", [
    ["run", "--event", "may2021", "--quiet", "--config"],
    ["compare", "--events", "may2021", "--quiet", "--config"],
    ["events", "--events-file"],
    ["calibrate", "--event", "may2021", "--events-file"],
    ["sweep", "--design", "static", "--grid", "static.capital_usd=1,2", "--quiet", "--events-file"],
    ["data", "status", "--event", "may2021", "--events-file"],
    ["data", "import"],
])
def test_every_command_with_a_non_utf8_file(tmp_path, capsys, command):
    bad = tmp_path / ("bad.csv" if command[:2] == ["data", "import"] else "bad.toml")
    bad.write_bytes(BAD_BYTES)
    db = tmp_path / "m.duckdb"
    extra = [] if command[0] == "events" else ["--db", str(db)]
    if command[0] == "sweep":
        extra = ["--out", str(tmp_path / "s.duckdb")]
    code, out, err = run_cli([*command, str(bad), *extra], capsys)
    assert code != 0 and "Traceback" not in err
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(bad) in lines[0], err
    assert not (tmp_path / "s.duckdb").exists()


def _duckdb_disguises():
    """What Ctrl-C looks like when it lands inside DuckDB (seen when interrupting a real import)."""
    import duckdb

    try:
        try:
            raise RuntimeError("Query interrupted")
        finally:
            raise duckdb.TransactionException("Current transaction is aborted (please ROLLBACK)")
    except duckdb.Error as e:
        cleanup_after_interrupt = e
    return {"keyboard": KeyboardInterrupt(), "interrupt": duckdb.InterruptException("INTERRUPT Error"),
            "runtime": RuntimeError("Query interrupted"), "cleanup": cleanup_after_interrupt,
            "named": duckdb.InvalidInputException("failed: KeyboardInterrupt: ")}


@pytest.mark.parametrize("kind", ["keyboard", "interrupt", "runtime", "cleanup", "named"])
def test_interruption_exits_130_and_says_nothing_was_stored(capsys, monkeypatch, kind):
    import backtest.events

    exc = _duckdb_disguises()[kind]

    def interrupted(*_a, **_k):
        raise exc

    monkeypatch.setattr(backtest.events, "load_catalog", interrupted)
    code, out, err = run_cli(["events"], capsys)
    assert code == 130 and err.strip().startswith("aborted, nothing stored")
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("exc,needle", [
    (OSError(errno.ENOSPC, "No space left on device", "data/market.duckdb"),
     "error: data/market.duckdb: disk full (No space left on device)"),
    ("duckdb", "error: the store failed: IO Error: Could not write file"),
])
def test_environment_failures_are_one_line(capsys, monkeypatch, exc, needle):
    import backtest.events

    if exc == "duckdb":
        import duckdb

        exc = duckdb.IOException("IO Error: Could not write file \"x.duckdb\": No space left on device\nmore")

    def failing(*_a, **_k):
        raise exc

    monkeypatch.setattr(backtest.events, "load_catalog", failing)
    code, out, err = run_cli(["events"], capsys)
    assert code == 1 and err.startswith(needle) and len(err.strip().splitlines()) == 1, err


def test_a_bug_keeps_its_traceback(monkeypatch):
    import backtest.events
    from backtest.cli import main

    def buggy(*_a, **_k):
        raise ZeroDivisionError("bug")

    monkeypatch.setattr(backtest.events, "load_catalog", buggy)
    with pytest.raises(ZeroDivisionError):
        main(["events"])


def test_a_design_label_with_mathtext_plots(tmp_path):
    from backtest.report.plots import _plt, render_png

    plt = _plt()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1], label="$\\x{$")
    ax.set_title("$\\x{$ 100$")
    ax.legend()
    assert render_png(fig)[:4] == b"\x89PNG"


