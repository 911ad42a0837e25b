"""No NaN or infinity reaches a printed result; JSON output is strict (issue 14)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from backtest.engine.results import Result
from backtest.finite import NonFiniteResultError, check_results, dumps, first_nonfinite


def _strict_loads(text: str):
    def refuse(token: str):
        raise AssertionError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def test_first_nonfinite_walks_nested_values():
    where, value = first_nonfinite({"a": 1.0, "b": [2.0, {"c": np.float64("nan")}]})
    assert where == "b[1].c" and math.isnan(value)
    assert first_nonfinite({"a": 1, "b": None, "c": "nan", "d": True}) is None
    assert first_nonfinite([float("-inf")]) == ("[0]", -math.inf)


def test_a_nan_figure_stops_the_run_naming_design_and_figure():
    good = Result(record={"event": "may2021", "design": "static", "bad_debt_usd": 1.0}, per_symbol={})
    check_results([good])
    bad = Result(record={"event": "may2021", "design": "static", "bad_debt_usd": 1.0},
                 per_symbol={"BTCUSDT": {"adl_notional_usd": float("nan")}})
    needle = r"may2021 static: result per_symbol.BTCUSDT.adl_notional_usd = nan is not finite"
    with pytest.raises(NonFiniteResultError, match=needle):
        check_results([good, bad])
    with pytest.raises(NonFiniteResultError, match=r"\(point x\): result fund_end_usd = inf"):
        check_results([{"event": "e", "design": "d", "fund_end_usd": math.inf}], context="point x")


def test_json_output_is_strict():
    doc = {"a": float("nan"), "b": [float("inf"), np.float64(2.5), np.int64(3)], "c": {"d": -math.inf}}
    text = dumps(doc)
    assert "NaN" not in text and "Infinity" not in text
    assert _strict_loads(text) == {"a": None, "b": [None, 2.5, 3], "c": {"d": None}}
