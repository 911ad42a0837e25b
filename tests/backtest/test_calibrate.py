"""backtest.calibrate: scope scaling, lower bounds, intervals, OI change, peak timing; CLI on real data."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import numpy as np
import pytest
from click.testing import CliRunner

from backtest.calibrate import LOWER_BOUND_MAX_RATIO, ModelSeries, Shares, compare, error_terms, scope_of
from backtest.events import Event, Reported

T0 = datetime(2030, 1, 1)
H = 3600


def series(liq_long, liq_short, oi) -> ModelSeries:
    """One BTCUSDT symbol on 1h bars from T0 (all in the window); ETHUSDT with nothing."""
    n = len(liq_long)
    ts = np.arange(n, dtype=np.int64) * H + int((T0 - datetime(1970, 1, 1)).total_seconds())
    z = np.zeros(n)
    syms = ("BTCUSDT", "ETHUSDT")
    liq = np.asarray(liq_long, float) + np.asarray(liq_short, float)
    return ModelSeries(
        symbols=syms,
        ts={s: ts for s in syms},
        dt={s: np.full(n, float(H)) for s in syms},
        in_window={s: np.ones(n, bool) for s in syms},
        liq_long={"BTCUSDT": np.asarray(liq_long, float), "ETHUSDT": z},
        liq_short={"BTCUSDT": np.asarray(liq_short, float), "ETHUSDT": z},
        oi={"BTCUSDT": np.asarray(oi, float), "ETHUSDT": z + 1.0},
        funding={"BTCUSDT": np.where(np.arange(n) == 3, -0.002, 0.0), "ETHUSDT": z},
        clock=ts,
        clock_in_window=np.ones(n, bool),
        liq_per_min=liq / 60.0,
    )


def event(**reported: Reported) -> Event:
    return Event(id="test", title="t", start=T0, end=T0 + timedelta(hours=48), warmup=timedelta(0),
                 peak=T0 + timedelta(hours=24), symbols=("BTCUSDT", "ETHUSDT"), venues=("binanceusdm",),
                 reported=dict(reported))


def rep(name: str, kind: str, value: float | None, scope: str, **kw) -> Reported:
    return Reported(name=name, kind=kind, unit=kw.pop("unit", "USD"), scope=scope, source="src",
                    confidence="M", value=value, **kw)


def by_name(cal):
    return {r.figure: r for r in cal.rows}


def test_all_venue_total_is_scaled_by_both_shares_and_lower_bound_is_one_sided() -> None:
    m = series([0] * 20 + [100.0] * 8 + [0] * 20, [0] * 48, [1000.0] * 48)  # 800 USD around the peak
    ev = event(
        low=rep("low", "liquidations", 1000.0, "all venues, 24h", lower_bound=True),
        high=rep("high", "liquidations", 100.0, "all venues, 24h", lower_bound=True),
        exact=rep("exact", "liquidations", 1000.0, "all venues, 24h"),
    )
    rows = by_name(compare(ev, m, Shares(venue_share=0.2, asset_share=0.5)))
    assert rows["low"].comparable == pytest.approx(100.0)  # 1000 x 0.2 x 0.5
    assert rows["low"].ratio == pytest.approx(8.0)
    assert rows["low"].verdict.startswith("above")  # 8x > LOWER_BOUND_MAX_RATIO
    assert rows["low"].error == pytest.approx(np.log(8.0 / LOWER_BOUND_MAX_RATIO))
    assert rows["high"].ratio == pytest.approx(80.0)
    assert rows["exact"].error == pytest.approx(np.log(8.0))  # two-sided when not a bound
    ev2 = event(lb=rep("lb", "liquidations", 4000.0, "all venues, 24h", lower_bound=True))
    row = by_name(compare(ev2, m, Shares(0.2, 0.5)))["lb"]  # comparable 400: model 2x -> inside [1, 6]
    assert row.verdict.startswith("consistent") and row.error == 0.0 and row.lower_bound
    ev3 = event(lb=rep("lb", "liquidations", 40000.0, "all venues, 24h", lower_bound=True))
    row = by_name(compare(ev3, m, Shares(0.2, 0.5)))["lb"]  # comparable 4000: model 0.2x
    assert row.verdict == "below the reported lower bound" and row.error == pytest.approx(np.log(0.2))


def test_scope_classes() -> None:
    syms = ("BTCUSDT", "ETHUSDT")
    assert scope_of("all venues, 24h around 19 May", syms) == ("all", syms, True)
    assert scope_of("Binance only, 24h", syms) == ("binance", syms, True)
    assert scope_of("BitMEX, all contracts", syms)[0] is None
    assert scope_of("aggregate BTC futures open interest, all venues", syms) == ("all", ("BTCUSDT",), False)
    m = series([10.0] * 48, [0] * 48, [1.0] * 48)
    rows = by_name(compare(event(
        b=rep("b", "liquidations", 100.0, "Binance only, 24h"),
        x=rep("x", "liquidations", 100.0, "BitMEX, first leg"),
    ), m, Shares(0.2, 0.5)))
    assert rows["b"].comparable == pytest.approx(50.0) and rows["b"].scored
    assert rows["x"].comparable is None and not rows["x"].scored and "other venue" in rows["x"].verdict


def test_long_share_and_interval_from_at() -> None:
    liq_long = [0.0] * 10 + [30.0] * 10 + [0.0] * 28
    liq_short = [0.0] * 10 + [10.0] * 10 + [500.0] * 28  # outside the 24h ending at hour 20
    m = series(liq_long, liq_short, [1.0] * 48)
    at = T0 + timedelta(hours=20)
    rows = by_name(compare(event(s=rep("s", "long_share", 0.8, "all venues", unit="fraction", at=at)), m,
                           Shares(0.2)))
    assert rows["s"].model == pytest.approx(0.75)
    assert rows["s"].error == pytest.approx(-0.05)
    assert "24h ending" in rows["s"].interval


def test_oi_change_before_after_and_peak_timing() -> None:
    oi = [100.0] * 24 + [60.0] * 6 + [80.0] * 18  # 24h before the peak: 100; lowest after: 60
    liq = [0.0] * 25 + [5.0] + [0.0] * 22  # model peak 1h after the catalog peak
    m = series(liq, [0.0] * 48, oi)
    cal = compare(event(oi=rep("oi", "oi_change", None, "aggregate BTC futures open interest, all venues",
                                before=100.0, after=75.0),
                        f=rep("f", "funding_extreme", -0.002, "Binance BTCUSDT 8h", unit="rate_8h")), m,
                  Shares(0.2))
    rows = by_name(cal)
    assert rows["oi"].model == pytest.approx(-0.4)
    assert rows["oi"].reported == pytest.approx(-0.25)
    assert rows["oi"].error == pytest.approx(np.log(0.6 / 0.75))
    assert rows["peak"].ratio == pytest.approx(1.0)
    assert rows["f"].model == pytest.approx(-0.002) and not rows["f"].scored
    assert set(error_terms(cal)) == {"test.oi", "test.peak"}


@pytest.mark.archive
def test_cli_calibrate_json_on_recorded_window(archive_dir, tmp_path) -> None:
    from backtest.cli.calibrate_cmd import calibrate

    res = CliRunner().invoke(calibrate, ["--event", "luna2022", "--format", "json", "--quiet",
                                         "--db", str(tmp_path / "m.duckdb"), "--archive", str(archive_dir),
                                         "--venue-share", "0.25"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["venue_share"] == 0.25 and doc["asset_share"] == 0.6
    rows = {r["figure"]: r for r in doc["rows"]}
    liq = rows["liquidations_to_12may"]
    assert liq["lower_bound"] is True and liq["comparable"] == pytest.approx(1.2e9 * 0.25 * 0.6)
    assert liq["model"] > 0 and liq["ratio"] == pytest.approx(liq["model"] / liq["comparable"])
    assert 0 <= rows["long_share_to_12may"]["model"] <= 1
    assert rows["funding_extreme"]["model"] == pytest.approx(-0.00042, rel=1e-3)
    bad = CliRunner().invoke(calibrate, ["--event", "luna2022", "--asset-share", "2"])
    assert bad.exit_code != 0
