"""The crash-window catalog: built-in content, user files merged over it, strict validation, CLI."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from backtest.events import KINDS, load_catalog, parse_file
from loaders.errors import InputError, UserError

IDS = ["mar2020", "may2020", "may2021", "luna2022", "ftx2022", "aug2024", "oct2025"]

MINIMAL = """
[mywin]
title = "My window"
start = 2023-03-10T00:00:00Z
end = 2023-03-12T00:00:00Z
symbols = ["BTCUSDT"]
venues = ["binanceusdm"]
"""


def write(tmp_path: Path, text: str, name: str = "extra.toml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_builtin_catalog_has_the_seven_windows_in_order() -> None:
    cat = load_catalog()
    assert cat.ids == IDS
    for e in cat:
        assert e.start < e.end
        assert e.warmup == timedelta(days=30)
        assert e.load_start == e.start - timedelta(days=30)
        assert e.symbols == ("BTCUSDT", "ETHUSDT")
        assert e.venues == ("binanceusdm",)
        assert e.peak is not None and e.start <= e.peak < e.end
        assert e.start.tzinfo is None and e.end.tzinfo is None
        # every window has a price move and a Binance funding extreme with its settlement time
        assert e.first("price_move") is not None
        fx = e.first("funding_extreme")
        assert fx is not None and fx.at is not None and fx.confidence == "H" and fx.unit == "rate_8h"
        for r in e.reported.values():
            assert r.kind in KINDS and r.source and r.scope and r.confidence in "HML"


def test_may2021_figures_match_events_md() -> None:
    e = load_catalog().get("may2021")
    assert (e.start, e.end) == (datetime(2021, 5, 10), datetime(2021, 5, 26))
    assert e.peak == datetime(2021, 5, 19, 13, 10)
    liq = e.reported["liquidations_total"]
    assert liq.value == 8e9 and liq.unit == "USD" and liq.lower_bound and liq.confidence == "M"
    f = e.reported["funding_extreme"]
    assert f.value == pytest.approx(-0.000897) and f.at == datetime(2021, 5, 19, 16)
    [fund] = e.fund_before
    assert (fund.venue, fund.balance, fund.currency, fund.date) == (
        "binanceusdm", 291_853_183.0, "USDT", date(2021, 5, 19))
    assert any("long/short" in g for g in e.gaps)


def test_lower_bound_flag_only_after_april_2021() -> None:
    """EVENTS.md: CEX liquidation totals after ~23 Apr 2021 are lower bounds; mar2020 BitMEX ones are not."""
    cat = load_catalog()
    for r in cat.get("mar2020").reported.values():
        assert not r.lower_bound
    hl = cat.get("oct2025").reported["liquidations_hyperliquid"]
    assert not hl.lower_bound  # on-chain, fully counted
    for eid in IDS:
        if cat.get(eid).start < datetime(2021, 4, 23):
            continue
        for r in cat.get(eid).reported.values():
            if r.kind == "liquidations" and r.name != "liquidations_hyperliquid":
                assert r.lower_bound, (eid, r.name)


def test_fund_sizes_and_oi_levels() -> None:
    cat = load_catalog()
    mar = {f.venue: f for f in cat.get("mar2020").fund_before}
    assert mar["bitmex"].balance == 35_508 and mar["bitmex"].currency == "XBT"
    assert mar["binanceusdm"].balance == 12.9e6
    oct_ = cat.get("oct2025")
    assert oct_.fund_before[0].balance == 1.23e9
    oi = oct_.reported["oi_change"]
    assert (oi.before, oi.after) == (49.5e9, 38.8e9)
    assert oi.change == pytest.approx(38.8 / 49.5 - 1)
    for eid in ("luna2022", "ftx2022", "aug2024"):
        assert cat.get(eid).fund_before == []
        assert any("fund size" in g.lower() for g in cat.get(eid).gaps)


def test_unknown_id_lists_valid_ids() -> None:
    with pytest.raises(UserError, match="unknown event 'jun2022'.*mar2020, may2020, may2021"):
        load_catalog().get("jun2022")


def test_extra_file_adds_and_replaces(tmp_path: Path) -> None:
    extra = write(tmp_path, MINIMAL + """
