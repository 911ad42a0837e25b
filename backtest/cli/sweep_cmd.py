"""``backtest sweep``: design/model parameters x crash windows, resumable, on 1 process, a pool or Ray."""

from __future__ import annotations

import os
from typing import Any

import click

from backtest.cli.options import (
    archive_option,
    db_option,
    events_file_option,
    format_option,
    offline_option,
    quiet_option,
)


@click.command("sweep")
@click.option("--design", "designs", required=True, help="Design(s) to sweep, comma-separated (e.g. static).")
@click.option(
    "--grid",
    "grids",
    multiple=True,
    metavar="NAME=SPEC",
    help="Swept parameter: design.param or model param = start:stop:linN|logN or a,b,c; repeatable "
    "(cartesian product).",
)
@click.option(
    "--sample",
    type=int,
    default=None,
    help="Draw this many random points per design instead of the full grid (ranges may omit N).",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of --sample (part of the row key)."
)
@click.option(
    "--events", "events", default="all", show_default=True, help="Comma-separated crash window ids, or 'all'."
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="PARAM=VALUE",
    help="Fixed model parameter, or DESIGN.PARAM=VALUE; repeatable.",
)
@click.option("--venue", default="binanceusdm", show_default=True, help="Venue (ccxt id).")
@click.option(
    "--executor",
    type=click.Choice(["inprocess", "process", "ray"]),
    default="process",
    show_default=True,
    help="Where tasks run.",
)
@click.option("--workers", type=int, default=None, help="Worker processes / Ray CPUs.  [default: CPU count]")
@click.option("--address", default=None, help="Ray cluster address HOST:PORT (default: start a local Ray).")
@click.option("--batch", type=int, default=4, show_default=True, help="Design points per task.")
@click.option(
    "--name",
    "name",
    default=None,
    help="Sweep id (rows are keyed by it).  [default: a hash of the sweep's definition]",
)
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False),
    default=None,
    help="DuckDB file of sweep results.  [default: data/sweeps.duckdb of the checkout]",
)
@click.option(
    "--report",
    "report",
    type=click.Path(file_okay=False),
    default=None,
    help="Directory for frontier.html (plots embedded), frontier.parquet and sweep.parquet.",
)
@click.option(
    "--frontier",
    "frontier_keys",
    multiple=True,
    metavar="DESIGN.PARAM",
    help="Parameter whose frontier is reported.  [default: the design's one swept number]",
)
@click.option(
    "--refine", is_flag=True, help="Narrow each frontier between grid points by bisection (fast path)."
)
@click.option(
    "--max-points",
    "max_points",
    type=int,
    default=None,
    help="Refuse a sweep of more design points x events than this (checked before any work).  "
    "[default: 10000]",
)
@click.option(
    "--risk-free",
    "risk_free",
    type=float,
    default=0.04,
    show_default=True,
    help="Yearly risk-free rate for the capital cost.",
)
@events_file_option
@db_option
@archive_option
@offline_option
@format_option
@quiet_option
@click.pass_context
def sweep(
    ctx: click.Context,
    designs: str,
    grids: tuple[str, ...],
    sample: int | None,
    seed: int,
    events: str,
    sets: tuple[str, ...],
    venue: str,
    executor: str,
    workers: int | None,
    address: str | None,
    batch: int,
    name: str | None,
    out: str | None,
    report: str | None,
    frontier_keys: tuple[str, ...],
    refine: bool,
    max_points: int | None,
    risk_free: float,
    events_file: str | None,
    db: str | None,
    archive: str | None,
    offline: bool,
    fmt: str,
    quiet: bool,
) -> None:
    """Sweep design parameters over crash windows and report each design's ADL-free frontier.

    Results go to a DuckDB table keyed by (sweep, event, design, params, seed); rerunning the same
    command resumes an interrupted sweep without duplicates.

    \b
    Examples:
      backtest sweep --design static --grid static.capital_usd=10e6:1e9:log20 --events all
      backtest sweep --design dynamic --grid dynamic.k=0.5:20:log12 --executor ray --report out/
      backtest sweep --design static --grid static.capital_usd=1e6:1e9:log --sample 50 --seed 7
    """
    import math

    from backtest.events import load_catalog
    from backtest.sweep.executors import make_executor
    from backtest.sweep.grid import DEFAULT_MAX_POINTS, count_points, parse_axis
    from backtest.sweep.runner import SweepSpec, execute, load_payloads, make_tasks, plan_points
    from backtest.sweep.store import SweepStore
    from loaders.errors import UserError

    # ----- validate everything before touching a store, a worker or the output
    catalog = load_catalog(events_file)
    chosen = catalog.select(events)
    ids = [e.id for e in chosen]
    for ev in chosen:
        if venue not in ev.venues:
            raise UserError(f"--venue {venue}: not a venue of {ev.id}; valid: {', '.join(ev.venues)}")
    design_list = [d.strip() for d in designs.split(",") if d.strip()]
    if not design_list or len(set(design_list)) != len(design_list):
        raise UserError(f"--design {designs}: give distinct design names")
    if sample is not None and sample < 1:
        raise UserError(f"--sample {sample}: must be >= 1")
    if batch < 1:
        raise UserError(f"--batch {batch}: must be >= 1")
    if not (math.isfinite(risk_free) and -0.5 < risk_free < 1.0):
        raise UserError(f"--risk-free {risk_free}: expected a yearly rate between -0.5 and 1 (e.g. 0.04)")
    from strategies.registry import names

    for d in design_list:
        if d not in names():
            raise UserError(f"--design {d}: unknown design; valid: {', '.join(names())}")
    limit = DEFAULT_MAX_POINTS if max_points is None else max_points
    if limit < 1:
        raise UserError(f"--max-points {max_points}: must be >= 1")
    if sample is not None and sample * len(design_list) * len(ids) > limit:
        raise UserError(f"--sample {sample}: {sample * len(design_list) * len(ids):,} points "
                        f"({len(design_list)} design(s) x {len(ids)} event(s)) exceed the limit of "
                        f"{limit:,}; raise --max-points knowingly")
    axes = [parse_axis(g, design_list, sample=sample is not None, max_points=limit) for g in grids]
    total = count_points(design_list, axes, sample=sample) * len(ids)
    if total > limit:
        raise UserError(f"--grid: the sweep has {total:,} points (design points x {len(ids)} event(s)), "
                        f"above the limit of {limit:,}; narrow the grid or raise --max-points knowingly")
    spec = SweepSpec(design_list, axes, ids, sample, seed, tuple(sets), venue, risk_free)
    plan = plan_points(spec)
    if not plan.items:
        raise UserError("--grid: the sweep has no points")
    keys = _frontier_keys(frontier_keys, design_list)
    sweep_id = name or spec.default_id()
    n_workers = workers if workers is not None else (os.cpu_count() or 1)
    progress = not quiet  # rich bars on a terminal, plain lines on a pipe (backtest.progress_lines)

    from pathlib import Path

    from loaders.locations import default_sweeps

    results_file = Path(out) if out is not None else default_sweeps()
    created = not results_file.exists()
    ex = make_executor(executor, n_workers, address)
    stored_any = False
    try:
        with SweepStore(out) as store:
            store.register(sweep_id, spec.to_dict())
            done = store.done(sweep_id)
            todo_events = [
                ev
                for ev in chosen
                if any((ev.id, d, p.params_hash, seed) not in done for d, p, _ in plan.items)
            ]
            need = chosen if refine else todo_events
            payloads = load_payloads(need, plan, db=db, archive=archive, progress=progress,
                                     allow_download=not offline)
            tasks = make_tasks(plan, payloads, done, batch)
            skipped = len(plan.items) * len(chosen) - sum(len(t.points) for t in tasks)
            try:
                stats = execute(store, sweep_id, tasks, payloads, ex, progress=progress)
            finally:
                stored_any = bool(store.done(sweep_id))
            frame = store.frame(sweep_id)
    except BaseException:
        if created and not stored_any:  # a failed first run leaves no empty results file behind
            for f in (results_file, results_file.with_name(results_file.name + ".wal")):
                f.unlink(missing_ok=True)
        raise
    finally:
        ex.close()
    if not quiet:
        table = store.path
        if not grids:
            click.echo(
                "no --grid: one point per design and event, at its configured parameters (add "
                "--grid DESIGN.PARAM=START:STOP:logN for a frontier)",
                err=True,
            )
        if stats.evaluations == 0:
            click.echo(
                f"sweep {sweep_id}: nothing to evaluate, all {skipped} point(s) already stored in {table} "
                "(shown below)",
                err=True,
            )
        else:
            rate = stats.evaluations / stats.seconds * 60.0 if stats.seconds > 0 else 0.0
            click.echo(
                f"sweep {sweep_id}: {stats.evaluations} evaluations ({_methods(stats.methods)}) in "
                f"{stats.seconds:.1f} s ({rate:,.0f}/min, {executor} x{n_workers}); {stats.stored} rows "
                f"stored, {skipped} already done; table {table}",
                err=True,
            )
    fronts, points = _frontiers(frame, keys, plan, payloads if refine else None)
    if fmt == "json":
        from backtest.finite import dumps
        from backtest.sweep.frontier import table_rows

        click.echo(
            dumps(
                {
                    "sweep_id": sweep_id,
                    "frontier": table_rows(fronts) if fronts else None,
                    "single_points": points,
                    "rows": frame.to_dicts(),
                },
                indent=2,
            )
        )
    else:
        from backtest.cli.console import print_table, stdout_console
        from backtest.sweep.frontier import POINTS_TITLE, notes, points_table, rich_table

        console = stdout_console()
        if fronts:
            print_table(console, rich_table(fronts, f"ADL-free frontier, sweep {sweep_id} ({venue})"), keep=3)
            for line in notes(fronts):
                console.print(line, soft_wrap=True, highlight=False)
        if points:
            print_table(console, points_table(points, POINTS_TITLE), keep=2)
    if report is not None and (fronts or points):
        from backtest.cli.run_cmd import command_line
        from backtest.sweep.frontier import write_report

        path = write_report(
            report, fronts, frame, title=f"Sweep {sweep_id}: ADL-free frontiers", command=command_line(ctx),
            points=points,
        )
        if not quiet:
            click.echo(f"report: {path}", err=True)


