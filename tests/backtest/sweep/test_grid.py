"""``--grid`` parsing: ranges, lists, model parameters, samples; a malformed axis is one clear error."""

from __future__ import annotations

import pytest

from backtest.sweep.grid import parse_axis, points
from loaders.errors import UserError


def test_log_and_lin_ranges_include_both_ends():
    a = parse_axis("static.capital_usd=10e6:1e9:log3", ["static"])
    assert a.values == (10e6, pytest.approx(1e8), 1e9) and a.values[0] == 10e6 and a.values[-1] == 1e9
    b = parse_axis("impact_y=0.5:1.5:lin3", ["static"])
    assert (b.design, b.key, b.values) == (None, "impact_y", (0.5, 1.0, 1.5))


def test_lists_and_words():
    a = parse_axis("static.capital_usd=1e6, 2e6,event", ["static"])
    assert a.values == (1e6, 2e6, "event")
    m = parse_axis("surplus_mode=margin,fee", ["static"])
    assert m.values == ("margin", "fee")


def test_grid_is_a_product_per_design_with_model_axes_shared():
    axes = [parse_axis("static.capital_usd=1,2", ["static", "hedged"]),
            parse_axis("hedged.hedge_leverage=1,2,3", ["static", "hedged"]),
            parse_axis("impact_y=0.5,1", ["static", "hedged"])]
    pts = points(["static", "hedged"], axes)
    assert len(pts) == 2 * 2 + 3 * 2
    assert pts[0].design == "static" and pts[0].design_values == (("capital_usd", 1),)
    assert pts[0].model_values == (("impact_y", 0.5),)


def test_random_sample_is_seeded_and_in_range():
    axes = [parse_axis("static.capital_usd=1e6:1e9:log", ["static"], sample=True)]
    a = points(["static"], axes, sample=20, seed=3)
    b = points(["static"], axes, sample=20, seed=3)
    c = points(["static"], axes, sample=20, seed=4)
    assert a == b and a != c and len(a) == 20
    assert all(1e6 <= p.design_values[0][1] <= 1e9 for p in a)


@pytest.mark.parametrize(
    ("text", "msg"),
    [
        ("static.capital_usd", "expected NAME=start:stop"),
        ("static.capital_usd=1:2:lin", "needs a point count"),
        ("static.capital_usd=1:2", "malformed range"),
        ("static.capital_usd=1:x:lin3", "'x' is not a number"),
        ("static.capital_usd=0:10:log5", "log range needs start and stop > 0"),
        ("static.capital_usd=10:1:lin5", "start 10 is above stop 1"),
        ("static.capital_usd=1:2:lin1", "at least 2 points"),
        ("static.capital_usd=1,,2", "empty item"),
        ("static.capital_usd=1,1", "repeated"),
        ("static.capital_usd=-5,1", "expected a number 0 <= x"),
        ("static.capitol_usd=1,2", "unknown parameter 'capitol_usd' of design 'static'; valid: capital_usd"),
        ("dynamic.k=1,2", "design 'dynamic' is not swept"),
        ("impact=1,2", "unknown parameter 'impact'"),
        ("lev_neutral=1,2", "list parameter"),
        ("price_path=historical,endogenous", "cannot be swept"),
        ("impact_cap=0.5,2", "impact_cap"),
    ],
)
def test_malformed_axes_are_one_line_errors(text, msg):
    with pytest.raises(UserError) as e:
        parse_axis(text, ["static"])
    assert msg in str(e.value) and f"--grid {text}" in str(e.value) and "\n" not in str(e.value)


def test_same_axis_twice_is_an_error():
    axes = [parse_axis("static.capital_usd=1,2", ["static"]), parse_axis("static.capital_usd=3", ["static"])]
    with pytest.raises(UserError, match="given twice"):
        points(["static"], axes)
