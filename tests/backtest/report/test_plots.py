"""Plot helpers: one resolution for the full-window forced flow, bar lengths named, the crash-hours window."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from backtest.engine.results import Result
from backtest.report.plots import bar_length_text, crash_window, hourly


def test_hourly_sums_bars_of_any_length_into_utc_hours():
    # 1-minute bars from 10:58 to 11:02 and a 1-hour bar at 12:00: three hours, sums kept
    ts = np.array([10 * 3600 + 58 * 60, 10 * 3600 + 59 * 60, 11 * 3600, 11 * 3600 + 60, 12 * 3600])
    hours, usd = hourly(ts, np.array([1.0, 2.0, 4.0, 8.0, 16.0]))
    assert hours.tolist() == [36_000, 39_600, 43_200]
    assert usd.tolist() == [3.0, 12.0, 16.0]


def test_bar_lengths_are_named():
    assert bar_length_text(np.array([60.0, 60.0])) == "1m bars"
    assert bar_length_text(np.array([3600.0, 60.0, 900.0])) == "1m, 15m and 1h bars"
    assert bar_length_text(np.array([])) == "no bars"


def test_crash_window_is_peak_or_the_busiest_tick():
    peak = datetime(2021, 5, 19, 13, 10)
    lo, hi = crash_window([], peak, 6)
    centre = int(datetime(2021, 5, 19, 13, 10, tzinfo=UTC).timestamp())
    assert hi - lo == 12 * 3600 and (lo + hi) // 2 == centre
    clock = np.array([0, 60, 120, 180])
    series = {"clock": clock, "in_window": np.array([False, True, True, True]),
              "liq_usd_per_min": np.array([99.0, 1.0, 5.0, 2.0])}  # the warm-up tick does not count
    r = Result(record={}, per_symbol={}, series=series)
    assert crash_window([r], None, 1) == (120 - 3600, 120 + 3600)


def test_bars_are_one_step_patch_dropping_to_zero_in_gaps():
    from backtest.report.plots import _bars, _plt

    plt = _plt()
    fig, ax = plt.subplots()
    # two 1m bars, a 3-minute hole, one 1h bar
    _bars(ax, np.array([0, 60, 300]), np.array([60.0, 60.0, 3600.0]), np.array([5.0, 7.0, 2.0]), "red", "x")
    (patch,) = ax.patches
    values, edges, _ = patch.get_data()
    assert list(values) == [5.0, 7.0, 0.0, 2.0]
    assert np.allclose(np.diff(edges) * 86400.0, [60, 60, 180, 3600])
    plt.close(fig)
