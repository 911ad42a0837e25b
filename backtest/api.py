"""The Python API for notebooks: open a store, list events, run windows, get polars DataFrames.

    from backtest import api

    bt = api.open_store()                         # data/market.duckdb; fills itself from the archive
    bt.events()                                   # the crash-window catalog, one row per window
    run = bt.run("may2021", designs=["static", "dynamic"], overrides={"static.capital_usd": 1e8})
    run.summary                                   # one row per design (the report's comparison)
    run.fund                                      # the fund path per window tick and design
    run.bars                                      # prices, forced flow, bad debt, ADL, OI per bar and symbol
    run.write_report("rep/")                      # the same single-file HTML report as `backtest run --out`

The frames have the columns of the files ``backtest run --out`` writes (results.parquet, ticks.parquet,
bars.parquet; README "Python API" lists them). ``compare`` does the same over several windows and adds
the designs x events ``matrix``; ``sweep`` runs a parameter grid and returns its rows and frontier.
Nothing here parses command-line text: overrides are Python values, errors are ``UserError``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loaders.errors import UserError

__all__ = ["Store", "RunResult", "CompareResult", "SweepResult", "open_store"]


@dataclass
class RunResult:
    """The designs on one or more windows, as frames (see the module docstring)."""

    summary: Any  # polars DataFrame, one row per (event, design)
    fund: Any  # per window clock tick per (event, design)
    bars: Any  # per window bar per symbol per (event, design)
    sections: list[Any] = field(default_factory=list, repr=False)  # report.html.EventSection
    title: str = ""

    @property
    def results(self) -> list[Any]:
        """The engine's Result objects (record, per-symbol figures, full series incl. the warm-up)."""
        return [r for s in self.sections for r in s.results]

    def write_report(self, out: str | os.PathLike[str]) -> Path:
        """report.html, results/ticks/bars.parquet and run.json into ``out`` (staged: all or none)."""
        from backtest.report.html import REPORT_FILE, staged_output, write_report

        with staged_output(out) as stage:
            write_report(stage, self.sections, title=self.title, command="backtest.api (Python)",
                         matrix=len(self.sections) > 1)
        return Path(out) / REPORT_FILE


@dataclass
class CompareResult(RunResult):
    """``RunResult`` over several windows plus the designs x events matrix."""

    matrix: Any = None  # DataFrame: design, event, survived_without_adl, min_fund_pct, adl_notional_usd


@dataclass
class SweepResult:
    """A sweep's stored rows (one per design point x event) and its ADL-free frontier per design."""

    sweep_id: str
    rows: Any  # polars DataFrame
    frontier: Any  # polars DataFrame (one row per design x event, plus the design's ALL row); empty if none


