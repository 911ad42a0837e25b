"""Benchmark the fast replay engine on a recorded window (not a test; prints figures).

    python scripts/bench_engine.py [--event may2021] [--repeat 3] [--db PATH] [--archive DIR]

Fills a temporary store from the recorded archive (or uses --db), loads the window once, then times
the engine alone: wall and CPU seconds per run, cohorts x bars per second, peak memory. Numba
compilation is cached on disk; the first (warm-up) run is reported separately.

``bench(engine, inputs, ...)`` runs any engine callable with the signature of
``backtest.engine.replay.replay`` on the same inputs, so the reference engine can be timed and
compared in the same run.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def bench(
    engine: Callable[..., Any], inputs: list, fund_factory: Callable[[], Any], params: Any, repeat: int = 3
) -> dict[str, Any]:
    """Time ``engine(inputs, fund, params)`` ``repeat`` times after one warm-up run."""
    t0 = time.perf_counter()
    result = engine(inputs, fund_factory(), params)
    first = time.perf_counter() - t0
    walls, cpus = [], []
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        result = engine(inputs, fund_factory(), params)
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    tracemalloc.start()
    engine(inputs, fund_factory(), params)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "first_s": first,
        "wall_s": min(walls),
        "cpu_s": min(cpus),
        "peak_traced_mb": peak / 1e6,
        "result": result,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--event", default="may2021")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--db", default=None)
    ap.add_argument("--archive", default=None)
    args = ap.parse_args()

    from backtest.engine.api import load_inputs
    from backtest.engine.params import Params
    from backtest.engine.replay import replay
    from backtest.engine.results import conservation
    from backtest.events import load_catalog
    from strategies.base import NoFund

    event = load_catalog().get(args.event)
    params = Params()
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or str(Path(tmp) / "bench.duckdb")
        t0 = time.perf_counter()
        inputs = load_inputs(event, "binanceusdm", list(event.symbols), params, db=db, archive=args.archive)
        load_s = time.perf_counter() - t0
    r = bench(replay, inputs, NoFund, params, args.repeat)
    run = r["result"]
    cohorts = sum(int(st.cnt[1]) for st in run.symbols.values())
    bars = sum(i.n for i in inputs)
    cons = conservation(run)
    print(
        f"event {args.event}: {len(inputs)} symbols, {bars:,} bars, {run.clock.shape[0]:,} clock ticks, "
        f"{cohorts:,} cohorts"
    )
    print(f"store fill + window load: {load_s:.2f} s (not engine time)")
    print(f"first run (numba cache load/compile): {r['first_s']:.3f} s")
    print(f"engine: best of {args.repeat}: wall {r['wall_s']:.3f} s, CPU {r['cpu_s']:.3f} s")
    print(f"throughput: {cohorts * bars / r['cpu_s']:,.0f} cohorts x bars per CPU second")
    print(
        f"peak traced memory (engine run): {r['peak_traced_mb']:.1f} MB; "
        f"process max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )
    print(f"conservation residual {cons['residual']:.3g} USD on {cons['traded']:.3g} USD traded")


if __name__ == "__main__":
    main()
