"""Shared fixtures of the sweep tests: a synthetic two-symbol crash and its plan (built once)."""

from __future__ import annotations

import pytest

from backtest.engine.params import Params
from backtest.sweep.runner import make_payload
from backtest.sweep.tasks import EventPayload, Plan, build_plan
from tests.backtest.test_run_designs import FakeEvent, synthetic_inputs
from tests.support.model import LEGACY_LAW

# The pre-calibration book (explicit leverage mixes, 25 % volume shares): the synthetic crash then
# produces bad debt beyond its surplus, so designs both pass and fail on it.
BOOK = {
    **{k: str(v) for k, v in LEGACY_LAW.items()},  # and the execution law of that time
    "open_volume_share": "0.25",
    "close_volume_share": "0.25",
    "lev_neutral": ".10 .10 .15 .20 .20 .10 .08 .04 .02 .01",
    "lev_crowded": ".04 .05 .08 .15 .20 .15 .15 .08 .06 .04",
    "lev_hedger": ".35 .20 .20 .15 .05 .03 .02 0 0 0",
}
BOOK_SETS = tuple(f"{k}={v}" for k, v in BOOK.items())


@pytest.fixture(scope="session")
def syn_event() -> FakeEvent:
    return FakeEvent()


@pytest.fixture(scope="session")
def syn_payload(syn_event: FakeEvent) -> EventPayload:
    return make_payload(syn_event, synthetic_inputs(), Params.from_overrides(BOOK), "binanceusdm")


@pytest.fixture(scope="session")
def syn_plan(syn_payload: EventPayload) -> Plan:
    return build_plan(syn_payload)


def static_threshold(plan: Plan) -> float:
    """Least static capital that pays every recorded claim: max over claims of (paid so far - received)."""
    paid = received = need = 0.0
    for k in range(plan.n):
        received += plan.recv[k]
        for x in plan.pays[k]:
            paid += x
            need = max(need, paid - received)
    return need
