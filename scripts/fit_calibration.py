"""Fit the book-reconstruction defaults to reported crash figures; print the fit and out-of-sample table.

The documented fit of docs/CALIBRATION.md, reproducible from the recorded archive:

    python scripts/fit_calibration.py                       # grid fit on FIT windows, evaluate all six
    python scripts/fit_calibration.py --eval-only           # the table for the current defaults
    python scripts/fit_calibration.py --set lev_median=4    # the table for other parameters

Loss: for each window, the mean of squared error terms of ``backtest.calibrate.error_terms``
(log-ratio of liquidation totals, one-sided where the report is a lower bound; log of the remaining
OI fraction; long-share difference / LONG_SHARE_SCALE; peak timing in days), averaged over windows.
Each replay runs the ``none`` design only (the book does not depend on the fund design).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FIT_EVENTS = ("may2021", "luna2022", "ftx2022")
HOLDOUT_EVENTS = ("mar2020", "aug2024", "oct2025")
#: a long-share miss of 0.15 weighs like a factor e in a total
LONG_SHARE_SCALE = 0.15
#: the coarse grid (scalars only; every other parameter at its default)
GRID: dict[str, tuple[float, ...]] = {
    "lev_median": (1.5, 2.0, 3.0, 5.0),
    "lev_skew": (1.5, 3.0),
    "open_volume_share": (0.05, 0.15),
    "close_volume_share": (0.05, 0.15),
}

_WINDOWS: dict[str, Any] = {}


def windows(event: Any, db: str, archive: str | None) -> list[Any]:
    """The event's MarketWindows (loaded once per process; inputs are rebuilt per parameter set)."""
    if event.id not in _WINDOWS:
        from backtest.ensure import ensure_window
        from backtest.window import load_window
        from loaders.store import Store

        ensure_window(db, event, "binanceusdm", list(event.symbols), archive=archive)
        with Store(db, read_only=True) as store:
            _WINDOWS[event.id] = [load_window(store, event, "binanceusdm", s) for s in event.symbols]
    return _WINDOWS[event.id]


def evaluate(event_id: str, overrides: dict[str, Any], db: str, archive: str | None) -> dict[str, Any]:
    """One replay of ``none`` on the window -> calibration rows, error terms, loss and record."""
    from backtest.calibrate import ModelSeries, Shares, compare, error_terms
    from backtest.engine.api import run_event
    from backtest.engine.inputs import catalog_oi_level, from_window
    from backtest.engine.params import Params
    from backtest.events import load_catalog

    event = load_catalog().get(event_id)
    params = Params.from_overrides(overrides)
    inputs = [from_window(w, params, catalog_oi_level(event, w.symbol)) for w in windows(event, db, archive)]
    t0 = time.perf_counter()
    (result,) = run_event(event, ["none"], inputs, params)
    secs = time.perf_counter() - t0
    cal = compare(event, ModelSeries.from_result(result, inputs), Shares(params.venue_share))
    terms = error_terms(cal)
    scaled = {k: (v / LONG_SHARE_SCALE if ".long_share" in k else v) for k, v in terms.items()}
    loss = sum(v * v for v in scaled.values()) / len(scaled) if scaled else math.nan
    rec = result.record
    return {"event": event_id, "loss": loss, "terms": scaled, "secs": secs, "rows": cal.to_dict()["rows"],
            "liq_long": rec["liq_long_usd"], "liq_short": rec["liq_short_usd"],
            "oi_start": rec["oi_start_usd"], "oi_min": rec["oi_min_usd"]}


def _init(loaded: dict[str, Any]) -> None:
    """Worker start: the windows loaded by the parent (workers never open the store: one writer)."""
    _WINDOWS.update(loaded)


def _point(args: tuple[dict, tuple[str, ...], str, str | None]) -> tuple[dict[str, Any], float, dict]:
    overrides, events, db, archive = args
    per = {e: evaluate(e, overrides, db, archive) for e in events}
    return overrides, sum(p["loss"] for p in per.values()) / len(per), {e: p["loss"] for e, p in per.items()}


