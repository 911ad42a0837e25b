"""A sweep end to end: points x events -> payloads and tasks -> executor -> results table.

The windows are read from the store ONCE per event (and turned into arrays once per model parameter
set); tasks carry only design specs and a group key. Keys already in the table are skipped, so running
the same sweep again resumes it.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from backtest.sweep.grid import Axis, SweepPoint, points
from backtest.sweep.tasks import EventPayload, Point, Task, params_hash
from loaders.errors import UserError


@dataclass
class SweepSpec:
    """Everything that defines a sweep's rows (its id is a hash of this unless named)."""

    designs: list[str]
    axes: list[Axis]
    events: list[str]
    sample: int | None = None
    seed: int = 0
    sets: tuple[str, ...] = ()
    venue: str = "binanceusdm"
    risk_free: float = 0.04

    def to_dict(self) -> dict[str, Any]:
        return {
            "designs": self.designs,
            "grid": [a.text for a in self.axes],
            "events": self.events,
            "sample": self.sample,
            "seed": self.seed,
            "sets": list(self.sets),
            "venue": self.venue,
            "risk_free": self.risk_free,
        }

    def default_id(self) -> str:
        doc = json.dumps(self.to_dict(), sort_keys=True)
        return f"{'-'.join(self.designs)}-{hashlib.sha256(doc.encode()).hexdigest()[:10]}"


