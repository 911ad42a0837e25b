"""backtest.calibrate: scope scaling, lower bounds, intervals, OI change, peak timing; CLI on real data."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner

from backtest.calibrate import (
    FUND_ERROR_SCALE,
    LOWER_BOUND_MAX_RATIO,
    Calibration,
    FundSeries,
    ModelSeries,
    Shares,
    compare,
    error_terms,
    fund_change,
    interval_for,
    scope_of,
)
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
    assert rows["peak"].model == pytest.approx(1.0)  # hours after the catalog peak: not a ratio
    assert rows["peak"].ratio is None and rows["peak"].unit.startswith("hours")
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


USER_CATALOG = """
[mywin]
title = "My window"
start = 2030-01-01T00:00:00Z
end = 2030-01-03T00:00:00Z
warmup_days = 0
peak = 2030-01-02T00:00:00Z
symbols = ["BTCUSDT", "ETHUSDT"]
venues = ["binanceusdm"]

[mywin.reported.liq_span]
kind = "liquidations"
value = 50.0
unit = "USD"
at = 2030-01-02T12:00:00Z
scope = "Binance BTCUSDT, 02:00 -> 05:00 1 Jan 2030"
source = "https://example.org/liq"
confidence = "M"
measured_from = 2030-01-01T02:00:00Z
measured_to = 2030-01-01T05:00:00Z
measured_why = "the span the scope names"

[mywin.reported.liq_default]
kind = "liquidations"
value = 50.0
unit = "USD"
scope = "Binance BTCUSDT"
source = "https://example.org/liq"
confidence = "M"

[mywin.reported.oi_halved]
kind = "oi_change"
after = 40.0
unit = "USD"
scope = "BTC futures open interest, all venues"
source = "https://example.org/oi"
confidence = "L"
measured_from = 2030-01-01T00:00:00Z
measured_to = 2030-01-02T00:00:00Z
measured_why = "window start -> peak"
change_bound = -0.5
change_bound_sense = "at_most"

[mywin.reported.liq_next_year]
kind = "liquidations"
value = 50.0
unit = "USD"
scope = "Binance BTCUSDT, a year later"
source = "https://example.org/liq"
confidence = "M"
outside_window = "a year after the window"
"""


def test_user_catalog_states_interval_bound_and_outside_window(tmp_path) -> None:
    """A user's --events-file states how a figure is measured; calibrate uses it."""
    from backtest.events import load_catalog

    path = tmp_path / "mine.toml"
    path.write_text(USER_CATALOG, encoding="utf-8")
    ev = load_catalog(path).get("mywin")
    oi = [100.0] * 12 + [30.0] * 36  # OI down 70% by the peak: more than halved
    m = series([10.0] * 48, [0.0] * 48, oi)  # 10 USD of long liquidations every hour
    rows = by_name(compare(ev, m, Shares(0.2)))
    span = rows["liq_span"]
    assert span.model == pytest.approx(30.0)  # 3 bars in [02:00, 05:00), not the 24h ending at `at`
    assert span.interval == "2030-01-01 02:00 -> 2030-01-01 05:00 (the span the scope names)"
    assert span.ratio == pytest.approx(30.0 / 50.0) and span.scored
    default = rows["liq_default"]
    assert default.model == pytest.approx(240.0) and "peak +/- 12h" in default.interval
    halved = rows["oi_halved"]
    assert halved.model == pytest.approx(-0.7) and halved.reported == -0.5
    assert halved.error == 0.0 and halved.verdict == "consistent with the bound"
    assert "change <= -0.5" in halved.scale
    nxt = rows["liq_next_year"]
    assert nxt.model == pytest.approx(240.0) and not nxt.scored and nxt.error is None
    assert nxt.verdict == "not comparable: a year after the window" and nxt.comparable is None
    assert set(error_terms(compare(ev, m, Shares(0.2)))) == {
        "mywin.liq_span", "mywin.liq_default", "mywin.oi_halved", "mywin.peak"}
    # a looser bound the reconstruction misses is scored one-sided
    m2 = series([10.0] * 48, [0.0] * 48, [100.0] * 12 + [60.0] * 36)
    miss = by_name(compare(ev, m2, Shares(0.2)))["oi_halved"]
    assert miss.error == pytest.approx(np.log(0.6 / 0.5)) and miss.verdict.startswith("log-error")


