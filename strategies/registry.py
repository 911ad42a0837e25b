"""Designs by name: ``none`` plus every module in ``strategies/`` that registers itself.

A new design is ONE file ``strategies/<anything>.py`` holding a params dataclass (fields built with
``strategies.config.param``) and a class decorated with ``@register("<name>", params=<Params>)``; the
class is constructed as ``cls(params, context)``. Modules of this package are imported on the first
lookup, so nothing else has to be edited. The engine builds a fund with :func:`make_design`.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from loaders.errors import UserError
from strategies.base import Fund, NoFund

_NOT_DESIGNS = {"base", "config", "registry", "triggers"}
_BUILTIN = ("static", "static_coin", "dynamic", "hedged", "tranched", "reinsured")  # listing order


@dataclass(frozen=True)
class NoParams:
    """``none`` has no parameters."""


@dataclass(frozen=True)
class Entry:
    name: str
    factory: Callable[[Any, dict[str, Any]], Fund]
    params: type
    doc: str


_REGISTRY: dict[str, Entry] = {}
_discovered = False


def register(name: str, *, params: type = NoParams, doc: str = "") -> Callable[[type], type]:
    """Class decorator: make a design available under ``name`` (constructed as ``cls(params, context)``)."""

    def deco(cls: type) -> type:
        add(name, cls, params=params, doc=doc or (cls.__doc__ or "").strip().split("\n")[0])
        return cls

    return deco


def add(name: str, factory: Callable[[Any, dict[str, Any]], Fund], *, params: type = NoParams,
        doc: str = "") -> None:
    """Register ``factory(params, context)`` under ``name``; a second design of the same name is an error."""
    if not dataclasses.is_dataclass(params):
        raise TypeError(f"design {name}: params must be a dataclass, got {params!r}")
    old = _REGISTRY.get(name)
    if old is not None and old.factory is not factory:
        raise ValueError(f"design name '{name}' is registered twice ({old.factory!r} and {factory!r})")
    _REGISTRY[name] = Entry(name, factory, params, doc)


def unregister(name: str) -> None:
    """Remove a design (tests)."""
    _REGISTRY.pop(name, None)


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    _discovered = True
    import strategies

    found = {m.name for m in pkgutil.iter_modules(strategies.__path__)}
    for name in [*(b for b in _BUILTIN if b in found), *sorted(found - set(_BUILTIN))]:
        if name not in _NOT_DESIGNS and not name.startswith("_"):
            importlib.import_module(f"strategies.{name}")


def names() -> list[str]:
    """Registered design names: ``none``, the built-ins in DESIGN §6 order, then others as registered."""
    _discover()
    first = ["none", *(b.replace("_", "-") for b in _BUILTIN)]
    return [n for n in first if n in _REGISTRY] + [n for n in _REGISTRY if n not in first]


def entry(name: str) -> Entry:
    """The registration of ``name``; unknown names -> UserError listing the valid ones."""
    _discover()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UserError(f"unknown design '{name}'; valid: {', '.join(_REGISTRY)}") from None


def make_design(design: Any, params: Any = None, context: Mapping[str, Any] | None = None) -> Fund:
    """A fresh fund for one run.

    ``design``: a name, or a ``config.DesignSpec`` (then ``params`` must be None). ``params``: None
    (defaults), a mapping of overrides (validated like ``--set``; ADL-trigger keys allowed), or the
    design's params dataclass. ``context``: what the engine knows about the run (see
    :func:`event_context`). ADL triggers, when any is on, wrap the design (strategies/triggers.py).
    """
    from strategies.config import DesignConfig, DesignSpec
    from strategies.triggers import TriggerParams, with_triggers

    ctx = dict(context or {})
    if isinstance(design, DesignSpec):
        if params is not None:
            raise TypeError("pass either a DesignSpec or (name, params)")
        spec = design
    elif params is None or isinstance(params, Mapping):
        cfg = DesignConfig(raw={design: dict(params or {})} if params else {})
        spec = cfg.get(design)
    else:
        e = entry(design)
        if not isinstance(params, e.params):
            raise TypeError(f"design {design}: params must be {e.params.__name__}, "
                            f"got {type(params).__name__}")
        spec = DesignSpec(label=design, design=design, params=params, triggers=TriggerParams())
    fund = entry(spec.design).factory(spec.params, ctx)
    fund.label = spec.label
    return with_triggers(fund, spec.triggers)


def event_context(event: Any = None, *, venue: str = "binanceusdm", symbols: Any = None,
                  start_prices: Mapping[str, float] | None = None, oi_start_usd: float | None = None,
                  fund_oi_ratio: tuple[float, str] | None = None) -> dict[str, Any]:
    """The context a design may use, from a catalog ``Event`` (duck-typed: strategies never import backtest).

    ``fund_before_usd``: the USD/USDT fund of ``venue`` listed before the event (only that venue's: a
    fund of another venue says nothing about this one's size);
    ``fund_before_coin`` / ``fund_before_coin_ccy``: the first coin-denominated fund (e.g. BitMEX XBT);
    ``fund_oi_ratio`` / ``fund_oi_ratio_source``: (ratio, where it comes from) for the start-capital rule
    when the event lists no fund of the venue (``strategies.static.capital_rule``, backtest/capital.py).
    """
    ctx: dict[str, Any] = {"venue": venue}
    if event is not None:
        ctx["event_id"] = getattr(event, "id", None)
        syms = tuple(getattr(event, "symbols", ()) or ())
        if syms:
            ctx["symbols"] = syms
        funds = list(getattr(event, "fund_before", ()) or ())
        usd = [f for f in funds if str(f.currency).upper() in ("USD", "USDT", "USDC")]
        coin = [f for f in funds if f not in usd]
        pick = next((f for f in usd if f.venue == venue), None)
        if pick is not None:
            ctx["fund_before_usd"] = float(pick.balance)
            ctx["fund_before_source"] = f"{pick.venue} {pick.fund}: {pick.source}"
        if coin:
            ctx["fund_before_coin"] = float(coin[0].balance)
            ctx["fund_before_coin_ccy"] = str(coin[0].currency)
            ctx["fund_before_coin_source"] = f"{coin[0].venue} {coin[0].fund}: {coin[0].source}"
    if symbols is not None:
        ctx["symbols"] = tuple(symbols)
    if start_prices is not None:
        ctx["start_prices"] = dict(start_prices)
    if oi_start_usd is not None:
        ctx["oi_start_usd"] = float(oi_start_usd)
    if fund_oi_ratio is not None:
        ctx["fund_oi_ratio"], ctx["fund_oi_ratio_source"] = float(fund_oi_ratio[0]), str(fund_oi_ratio[1])
    return ctx


add("none", lambda params, context: NoFund(), params=NoParams,
    doc="no insurance fund: every deficit goes to ADL (the baseline)")