@dataclass
class Store:
    """A market-data store (DuckDB file) and where to fill it from; every method reads windows through it."""

    db: str | os.PathLike[str] | None = None
    archive: str | os.PathLike[str] | None = None
    events_file: str | os.PathLike[str] | None = None

    def catalog(self) -> Any:
        from backtest.events import load_catalog

        return load_catalog(self.events_file)

    def events(self, venue: str = "binanceusdm") -> Any:
        """The crash-window catalog: id, title, start, end, peak, warmup_days, symbols, venues and the USD
        fund of ``venue`` listed before the shock (null when the catalog has none: the start-capital rule
        then takes the nearest listed window's fund/OI ratio)."""
        import polars as pl

        from backtest.capital import listed_fund

        rows = []
        for e in self.catalog():
            fund = listed_fund(e, venue)
            rows.append({"id": e.id, "title": e.title, "start": e.start, "end": e.end, "peak": e.peak,
                         "warmup_days": e.warmup.total_seconds() / 86400.0, "symbols": list(e.symbols),
                         "venues": list(e.venues),
                         "fund_before_usd": float(fund.balance) if fund is not None else None})
        return pl.DataFrame(rows, schema_overrides={"peak": pl.Datetime("us"), "fund_before_usd": pl.Float64})

    def run(
        self,
        event: str,
        designs: Sequence[str] | None = None,
        overrides: Mapping[str, Any] | None = None,
        *,
        symbols: Sequence[str] | None = None,
        venue: str = "binanceusdm",
        risk_free: float = 0.04,
        config: str | os.PathLike[str] | None = None,
    ) -> RunResult:
        """Replay one window for ``designs`` (None: every registered design and variant).

        ``overrides``: ``{"impact_y": 0.5}`` sets a model parameter (docs/MODEL.md §10),
        ``{"static.capital_usd": 1e8}`` a design parameter (docs/DESIGNS.md); ``config``: a designs TOML.
        """
        out = self.compare([event], designs, overrides, symbols=symbols, venue=venue, risk_free=risk_free,
                           config=config)
        return RunResult(out.summary, out.fund, out.bars, out.sections,
                         title=f"Insurance-fund designs in {out.sections[0].event.id}: "
                               f"{out.sections[0].event.title}")

    def compare(
        self,
        events: Sequence[str] | str = "all",
        designs: Sequence[str] | None = None,
        overrides: Mapping[str, Any] | None = None,
        *,
        symbols: Sequence[str] | None = None,
        venue: str = "binanceusdm",
        risk_free: float = 0.04,
        config: str | os.PathLike[str] | None = None,
    ) -> CompareResult:
        """The designs on several windows (``"all"`` or a list of ids), each with its own symbols."""
        import polars as pl

        from backtest.report.frames import report_data
        from backtest.report.html import EventSection
        from backtest.report.plots import window_prices
        from backtest.report.tables import min_fund_pct, survived

        catalog = self.catalog()
        chosen = catalog.select(events if isinstance(events, str) else ",".join(events), "events")
        params, specs = _setup(designs, overrides, venue, config)
        sections = []
        for ev in chosen:
            syms = _symbols(ev, venue, symbols)
            inputs, results = _run_one(ev, params, specs, syms, venue, risk_free, catalog, self.db,
                                       self.archive)
            sections.append(EventSection(ev, results, window_prices(inputs), venue, params, risk_free))
        data = report_data(sections, title="", command="", matrix=len(sections) > 1)
        matrix = pl.DataFrame(
            [{"design": str(r.record["design"]), "event": s.event.id,
              "survived_without_adl": survived(r.record), "min_fund_pct": min_fund_pct(r.record),
              "adl_notional_usd": float(r.record["adl_notional_usd"])}
             for s in sections for r in s.results],
            schema_overrides={"min_fund_pct": pl.Float64},
        )
        title = f"Insurance-fund designs across {len(sections)} crash windows"
        return CompareResult(data.results, data.ticks, data.bars, sections, title, matrix)

    def sweep(
        self,
        designs: Sequence[str],
        grid: Sequence[str],
        events: Sequence[str] | str = "all",
        overrides: Mapping[str, Any] | None = None,
        *,
        out: str | os.PathLike[str] | None = None,
        name: str | None = None,
        sample: int | None = None,
        seed: int = 0,
        venue: str = "binanceusdm",
        risk_free: float = 0.04,
        executor: str = "inprocess",
        workers: int = 1,
    ) -> SweepResult:
        """A design-parameter sweep (``grid``: axes in the ``--grid`` syntax, e.g.
        ``"static.capital_usd=1e7:1e9:log6"``); resumable in the results file ``out``
        (default data/sweeps.duckdb). Returns every stored row of the sweep and the frontier on the grid
        points (not refined between them, unlike ``backtest sweep --refine``)."""
        import polars as pl

        from backtest.sweep.executors import make_executor
        from backtest.sweep.frontier import frontiers, swept_key, table_rows
        from backtest.sweep.grid import parse_axis
        from backtest.sweep.runner import SweepSpec, execute, load_payloads, make_tasks, plan_points
        from backtest.sweep.store import SweepStore

        catalog = self.catalog()
        chosen = catalog.select(events if isinstance(events, str) else ",".join(events), "events")
        design_list = list(designs)
        axes = [parse_axis(g, design_list, sample=sample is not None) for g in grid]
        sets = tuple(f"{k}={_toml(v)}" for k, v in (overrides or {}).items())
        spec = SweepSpec(design_list, axes, [e.id for e in chosen], sample, seed, sets, venue, risk_free)
        plan = plan_points(spec)
        sweep_id = name or spec.default_id()
        ex = make_executor(executor, workers)
        try:
            with SweepStore(out) as store:
                store.register(sweep_id, spec.to_dict())
                done = store.done(sweep_id)
                payloads = load_payloads(chosen, plan, db=self.db, archive=self.archive, progress=False)
                execute(store, sweep_id, make_tasks(plan, payloads, done, 1), payloads, ex)
                rows = store.frame(sweep_id)
        finally:
            ex.close()
        keys = {}
        for d in dict.fromkeys(rows["design"].to_list()) if rows.height else ():
            try:
                keys[d] = swept_key(rows, d)
            except UserError:
                continue  # no single numeric swept parameter: no frontier for this design
        front = table_rows(frontiers(rows.filter(pl.col("design").is_in(list(keys))), keys)) if keys else []
        return SweepResult(sweep_id, rows, pl.DataFrame(front, infer_schema_length=None))