USER_FTX = """
[myftx]
title = "FTX, my figures"
start = 2022-11-05T00:00:00Z
end = 2022-11-15T00:00:00Z
peak = 2022-11-09T22:08:00Z
symbols = ["BTCUSDT", "ETHUSDT"]
venues = ["binanceusdm"]
"""
_FIG = """
[myftx.reported.{name}]
kind = "liquidations"
value = 1e8
unit = "USD"
scope = "Binance BTCUSDT+ETHUSDT, {why}"
source = "https://example.org/mine"
confidence = "M"
measured_from = {start}
measured_to = {end}
measured_why = "{why}"
"""


@pytest.mark.archive
def test_cli_calibrate_uses_an_interval_from_BACKTEST_EVENTS(archive_dir, tmp_path) -> None:
    """End to end: a user catalog in BACKTEST_EVENTS splits 8 Nov 2022 in two; the halves sum to the day."""
    from backtest.cli.calibrate_cmd import calibrate

    spans = {"day": ("2022-11-08T00:00:00Z", "2022-11-09T00:00:00Z", "UTC day 8 Nov"),
             "am": ("2022-11-08T00:00:00Z", "2022-11-08T12:00:00Z", "8 Nov 00-12"),
             "pm": ("2022-11-08T12:00:00Z", "2022-11-09T00:00:00Z", "8 Nov 12-24")}
    text = USER_FTX + "".join(_FIG.format(name=n, start=a, end=b, why=w) for n, (a, b, w) in spans.items())
    path = tmp_path / "mine.toml"
    path.write_text(text, encoding="utf-8")
    res = CliRunner().invoke(calibrate, ["--event", "myftx", "--format", "json", "--quiet",
                                         "--db", str(tmp_path / "m.duckdb")],
                             env={"BACKTEST_EVENTS": str(path), "BACKTEST_ARCHIVE": str(archive_dir)})
    assert res.exit_code == 0, res.output
    rows = {r["figure"]: r for r in json.loads(res.output)["rows"]}
    assert rows["day"]["interval"] == "2022-11-08 00:00 -> 2022-11-09 00:00 (UTC day 8 Nov)"
    assert rows["pm"]["interval"] == "2022-11-08 12:00 -> 2022-11-09 00:00 (8 Nov 12-24)"
    assert rows["am"]["model"] > 0 and rows["pm"]["model"] > 0
    assert rows["day"]["model"] == pytest.approx(rows["am"]["model"] + rows["pm"]["model"], rel=1e-9)


# -- insurance-fund outcomes (fund_change): a replayed static fund against the reported balance change -----

def fund_series(values, capital: float = 100.0) -> FundSeries:
    """A fund valued after each 1h tick from T0 (``values[i]`` after the tick opening at T0 + i h)."""
    n = len(values)
    clock = np.arange(n, dtype=np.int64) * H + int((T0 - datetime(1970, 1, 1)).total_seconds())
    return FundSeries(clock=clock, value=np.asarray(values, float), start_usd=capital, symbols=("BTCUSDT",))


def fund_rep(before: float, after: float, start: datetime, end: datetime, **kw) -> Reported:
    return Reported(name="fund", kind="fund_change", unit="USDT", scope="Binance BTCUSDT insurance fund",
                    source="src", confidence="M", before=before, after=after, measured_from=start,
                    measured_to=end, measured_why="the day", venue="binanceusdm", fund="BTC fund",
                    fund_symbols=("BTCUSDT",), **kw)


def h(n: float) -> datetime:
    return T0 + timedelta(hours=n)


