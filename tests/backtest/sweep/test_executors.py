"""The same small sweep on every executor gives identical rows; a dead worker is retried, no row lost."""

from __future__ import annotations

import socket

import pytest

from backtest.sweep.executors import InProcess, ProcessPool, check_ray_address, make_executor
from backtest.sweep.grid import parse_axis
from backtest.sweep.runner import SweepSpec, execute, make_payload, make_tasks, plan_points
from backtest.sweep.store import SweepStore
from backtest.sweep.tasks import KILL_ONCE_ENV, clear_cache
from loaders.errors import UserError
from tests.backtest.sweep.conftest import BOOK_SETS
from tests.backtest.test_run_designs import FakeEvent, synthetic_inputs

DESIGNS = ["static", "hedged"]


def small_sweep():
    axes = [parse_axis("static.capital_usd=1e3:1e6:log4", DESIGNS),
            parse_axis("hedged.capital_usd=1e4,1e8", DESIGNS),
            parse_axis("impact_y=0.5,1", DESIGNS)]
    plan = plan_points(SweepSpec(DESIGNS, axes, ["syn"], sets=BOOK_SETS))
    ev, inputs = FakeEvent(), synthetic_inputs()
    payloads = {("syn", mk): make_payload(ev, inputs, p, "binanceusdm") for mk, p in plan.model_sets.items()}
    return plan, payloads


def run_on(executor, tmp_path, name):
    plan, payloads = small_sweep()
    with SweepStore(tmp_path / f"{name}.duckdb") as st:
        tasks = make_tasks(plan, payloads, st.done("sw"), batch=3)
        stats = execute(st, "sw", tasks, payloads, executor)
        frame = st.frame("sw")
    executor.close()
    assert stats.evaluations == stats.stored == frame.height == len(plan.items)
    return frame


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    clear_cache()
    return run_on(InProcess(), tmp_path_factory.mktemp("ref"), "inprocess")


def test_reference_sweep_has_both_paths(reference):
    assert reference.height == 2 * (4 + 2)
    assert set(reference["method"]) == {"fast", "resumed"}
    assert reference.filter(reference["adl_free"])["adl_notional_usd"].max() == 0.0


def test_process_pool_gives_identical_rows(reference, tmp_path):
    assert run_on(ProcessPool(2), tmp_path, "pool").equals(reference)


def test_dead_worker_is_retried_without_lost_or_doubled_rows(reference, tmp_path, monkeypatch):
    marker = tmp_path / "killed"
    monkeypatch.setenv(KILL_ONCE_ENV, str(marker))
    pool = ProcessPool(2)
    frame = run_on(pool, tmp_path, "killed")
    assert (tmp_path / "killed.0").exists() and pool.restarts >= 1
    assert frame.equals(reference)


def test_worker_that_always_dies_is_a_clear_error(tmp_path, monkeypatch):
    plan, payloads = small_sweep()
    monkeypatch.setenv(KILL_ONCE_ENV, f"{tmp_path / 'k'}:1000")
    with SweepStore(tmp_path / "d.duckdb") as st:
        tasks = make_tasks(plan, payloads, set(), batch=100)[:1]
        with pytest.raises(UserError, match="a worker died 2 times running it; results stored so far"):
            execute(st, "sw", tasks, payloads, ProcessPool(1, max_retries=1))
        assert st.frame("sw").height == 0


def test_resume_skips_done_keys(reference, tmp_path):
    plan, payloads = small_sweep()
    with SweepStore(tmp_path / "r.duckdb") as st:
        first = make_tasks(plan, payloads, st.done("sw"), batch=3)
        execute(st, "sw", first[:2], payloads, InProcess())  # "interrupted" after two tasks
        rest = make_tasks(plan, payloads, st.done("sw"), batch=3)
        assert sum(len(t.points) for t in rest) == len(plan.items) - sum(len(t.points) for t in first[:2])
        execute(st, "sw", rest, payloads, InProcess())
        assert make_tasks(plan, payloads, st.done("sw"), batch=3) == []
        assert st.frame("sw").equals(reference)


def test_ray_gives_identical_rows(reference, tmp_path):
    pytest.importorskip("ray")
    from backtest.sweep.executors import Ray

    assert run_on(Ray(2), tmp_path, "ray").equals(reference)


def test_unreachable_ray_address_is_one_line(monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    with pytest.raises(UserError) as e:
        check_ray_address(f"127.0.0.1:{port}", timeout=2.0)
    assert f"--address 127.0.0.1:{port}: Ray cluster not reachable" in str(e.value)
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="expected HOST:PORT"):
        check_ray_address("nohostport")


@pytest.mark.parametrize(
    ("kind", "workers", "address", "msg"),
    [("threads", 2, None, "--executor threads"), ("process", 0, None, "--workers 0"),
     ("process", 2, "127.0.0.1:1", "--address is only used with --executor ray")],
)
def test_executor_options(kind, workers, address, msg):
    with pytest.raises(UserError, match=msg):
        make_executor(kind, workers, address)
