"""Benchmark sweeps on one recorded window (not a test; prints one table).

    python scripts/bench_sweep.py [--event may2021] [--fast-points 200] [--mixed-points 40] [--no-ray]
                                  [--db PATH] [--archive DIR]

Rows: one engine replay (the full window from the shared warm-up) on one core; the design-independent
plan (warm-up + one pay-all replay) built once per worker; one design evaluated on the fast path; then
whole sweeps (rows stored in a temporary DuckDB table, plans built inside the timed run) on the
in-process executor, a process pool of 1 and 2 workers, and Ray with 2 CPUs:

- "fast" sweep: static capital from 5e8 to 1e10 and dynamic k from 3 to 50 (every point pays in full
  in may2021: evaluations never run the engine);
- "mixed" sweep: static capital from 1e6 to 1e10 (most points fail: the engine resumes at the first
  shortfall and runs to the window's end, ~1 replay each).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def sweep_once(
    kind: str, workers: int, plan: Any, payloads: dict, tmp: Path, tag: str
) -> tuple[float, int, dict]:
    from backtest.sweep.executors import make_executor
    from backtest.sweep.runner import execute, make_tasks
    from backtest.sweep.store import SweepStore
    from backtest.sweep.tasks import clear_cache

    clear_cache()  # the in-process executor must build its plan inside the timed run like the others
    t_start = time.perf_counter()
    ex = make_executor(kind, workers)
    try:
        with SweepStore(tmp / f"{tag}-{kind}-{workers}.duckdb") as st:
            tasks = make_tasks(plan, payloads, set(), batch=4)
            stats = execute(st, "bench", tasks, payloads, ex)
            frame = st.frame("bench")
    finally:
        ex.close()
    wall = time.perf_counter() - t_start
    return wall, stats.evaluations, {"methods": stats.methods, "frame": frame}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--event", default="may2021")
    ap.add_argument("--fast-points", type=int, default=200)
    ap.add_argument("--mixed-points", type=int, default=40)
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--db", default=None)
    ap.add_argument("--archive", default=None)
    args = ap.parse_args()

    from backtest.engine.api import run_design
    from backtest.events import load_catalog
    from backtest.sweep.grid import parse_axis
    from backtest.sweep.runner import SweepSpec, load_payloads, payload_bytes, plan_points
    from backtest.sweep.tasks import build_plan
    from strategies.config import DesignConfig

    ev = load_catalog().get(args.event)
    half = max(args.fast_points // 2, 2)
    fast_spec = SweepSpec(
        ["static", "dynamic"],
        [
            parse_axis(f"static.capital_usd=5e8:1e10:log{half}", ["static", "dynamic"]),
            parse_axis(f"dynamic.k=3:50:log{args.fast_points - half}", ["static", "dynamic"]),
        ],
        [ev.id],
    )
    mixed_spec = SweepSpec(
        ["static"], [parse_axis(f"static.capital_usd=1e6:1e10:log{args.mixed_points}", ["static"])], [ev.id]
    )
    fast_plan, mixed_plan = plan_points(fast_spec), plan_points(mixed_spec)
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmpd:
        tmp = Path(tmpd)
        db = args.db or str(tmp / "market.duckdb")
        t0 = time.perf_counter()
        payloads = load_payloads([ev], fast_plan, db=db, archive=args.archive, progress=False)
        rows.append(
            (
                "load window (store from archive)",
                f"{time.perf_counter() - t0:.1f} s",
                f"payload shipped per worker: {payload_bytes(payloads) / 1e6:.2f} MB",
            )
        )
        (payload,) = payloads.values()
        t0 = time.perf_counter()
        plan = build_plan(payload)
        t_plan = time.perf_counter() - t0
        spec = DesignConfig(raw={"static": {"capital_usd": 1e6}}).get("static")
        inputs = list(payload.inputs)
        run_design(ev.id, spec, inputs, payload.params, plan.context, snapshot=plan.snapshot)  # warm numba
        n_rep = 3
        t0 = time.perf_counter()
        for _ in range(n_rep):
            run_design(ev.id, spec, inputs, payload.params, plan.context, snapshot=plan.snapshot)
        t_rep = (time.perf_counter() - t0) / n_rep
        rows.append(
            (
                "engine replay, full window, 1 core",
                f"{1 / t_rep:.2f} replays/s",
                f"{t_rep:.2f} s each, {plan.n - plan.k0} window ticks, {sum(i.n for i in inputs)} bars",
            )
        )
        rows.append(
            ("plan: warm-up + pay-all replay, 1 core", f"{t_plan:.2f} s", "once per worker and group")
        )
        for design, values in (("static", {"capital_usd": 1e9}), ("dynamic", {})):
            s = DesignConfig(raw={design: values}).get(design)
            n = 20
            t0 = time.perf_counter()
            for _ in range(n):
                e = plan.evaluate(s)
            dt = (time.perf_counter() - t0) / n
            rows.append(
                (
                    f"fast-path evaluation ({design}), 1 core",
                    f"{60 / dt:,.0f} evals/min",
                    f"{dt * 1e3:.0f} ms each ({e.method}); {t_rep / dt:.0f}x a replay",
                )
            )
        mixed_payloads = {k: v for k, v in payloads.items()}
        kinds = [("inprocess", 1), ("process", 1), ("process", 2)] + ([] if args.no_ray else [("ray", 2)])
        for tag, sp, pl in (("fast", fast_plan, payloads), ("mixed", mixed_plan, mixed_payloads)):
            walls: dict[tuple[str, int], float] = {}
            ref = None
            for kind, w in kinds:
                wall, n, info = sweep_once(kind, w, sp, pl, tmp, tag)
                walls[(kind, w)] = wall
                same = ""
                if ref is None:
                    ref = info["frame"]
                else:
                    same = "rows identical" if info["frame"].equals(ref) else "ROWS DIFFER"
                methods = ", ".join(f"{v} {k}" for k, v in sorted(info["methods"].items()))
                extra = ""
                if (kind, w) == ("process", 2):
                    extra = f"; speed-up vs 1 worker {walls[('process', 1)] / wall:.2f}x"
                if kind == "ray":
                    extra = f"; Ray overhead vs pool {wall - walls[('process', 2)]:+.1f} s"
                rows.append(
                    (
                        f"{tag} sweep, {kind} x{w}",
                        f"{n / wall * 60:,.0f} evals/min",
                        f"{n} evals ({methods}) in {wall:.1f} s{extra}; {same}".rstrip("; "),
                    )
                )
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"Sweep benchmark, {ev.id} ({args.event} window, plans built inside each timed sweep)")
    for c in ("what", "rate", "detail"):
        t.add_column(c)
    for r in rows:
        t.add_row(*r)
    Console(width=200).print(t)


if __name__ == "__main__":
    main()