def _methods(m: dict[str, int]) -> str:
    """How the evaluations went, in the user's terms (the replay methods are internal)."""
    from backtest.sweep.runner import method_counts

    return ", ".join(f"{v} {k}" for k, v in method_counts(m).items())


def _frontier_keys(items: tuple[str, ...], designs: list[str]) -> dict[str, str]:
    from loaders.errors import UserError

    out = {}
    for it in items:
        d, sep, k = it.partition(".")
        if not sep or d not in designs or not k:
            raise UserError(f"--frontier {it}: expected DESIGN.PARAM with DESIGN among {', '.join(designs)}")
        out[d] = k
    return out


def _frontiers(frame: Any, keys: dict[str, str], plan: Any, payloads: Any) -> tuple[list[Any], list[Any]]:
    """Frontiers of the designs with one numeric swept parameter (refined if payloads given), and the
    points of the other designs, so no design of the sweep goes unreported."""
    from backtest.sweep.frontier import frontiers, single_points, swept_key
    from loaders.errors import UserError

    if frame.height == 0:
        return [], []
    usable, fixed = {}, []
    for d in dict.fromkeys(frame["design"].to_list()):
        try:
            usable[d] = keys.get(d) or swept_key(frame, d)
        except UserError:
            if d in keys:
                raise
            fixed.append(d)
    points = single_points(frame, fixed)
    if not usable:
        return [], points
    fronts = frontiers(frame.filter(frame["design"].is_in(list(usable))), usable)
    if payloads is not None:
        _refine(fronts, plan, payloads)
    return fronts, points


def _refine(fronts: list[Any], plan: Any, payloads: Any) -> None:
    from backtest.sweep.frontier import refine
    from backtest.sweep.runner import split_sets
    from backtest.sweep.tasks import build_plan
    from strategies.config import DesignConfig, load_config

    if len(plan.model_sets) != 1:
        return  # a model grid: the frontier depends on the model point; not refined
    (mk,) = plan.model_sets
    _, design_sets = split_sets(plan.spec.sets)
    base = load_config(None, design_sets).raw
    built: dict[str, Any] = {}
    for d in fronts:
        for e in d.events.values():
            if e.frontier is None or e.below is None:
                e.refined = e.frontier
                continue
            ep = built.get(e.event) or built.setdefault(e.event, build_plan(payloads[(e.event, mk)]))

            def shortfall(v: float, d: Any = d, ep: Any = ep) -> int | None:
                raw = {k: dict(x) for k, x in base.items()}
                raw.setdefault(d.design, {})[d.key] = v
                return ep.first_shortfall(DesignConfig(raw=raw).get(d.design))

            e.refined = refine(shortfall, e.below, e.frontier, log=e.below > 0)