def test_fund_row_measures_exactly_the_stated_interval() -> None:
    # value after each tick: the tick opening at T0+i h brings the value to values[i]
    fund = fund_series([100.0, 97.0, 95.0, 90.0, 80.0, 70.0, 69.0, 150.0])
    row = fund_change(event(), "fund", fund_rep(100.0, 90.0, h(2), h(5)), fund)
    # [2h, 5h): value after the last tick before 5h (tick 4: 80) minus after the last before 2h (tick 1: 97)
    assert row.model == pytest.approx(80.0 - 97.0)
    assert row.reported == pytest.approx(-10.0) and row.comparable == row.reported
    assert row.metric == "fund_change" and row.unit == "USDT" and row.scored and not row.lower_bound
    assert row.interval == f"{h(2):%Y-%m-%d %H:%M} -> {h(5):%Y-%m-%d %H:%M} (the day)"
    assert "static fund started at 100 USDT" in row.scale and "interval start" in row.scale
    assert "BTCUSDT" in row.scale
    # a bound between ticks: the tick that opened before it counts whole on the earlier side
    between = fund_change(event(), "fund", fund_rep(100.0, 90.0, h(2.5), h(4.5)), fund)
    assert between.model == pytest.approx(80.0 - 95.0)
    # no tick before the interval: measured from the start capital
    early = fund_change(event(), "fund", fund_rep(100.0, 90.0, T0 - timedelta(hours=3), h(2)), fund)
    assert early.model == pytest.approx(97.0 - 100.0)
    fund.start_usd = 120.0  # (the start capital, not the first tick's value)
    assert fund.value_before(T0) == 120.0 and fund.value_before(h(0.5)) == 100.0
    # after the last tick: its value
    assert fund.value_before(h(30)) == 150.0 and fund.change(h(0), h(30)) == pytest.approx(150.0 - 120.0)


@pytest.mark.parametrize(
    ("model_after", "reported_after", "ratio", "verdict"),
    [
        (92.0, 90.0, 0.8, "within x2"),  # -8 vs -10
        (95.0, 90.0, 0.5, "within x2"),  # the edges are inside
        (80.0, 90.0, 2.0, "within x2"),
        (96.0, 90.0, 0.4, "ratio 0.40"),
        (70.0, 90.0, 3.0, "ratio 3.00"),
        (105.0, 90.0, -0.5, "wrong sign"),  # the model's fund grew, the venue's shrank
        (100.0, 90.0, 0.0, "ratio 0.00"),  # no change at all
        (110.0, 105.0, 2.0, "within x2"),  # both grew
        (90.0, 110.0, -1.0, "wrong sign"),
    ],
)
def test_fund_row_verdicts_and_sign(model_after: float, reported_after: float, ratio: float,
                                    verdict: str) -> None:
    fund = fund_series([100.0, model_after])
    row = fund_change(event(), "fund", fund_rep(100.0, reported_after, h(1), h(2)), fund)
    assert row.ratio == pytest.approx(ratio) and row.verdict == verdict and row.scored


def test_fund_row_error_is_a_smooth_log_ratio() -> None:
    before = 1e8
    s = FUND_ERROR_SCALE * before

    def err(model_change: float, reported_change: float) -> float:
        fund = fund_series([before, before + model_change], capital=before)
        rep_ = fund_rep(before, before + reported_change, h(1), h(2))
        return fund_change(event(), "fund", rep_, fund).error

    assert err(-3e6, -3e6) == pytest.approx(0.0)
    assert err(-30e6, -10e6) == pytest.approx(np.arcsinh(-30e6 / s) - np.arcsinh(-10e6 / s))
    assert err(-30e6, -10e6) == pytest.approx(-np.log(3.0), abs=0.01)  # ~ log-ratio when both are large
    assert err(-10e6, -30e6) == pytest.approx(np.log(3.0), abs=0.01)
    assert err(10e6, -10e6) == pytest.approx(2 * np.arcsinh(10e6 / s))  # wrong sign: worse than x100 off
    assert abs(err(10e6, -10e6)) > abs(err(-1000e6, -10e6))
    assert err(0.0, -2e6) == pytest.approx(np.arcsinh(2e6 / s))  # smooth through 0: no log(0)
    assert err(1e3, 0.0) == pytest.approx(np.arcsinh(1e3 / s))
    zero = fund_change(event(), "fund", fund_rep(before, before, h(1), h(2)), fund_series([before, before]))
    assert zero.ratio is None and zero.verdict == "n/a (reported change 0)" and zero.error == 0.0