def fit(db: str, archive: str | None, jobs: int) -> tuple[dict[str, Any], list[tuple[dict, float, dict]]]:
    keys = list(GRID)
    points = [dict(zip(keys, vals, strict=True)) for vals in itertools.product(*GRID.values())]
    tasks = [(p, FIT_EVENTS, db, archive) for p in points]
    from backtest.events import load_catalog

    cat = load_catalog()
    loaded = {e: windows(cat.get(e), db, archive) for e in FIT_EVENTS}
    if jobs <= 1:
        results = []
        for i, t in enumerate(tasks, 1):
            results.append(r := _point(t))
            print(f"  [{i}/{len(tasks)}] loss {r[1]:.3f} {r[0]}", flush=True)
        results.sort(key=lambda r: r[1])
        return results[0][0], results
    ctx = multiprocessing.get_context("spawn")  # fork after duckdb/numba threads can deadlock
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init, initargs=(loaded,)) as ex:
        results = []
        for i, r in enumerate(ex.map(_point, tasks), 1):
            results.append(r)
            print(f"  [{i}/{len(tasks)}] loss {r[1]:.3f} {r[0]}", flush=True)
    results.sort(key=lambda r: r[1])
    return results[0][0], results


def table(evals: list[dict[str, Any]], fit_events: tuple[str, ...]) -> str:
    lines = [f"{'window':9} {'set':8} {'figure':28} {'metric':15} {'reconstructed':>14} {'reported':>11} "
             f"{'like-for-like':>13} {'ratio':>7} {'conf':4} verdict"]
    for ev in evals:
        tag = "fit" if ev["event"] in fit_events else "holdout"
        for r in ev["rows"]:
            lines.append(
                f"{ev['event']:9} {tag:8} {r['figure'][:28]:28} {r['metric']:15} {_num(r['model']):>14} "
                f"{_num(r['reported']):>11} {_num(r['comparable']):>13} {_num(r['ratio'], 2):>7} "
                f"{r['confidence']:4} {r['verdict']}{' [lower bound]' if r['lower_bound'] else ''}"
            )
        lines.append(f"{ev['event']:9} {tag:8} loss {ev['loss']:.3f}   replay {ev['secs']:.1f}s   "
                     f"liq long {ev['liq_long'] / 1e9:.2f}B short {ev['liq_short'] / 1e9:.2f}B (window), "
                     f"OI start {ev['oi_start'] / 1e9:.2f}B min {ev['oi_min'] / 1e9:.2f}B")
    return "\n".join(lines)


def _num(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if abs(v) >= 1e6:
        return f"{v / 1e9:.3g}B"
    return f"{v:.{digits}g}" if abs(v) >= 1 else f"{v:+.{digits}f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default=str(ROOT / "data" / "calibration.duckdb"), help="store (from archive)")
    ap.add_argument("--archive", default=None, help="archive [default: BACKTEST_ARCHIVE]")
    ap.add_argument("--eval-only", action="store_true", help="no fit: evaluate the defaults (+ --set)")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="PARAM=VALUE")
    ap.add_argument("--jobs", type=int, default=1, help="processes (>1: spawn pool)")
    ap.add_argument("--json", dest="json_out", default=None, help="write every evaluation here")
    a = ap.parse_args()
    base = dict(s.split("=", 1) for s in a.sets)
    t0 = time.perf_counter()
    grid_results: list = []
    if a.eval_only:
        best = base
    else:
        best, grid_results = fit(a.db, a.archive, a.jobs)
        best = {**base, **best}
        print(f"grid: {len(grid_results)} points x {len(FIT_EVENTS)} fit windows in "
              f"{time.perf_counter() - t0:.0f}s; best 5:")
        for ov, loss, per in grid_results[:5]:
            print(f"  loss {loss:.3f}  {ov}  " + " ".join(f"{e} {v:.3f}" for e, v in per.items()))
    events = FIT_EVENTS + HOLDOUT_EVENTS
    evals = [evaluate(e, best, a.db, a.archive) for e in events]
    print(f"\nparameters: {best or 'defaults'}")
    print(table(evals, FIT_EVENTS))
    fit_loss = sum(e["loss"] for e in evals if e["event"] in FIT_EVENTS) / len(FIT_EVENTS)
    out_loss = sum(e["loss"] for e in evals if e["event"] in HOLDOUT_EVENTS) / len(HOLDOUT_EVENTS)
    print(f"\nin-sample loss {fit_loss:.3f} ({', '.join(FIT_EVENTS)}); "
          f"out-of-sample loss {out_loss:.3f} ({', '.join(HOLDOUT_EVENTS)})")
    if a.json_out:
        Path(a.json_out).write_text(json.dumps(
            {"best": best, "grid": [[o, l_, p] for o, l_, p in grid_results], "evals": evals}, indent=1,
            default=str))


if __name__ == "__main__":
    main()