def open_store(
    db: str | os.PathLike[str] | None = None,
    archive: str | os.PathLike[str] | None = None,
    events_file: str | os.PathLike[str] | None = None,
) -> Store:
    """The store at ``db`` (default: ``BACKTEST_DB``, else data/market.duckdb), filled on first use from
    ``archive`` (default: ``BACKTEST_ARCHIVE`` or a shared/data folder beside the checkout) or by download."""
    if db is None:
        db = os.environ.get("BACKTEST_DB") or None
    return Store(db, archive, events_file)


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return v
    if isinstance(v, list | tuple):
        return " ".join(str(x) for x in v)
    return repr(v)


def _setup(
    designs: Sequence[str] | None, overrides: Mapping[str, Any] | None, venue: str, config: Any
) -> tuple[Any, list[Any]]:
    """Model params and design specs from Python values (validated like ``--set``)."""
    from backtest.engine.api import resolve_designs
    from backtest.engine.params import Params
    from strategies.config import load_config

    model: dict[str, Any] = {"venue": venue}
    design_sets: list[str] = []
    for key, value in (overrides or {}).items():
        if "." in key:
            design_sets.append(f"{key}={_toml(value)}")
        else:
            model[key] = value
    params = Params.from_overrides(model)
    cfg = load_config(config, design_sets)
    return params, resolve_designs(list(designs) if designs is not None else None, cfg, "designs")


def _symbols(event: Any, venue: str, symbols: Sequence[str] | None) -> list[str]:
    if venue not in event.venues:
        raise UserError(f"venue {venue}: not a venue of {event.id}; valid: {', '.join(event.venues)}")
    out = list(symbols) if symbols else list(event.symbols)
    bad = [s for s in out if s not in event.symbols]
    if bad or len(set(out)) != len(out):
        raise UserError(f"symbols {out}: give distinct symbols of {event.id} ({', '.join(event.symbols)})")
    return out


def _run_one(event: Any, params: Any, specs: list[Any], syms: list[str], venue: str, risk_free: float,
             catalog: Any, db: Any, archive: Any) -> tuple[list[Any], list[Any]]:
    """Fill and load the window, replay the designs (warm-up shared), add the fund metrics."""
    from backtest.capital import fund_oi_ratio
    from backtest.engine.api import load_inputs, run_event
    from backtest.metrics import add_fund_metrics

    inputs = load_inputs(event, venue, syms, params, db=db, archive=archive)
    ratio = fund_oi_ratio(event, venue, params, catalog=catalog, db=db, archive=archive)
    results = run_event(event, specs, inputs, params, venue=venue, fund_oi_ratio=ratio)
    add_fund_metrics(results, window_s=(event.end - event.start).total_seconds(), risk_free=risk_free)
    return inputs, results
