"""Coverage and gaps on a timeframe grid, checked against a brute-force reference."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loaders.coverage import coverage, find_gaps, format_duration, timeframe_delta, timeframe_of

H = timedelta(hours=1)
D0 = datetime(2021, 5, 19)


def series(times: list[datetime]) -> pl.Series:
    return pl.Series("ts", times, dtype=pl.Datetime("us"))


def test_complete_series() -> None:
    ts = series([D0 + i * H for i in range(24)])
    cov = coverage(ts, "1h", D0, D0 + 24 * H)
    assert (cov.expected, cov.present, cov.gaps, cov.largest_gap, cov.missing) == (24, 24, 0, timedelta(0), 0)
    assert cov.complete and cov.first_ts == D0 and cov.last_ts == D0 + 23 * H


def test_gaps_inside_and_at_the_edges() -> None:
    present = [i for i in range(24) if i not in (0, 1, 5, 6, 7, 23)]
    ts = series([D0 + i * H for i in present])
    gaps = find_gaps(ts, "1h", D0, D0 + 24 * H)
    assert gaps.rows() == [(D0, D0 + 2 * H, 2), (D0 + 5 * H, D0 + 8 * H, 3), (D0 + 23 * H, D0 + 24 * H, 1)]
    cov = coverage(ts, "1h", D0, D0 + 24 * H)
    assert (cov.expected, cov.present, cov.gaps, cov.largest_gap) == (24, 18, 3, 3 * H)


def test_rows_outside_the_window_and_off_grid() -> None:
    ts = series([D0 - H, D0, D0 + H, D0 + H + timedelta(minutes=30), D0 + 2 * H, D0 + 3 * H])
    cov = coverage(ts, "1h", D0, D0 + 3 * H)
    assert (cov.expected, cov.present, cov.off_grid, cov.gaps) == (3, 3, 1, 0)


def test_window_not_on_the_grid() -> None:
    # [00:30, 03:30) holds the 1h slots 01:00, 02:00, 03:00.
    cov = coverage(series([D0 + H, D0 + 3 * H]), "1h", D0 + H / 2, D0 + 3.5 * H)
    assert (cov.expected, cov.present, cov.gaps, cov.largest_gap) == (3, 2, 1, H)
    assert coverage(series([]), "1d", D0 + H, D0 + 2 * H).expected == 0


def test_funding_anchor() -> None:
    # BitMEX settles at 04/12/20 UTC: on an epoch-anchored 8h grid those are all off-grid.
    ts = series([D0 + 4 * H, D0 + 12 * H, D0 + 20 * H])
    assert coverage(ts, timedelta(hours=8), D0, D0 + 24 * H).present == 0
    cov = coverage(ts, timedelta(hours=8), D0, D0 + 24 * H, anchor=D0 + 4 * H)
    assert (cov.expected, cov.present, cov.gaps) == (3, 3, 0)


def test_frames_and_helpers() -> None:
    frame = pl.DataFrame({"ts": series([D0, D0 + 2 * H]), "close": [1.0, 2.0]})
    assert find_gaps(frame, "1h", D0, D0 + 3 * H).rows() == [(D0 + H, D0 + 2 * H, 1)]
    assert timeframe_delta("15m") == timedelta(minutes=15) and timeframe_of(timedelta(hours=8)) == "8h"
    assert timeframe_of(timedelta(minutes=7)) is None
    assert format_duration(timedelta(days=3, hours=4)) == "3d4h" and format_duration(timedelta(0)) == "0"
    with pytest.raises(ValueError, match="unknown timeframe '7m'"):
        timeframe_delta("7m")


@settings(max_examples=60, deadline=None)
@given(present=st.sets(st.integers(0, 59)), lo=st.integers(0, 30), hi=st.integers(30, 60))
def test_matches_brute_force(present: set[int], lo: int, hi: int) -> None:
    step = timedelta(minutes=15)
    ts = series([D0 + i * step for i in sorted(present)])
    start, end = D0 + lo * step, D0 + hi * step
    slots = range(lo, hi)
    runs, run, longest = 0, 0, 0
    for i in slots:
        if i in present:
            run = 0
        else:
            runs += run == 0
            run += 1
            longest = max(longest, run)
    cov = coverage(ts, "15m", start, end)
    assert cov.expected == len(slots)
    assert cov.present == len(present & set(slots))
    assert cov.gaps == runs and cov.largest_gap == longest * step
    gaps = find_gaps(ts, "15m", start, end)
    assert int(gaps["missing"].sum() or 0) == cov.missing