[may2021]
title = "May 2021, my narrower window"
start = 2021-05-19
end = 2021-05-20
warmup_days = 2
symbols = ["BTCUSDT"]
venues = ["binanceusdm"]
""")
    cat = load_catalog(extra)
    assert cat.ids == [*IDS, "mywin"]
    may = cat.get("may2021")
    assert may.title.startswith("May 2021, my")
    assert (may.start, may.end) == (datetime(2021, 5, 19), datetime(2021, 5, 20))
    assert may.warmup == timedelta(days=2)
    assert may.reported == {} and may.source_file == str(extra)
    mine = cat.get("mywin")
    assert mine.warmup == timedelta(days=30) and mine.peak is None


def test_offset_datetimes_are_converted_to_utc(tmp_path: Path) -> None:
    [e] = parse_file(write(tmp_path, MINIMAL.replace("2023-03-10T00:00:00Z", "2023-03-10T02:00:00+02:00")))
    assert e.start == datetime(2023, 3, 10)


@pytest.mark.parametrize(
    ("edit", "pattern"),
    [
        (lambda t: t.replace("venues", "venuez"), r"'mywin', key 'venuez': unknown key; valid keys: title"),
        (lambda t: t.replace('symbols = ["BTCUSDT"]\n', ""), r"event 'mywin', key 'symbols': required key"),
        (lambda t: t.replace("2023-03-12T00:00:00Z", "2023-03-09T00:00:00Z"), r"'start': start .*before end"),
        (lambda t: t.replace("2023-03-10T00:00:00Z", '"10 March"'), r"key 'start': bad date '10 March'"),
        (lambda t: t + "warmup_days = -1\n", r"key 'warmup_days': must be a number of days from 0 to 365"),
        (lambda t: t + "peak = 2024-01-01T00:00:00Z\n", r"key 'peak': peak .* outside the window"),
        (lambda t: t.replace("[mywin]", "[MyWin]"), r"event 'MyWin': event id must be lower-case"),
        (lambda t: t.replace('symbols = ["BTCUSDT"]', "symbols = []"), r"'symbols': must list at least one"),
    ],
)
def test_validation_errors_name_file_event_and_key(tmp_path: Path, edit, pattern: str) -> None:
    p = write(tmp_path, edit(MINIMAL))
    with pytest.raises(InputError, match=pattern) as info:
        load_catalog(p)
    assert str(info.value).startswith(str(p))
    assert "\n" not in str(info.value)


REPORTED = """
[mywin.reported.liq]
kind = "liquidations"
value = 1e9
unit = "USD"
scope = "all venues, 24h"
source = "https://example.org/x"
confidence = "M"
"""


@pytest.mark.parametrize(
    ("edit", "pattern"),
    [
        (lambda t: t.replace("kind = ", "knid = "), r"key 'reported.liq.knid': unknown key"),
        (lambda t: t.replace('"liquidations"', '"liqs"'), r"key 'reported.liq.kind': kind 'liqs'"),
        (lambda t: t.replace('confidence = "M"', 'confidence = "high"'), r"reported.liq.confidence"),
        (lambda t: t.replace("value = 1e9", 'value = "1B"'), r"key 'reported.liq.value': must be a number"),
        (lambda t: t.replace("value = 1e9\n", ""), r"key 'reported.liq.value': a figure needs"),
        (lambda t: t.replace('scope = "all venues, 24h"\n', ""), r"key 'reported.liq.scope': required"),
        (lambda t: t + "lower_bound = 1\n", r"reported.liq.lower_bound': must be true or false"),
    ],
)
def test_reported_validation(tmp_path: Path, edit, pattern: str) -> None:
    with pytest.raises(InputError, match=pattern):
        load_catalog(write(tmp_path, MINIMAL + edit(REPORTED)))


def test_error_points_at_the_line(tmp_path: Path) -> None:
    text = MINIMAL + REPORTED.replace("kind = ", "knid = ")
    p = write(tmp_path, text)
    with pytest.raises(InputError) as info:
        load_catalog(p)
    line = text.splitlines().index('knid = "liquidations"') + 1
    assert info.value.line == line


def test_fund_before_validation(tmp_path: Path) -> None:
    fund = ('\n[[mywin.fund_before]]\nvenue = "binanceusdm"\nfund = "f"\nbalance = -5\n'
            'currency = "USDT"\nsource = "s"\n')
    with pytest.raises(InputError, match=r"key 'fund_before\[0\].balance': must be a non-negative"):
        load_catalog(write(tmp_path, MINIMAL + fund))
    with pytest.raises(InputError, match=r"fund_before\[0\].colour': unknown key; valid keys: venue"):
        load_catalog(write(tmp_path, MINIMAL + fund.replace("balance = -5", "balance = 5\ncolour = 1")))


def test_toml_syntax_error_names_line(tmp_path: Path) -> None:
    p = write(tmp_path, MINIMAL + "oops = \n")
    with pytest.raises(InputError, match="not valid TOML") as info:
        load_catalog(p)
    assert info.value.line == len(MINIMAL.splitlines()) + 1


def test_missing_extra_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such events file"):
        load_catalog(tmp_path / "nope.toml")


def test_cli_table_and_json(tmp_path: Path) -> None:
    from backtest.cli import cli

    r = CliRunner().invoke(cli, ["events"], env={"COLUMNS": "250"})
    assert r.exit_code == 0, r.output
    for eid in IDS:
        assert eid in r.output
    assert "291.9M USDT" in r.output and "-0.0897%" in r.output

    extra = write(tmp_path, MINIMAL)
    r = CliRunner().invoke(cli, ["events", "--format", "json", "--events-file", str(extra)])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert [d["id"] for d in data] == [*IDS, "mywin"]
    may = data[IDS.index("may2021")]
    assert may["start"] == "2021-05-10T00:00:00Z" and may["load_start"] == "2021-04-10T00:00:00Z"
    assert may["reported"]["liquidations_total"]["lower_bound"] is True
    assert may["fund_before"][0]["balance"] == 291853183.0


def test_cli_bad_events_file_is_one_line_error(tmp_path: Path) -> None:
    from backtest.cli import main

    bad = write(tmp_path, MINIMAL.replace("venues", "venuez"))
    with pytest.raises(SystemExit) as info:
        main(["events", "--events-file", str(bad)])
    assert info.value.code == 2


def test_select_lists_all_or_named_events_and_rejects_bad_lists() -> None:
    from backtest.events import load_catalog
    from loaders.errors import UserError

    cat = load_catalog()
    assert [e.id for e in cat.select("all")] == cat.ids
    assert [e.id for e in cat.select("oct2025, may2021")] == ["oct2025", "may2021"]
    for bad, msg in ((" , ", "no event given"), ("all,may2021", "cannot be combined"),
                     ("may2021,may2021", "repeated"), ("jun2022", "unknown event")):
        with pytest.raises(UserError, match=msg):
            cat.select(bad)


# -- how calibrate measures a figure: measured_from/to/why, change_bound(+sense), outside_window -----

SPAN = """measured_from = 2023-03-10T06:00:00Z
measured_to = 2023-03-10T18:00:00Z
measured_why = "UTC 06-18"
"""
OI = """
[mywin.reported.oi]
kind = "oi_change"
value = -0.3
unit = "fraction"
scope = "BTC futures open interest, all venues"
source = "https://example.org/oi"
confidence = "L"
"""
BOUND = 'change_bound = -0.5\nchange_bound_sense = "at_most"\n'
LIQ = REPORTED


def assert_figure_error(tmp_path: Path, figure: str, key: str, pattern: str) -> None:
    """A catalog with one bad figure fails with one line naming file, event, key and the key's line
    (the figure's table header when the key is missing)."""
    text = MINIMAL + figure
    p = write(tmp_path, text)
    with pytest.raises(InputError, match=f"event 'mywin', key 'reported.{key}': {pattern}") as info:
        load_catalog(p)
    msg = str(info.value)
    assert msg.startswith(f"{p}:") and "\n" not in msg
    fig, name = key.split(".")
    lines = text.splitlines()
    at_key = [i for i, ln in enumerate(lines, 1) if ln.startswith(f"{name} =")]
    header = lines.index(f"[mywin.reported.{fig}]") + 1  # a missing key: the figure's table
    assert info.value.line == (at_key[0] if at_key else header)


@pytest.mark.parametrize(
    ("figure", "key", "pattern"),
    [
        # bad types
        (LIQ + SPAN.replace("2023-03-10T06:00:00Z", "6"), "liq.measured_from", "bad date 6"),
        (LIQ + SPAN.replace("2023-03-10T18:00:00Z", '"evening"'), "liq.measured_to", "bad date 'evening'"),
        (LIQ + SPAN.replace('"UTC 06-18"', "3"), "liq.measured_why", "must be a non-empty string"),
        (OI + BOUND.replace("-0.5", '"half"'), "oi.change_bound", "must be a relative change above -1"),
        (OI + BOUND.replace("-0.5", "-1.5"), "oi.change_bound", "must be a relative change above -1"),
        (LIQ + "outside_window = 1\n", "liq.outside_window", "must be a non-empty string"),
        (LIQ + 'outside_window = ""\n', "liq.outside_window", "must be a non-empty string"),
        # from >= to, and an interval the replay does not hold (window [10 Mar, 12 Mar), 30 days warm-up)
        (LIQ + SPAN.replace("T18:00", "T06:00"), "liq.measured_from",
         "measured_from 2023-03-10T06:00:00Z must be before measured_to 2023-03-10T06:00:00Z"),
        (LIQ + SPAN.replace("T18:00", "T05:00"), "liq.measured_from", "measured_from .* must be before"),
        (LIQ + SPAN.replace("2023-03-10T18", "2023-03-12T01"), "liq.measured_from",
         r"interval .* lies outside the replayed range \[2023-02-08T00:00:00Z, 2023-03-12T00:00:00Z\]"),
        (LIQ + SPAN.replace("2023-03-10T06", "2023-02-01T00"), "liq.measured_from",
         "interval .* outside the replayed"),
        # one without the other
        (LIQ + SPAN.replace("measured_to = 2023-03-10T18:00:00Z\n", ""), "liq.measured_from",
         "needs 'measured_to' too"),
        (LIQ + SPAN.replace("measured_from = 2023-03-10T06:00:00Z\n", ""), "liq.measured_to",
         "needs 'measured_from' too"),
        (LIQ + SPAN.replace('measured_why = "UTC 06-18"\n', ""), "liq.measured_why",
         "an interval needs 'measured_why'"),
        (LIQ + 'measured_why = "UTC day"\n', "liq.measured_why", "needs 'measured_from' and 'measured_to'"),
        (OI + "change_bound = -0.5\n", "oi.change_bound", "needs 'change_bound_sense'"),
        (OI + 'change_bound_sense = "at_most"\n', "oi.change_bound_sense", "needs 'change_bound'"),
        # sense values; a bound where calibrate cannot use one; a bound on an unscored figure
        (OI + BOUND.replace("at_most", "below"), "oi.change_bound_sense",
         "sense 'below' is not one of at_most, at_least"),
        (OI + BOUND.replace('"at_most"', "true"), "oi.change_bound_sense", "sense True is not one of"),
        (LIQ + BOUND, "liq.change_bound", "only oi_change figures take a change bound, not 'liquidations'"),
        (OI + BOUND + 'outside_window = "next year"\n', "oi.outside_window",
         "a figure outside .* no 'change_bound'"),
        # a misspelt new key is still an unknown key
        (LIQ + SPAN.replace("measured_to", "measured_until"), "liq.measured_until", "unknown key"),
    ],
)
def test_measurement_keys_validation(tmp_path: Path, figure: str, key: str, pattern: str) -> None:
    assert_figure_error(tmp_path, figure, key, pattern)


def test_measurement_keys_are_read_and_listed(tmp_path: Path) -> None:
    liq_text = REPORTED + SPAN.replace("06:00:00Z", "08:00:00+02:00") + 'outside_window = "next year"\n'
    [e] = parse_file(write(tmp_path, MINIMAL + liq_text + OI + BOUND.replace("at_most", "at_least")))
    liq, oi = e.reported["liq"], e.reported["oi"]
    assert liq.measured == (datetime(2023, 3, 10, 6), datetime(2023, 3, 10, 18), "UTC 06-18")
    assert (liq.change_bound, liq.outside_window) == (None, "next year")
    assert oi.measured is None and (oi.change_bound, oi.change_bound_sense) == (-0.5, "at_least")
    assert oi.outside_window == ""
    d = e.to_dict()["reported"]
    assert (d["liq"]["measured_from"], d["liq"]["measured_why"]) == ("2023-03-10T06:00:00Z", "UTC 06-18")
    assert d["liq"]["outside_window"] == "next year" and "change_bound" not in d["liq"]
    assert d["oi"]["change_bound_sense"] == "at_least" and "measured_from" not in d["oi"]


def test_builtin_catalog_states_the_calibration_intervals() -> None:
    """The facts that used to live in calibrate.py (INTERVALS, CHANGE_BOUNDS, OUTSIDE_WINDOW)."""
    cat = load_catalog()
    stated = {(e.id, r.name) for e in cat for r in e.reported.values() if r.measured}
    assert stated == {
        ("mar2020", "liquidations_bitmex_first_leg"), ("mar2020", "long_share"),
        ("mar2020", "liquidations_bitmex_12mar"), ("mar2020", "liquidations_bitmex_13mar"),
        ("may2021", "liquidations_23may"), ("may2021", "oi_change"),
        ("ftx2022", "liquidations_total"), ("ftx2022", "long_share"),
        ("oct2025", "liquidations_2050_0300"), ("oct2025", "long_share_2050_0300"),
        # figures added later (EVENTS.md "Per-venue figures found later") and the fund outcomes
        ("may2020", "fund_change"), ("may2021", "fund_change"),
        ("may2021", "liquidations_binance_long_19may"),
        ("ftx2022", "oi_change_perp_all_venues"), ("aug2024", "liquidations_binance"),
        ("aug2024", "long_share_binance"), ("aug2024", "oi_change_btc"), ("oct2025", "oi_change_btc_weekend"),
        ("oct2025", "liquidations_hyperliquid"),  # 21:15-21:27, was measured over the 24 h ending 21:27
    }
    oct_ = cat.get("oct2025").reported["liquidations_2050_0300"]
    assert oct_.measured == (datetime(2025, 10, 10, 20, 50), datetime(2025, 10, 11, 3), "20:50 -> 03:00")
    may = cat.get("may2021").reported["oi_change"]
    assert (may.change_bound, may.change_bound_sense) == (-0.5, "at_most")
    assert may.measured[:2] == (datetime(2021, 5, 10), datetime(2021, 5, 20, 13, 10))
    bounds = {(e.id, r.name) for e in cat for r in e.reported.values() if r.change_bound is not None}
    outside = {(e.id, r.name): r.outside_window for e in cat for r in e.reported.values() if r.outside_window}
    assert bounds == {("may2021", "oi_change")}
    assert outside == {("ftx2022", "oi_change"): "three months after FTX; not a within-window figure"}


# -- insurance-fund outcomes (kind = "fund_change") and the may2020 window -------------------------

FUND = """
[mywin.reported.fund]
kind = "fund_change"
venue = "binanceusdm"
fund = "BTC fund"
fund_symbols = ["BTCUSDT"]
before = 20e6
after = 8e6
unit = "USDT"
scope = "Binance BTCUSDT insurance fund"
source = "https://example.org/fund"
confidence = "M"
measured_from = 2023-03-10T00:00:00Z
measured_to = 2023-03-11T00:00:00Z
measured_why = "UTC day 10 Mar"
"""


def _drop(key: str):
    return lambda t: "\n".join(ln for ln in t.splitlines() if not ln.startswith(f"{key} =")) + "\n"


@pytest.mark.parametrize(
    ("figure", "key", "pattern"),
    [
        # only fund_change takes venue / fund / fund_symbols
        (LIQ + 'venue = "binanceusdm"\n', "liq.venue",
         "only fund_change figures take 'venue', not 'liquidations'"),
        (LIQ + 'fund = "f"\n', "liq.fund", "only fund_change figures take 'fund', not 'liquidations'"),
        (OI + 'fund_symbols = ["BTCUSDT"]\n', "oi.fund_symbols",
         "only fund_change figures take 'fund_symbols', not 'oi_change'"),
        # fund_change needs all of them, both balances and the interval
        *[(_drop(k)(FUND), f"fund.{k}", f"a fund_change figure needs '{k}' \\(venue, fund, fund_symbols")
          for k in ("venue", "fund", "fund_symbols", "before", "after", "measured_from", "measured_to")],
        # ... and takes no value, lower bound or change bound
        (FUND + "value = -12e6\n", "fund.value", "a fund_change figure takes no 'value'"),
        (FUND + "lower_bound = false\n", "fund.lower_bound", "a fund_change figure takes no 'lower_bound'"),
        (FUND + BOUND, "fund.change_bound", "only oi_change figures take a change bound, not 'fund_change'"),
        # balances, currency
        (FUND.replace("= 20e6", "= 0"), "fund.before", "a fund.s balance before must be a positive number"),
        (FUND.replace("= 20e6", "= inf"), "fund.before", "must be a number, not inf"),
        (FUND.replace("= 8e6", "= -1.0"), "fund.after", "a fund.s balance after must be a non-negative"),
        (FUND.replace("= 8e6", "= inf"), "fund.after", "must be a number, not inf"),
        (FUND.replace('unit = "USDT"', 'unit = "BTC"'), "fund.unit",
         r"unit 'BTC' is not one of USD, USDT, USDC \(calibrate replays a USD fund\)"),
        # the fund's symbols: a non-empty list of distinct names the window replays
        (FUND.replace('["BTCUSDT"]', '"BTCUSDT"'), "fund.fund_symbols", "must be a list"),
        (FUND.replace('["BTCUSDT"]', "[]"), "fund.fund_symbols", "must list at least one name"),
        (FUND.replace('["BTCUSDT"]', '["BTCUSDT", "BTCUSDT"]'), "fund.fund_symbols", "a symbol is repeated"),
        (FUND.replace('["BTCUSDT"]', '["BTCUSDT", "ETHUSDT"]'), "fund.fund_symbols",
         r"ETHUSDT not among the event's symbols \(BTCUSDT\)"),
        (FUND.replace('venue = "binanceusdm"', "venue = 3"), "fund.venue", "must be a non-empty string"),
        (FUND.replace('fund = "BTC fund"', 'fund = ""'), "fund.fund", "must be a non-empty string"),
    ],
)
def test_fund_change_validation(tmp_path: Path, figure: str, key: str, pattern: str) -> None:
    assert_figure_error(tmp_path, figure, key, pattern)


def test_fund_change_is_read_and_listed(tmp_path: Path) -> None:
    text = MINIMAL.replace('["BTCUSDT"]', '["BTCUSDT", "ETHUSDT"]') + FUND.replace(
        '["BTCUSDT"]', '["ETHUSDT", "BTCUSDT"]') + 'outside_window = "a later fund"\n'
    [e] = parse_file(write(tmp_path, text))
    f = e.reported["fund"]
    assert (f.venue, f.fund, f.fund_symbols) == ("binanceusdm", "BTC fund", ("ETHUSDT", "BTCUSDT"))
    assert (f.before, f.after, f.delta, f.unit) == (20e6, 8e6, -12e6, "USDT")
    assert f.measured == (datetime(2023, 3, 10), datetime(2023, 3, 11), "UTC day 10 Mar")
    assert not f.lower_bound and f.outside_window == "a later fund"
    d = e.to_dict()["reported"]["fund"]
    assert (d["venue"], d["fund"], d["fund_symbols"]) == ("binanceusdm", "BTC fund", ["ETHUSDT", "BTCUSDT"])
    assert d["measured_from"] == "2023-03-10T00:00:00Z" and d["before"] == 20e6 and d["after"] == 8e6
    [e2] = parse_file(write(tmp_path, MINIMAL + LIQ, "liq.toml"))
    assert "venue" not in e2.to_dict()["reported"]["liq"] and e2.reported["liq"].fund_symbols == ()


def test_fund_outcomes_in_the_builtin_catalog() -> None:
    """EVENTS.md 'Insurance-fund outcomes (calibration targets)': the two episodes, as stated there."""
    cat = load_catalog()
    funds = {(e.id, r.name): r for e in cat for r in e.reported.values() if r.kind == "fund_change"}
    assert set(funds) == {("may2020", "fund_change"), ("may2021", "fund_change")}
    may21 = funds[("may2021", "fund_change")]
    assert (may21.before, may21.after, may21.unit) == (291_853_183.0, 288_718_799.0, "USDT")
    assert may21.fund_symbols == ("BTCUSDT", "ETHUSDT") and may21.venue == "binanceusdm"
    assert may21.measured[:2] == (datetime(2021, 5, 19), datetime(2021, 5, 20)) and may21.confidence == "M"
    assert "00:00 UTC" in may21.measured_why and "end-of-day" in may21.note
    may20 = funds[("may2020", "fund_change")]
    assert (may20.before, may20.after, may20.fund_symbols) == (21e6, 7.7e6, ("BTCUSDT",))
    assert may20.measured[:2] == (datetime(2020, 5, 10), datetime(2020, 5, 11)) and may20.confidence == "M"
    assert "lower bound in magnitude" in may20.note


def test_may2020_window_from_the_archive() -> None:
    e = load_catalog().get("may2020")
    assert e.title == "May 2020 flash crash (10 May)"
    assert (e.start, e.end, e.warmup) == (datetime(2020, 5, 9), datetime(2020, 5, 13), timedelta(days=30))
    assert e.peak == datetime(2020, 5, 10) and "1h" in e.peak_note
    btc = e.reported["price_move"]
    assert (btc.before, btc.after, btc.confidence) == (9550.25, 7940.0, "H")
    assert btc.source == "shared/data/binance-um/klines-1h/BTCUSDT-1h-perp.csv.gz"
    assert e.reported["price_move_mark"].after == pytest.approx(8149.97, abs=0.01)
    assert (e.reported["price_move_eth"].before, e.reported["price_move_eth"].after) == (210.32, 177.89)
    fx = e.first("funding_extreme")
    assert fx.value == pytest.approx(0.00075816) and fx.at == datetime(2020, 5, 9, 8)
    [fund] = e.fund_before
    assert (fund.venue, fund.balance, fund.currency) == ("binanceusdm", 21e6, "USDT")
    assert "thecryptoassociate.com" in fund.source and "bravenewcoin.com" in fund.source
    gaps = " ".join(e.gaps).lower()
    assert "1m" in gaps and "open-interest" in gaps and "liquidation" in gaps
