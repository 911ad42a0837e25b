"""Sweep axes from ``--grid`` text, and the points they span (full grid or a seeded random sample).

Syntax of one axis, ``NAME=SPEC``:

- NAME: ``<design>.<parameter>`` (docs/DESIGNS.md, ADL-trigger keys included) or a model parameter
  (docs/MODEL.md §10, numbers and words only);
- SPEC: ``start:stop:linN`` or ``start:stop:logN`` (N points, both ends included), a list ``a,b,c``,
  or one value. With ``--sample``, ``start:stop:lin`` / ``start:stop:log`` (no count) is a continuous
  range drawn uniformly (in log space for ``log``); counted ranges and lists are drawn from their values.

Values are validated here, where the option is still known, so a typo fails before any replay.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from dataclasses import dataclass
from typing import Any

from loaders.errors import UserError

_RANGE = re.compile(r"^\s*([^:]+):([^:]+):(lin|log)(\d*)\s*$")


@dataclass(frozen=True)
class Axis:
    """One swept parameter: discrete ``values``, or a continuous range (``lo``..``hi``, lin/log)."""

    text: str  # the option as given, for messages
    design: str | None  # None: a model parameter
    key: str
    values: tuple[Any, ...] = ()
    lo: float = math.nan
    hi: float = math.nan
    scale: str = ""  # lin | log for continuous ranges

    @property
    def name(self) -> str:
        return f"{self.design}.{self.key}" if self.design else self.key

    @property
    def continuous(self) -> bool:
        return not self.values

    def draw(self, rng: Any) -> Any:
        if self.values:
            return self.values[int(rng.integers(len(self.values)))]
        if self.scale == "log":
            return float(math.exp(rng.uniform(math.log(self.lo), math.log(self.hi))))
        return float(rng.uniform(self.lo, self.hi))


def _value(raw: str) -> Any:
    raw = raw.strip()
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _number(opt: str, raw: str) -> float:
    v = _value(raw)
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise UserError(f"{opt}: '{raw.strip()}' is not a number")
    return float(v)


#: Points a sweep may have (design points x events) unless ``--max-points`` raises it: a 1e9-point
#: range or product used to allocate until killed; the limit is checked before anything is built.
DEFAULT_MAX_POINTS = 10_000


def parse_axis(text: str, designs: list[str], *, sample: bool = False,
               max_points: int = DEFAULT_MAX_POINTS) -> Axis:
    """One ``--grid`` option; names and values are checked against the designs and model parameters.

    A range of more than ``max_points`` points is refused before its values are computed."""
    opt = f"--grid {text}"
    name, sep, spec = text.partition("=")
    name = name.strip()
    if not sep or not name or not spec.strip():
        raise UserError(
            f"{opt}: expected NAME=start:stop:linN|logN or NAME=a,b,c "
            f"(e.g. static.capital_usd=10e6:1e9:log20)"
        )
    design, key = (name.split(".", 1) + [""])[:2] if "." in name else (None, name)
    _check_name(opt, design, key, designs)
    m = _RANGE.match(spec)
    if m:
        lo, hi = _number(opt, m.group(1)), _number(opt, m.group(2))
        scale, count = m.group(3), m.group(4)
        if scale == "log" and (lo <= 0 or hi <= 0):
            raise UserError(f"{opt}: a log range needs start and stop > 0")
        if lo > hi:
            raise UserError(f"{opt}: start {lo:g} is above stop {hi:g}")
        if not count:
            if not sample:
                raise UserError(
                    f"{opt}: a range needs a point count, e.g. {scale}20 "
                    f"(a range without a count is for --sample)"
                )
            axis = Axis(text, design, key, lo=lo, hi=hi, scale=scale)
            _check_value(opt, axis, lo)
            _check_value(opt, axis, hi)
            return axis
        n = int(count) if len(count) < 19 else 10**18
        if n > max_points:
            raise UserError(f"{opt}: {count} points exceed the limit of {max_points:,} sweep points; "
                            f"narrow the range or raise --max-points knowingly")
        if n < 1 or (n == 1 and lo != hi):
            raise UserError(f"{opt}: a range of distinct ends needs at least 2 points")
        vals = _spaced(lo, hi, n, scale)
    elif ":" in spec and "," not in spec and not spec.strip().startswith(("[", '"', "'")):
        raise UserError(
            f"{opt}: malformed range '{spec.strip()}'; expected start:stop:linN or start:stop:logN"
        )
    else:
        parts = [p for p in spec.split(",")]
        if any(not p.strip() for p in parts):
            raise UserError(f"{opt}: empty item in the list '{spec.strip()}'")
        vals = [_value(p) for p in parts]
    if len(set(map(repr, vals))) != len(vals):
        raise UserError(f"{opt}: a value is repeated")
    axis = Axis(text, design, key, values=tuple(vals))
    for v in vals:
        _check_value(opt, axis, v)
    return axis


def _spaced(lo: float, hi: float, n: int, scale: str) -> list[float]:
    import numpy as np

    if n == 1:
        return [lo]
    xs = np.geomspace(lo, hi, n) if scale == "log" else np.linspace(lo, hi, n)
    out = [float(x) for x in xs]
    out[0], out[-1] = lo, hi
    return out


def _check_name(opt: str, design: str | None, key: str, designs: list[str]) -> None:
    from backtest.engine.params import Params

    if design is None:
        fields = {f.name: f for f in dataclasses.fields(Params) if not f.name.startswith("_")}
        scalar = [n for n, f in fields.items() if not isinstance(getattr(Params(), n), tuple)]
        if key not in fields:
            raise UserError(
                f"{opt}: unknown parameter '{key}'; model parameters: {', '.join(scalar)}; "
                f"design parameters are written <design>.<parameter>"
            )
        if key not in scalar:
            raise UserError(f"{opt}: '{key}' is a list parameter; sweep a scalar (e.g. lev_tilt) instead")
        if key in ("venue", "price_path", "endo_baseline"):
            raise UserError(f"{opt}: '{key}' cannot be swept; set it with --venue/--set")
        return
    if design not in designs:
        raise UserError(f"{opt}: design '{design}' is not swept; --design has: {', '.join(designs)}")
    from strategies.config import fields_of
    from strategies.registry import entry
    from strategies.triggers import TriggerParams

    valid = [*fields_of(entry(design).params), *fields_of(TriggerParams)]
    if key not in valid:
        raise UserError(f"{opt}: unknown parameter '{key}' of design '{design}'; valid: {', '.join(valid)}")


def _check_value(opt: str, axis: Axis, value: Any) -> None:
    if axis.design is None:
        from backtest.engine.params import Params

        try:
            Params.from_overrides({axis.key: value})
        except UserError as e:
            raise UserError(f"{opt}: {e}") from None
        return
    from strategies.config import DesignConfig

    try:
        DesignConfig(raw={axis.design: {axis.key: value}}).get(axis.design)
    except UserError as e:
        raise UserError(f"{opt}: {str(e).split(': ', 1)[-1]}") from None


@dataclass(frozen=True)
class SweepPoint:
    """One design evaluation's parameters (the swept ones; fixed ``--set`` values are applied later)."""

    design: str
    design_values: tuple[tuple[str, Any], ...]
    model_values: tuple[tuple[str, Any], ...]


