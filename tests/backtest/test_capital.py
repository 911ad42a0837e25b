"""The start-capital rule: the listed fund, else the nearest listed fund's fund/OI ratio; numbers win."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from backtest.capital import fund_oi_ratio, listed_fund, reference_event
from backtest.engine.api import resolve_designs, run_event
from backtest.engine.params import Params
from backtest.engine.replay import warmup_snapshot
from backtest.events import load_catalog
from loaders.errors import UserError
from strategies.config import load_config
from strategies.static import capital_rule
from tests.backtest.test_run_designs import FakeEvent, synthetic_inputs
from tests.support.cli import run_cli

CAPITAL_DESIGNS = ["static", "static-coin", "hedged", "tranched", "reinsured"]


def test_nearest_listed_window_in_the_catalog():
    cat = load_catalog()
    near = {e: reference_event(cat.get(e), "binanceusdm", cat).id for e in ("luna2022", "ftx2022", "aug2024")}
    assert near == {"luna2022": "may2021", "ftx2022": "may2021", "aug2024": "oct2025"}
    for e in ("mar2020", "may2020", "may2021", "oct2025"):
        assert listed_fund(cat.get(e), "binanceusdm") is not None
        assert fund_oi_ratio(cat.get(e), "binanceusdm", Params(), catalog=cat) is None  # own fund: no ratio
    assert listed_fund(cat.get("mar2020"), "bitmex") is None  # BitMEX lists XBT: not a USD fund
    assert reference_event(cat.get("luna2022"), "bybit", cat) is None


def test_ratio_parameter_needs_no_reference(tmp_path):
    db = tmp_path / "never.duckdb"
    p = Params.from_overrides({"fund_oi_ratio": "0.05"})
    ev = load_catalog().get("luna2022")
    assert fund_oi_ratio(ev, "binanceusdm", p, db=db) == (0.05, "--set fund_oi_ratio=0.05")
    assert not db.exists()
    with pytest.raises(UserError, match="fund_oi_ratio"):
        Params.from_overrides({"fund_oi_ratio": "20"})


def test_rule_order_listed_then_ratio_then_error():
    ctx = {"event_id": "x", "venue": "binanceusdm", "oi_start_usd": 2e9, "fund_oi_ratio": 0.05,
           "fund_oi_ratio_source": "ref"}
    usd, why = capital_rule("event", ctx, "static")
    assert usd == pytest.approx(1e8) and why.startswith("fund/OI 5.00% × replayed OI 2.00B") and "ref" in why
    usd, why = capital_rule("event", {**ctx, "fund_before_usd": 3e7, "fund_before_source": "S"}, "static")
    assert usd == 3e7 and why == "the event's listed fund: 30.00M (S)"
    assert capital_rule(4e7, ctx, "static") == (4e7, "set: capital_usd = 40,000,000")
    with pytest.raises(UserError, match=r'static.capital_usd = "event": x lists no binanceusdm insurance'):
        capital_rule("event", {"event_id": "x", "venue": "binanceusdm", "oi_start_usd": 2e9}, "static")


def test_every_capital_design_starts_at_ratio_times_oi_without_a_listed_fund():
    ev = replace(FakeEvent(), fund_before=[])
    specs = resolve_designs(["dynamic", *CAPITAL_DESIGNS])
    res = run_event(ev, specs, synthetic_inputs(), Params(), fund_oi_ratio=(0.04, "test ratio"))
    # the OI the designs see when the window opens (here the symbols' windows open at different ticks)
    oi = sum(warmup_snapshot(synthetic_inputs(), Params()).oi_start().values())
    by = {r.record["design"]: r.record for r in res}
    for d in CAPITAL_DESIGNS:
        rec = by[d]
        assert rec["fund_start_usd"] == pytest.approx(0.04 * oi, rel=1e-12), d
        assert rec["capital_rule"].startswith("fund/OI 4.00%") and "test ratio" in rec["capital_rule"]
    assert by["dynamic"]["capital_rule"] == "the design's own target when the window opens"
    with pytest.raises(UserError, match="syn lists no binanceusdm insurance fund"):
        run_event(ev, ["static"], synthetic_inputs(), Params())


def test_a_number_wins_over_the_rule():
    ev = FakeEvent()  # lists a 3M fund
    cfg = load_config(None, ["static.capital_usd=5e6", "static-coin.capital_coin=10"])
    specs = resolve_designs(["static", "static-coin", "tranched"], cfg)
    res = run_event(ev, specs, synthetic_inputs(), Params())
    by = {r.record["design"]: r.record for r in res}
    assert by["static"]["fund_start_usd"] == 5e6
    assert by["static"]["capital_rule"] == "set: capital_usd = 5,000,000"
    assert by["static-coin"]["capital_rule"] == "set: capital_coin = 10 coin"
    assert by["tranched"]["fund_start_usd"] == 3e6
    assert by["tranched"]["capital_rule"] == "the event's listed fund: 3.00M (binanceusdm USDT fund: test)"


@pytest.fixture(scope="module")
def store(tmp_path_factory, archive_dir):
    from backtest.ensure import ensure_window

    db = tmp_path_factory.mktemp("capital") / "m.duckdb"
    cat = load_catalog()
    for e in ("mar2020", "may2021", "luna2022", "oct2025"):
        ev = cat.get(e)
        ensure_window(db, ev, "binanceusdm", list(ev.symbols), archive=archive_dir, progress=False)
    return db


def _run(store, capsys, event: str, *extra: str) -> dict[str, dict]:
    argv = ["run", "--event", event, "--db", str(store), "--designs", ",".join(CAPITAL_DESIGNS),
            "--format", "json", "--quiet", *extra]
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    return {r["design"]: r for r in json.loads(out)}


@pytest.mark.archive
@pytest.mark.parametrize(("event", "fund", "text"),
                         [("mar2020", 12.9e6, "12.90M"), ("oct2025", 1.23e9, "1.23B")])
def test_run_starts_every_capital_design_at_the_listed_fund(store, capsys, event, fund, text):
    recs = _run(store, capsys, event)
    assert sorted(recs) == sorted(CAPITAL_DESIGNS)
    for d, rec in recs.items():
        assert rec["fund_start_usd"] == pytest.approx(fund, rel=1e-12), d
        assert rec["capital_rule"].startswith(f"the event's listed fund: {text} (binanceusdm "), d


@pytest.mark.archive
def test_run_without_a_listed_fund_takes_the_nearest_ratio(store, capsys):
    may = _run(store, capsys, "may2021", "--designs", "static")["static"]
    may_ratio = may["fund_start_usd"] / may["oi_start_usd"]  # the record's OI: an independent path
    luna = _run(store, capsys, "luna2022")
    for d, rec in luna.items():
        assert rec["fund_start_usd"] / rec["oi_start_usd"] == pytest.approx(may_ratio, rel=1e-9), d
        assert "may2021, the nearest window listing a binanceusdm fund" in rec["capital_rule"]
    assert 0.01 < may_ratio < 0.2
    fixed = _run(store, capsys, "luna2022", "--set", "static.capital_usd=5e7")
    assert fixed["static"]["fund_start_usd"] == 5e7 and fixed["static"]["capital_rule"].startswith("set:")


@pytest.mark.archive
def test_run_table_says_which_rule_gave_the_capital(store, capsys):
    code, out, err = run_cli(["run", "--event", "mar2020", "--db", str(store), "--quiet",
                              "--designs", "static,tranched,dynamic"], capsys)
    assert code == 0, err
    text = " ".join(out.split())  # the terminal may wrap the long line
    assert "start capital of static, tranched: 12.90M = the event's listed fund: 12.90M (binanceusdm" in text
    assert "start capital of dynamic: " in text and "the design's own target when the window opens" in text