def test_fund_row_outside_window_is_shown_not_scored_and_others_are_error_terms() -> None:
    fund = fund_series([100.0, 90.0])
    out = fund_change(event(), "fund", fund_rep(100.0, 80.0, h(1), h(2), outside_window="a later fund"), fund)
    assert out.model == pytest.approx(-10.0) and out.reported == pytest.approx(-20.0)
    assert not out.scored and out.error is None and out.verdict == "not comparable: a later fund"
    scored = fund_change(event(), "fund", fund_rep(100.0, 80.0, h(1), h(2)), fund)
    cal = Calibration("test", Shares(0.2), [scored, out])
    s = FUND_ERROR_SCALE * 100.0
    assert error_terms(cal) == {"test.fund": pytest.approx(np.arcsinh(-10 / s) - np.arcsinh(-20 / s))}
    assert cal.to_dict()["rows"][0]["interval"].startswith(f"{h(1):%Y-%m-%d %H:%M} -> ")


def test_fund_series_from_a_result_and_compare_leaves_fund_rows_to_the_replay() -> None:
    from types import SimpleNamespace

    res = SimpleNamespace(series={"clock": np.array([0, 3600]), "fund_value": np.array([5.0, 4.0])},
                          record={"design": "static", "design_type": "static"})
    fs = FundSeries.from_result(res, 5.0, ["BTCUSDT"])
    assert (fs.start_usd, fs.symbols, fs.design, list(fs.value)) == (5.0, ("BTCUSDT",), "static", [5.0, 4.0])
    # compare() (one `none` replay) has no fund rows: backtest.calibrate_run.fund_rows adds them
    m = series([0.0] * 48, [0.0] * 48, [1.0] * 48)
    rows = compare(event(fund=fund_rep(100.0, 90.0, h(1), h(2))), m, Shares(0.2)).rows
    assert [r.metric for r in rows] == ["peak_time"]


def test_fund_rows_shows_a_fund_it_cannot_replay() -> None:
    """Another venue's fund, or symbols not loaded (--symbols): shown, not replayed, not scored."""
    from types import SimpleNamespace

    from backtest.calibrate_run import fund_rows
    from backtest.engine.params import Params

    other = fund_rep(100.0, 90.0, h(1), h(2))
    other = Reported(**{**other.__dict__, "name": "bybit_fund", "venue": "bybit"})
    eth = Reported(**{**other.__dict__, "name": "eth_fund", "venue": "binanceusdm",
                      "fund_symbols": ("ETHUSDT",)})
    ev = event(bybit_fund=other, eth_fund=eth)
    rows = fund_rows(ev, [SimpleNamespace(symbol="BTCUSDT")], Params())
    assert [r.figure for r in rows] == ["bybit_fund", "eth_fund"]
    assert rows[0].verdict == "not replayed: a bybit fund; the replay is binanceusdm"
    assert rows[1].verdict == "not replayed: ETHUSDT not loaded"
    for r in rows:
        assert r.model is None and not r.scored and r.error is None and r.reported == pytest.approx(-10.0)


