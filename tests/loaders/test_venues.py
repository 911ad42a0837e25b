"""The venue capability table agrees with the installed ccxt and reports limits in one line."""

from __future__ import annotations

from datetime import datetime, timedelta

import ccxt
import pytest

from loaders.errors import RetentionError, UserError
from loaders.venues import (
    BINANCEUSDM,
    BYBIT,
    DATASETS,
    OKX,
    VENUES,
    NotServedError,
    get_venue,
    retained_window,
)

NOW = datetime(2026, 11, 22)
UNIFIED = {"fetch_ohlcv": "fetchOHLCV", "fetch_mark_ohlcv": "fetchMarkOHLCV",
           "fetch_index_ohlcv": "fetchIndexOHLCV", "fetch_funding_rate_history": "fetchFundingRateHistory",
           "fetch_open_interest_history": "fetchOpenInterestHistory"}


def test_required_venues_present() -> None:
    assert {"binanceusdm", "bybit", "okx"} <= set(VENUES)
    for venue in VENUES.values():
        assert set(venue.datasets) == set(DATASETS), venue.id


@pytest.mark.parametrize("venue_id", sorted(VENUES))
def test_table_matches_installed_ccxt(venue_id: str) -> None:
    venue = VENUES[venue_id]
    ex = getattr(ccxt, venue_id)()
    for tf in venue.timeframes:
        assert tf in ex.timeframes, (venue_id, tf)
    for name, spec in venue.datasets.items():
        if spec.method in UNIFIED:
            assert ex.has[UNIFIED[spec.method]], (venue_id, name)
            assert spec.page_max > 0
        if name == "oi" and spec.served:
            assert spec.periods and all(p in ex.timeframes for p in spec.periods)
        if not spec.served or spec.snapshot_only:
            assert spec.note, (venue_id, name)  # every gap says why


def test_binance_oi_retention_is_an_error_not_an_empty_result() -> None:
    with pytest.raises(RetentionError) as err:
        retained_window(BINANCEUSDM, "oi", datetime(2021, 5, 10), datetime(2021, 5, 26), NOW)
    msg = str(err.value)
    assert "\n" not in msg and "binanceusdm keeps oi history for the last 30 days only" in msg
    assert "2021-05-10 00:00 .. 2021-05-26 00:00" in msg


def test_partly_retained_window_is_clipped_with_a_warning() -> None:
    start, warning = retained_window(OKX, "funding", NOW - timedelta(days=120), NOW, NOW)
    assert start == NOW - timedelta(days=90)
    assert "okx keeps funding history for the last 90 days only" in warning
    assert retained_window(BINANCEUSDM, "funding", datetime(2021, 5, 1), datetime(2021, 6, 1), NOW) == (
        datetime(2021, 5, 1), None)


def test_insurance_snapshot_and_unserved_datasets_are_reported() -> None:
    with pytest.raises(NotServedError, match="bybit publishes only a current insurance-fund snapshot"):
        retained_window(BYBIT, "insurance", datetime(2021, 5, 1), datetime(2021, 6, 1), NOW)
    assert retained_window(BYBIT, "insurance", NOW - timedelta(days=1), NOW, NOW)[1] is None
    assert OKX.spec("insurance").method == "insurance_history"  # okx serves history and it is fetched


def test_unknown_names_list_choices() -> None:
    with pytest.raises(UserError, match=r"--venue bybt: unknown venue \(did you mean bybit\?\); choose from "
                                        "binanceusdm, bybit, okx, gate"):
        get_venue("bybt")
    with pytest.raises(UserError, match="--timeframe 8h: bybit has no 8h candles; choose from 1m"):
        BYBIT.check_timeframe("8h")
    with pytest.raises(UserError, match="--datasets trades: unknown dataset; choose from last, mark"):
        BYBIT.spec("trades")


def test_oi_period_falls_back_to_next_coarser() -> None:
    assert BINANCEUSDM.oi_period("1m") == "5m"
    assert BINANCEUSDM.oi_period("1h") == "1h"
    assert OKX.oi_period("15m") == "1h"
    assert BYBIT.oi_period("8h") == "1d"