@dataclass
class SweepPlan:
    """Validated points (specs and model params), before any data is read."""

    spec: SweepSpec
    items: list[tuple[str, Point, Any]] = field(default_factory=list)  # (design, Point, Params)

    @property
    def model_sets(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for _, _, p in self.items:
            out.setdefault(model_key(p), p)
        return out


def model_key(params: Any) -> str:
    return hashlib.sha256(json.dumps(params.to_dict(), sort_keys=True).encode()).hexdigest()[:12]


def split_sets(sets: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """``--set`` items: model ``key=value`` vs design ``design.key=value``."""
    model: dict[str, str] = {}
    design: list[str] = []
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set {item}: expected PARAM=VALUE or DESIGN.PARAM=VALUE")
        if "." in key:
            design.append(item)
        else:
            model[key.strip()] = value.strip()
    return model, design


def plan_points(spec: SweepSpec) -> SweepPlan:
    """Every point's validated design spec and model params (UserError naming the option)."""
    from backtest.engine.params import Params
    from strategies.config import DesignConfig, load_config

    model_fixed, design_sets = split_sets(spec.sets)
    model_fixed["venue"] = spec.venue
    Params.from_overrides(model_fixed)
    base_cfg = load_config(None, design_sets)
    for d in spec.designs:
        if d not in base_cfg.labels:
            raise UserError(f"--design {d}: unknown design; valid: {', '.join(base_cfg.labels)}")
    pts: list[SweepPoint] = points(spec.designs, spec.axes, sample=spec.sample, seed=spec.seed)
    plan = SweepPlan(spec)
    for sp in pts:
        raw = {k: dict(v) for k, v in base_cfg.raw.items()}
        raw.setdefault(sp.design, {}).update(dict(sp.design_values))
        try:
            dspec = DesignConfig(raw=raw).get(sp.design)
            params = Params.from_overrides({**model_fixed, **dict(sp.model_values)})
        except UserError as e:
            vals = ", ".join(f"{k}={v}" for k, v in (*sp.design_values, *sp.model_values))
            raise UserError(f"--grid point {sp.design} {vals}: {e}") from None
        h = params_hash(dspec, params)
        pj = json.dumps({k: v for k, v in dspec.to_dict().items()}, sort_keys=True, default=str)
        mj = json.dumps(dict(sp.model_values), sort_keys=True)
        plan.items.append((sp.design, Point(h, dspec, pj, mj), params))
    return plan


def inputs_digest(inputs: Sequence[Any]) -> str:
    h = hashlib.sha256()
    for i in inputs:
        h.update(i.symbol.encode())
        for a in (i.ts, i.dt, i.bars, i.in_window, i.funding, i.f_last, i.tb, i.target, i.brackets):
            h.update(a.tobytes())
    return h.hexdigest()[:12]


def make_payload(
    event: Any, inputs: Sequence[Any], params: Any, venue: str, fund_oi_ratio: tuple[float, str] | None = None
) -> EventPayload:
    """The compact per-group payload (design context without the window-open marks, added by the worker;
    ``fund_oi_ratio``: the start-capital rule's ratio, backtest/capital.py)."""
    from strategies.registry import event_context

    ctx = event_context(event, venue=venue, symbols=[i.symbol for i in inputs], fund_oi_ratio=fund_oi_ratio)
    key = f"{event.id}:{model_key(params)}:{inputs_digest(inputs)}"
    return EventPayload(key, event.id, tuple(inputs), params, ctx, (event.end - event.start).total_seconds())


def load_payloads(
    events: Sequence[Any],
    plan: SweepPlan,
    *,
    db: Any,
    archive: Any,
    progress: bool,
    on_event: Callable[[str], None] | None = None,
    allow_download: bool = True,
) -> dict[tuple[str, str], EventPayload]:
    """Read each event's windows once; arrays per model parameter set. Key: (event id, model key)."""
    from backtest.capital import fund_oi_ratio
    from backtest.engine.inputs import catalog_oi_level, from_window
    from backtest.ensure import ensure_window
    from backtest.window import load_window
    from loaders.store import Store

    out: dict[tuple[str, str], EventPayload] = {}
    venue = plan.spec.venue
    for ev in events:
        if on_event is not None:
            on_event(ev.id)
        syms = list(ev.symbols)
        ensure_window(db, ev, venue, syms, archive=archive, progress=progress, allow_download=allow_download)
        with Store(db, read_only=True) as store:
            wins = [load_window(store, ev, venue, s) for s in syms]
        for mk, params in plan.model_sets.items():
            inputs = [
                from_window(w, params, catalog_oi_level(ev, s)) for w, s in zip(wins, syms, strict=True)
            ]
            ratio = fund_oi_ratio(ev, venue, params, db=db, archive=archive, progress=progress)
            out[(ev.id, mk)] = make_payload(ev, inputs, params, venue, ratio)
    return out


def make_tasks(
    plan: SweepPlan, payloads: dict[tuple[str, str], EventPayload], done: set, batch: int
) -> list[Task]:
    """Points not yet stored, grouped per (event, model, design) in batches of ``batch``."""
    groups: dict[tuple[str, str, str], list[Point]] = {}
    for ev in plan.spec.events:
        for design, pt, params in plan.items:
            if (ev, design, pt.params_hash, plan.spec.seed) in done:
                continue
            groups.setdefault((ev, model_key(params), design), []).append(pt)
    tasks = []
    for (ev, mk, design), pts in groups.items():
        pay = payloads[(ev, mk)]
        for i in range(0, len(pts), batch):
            tasks.append(
                Task(pay.key, ev, design, tuple(pts[i : i + batch]), plan.spec.seed, plan.spec.risk_free)
            )
    return tasks


#: What each evaluation method means to a user: "resumed" (a replay restarted from a checkpoint) is an
#: internal term that reads like resuming an interrupted sweep, so it never appears in user text.
METHOD_WORDS = {
    "fast": "paid in full without a replay",
    "resumed": "replayed from the first claim paid short",
    "replay": "replayed from the first claim paid short",
}


def method_counts(methods: dict[str, int]) -> dict[str, int]:
    """Evaluation counts keyed by user wording, in a fixed order."""
    out: dict[str, int] = {}
    for k in ("fast", "resumed", "replay"):
        if methods.get(k):
            out[METHOD_WORDS[k]] = out.get(METHOD_WORDS[k], 0) + methods[k]
    for k, v in methods.items():
        if k not in METHOD_WORDS:
            out[k] = out.get(k, 0) + v
    return out


@dataclass
class SweepStats:
    tasks: int = 0
    evaluations: int = 0
    stored: int = 0
    methods: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def execute(
    store: Any,
    sweep_id: str,
    tasks: Sequence[Task],
    payloads: dict[tuple[str, str], EventPayload],
    executor: Any,
    *,
    progress: bool = False,
) -> SweepStats:
    """Run the tasks, store each task's rows in one transaction as it finishes; progress bar with ETA."""
    by_key = {p.key: p for p in payloads.values()}
    needed = {t.group for t in tasks}
    stats = SweepStats()
    total = sum(len(t.points) for t in tasks)
    t0 = time.perf_counter()
    with _Progress(progress, total) as bar:
        for _task, rows in executor.run(tasks, {k: by_key[k] for k in needed}):
            stats.stored += store.insert(sweep_id, rows)
            stats.tasks += 1
            stats.evaluations += len(rows)
            for r in rows:
                stats.methods[r["method"]] = stats.methods.get(r["method"], 0) + 1
            bar.advance(len(rows), stats.methods)
    stats.seconds = time.perf_counter() - t0
    return stats


class _Progress:
    """Evaluations done / total with elapsed time and ETA (rich, stderr); a no-op when disabled."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled, self.total = enabled, total
        self._p: Any = None
        self._plain: Any = None
        self._done = 0
        self._t0 = time.perf_counter()

    def __enter__(self) -> _Progress:
        from backtest.progress_lines import Throttled, stderr_is_terminal

        if self.enabled and not stderr_is_terminal():
            self._plain = Throttled()
        elif self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._p = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._p.__enter__()
            self._tid = self._p.add_task("sweep", total=self.total)
        return self

    def advance(self, n: int, methods: dict[str, int]) -> None:
        self._done += n
        if self._plain is not None:
            s = time.perf_counter() - self._t0
            eta = s / self._done * (self.total - self._done) if self._done else 0.0
            text = f"sweep: {self._done}/{self.total} evaluations, {s:.0f} s, ETA {eta:.0f} s"
            (self._plain.finish if self._done >= self.total else self._plain.update)(text)
        if self._p is not None:
            desc = "sweep: " + ", ".join(f"{v} {k}" for k, v in method_counts(methods).items())
            self._p.update(self._tid, advance=n, description=desc)

    def __exit__(self, *exc: object) -> None:
        if self._p is not None:
            self._p.__exit__(*exc)


def payload_bytes(payloads: dict[tuple[str, str], EventPayload]) -> int:
    """Size of what is shipped to each worker (for the benchmark and the log)."""
    return len(pickle.dumps(payloads, protocol=pickle.HIGHEST_PROTOCOL))
