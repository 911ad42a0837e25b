"""Time the fast engine against the slow reference engine on the same recorded inputs (not a test).

    python scripts/bench_compare.py [--event may2021] [--warm-bars 48] [--window-bars 240] [--repeat 1]

The reference (tests/reference_engine.py) is plain Python per cohort, far too slow for a whole
window, so both engines run on the same slice of the event's inputs: ``--warm-bars`` clock ticks
before the window start and ``--window-bars`` ticks after it (the pinned warm-up target opens the
book at the slice's first bar). Prints both engines' times, the ratio, cohorts x bars per CPU
second and peak traced memory, checks that the two results agree (1e-9 relative), and times the
fast engine on the whole window for scale. Uses ``bench`` from scripts/bench_engine.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))


def slice_inputs(inputs: list, warm_bars: int, window_bars: int) -> list:
    """Each symbol's bars opening in [clock[k0 - warm], clock[k0 + window]), k0 = the window start."""
    import numpy as np

    clock = np.unique(np.concatenate([i.ts for i in inputs]))
    win = np.unique(np.concatenate([i.ts[i.in_window] for i in inputs]))
    k0 = int(np.searchsorted(clock, win[0])) if win.size else 0
    lo = clock[max(0, k0 - warm_bars)]
    hi = clock[min(len(clock) - 1, k0 + window_bars)]
    out = []
    for inp in inputs:
        keep = (inp.ts >= lo) & (inp.ts < hi)
        arrays = {f.name: getattr(inp, f.name)[keep] for f in dataclasses.fields(inp)
                  if isinstance(getattr(inp, f.name), np.ndarray) and f.name != "brackets"}
        if keep.any():
            out.append(dataclasses.replace(inp, **arrays))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--event", default="may2021")
    ap.add_argument("--warm-bars", type=int, default=48)
    ap.add_argument("--window-bars", type=int, default=240)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--db", default=None)
    ap.add_argument("--archive", default=None)
    args = ap.parse_args()

    from bench_engine import bench

    from backtest.engine.api import load_inputs
    from backtest.engine.params import Params
    from backtest.engine.replay import replay
    from backtest.engine.results import summarize
    from backtest.events import load_catalog
    from strategies.base import NoFund
    from tests.reference_engine import compare_results, replay_reference, summarize_reference

    event = load_catalog().get(args.event)
    params = Params()
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or str(Path(tmp) / "bench.duckdb")
        inputs = load_inputs(event, "binanceusdm", list(event.symbols), params, db=db, archive=args.archive)
    part = slice_inputs(inputs, args.warm_bars, args.window_bars)
    bars = sum(i.n for i in part)
    in_window = int(sum(i.in_window.sum() for i in part))
    print(f"event {args.event}: slice of {len(part)} symbols, {bars:,} bars "
          f"({', '.join(f'{i.symbol} {i.n}' for i in part)}), {in_window:,} in window")

    fast = bench(replay, part, NoFund, params, args.repeat)
    t0 = time.perf_counter()
    ref = bench(replay_reference, part, NoFund, params, args.repeat)
    ref_total = time.perf_counter() - t0
    n_fast = sum(int(st.cnt[1]) for st in fast["result"].symbols.values())
    n_ref = sum(len(b.cohorts) for b in ref["result"].books.values())
    mismatches = compare_results(summarize(fast["result"]), summarize_reference(ref["result"]))
    for name, r, cohorts in (("fast", fast, n_fast), ("reference", ref, n_ref)):
        print(f"{name:>9}: wall {r['wall_s']:.4f} s, CPU {r['cpu_s']:.4f} s, {cohorts:,} cohorts, "
              f"{cohorts * bars / max(r['cpu_s'], 1e-9):,.0f} cohorts x bars per CPU s, "
              f"peak traced memory {r['peak_traced_mb']:.1f} MB")
    print(f"ratio reference / fast (CPU): {ref['cpu_s'] / max(fast['cpu_s'], 1e-9):,.0f}x "
          f"(reference benchmark took {ref_total:.1f} s in all)")
    print("results agree to 1e-9 relative" if not mismatches else
          f"RESULTS DIFFER ({len(mismatches)}): " + "; ".join(mismatches[:5]))
    whole = bench(replay, inputs, NoFund, params, args.repeat)
    print(f"fast engine, whole window ({sum(i.n for i in inputs):,} bars): wall {whole['wall_s']:.3f} s, "
          f"CPU {whole['cpu_s']:.3f} s, peak traced memory {whole['peak_traced_mb']:.1f} MB")


if __name__ == "__main__":
    main()
