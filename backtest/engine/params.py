"""Every model parameter, with its default, in one place (docs/MODEL.md §10).

``Params.from_overrides`` is the only way user text becomes parameters: unknown keys, bad values
and contradictions (weights not summing to one, negative shares) are ``UserError``s that name the
key and list the valid choices, so a typo can never silently fall back to a default.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from loaders.errors import UserError

LEVERAGE_BUCKETS = (2.0, 3.0, 5.0, 10.0, 20.0, 25.0, 50.0, 75.0, 100.0, 125.0)

CHOICES: dict[str, tuple[str, ...]] = {
    "surplus_mode": ("margin", "fee"),
    "waterfall": ("adl", "socialized"),
    "price_path": ("historical", "endogenous"),
}


@dataclass(frozen=True)
class Params:
    """Model parameters; see docs/MODEL.md §10 for the reason behind each default."""

    venue: str = "binanceusdm"
    impact_y: float = 1.0
    impact_cap: float = 0.25
    surplus_mode: str = "margin"
    clearance_fee: float = 0.0125
    trading_fee: float = 0.0004
    waterfall: str = "adl"
    venue_share: float = 0.2
    oi_volume_ratio: float = 0.25
    oi_max_age_s: float = 7200.0
    close_volume_share: float = 0.25
    open_volume_share: float = 0.25
    close_cap: float = 0.5
    prune_frac: float = 1e-9
    funding_neutral: float = 0.0001
    funding_ref: float = 0.0005
    taker_ref: float = 0.1
    lev_tilt: float = 1.0
    lev_neutral: tuple[float, ...] = (0.10, 0.10, 0.15, 0.20, 0.20, 0.10, 0.08, 0.04, 0.02, 0.01)
    lev_crowded: tuple[float, ...] = (0.04, 0.05, 0.08, 0.15, 0.20, 0.15, 0.15, 0.08, 0.06, 0.04)
    lev_hedger: tuple[float, ...] = (0.35, 0.20, 0.20, 0.15, 0.05, 0.03, 0.02, 0.0, 0.0, 0.0)
    size_usd: tuple[float, ...] = (5_000.0, 100_000.0, 2_000_000.0)
    size_share: tuple[float, ...] = (0.3, 0.3, 0.4)
    price_path: str = "historical"
    endo_decay_s: float = 1800.0
    endo_baseline: str = "none"

    def __post_init__(self) -> None:
        validate(self)

    @classmethod
    def from_overrides(cls, overrides: dict[str, Any] | None = None) -> Params:
        """Defaults with ``overrides`` applied; values may be text (``--set k=v``) or Python values."""
        overrides = overrides or {}
        fields = {f.name: f for f in dataclasses.fields(cls) if not f.name.startswith("_")}
        kwargs: dict[str, Any] = {}
        for key, raw in overrides.items():
            if key not in fields:
                raise UserError(f"--set {key}: unknown parameter; valid: {', '.join(sorted(fields))}")
            kwargs[key] = _coerce(key, raw, getattr(cls(), key))
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        return {
            f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
            for f in dataclasses.fields(self)
            if not f.name.startswith("_")
        }

    def assumptions(self) -> dict[str, str]:
        """Every parameter as text, for the result record."""
        return {
            f"param.{k}": (" ".join(f"{x:g}" for x in v) if isinstance(v, list) else str(v))
            for k, v in self.to_dict().items()
        }


def _coerce(key: str, raw: Any, default: Any) -> Any:
    if isinstance(default, tuple):
        items = raw.replace(",", " ").split() if isinstance(raw, str) else list(raw)
        try:
            return tuple(float(x) for x in items)
        except (TypeError, ValueError):
            raise UserError(f"--set {key}={raw}: expected a list of numbers") from None
    if isinstance(default, float):
        try:
            return float(raw)
        except (TypeError, ValueError):
            raise UserError(f"--set {key}={raw}: expected a number") from None
    return str(raw)


def validate(p: Params) -> None:
    """Reject contradictory parameter sets with a message naming the parameter."""
    from backtest.engine.venue_rules import VENUES

    def bad(key: str, msg: str) -> UserError:
        return UserError(f"--set {key}={getattr(p, key)}: {msg}")

    for key, choices in CHOICES.items():
        if getattr(p, key) not in choices:
            raise bad(key, f"valid: {', '.join(choices)}")
    if p.venue not in VENUES:
        raise bad("venue", f"no margin rules; valid: {', '.join(VENUES)}")
    for f in dataclasses.fields(p):
        v = getattr(p, f.name)
        if isinstance(v, float) and (not math.isfinite(v) or v < 0):
            raise bad(f.name, "must be a finite number >= 0")
    for key in ("impact_cap", "close_cap", "lev_tilt", "venue_share", "clearance_fee", "trading_fee"):
        if getattr(p, key) > 1:
            raise bad(key, "must be <= 1")
    if p.endo_decay_s <= 0:
        raise bad("endo_decay_s", "must be > 0")
    for key in ("lev_neutral", "lev_crowded", "lev_hedger"):
        w = getattr(p, key)
        if len(w) != len(LEVERAGE_BUCKETS):
            raise bad(
                key,
                f"needs {len(LEVERAGE_BUCKETS)} weights, one per leverage "
                f"{', '.join(f'{x:g}x' for x in LEVERAGE_BUCKETS)}",
            )
        _weights(bad, key, w)
    if len(p.size_usd) != len(p.size_share) or not p.size_usd:
        raise bad("size_share", f"needs one share per size class ({len(p.size_usd)} in size_usd)")
    if any(x <= 0 for x in p.size_usd):
        raise bad("size_usd", "account notionals must be > 0")
    _weights(bad, "size_share", p.size_share)


def _weights(bad, key: str, w: tuple[float, ...]) -> None:
    if any(not math.isfinite(x) or x < 0 for x in w):
        raise bad(key, "weights must be finite and >= 0")
    if abs(sum(w) - 1.0) > 1e-9:
        raise bad(key, f"weights sum to {sum(w):g}, not 1")
