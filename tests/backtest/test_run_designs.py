"""Every design on one window: the shared warm-up gives records identical to full runs; `backtest run`.

The warm-up snapshot must be invisible in the results: each design run from it is compared, record by
record and series by series (exact equality, not approx), with a full replay of the same design.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pytest

from backtest.engine.api import design_names, resolve_designs, run_event
from backtest.engine.params import Params
from backtest.engine.replay import replay, warmup_snapshot
from backtest.engine.results import summarize
from loaders.errors import UserError
from strategies.base import NoFund
from tests.backtest.engine.test_replay import path
from tests.support.cli import run_cli

STANDARD = ["none", "static", "static-coin", "dynamic", "hedged", "tranched", "reinsured"]


@dataclass
class FakeFund:
    venue: str
    fund: str
    balance: float
    currency: str
    source: str = "test"


@dataclass
class FakeEvent:
    """The fields of backtest.events.Event the engine glue reads."""

    id: str = "syn"
    title: str = "synthetic crash"
    start: datetime = datetime(1970, 1, 7, 6)
    end: datetime = datetime(1970, 1, 17, 16)
    warmup: timedelta = timedelta(days=6)
    peak: datetime | None = None
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")
    venues: tuple[str, ...] = ("binanceusdm",)
    fund_before: list[Any] = field(
        default_factory=lambda: [FakeFund("binanceusdm", "USDT fund", 3e6, "USDT")]
    )
    peak_note: str = ""


def synthetic_inputs():
    # BTC hourly, ETH every 15 min with a longer warm-up in bars: the clock mixes both
    return [path("BTCUSDT", 11), path("ETHUSDT", 12, step=900, n=700, scale=2500.0, crash_at=620, warm=560)]


def assert_same(a, b):
    assert a.record.keys() == b.record.keys()
    for k in a.record:
        assert a.record[k] == b.record[k] or (a.record[k] != a.record[k] and b.record[k] != b.record[k]), k
    assert a.per_symbol == b.per_symbol
    assert a.series.keys() == b.series.keys()
    for k in a.series:
        np.testing.assert_array_equal(a.series[k], b.series[k], err_msg=k)


def test_standard_designs_are_registered():
    assert design_names()[: len(STANDARD)] == STANDARD


@pytest.mark.parametrize("price_path", ["historical", "endogenous"])
def test_shared_warmup_equals_full_runs_for_every_design(price_path):
    inputs = synthetic_inputs()
    p = Params.from_overrides({"price_path": price_path})
    ev = FakeEvent()
    shared = run_event(ev, None, inputs, p, share_warmup=True)
    full = run_event(ev, None, inputs, p, share_warmup=False)
    assert [r.record["design"] for r in shared] == design_names()
    for a, b in zip(shared, full, strict=True):
        assert_same(a, b)
    # the run is not trivial: bad debt reached the funds and designs differ
    assert shared[0].record["bad_debt_usd"] > 0
    assert len({round(r.record["fund_end_usd"], 6) for r in shared}) > 2
    if price_path == "endogenous":
        assert any(np.any(r.series["ETHUSDT.price_mult"] != 1.0) for r in shared)


def test_snapshot_is_reusable_and_guarded():
    inputs = synthetic_inputs()
    p = Params()
    snap = warmup_snapshot(inputs, p)
    assert 0 < snap.k0 < len(np.unique(np.concatenate([i.ts for i in inputs])))
    first = summarize(replay(inputs, NoFund(), p, snapshot=snap))
    again = summarize(replay(inputs, NoFund(), p, snapshot=snap))  # the snapshot was not mutated
    assert_same(first, again)
    assert_same(first, summarize(replay(inputs, NoFund(), p)))
    with pytest.raises(ValueError, match="snapshot"):
        replay(inputs, NoFund(), Params.from_overrides({"impact_y": "2"}), snapshot=snap)
    with pytest.raises(ValueError, match="snapshot"):
        replay(synthetic_inputs(), NoFund(), p, snapshot=snap)


def test_context_reaches_the_designs():
    inputs = synthetic_inputs()
    ev = FakeEvent()
    (res,) = run_event(ev, resolve_designs(["static"], None), inputs, Params())
    assert res.record["fund_start_usd"] == 3e6 or res.record["design_detail"]["start_usd"] > 0
    assert "context.fund_before_source" in res.assumptions


def test_resolve_designs_errors():
    with pytest.raises(UserError, match="--designs static9: unknown design; valid: none"):
        resolve_designs(["static9"])
    with pytest.raises(UserError, match="repeated"):
        resolve_designs(["static", "static"])


# ----- the command line


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--designs", "static9"], "--designs static9: unknown design"),
        (["--designs", "static,static"], "repeated"),
        (["--set", "static.capital_usdd=1e6"], "unknown parameter 'capital_usdd'"),
        (["--set", "static9.capital_usd=1e6"], "unknown design 'static9'"),
        (["--set", "reinsured.premium_rate=-1"], "premium_rate = -1"),
        (["--set", "impact_y=-1"], "--set impact_y"),
        (["--risk-free", "7"], "--risk-free 7"),
        (["--config", "missing.toml"], "missing.toml"),
    ],
)
def test_bad_options_exit_2_and_write_nothing(tmp_path, capsys, extra, needle):
    db = tmp_path / "m.duckdb"
    out = tmp_path / "report"
    code, _, err = run_cli(
        ["run", "--event", "may2021", "--db", str(db), "--out", str(out), "--quiet", *extra], capsys
    )
    assert code == 2, err
    assert needle in err and err.startswith("error: ")
    assert not db.exists() and not out.exists()
    assert list(tmp_path.iterdir()) == []  # no staging directory left behind


def test_config_typo_names_file_and_line(tmp_path, capsys):
    cfg = tmp_path / "designs.toml"
    cfg.write_text("[static]\ncapital_usd = 1e8\n\n[dynamic]\nk = 2\ncapitl_usd = 5\n", encoding="utf-8")
    db = tmp_path / "m.duckdb"
    code, _, err = run_cli(
        ["run", "--event", "may2021", "--db", str(db), "--config", str(cfg), "--quiet"], capsys
    )
    assert code == 2
    assert "designs.toml" in err and ":6" in err and "capitl_usd" in err
    assert not db.exists()


@pytest.mark.parametrize("kind", ["file", "parent-missing", "parent-is-file"])
def test_unwritable_out_dir_fails_before_running(tmp_path, capsys, kind):
    blocker = tmp_path / "plain.txt"
    blocker.write_text("x")
    out = {"file": blocker, "parent-missing": tmp_path / "no" / "such", "parent-is-file": blocker / "sub"}[
        kind
    ]
    db = tmp_path / "m.duckdb"
    code, _, err = run_cli(
        ["run", "--event", "may2021", "--db", str(db), "--out", str(out), "--quiet"], capsys
    )
    assert code == 2 and "--out" in err
    assert not db.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.txt"]


@pytest.fixture(scope="module")
def may2021_db(tmp_path_factory, archive_dir):
    from backtest.ensure import ensure_window
    from backtest.events import load_catalog

    db = tmp_path_factory.mktemp("store") / "m.duckdb"
    ev = load_catalog().get("may2021")
    ensure_window(db, ev, "binanceusdm", list(ev.symbols), archive=archive_dir, progress=False)
    return db


@pytest.mark.archive
def test_recorded_window_shared_equals_full(may2021_db):
    from backtest.engine.api import load_inputs
    from backtest.events import load_catalog

    ev = load_catalog().get("may2021")
    p = Params()
    inputs = load_inputs(ev, "binanceusdm", list(ev.symbols), p, db=may2021_db, ensure=False)
    designs = ["static-coin", "dynamic"]  # one prices its coin at the window open, one watches the warm-up
    shared = run_event(ev, designs, inputs, p, share_warmup=True)
    full = run_event(ev, designs, inputs, p, share_warmup=False)
    for a, b in zip(shared, full, strict=True):
        assert_same(a, b)


@pytest.mark.archive
def test_run_all_designs_json_and_report(may2021_db, tmp_path, capsys):
    out = tmp_path / "rep"
    code, stdout, err = run_cli(
        [
            "run",
            "--event",
            "may2021",
            "--db",
            str(may2021_db),
            "--format",
            "json",
            "--quiet",
            "--out",
            str(out),
            "--risk-free",
            "0.05",
        ],
        capsys,
    )
    assert code == 0, err
    recs = json.loads(stdout)
    assert [r["design"] for r in recs] == design_names()
    keys = {
        "fund_start_usd",
        "fund_min_usd",
        "fund_end_usd",
        "max_drawdown_pct",
        "depleted",
        "depleted_at",
        "fund_return_pct",
        "capital_cost_usd",
        "coverage_ratio",
    }
    by = {r["design"]: r for r in recs}
    for r in recs:
        assert keys <= r.keys()
        assert abs(r["conservation_residual_usd"]) <= 1e-6 * r["traded_usd"]
    static = by["static"]
    assert static["fund_start_usd"] == pytest.approx(291_853_183.0)  # the catalog's Binance fund (default)
    assert static["coverage_ratio"] == pytest.approx(static["fund_start_usd"] / static["oi_start_usd"])
    assert static["capital_cost_usd"] == pytest.approx(static["fund_start_usd"] * 0.05 * 16 / 365)
    assert by["none"]["depleted"] and by["none"]["fund_return_pct"] is None
    # a fund covers bad debt, so it needs less ADL than no fund at all
    assert static["fund_paid_usd"] > 0 and static["adl_notional_usd"] < by["none"]["adl_notional_usd"]
    assert (out / "report.html").is_file() and (out / "results.parquet").is_file()
    import polars as pl

    frame = pl.read_parquet(out / "results.parquet")
    assert frame["design"].to_list() == design_names()
    assert frame["fund_start_usd"].to_list() == [r["fund_start_usd"] for r in recs]


@pytest.mark.archive
def test_run_table_output(may2021_db, capsys):
    code, stdout, err = run_cli(
        ["run", "--event", "may2021", "--db", str(may2021_db), "--designs", "none,static", "--quiet"], capsys
    )
    assert code == 0 and err == ""  # --quiet: nothing on stderr
    for label in (
        "fund start",
        "max drawdown",
        "depleted (UTC)",
        "ADL notional",
        "winners' haircut",
        "fund return",
        "capital cost",
        "fund/OI start",
        "none",
        "static",
    ):
        assert label in stdout


def test_progress_display(capsys, monkeypatch):
    from backtest.cli.run_cmd import RunProgress

    with RunProgress(False) as off:
        off.task("x", 2)("a")  # disabled: a no-op
    monkeypatch.setattr("backtest.progress_lines.stderr_is_terminal", lambda: True)
    with RunProgress(True) as on:
        step = on.task("may2021", 3)
        for label in ("loading BTCUSDT", "warm-up", "static"):
            step(label)
        on.done()
        assert on._p.tasks[0].completed == 3
    assert capsys.readouterr().out == ""  # progress goes to stderr only


def test_progress_off_a_terminal_is_plain_lines(capsys, monkeypatch):
    from backtest.cli.run_cmd import RunProgress

    monkeypatch.setattr("backtest.progress_lines.stderr_is_terminal", lambda: False)
    with RunProgress(True) as on:
        step = on.task("may2021", 2)
        step("loading BTCUSDT")
        step("static")
        on.done()
    out = capsys.readouterr()
    assert out.out == ""
    lines = out.err.splitlines()
    assert [x.split(" (")[0] for x in lines] == ["may2021 [1/2] loading BTCUSDT", "may2021 [2/2] static"]
