"""Reports flag a window whose scored calibration rows fall outside their ranges."""

from __future__ import annotations

import pytest

from backtest.calibrate import Shares, compare
from backtest.calibration_check import out_of_range, window_warnings
from tests.backtest.test_calibrate import by_name, event, rep, series
from tests.support.cli import run_cli


def test_rows_outside_their_ranges_are_named() -> None:
    m = series([0] * 20 + [100.0] * 8 + [0] * 20, [0] * 48, [1000.0] * 48)  # 800 USD around the peak
    cal = compare(event(
        edge=rep("edge", "liquidations", 1200.0, "Binance only, 24h", lower_bound=True),  # 800/(1200x0.6)
        inside=rep("inside", "liquidations", 500.0, "Binance only, 24h", lower_bound=True),  # 2.7x
        exact=rep("exact", "liquidations", 4000.0, "Binance only, 24h"),  # 0.33x, not a bound
        other=rep("other", "liquidations", 1.0, "Hyperliquid on-chain"),  # not scored
        share=rep("share", "long_share", 0.7, "Binance only, 24h", unit="fraction"),  # model 1.0
    ), m, Shares(0.2))
    rows = by_name(cal)
    assert rows["edge"].ratio == pytest.approx(800 / 720) and out_of_range(rows["edge"]) is None  # in [1, 6]
    assert out_of_range(rows["inside"]) is None
    assert out_of_range(rows["exact"]) == "liquidations 0.33x the reported total (range 0.5-2x)"
    assert out_of_range(rows["other"]) is None
    assert out_of_range(rows["share"]) == "long share 1.00 vs reported 0.70 (range ±0.15)"
    assert out_of_range(rows["peak"]) is None  # the model peak is at the catalog peak

    cal = compare(event(low=rep("low", "liquidations", 2000.0, "Binance only, 24h", lower_bound=True)), m,
                  Shares(0.2))
    assert out_of_range(by_name(cal)["low"]) == "liquidations 0.67x the reported lower bound (range 1-6x)"


def test_window_warnings_measure_the_runs_replay() -> None:
    from backtest.engine.api import run_event
    from backtest.engine.params import Params
    from tests.backtest.test_run_designs import FakeEvent, synthetic_inputs

    ev = FakeEvent()
    inputs = synthetic_inputs()
    results = run_event(ev, ["none", "static"], inputs, Params())
    total = sum(r for r in (results[0].record["liq_long_usd"], results[0].record["liq_short_usd"]))
    ev.reported = {"big": rep("big", "liquidations", total * 10, "Binance only, BTC and ETH",
                              lower_bound=True)}
    (line,) = window_warnings(ev, results, inputs, Params())
    assert line.startswith("calibration warning: syn big: liquidations 0.1")  # ~1/(10 x asset share 0.6)
    assert "x the reported lower bound (range 1-6x)" in line
    assert "backtest calibrate --event syn" in line
    ev.reported = {"fine": rep("fine", "liquidations", total / 2, "Binance only, BTC and ETH",
                               lower_bound=True)}
    assert window_warnings(ev, results, inputs, Params()) == []
    # a replay of part of the window is not what the figures describe: no comparison, no warning
    ev.reported = {"big": rep("big", "liquidations", total * 10, "Binance only, BTC and ETH",
                              lower_bound=True)}
    part = run_event(ev, ["none"], inputs[:1], Params())
    assert window_warnings(ev, part, inputs[:1], Params()) == []


@pytest.mark.archive
def test_oct2025_report_carries_the_warning(archive_dir, tmp_path, capsys) -> None:
    """The run's warnings are exactly calibrate's scored rows outside their ranges (today: Binance's
    liquidations at 0.67x the reported lower bound), on stderr and in the HTML report."""
    import json
    from types import SimpleNamespace

    db, out = str(tmp_path / "m.db"), tmp_path / "rep"
    code, _, err = run_cli(["run", "--event", "oct2025", "--designs", "none", "--db", db, "--archive",
                            str(archive_dir), "--out", str(out), "--quiet"], capsys)
    assert code == 0, err
    code, cal, _ = run_cli(["calibrate", "--event", "oct2025", "--db", db, "--format", "json", "--quiet"],
                           capsys)
    assert code == 0
    bad = [r["figure"] for r in json.loads(cal)["rows"]
           if r["metric"] != "fund_change" and out_of_range(SimpleNamespace(**r))]
    warned = [ln.split()[3].rstrip(":") for ln in err.splitlines() if ln.startswith("calibration warning")]
    assert warned == bad  # the same judgement in both commands (not pinned to today's model numbers)
    page = (out / "report.html").read_text()
    assert all(f"calibration warning: oct2025 {f}:" in page for f in bad)
