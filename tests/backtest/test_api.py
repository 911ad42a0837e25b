"""The README's notebook example runs as written and returns frames with the documented columns."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pytest

from backtest.report.frames import BAR_COLUMNS, TICK_COLUMNS
from loaders.errors import UserError

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Python API"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def documented_columns(after: str) -> list[str]:
    """The column table that follows ``after`` in the README's Python API section."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Python API"):]
    table = section[section.index(after):].split("\n\n")[1]
    return re.findall(r"^\| `([a-z_]+)` \|", table, re.M)


def test_readme_documents_every_column():
    assert documented_columns("`run.fund` is") == list(TICK_COLUMNS)
    assert documented_columns("`run.bars` is") == list(BAR_COLUMNS)


def test_events_frame_lists_the_listed_funds(tmp_path):
    from backtest import api

    ev = api.open_store(tmp_path / "never.duckdb").events()
    assert ev["id"].to_list()[:3] == ["mar2020", "may2020", "may2021"]
    funds = dict(zip(ev["id"].to_list(), ev["fund_before_usd"].to_list(), strict=True))
    assert funds["mar2020"] == 12.9e6 and funds["oct2025"] == 1.23e9 and funds["luna2022"] is None
    assert ev["symbols"].dtype == pl.List(pl.String) and ev["start"].dtype == pl.Datetime("us")
    assert not (tmp_path / "never.duckdb").exists()


def test_bad_overrides_are_user_errors(tmp_path):
    from backtest import api

    bt = api.open_store(tmp_path / "never.duckdb")
    with pytest.raises(UserError, match="impact_yy"):
        bt.run("may2021", overrides={"impact_yy": 1})
    with pytest.raises(UserError, match="capital_usd"):
        bt.run("may2021", designs=["static"], overrides={"static.capital_usd": -5})
    with pytest.raises(UserError, match="unknown event"):
        bt.run("nope")
    assert not (tmp_path / "never.duckdb").exists()


@pytest.mark.archive
def test_readme_notebook_example_runs(archive_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BACKTEST_ARCHIVE", str(archive_dir))
    monkeypatch.chdir(tmp_path)  # the example writes may2021-report/ and sweeps.duckdb where it runs
    env: dict = {}
    exec(compile(readme_example(), "README.md (Python API)", "exec"), env)
    run, both, sweep = env["run"], env["both"], env["sweep"]
    assert run.summary["design"].to_list() == ["static", "dynamic"]
    static = run.summary.row(0, named=True)
    assert static["fund_start_usd"] == 1e8 and static["capital_rule"].startswith("set:")
    for col in ("fund_min_usd", "max_drawdown_pct", "depleted", "adl_notional_usd", "money_identity"):
        assert col in run.summary.columns
    assert run.fund.columns == ["event", "design", "ts", *TICK_COLUMNS]
    assert run.bars.columns == ["event", "design", "symbol", "ts", "bar_s", "last", "mark", *BAR_COLUMNS]
    assert run.fund["ts"].dtype == pl.Datetime("us")
    # the frames agree with the summary
    lowest = dict(env["lowest"].iter_rows())
    assert lowest["static"] == pytest.approx(static["fund_min_usd"], rel=1e-12)
    eth = run.results[0].per_symbol["ETHUSDT"]["bad_debt_usd"]
    assert env["eth_bad_debt"] == pytest.approx(eth, rel=1e-12)
    assert (tmp_path / "may2021-report" / "report.html").is_file()
    matrix_cols = ["design", "event", "survived_without_adl", "min_fund_pct", "adl_notional_usd"]
    assert both.matrix.columns == matrix_cols
    assert both.matrix["event"].to_list() == ["may2021", "oct2025"]
    assert sweep.rows.height == 3 and set(sweep.frontier["event"].to_list()) == {"may2021", "ALL"}
    out = capsys.readouterr().out
    assert "capital_rule" in out and "survived_without_adl" in out
