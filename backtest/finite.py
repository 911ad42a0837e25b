"""The last gate before a result is printed or stored: every number finite, JSON strict.

Parameter domains (backtest/engine/params.py ``DOMAINS``, strategies/config.py bounds) keep the
replay's arithmetic finite; this module is the backstop that turns a NaN or an infinity that still
gets through into a one-line error instead of a printed figure with exit 0. JSON output goes through
:func:`dumps`, which never writes the non-standard ``NaN`` / ``Infinity`` tokens.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from loaders.errors import UserError


class NonFiniteResultError(UserError):
    """A replay produced NaN or an infinity: nothing is printed or stored."""

    exit_code = 3


def first_nonfinite(obj: Any, path: str = "") -> tuple[str, float] | None:
    """``(dotted path, value)`` of the first NaN/inf float in nested mappings and lists, else None."""
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return None
    if isinstance(obj, float | int):
        return None if math.isfinite(obj) else (path, float(obj))
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            hit = first_nonfinite(v, f"{path}.{k}" if path else str(k))
            if hit:
                return hit
        return None
    if isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            hit = first_nonfinite(v, f"{path}[{i}]")
            if hit:
                return hit
        return None
    item = getattr(obj, "item", None)  # numpy scalars
    if callable(item) and getattr(obj, "shape", None) == ():
        return first_nonfinite(item(), path)
    return None


def check_results(results: Iterable[Any], context: str = "") -> None:
    """Raise :class:`NonFiniteResultError` naming the run and the figure if any result is not finite.

    ``results`` are engine ``Result`` objects (their record and per-symbol figures are checked) or
    plain row mappings (sweep rows). ``context`` names what was run, e.g. the sweep point.
    """
    for r in results:
        if isinstance(r, Mapping):
            rows: list[tuple[str, Any]] = [("", r)]
            name = f"{r.get('event', '?')} {r.get('design', r.get('label', '?'))}"
        else:
            rows = [("", r.record), ("per_symbol", r.per_symbol)]
            name = f"{r.record.get('event', '?')} {r.record.get('design', '?')}"
        for prefix, obj in rows:
            hit = first_nonfinite(obj, prefix)
            if hit:
                where, value = hit
                raise NonFiniteResultError(
                    f"{name}{' (' + context + ')' if context else ''}: result {where} = {value} is not "
                    f"finite; the parameters drive the replay out of range (see the bounds in "
                    f"docs/MODEL.md §10 and docs/DESIGNS.md); nothing printed or stored")


def _default(o: Any) -> Any:
    item = getattr(o, "item", None)
    if callable(item):
        return item()
    tolist = getattr(o, "tolist", None)
    if callable(tolist):
        return tolist()
    return str(o)


def dumps(obj: Any, **kw: Any) -> str:
    """Strict JSON: a non-finite number becomes ``null`` (an absent figure), never ``NaN``/``Infinity``.

    Results are checked by :func:`check_results` before they get here; what reaches this point as NaN
    is a figure that is genuinely absent (e.g. a reported value the catalog does not have).
    """
    return json.dumps(_nulls(obj), allow_nan=False, default=_default, **kw)


def _nulls(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: _nulls(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_nulls(v) for v in obj]
    item = getattr(obj, "item", None)
    if callable(item) and getattr(obj, "shape", None) == ():
        return _nulls(item())
    return obj