@pytest.mark.archive
def test_cli_calibrate_shows_the_fund_rows(archive_dir, tmp_path) -> None:
    """may2020 (BTCUSDT's own fund) and may2021 (the BTC/ETH fund): a static fund replayed per figure."""
    from backtest.cli.calibrate_cmd import calibrate

    expected = {"may2020": (7.7e6 - 21e6, "2020-05-10 00:00 -> 2020-05-11 00:00"),
                "may2021": (288_718_799.0 - 291_853_183.0, "2021-05-19 00:00 -> 2021-05-20 00:00")}
    for event_id, (change, interval) in expected.items():
        res = CliRunner().invoke(calibrate, ["--event", event_id, "--format", "json", "--quiet", "--db",
                                             str(tmp_path / "m.duckdb"), "--archive", str(archive_dir)])
        assert res.exit_code == 0, res.output
        rows = [r for r in json.loads(res.output)["rows"] if r["metric"] == "fund_change"]
        assert len(rows) == 1, rows
        row = rows[0]
        assert row["figure"] == "fund_change" and row["reported"] == pytest.approx(change)
        assert row["model"] is not None and np.isfinite(row["model"]) and row["scored"] is True
        assert row["interval"].startswith(interval) and np.isfinite(row["error"])
        assert row["ratio"] == pytest.approx(row["model"] / row["reported"])


def test_an_all_venue_total_is_not_scored_where_a_binance_total_covers_the_same_span() -> None:
    m = series([0] * 20 + [100.0] * 8 + [0] * 20, [0] * 48, [1000.0] * 48)
    ev = event(
        total=rep("total", "liquidations", 1000.0, "all venues, 24h", lower_bound=True),
        binance=rep("binance", "liquidations", 100.0, "Binance only, 24h", lower_bound=True),
        later=rep("later", "liquidations", 1000.0, "all venues, 12h later", lower_bound=True,
                  measured_from=T0 + timedelta(hours=36), measured_to=T0 + timedelta(hours=48),
                  measured_why="a later span"),
    )
    rows = by_name(compare(ev, m, Shares(0.2, 0.5)))
    assert rows["binance"].scored and rows["binance"].comparable == pytest.approx(50.0)  # asset share only
    assert not rows["total"].scored and rows["total"].error is None
    assert "not scored: Binance-only binance" in rows["total"].verdict
    assert rows["later"].scored  # no Binance figure for that span
    assert set(error_terms(compare(ev, m, Shares(0.2, 0.5)))) == {"test.binance", "test.later", "test.peak"}


def test_a_figure_over_a_few_minutes_is_measured_over_them() -> None:
    """The Hyperliquid total covers 21:15-21:27 (its scope says so): not the 24 h ending 21:27."""
    from backtest.events import load_catalog

    ev = load_catalog().get("oct2025")
    start, end, why = interval_for(ev, "liquidations_hyperliquid", ev.reported["liquidations_hyperliquid"])
    assert (start, end) == (datetime(2025, 10, 10, 21, 15), datetime(2025, 10, 10, 21, 27))
    assert "21:15 -> 21:27" in why


def test_calibrate_table_has_a_unit_column_and_no_hours_in_the_ratio_column(capsys) -> None:
    from backtest.cli.calibrate_cmd import _print_table

    oi = [100.0] * 48
    liq = [0.0] * 25 + [5.0] + [0.0] * 22  # model peak 1 h after the catalog peak
    cal = compare(event(total=rep("total", "liquidations", 50.0, "Binance only, 24h")),
                  series(liq, [0.0] * 48, oi), Shares(0.2))
    _print_table(SimpleNamespace(id="test", title="t"), cal, ["BTCUSDT"])
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if "reconstructed" in line)
    assert "unit" in header and "ratio" in header
    peak = next(line for line in out.splitlines() if "peak_time" in line)
    cells = [c.strip() for c in peak.split("│")[1:-1]]
    assert cells[3] == "hours vs catalog peak" and cells[4] == "+1.0 h" and cells[7] == "-"
    total = next(line for line in out.splitlines() if "liquidations" in line and "total" in line)
    assert [c.strip() for c in total.split("│")[1:-1]][3] == "USD"
