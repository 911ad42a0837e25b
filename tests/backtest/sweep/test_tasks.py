"""The fast path is exact: a design fed the pay-all replay's claims gives the engine's result, bit for bit.

Also the fact it rests on: every design that pays every claim in full leaves the same book behind, and
a design that pays short at tick k is resumed at k to the same result as a full replay.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from backtest.engine.api import run_design
from backtest.sweep.tasks import Point, Task, row_of, run_task
from strategies.config import DesignConfig
from tests.backtest.sweep.conftest import static_threshold


def spec(design: str, **values):
    return DesignConfig(raw={design: values} if values else {}).get(design)


def assert_same(a, b):
    ra = {k: v for k, v in a.record.items() if k != "assumptions"}
    rb = {k: v for k, v in b.record.items() if k != "assumptions"}
    assert ra.keys() == rb.keys()
    for k in ra:
        assert ra[k] == rb[k] or (ra[k] != ra[k] and rb[k] != rb[k]), k
    assert a.per_symbol == b.per_symbol
    assert a.series.keys() == b.series.keys()
    for k in a.series:
        np.testing.assert_array_equal(np.asarray(a.series[k]), np.asarray(b.series[k]), err_msg=k)


CASES = [
    ("static", {"capital_usd": 1e9}, "fast"),
    ("static", {"capital_usd": 1e3}, "resumed"),
    ("static", {"capital_usd": 0.0}, "resumed"),
    ("dynamic", {}, "fast"),
    ("dynamic", {"capital_usd": 100.0, "fee_rate": 0.0}, "resumed"),
    ("hedged", {"capital_usd": 1e9}, "fast"),
    ("hedged", {"capital_usd": 2e3}, "resumed"),
    ("tranched", {"capital_usd": 5e3}, "resumed"),
    ("reinsured", {"capital_usd": 1e4}, None),
    ("static-coin", {"capital_usd": 1e8}, "fast"),
    ("static", {"capital_usd": 1e5, "adl_drawdown": 0.05}, None),
    ("none", {}, "resumed"),
]


@pytest.mark.parametrize(("design", "values", "method"), CASES)
def test_fast_and_resumed_paths_equal_the_full_replay(syn_plan, design, values, method):
    s = spec(design, **values)
    ev = syn_plan.evaluate(s)
    if method is not None:
        assert ev.method == method
    ref = run_design("syn", s, list(syn_plan.inputs), syn_plan.params, syn_plan.context,
                     snapshot=syn_plan.snapshot)
    assert_same(ev.result, ref)
    assert (ev.fail_tick is None) == (float(np.sum(ev.result.series["fund_shortfall"])) == 0.0)


def test_reference_path_without_resume_is_the_same(syn_plan):
    s = spec("static", capital_usd=2e3)
    plan = dataclasses.replace(syn_plan, resume=False, _ckpt=type(syn_plan._ckpt)())
    ref = plan.evaluate(s)
    fast = syn_plan.evaluate(s)
    assert (ref.method, fast.method) == ("replay", "resumed")
    assert ref.fail_tick == fast.fail_tick
    assert_same(ref.result, fast.result)


def test_fully_paying_designs_leave_the_same_book(syn_plan):
    """Different designs, all paying in full: identical liquidations, ADL (none), OI and flows."""
    ctx, inputs, p = syn_plan.context, list(syn_plan.inputs), syn_plan.params
    a = run_design("syn", spec("static", capital_usd=1e9), inputs, p, ctx)
    b = run_design("syn", spec("hedged", capital_usd=5e8, hedge_leverage=3.0), inputs, p, ctx)
    assert a.record["fund_end_usd"] != b.record["fund_end_usd"]  # the funds differ ...
    assert a.per_symbol == b.per_symbol  # ... the book does not
    for k in a.series:
        if "." in k and not k.startswith("design."):
            np.testing.assert_array_equal(a.series[k], b.series[k], err_msg=k)


def test_static_frontier_is_exact_from_one_replay(syn_plan):
    c = static_threshold(syn_plan)
    assert c > 0
    assert syn_plan.first_shortfall(spec("static", capital_usd=c * (1 + 1e-9))) is None
    assert syn_plan.first_shortfall(spec("static", capital_usd=c * (1 - 1e-9))) is not None
    below = syn_plan.evaluate(spec("static", capital_usd=c * 0.5))
    assert below.result.record["adl_notional_usd"] > 0


def test_checkpoints_are_reused_and_bounded(syn_plan):
    for cap in (10.0, 1e3, 5e3, 2e4, 3e4):
        syn_plan.evaluate(spec("static", capital_usd=cap))
    from backtest.sweep.tasks import MAX_CHECKPOINTS

    assert 1 <= len(syn_plan._ckpt) <= MAX_CHECKPOINTS


def test_task_rows_carry_keys_and_metrics(syn_plan, syn_payload):
    from backtest.sweep.tasks import _PLANS, params_hash

    pts = []
    for cap in (1e3, 1e9):
        s = spec("static", capital_usd=cap)
        pts.append(Point(params_hash(s, syn_plan.params), s, "{}", "{}"))
    _PLANS[syn_payload.key] = syn_plan
    rows = run_task(Task(syn_payload.key, "syn", "static", tuple(pts), 0, 0.04))
    assert [r["adl_free"] for r in rows] == [False, True]
    assert rows[0]["adl_notional_usd"] > 0 and rows[1]["adl_notional_usd"] == 0
    assert rows[1]["shortfall_usd"] == 0 and rows[0]["shortfall_usd"] > 0
    assert rows[0]["fail_ts"] is not None and rows[0]["depleted"]
    assert rows[1]["capital_cost_usd"] == pytest.approx(1e9 * 0.04 * syn_plan.window_s / (365 * 86400))
    ev = syn_plan.evaluate(pts[0].spec)
    assert row_of(ev, syn_plan.window_s, 0.04) == {k: v for k, v in rows[0].items()
                                                    if k not in ("event", "design", "params_hash", "seed",
                                                                 "params", "model")}