def count_points(designs: list[str], axes: list[Axis], *, sample: int | None = None) -> int:
    """How many points :func:`points` would make (at most; sampling drops repeats), without making them."""
    import math

    model = [a for a in axes if a.design is None]
    total = 0
    for d in designs:
        use = [a for a in axes if a.design == d] + model
        total += sample if sample is not None else math.prod(len(a.values) for a in use)
    return total


def points(
    designs: list[str], axes: list[Axis], *, sample: int | None = None, seed: int = 0
) -> list[SweepPoint]:
    """Every grid point per design (cartesian product), or ``sample`` random points per design."""
    import itertools
    import zlib

    import numpy as np

    names = [a.name for a in axes]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise UserError(f"--grid {sorted(dup)[0]}: given twice")
    out: list[SweepPoint] = []
    model = [a for a in axes if a.design is None]
    for d in designs:
        mine = [a for a in axes if a.design == d]
        use = mine + model
        if sample is None:
            for combo in itertools.product(*(a.values for a in use)):
                out.append(_point(d, use, combo))
        else:
            rng = np.random.default_rng([seed, zlib.crc32(d.encode())])  # one stream per design
            seen: set[SweepPoint] = set()
            for _ in range(sample):
                p = _point(d, use, [a.draw(rng) for a in use])
                if p not in seen:
                    seen.add(p)
                    out.append(p)
    return out


def _point(design: str, axes: list[Axis], values: Any) -> SweepPoint:
    dv = tuple((a.key, v) for a, v in zip(axes, values, strict=True) if a.design is not None)
    mv = tuple((a.key, v) for a, v in zip(axes, values, strict=True) if a.design is None)
    return SweepPoint(design, dv, mv)
