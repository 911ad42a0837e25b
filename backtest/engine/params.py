"""Every model parameter, with its default, in one place (docs/MODEL.md §10).

``Params.from_overrides`` is the only way user text becomes parameters: unknown keys, bad values
and contradictions (weights not summing to one, negative shares) are ``UserError``s that name the
key and list the valid choices, so a typo can never silently fall back to a default.

The three leverage mixes (neutral, crowded, hedger) are derived from three scalars — a log-normal
over leverage, discretised onto the buckets (:func:`lev_family`) — because ten free weights per mix
cannot be calibrated against a handful of reported crash figures (docs/CALIBRATION.md). Explicit
weight vectors (``lev_neutral`` etc.) still override the family, one mix at a time.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from loaders.errors import UserError

LEVERAGE_BUCKETS = (2.0, 3.0, 5.0, 10.0, 20.0, 25.0, 50.0, 75.0, 100.0, 125.0)
LEV_MIXES = ("lev_neutral", "lev_crowded", "lev_hedger")


def lev_family(median: float, sigma: float) -> tuple[float, ...]:
    """Weights of a log-normal leverage distribution (``median``, log-sd ``sigma``) on the buckets.

    Each bucket takes the probability mass between the geometric midpoints to its neighbours; the
    first bucket also takes everything below (1x..2x), the last everything above (truncation at 125x).
    """
    mu = math.log(median)
    edges = [math.log(math.sqrt(a * b)) for a, b in zip(LEVERAGE_BUCKETS, LEVERAGE_BUCKETS[1:], strict=False)]
    cdf = [0.0] + [0.5 * (1.0 + math.erf((e - mu) / (sigma * math.sqrt(2.0)))) for e in edges] + [1.0]
    w = [max(hi - lo, 0.0) for lo, hi in zip(cdf, cdf[1:], strict=False)]
    total = sum(w)
    return tuple(x / total for x in w)

CHOICES: dict[str, tuple[str, ...]] = {
    "surplus_mode": ("venue", "margin", "fee"),
    "impact_range": ("mark", "last"),
    "waterfall": ("adl", "socialized"),
    "price_path": ("historical", "endogenous"),
}


@dataclass(frozen=True)
class Params:
    """Model parameters; see docs/MODEL.md §10 for the reason behind each default."""

    venue: str = "binanceusdm"
    impact_y: float = 1.0  # square-root law coefficient (Toth et al.); not identified by the fit
    impact_cap: float = 0.25
    # the depth the forced flow meets (MODEL §5.3, backtest/engine/liquidity.py)
    impact_range: str = "mark"  # which bar range gives sigma: the mark (index-based) or the last price
    impact_kappa: float = 0.5  # depth collapse: impact x (sigma / normal sigma)^kappa (fitted)
    impact_beta: float = 0.1  # resolution bridge: impact x (impact_ref_s / bar length)^beta (fitted)
    impact_ref_s: float = 60.0  # reference bar length of the law (the finest recorded bars)
    impact_norm_halflife_s: float = 259_200.0  # half-life of the 'normal' volatility (EWMA, 3 days)
    surplus_mode: str = "venue"
    clearance_fee: float = 0.0125
    trading_fee: float = 0.0004
    waterfall: str = "adl"
    venue_share: float = 0.2
    oi_volume_ratio: float = 0.25
    oi_max_age_s: float = 7200.0
    close_volume_share: float = 0.15  # fitted (docs/CALIBRATION.md); was 0.25
    open_volume_share: float = 0.15  # fitted; was 0.25
    close_cap: float = 0.5
    oi_regrow_s: float = 86_400.0  # OI regrowth toward the pre-window book, time constant (0 = none)
    # the fund's take-over of last pieces and their gradual offload, time constant (MODEL §5.6; 0 = at once)
    takeover_tau_s: float = 0.0
    prune_frac: float = 1e-9
    funding_neutral: float = 0.0001
    funding_ref: float = 0.0005
    taker_ref: float = 0.1
    lev_tilt: float = 1.0
    lev_median: float = 1.5  # fitted, interior of 1..20 (docs/CALIBRATION.md)
    lev_sigma: float = 1.0  # fitted, interior of 0.5..2
    lev_skew: float = 1.5  # fitted, interior of 1..2.5
    # explicit weight vectors; empty = derived from (lev_median, lev_sigma, lev_skew), see lev_mixes()
    lev_neutral: tuple[float, ...] = ()
    lev_crowded: tuple[float, ...] = ()
    lev_hedger: tuple[float, ...] = ()
    size_usd: tuple[float, ...] = (5_000.0, 100_000.0, 2_000_000.0)
    size_share: tuple[float, ...] = (0.3, 0.3, 0.4)
    price_path: str = "historical"
    endo_decay_s: float = 1800.0
    endo_baseline: str = "none"
    # start capital of designs with capital_usd = "event" on a window whose catalog lists no fund of the
    # venue: fund / OI at the window start; 0 = the ratio of the venue's listed fund nearest in time
    # (backtest/capital.py)
    fund_oi_ratio: float = 0.0
    _lev_source: str = field(default="", compare=False, repr=False)

    def __post_init__(self) -> None:
        _check_family(self)
        derived = lev_mixes(self.lev_median, self.lev_sigma, self.lev_skew)
        source = []
        for key, vec in zip(LEV_MIXES, derived, strict=True):
            if getattr(self, key):
                source.append(f"{key} explicit")
            else:
                object.__setattr__(self, key, vec)  # frozen: resolved once, here
        object.__setattr__(self, "_lev_source", ", ".join(source) or "family")
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
        out = {
            f"param.{k}": (" ".join(f"{x:.6g}" for x in v) if isinstance(v, list) else str(v))
            for k, v in self.to_dict().items()
        }
        out["param.lev_mix_source"] = (
            f"log-normal family: median {self.lev_median:g}x, sigma {self.lev_sigma:g}, "
            f"skew {self.lev_skew:g}"
            if self._lev_source == "family"
            else f"{self._lev_source}; others from the log-normal family"
        )
        return out


def lev_mixes(median: float, sigma: float, skew: float) -> tuple[tuple[float, ...], ...]:
    """(neutral, crowded, hedger) mixes: the crowded side's median leverage is ``median x skew``, the
    hedgers' ``median / skew`` (DESIGN §5.1: the crowded side is more levered, the other side hedges)."""
    return (
        lev_family(median, sigma),
        lev_family(median * skew, sigma),
        lev_family(median / skew, sigma),
    )


def _check_family(p: Params) -> None:
    """The three family scalars inside their domains before the mixes are derived from them."""
    for key in ("lev_median", "lev_sigma", "lev_skew"):
        v = getattr(p, key)
        if not isinstance(v, float | int) or not DOMAINS[key].holds(float(v)):
            raise UserError(f"--set {key}={v}: {DOMAINS[key].text()}")


def _coerce(key: str, raw: Any, default: Any) -> Any:
    if isinstance(default, tuple):
        # an empty list resets a leverage mix to its family-derived default
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


@dataclass(frozen=True)
class Domain:
    """The allowed values of a numeric parameter: finite, ``lo``..``hi`` (``*_open``: strict), and why.

    Every bound is there to keep the replay's arithmetic finite (a divisor > 0, a share that cannot
    make notionals overflow) or to stay inside what the parameter means (a fraction <= 1)."""

    lo: float
    hi: float
    lo_open: bool = False
    hi_open: bool = False
    why: str = ""

    def text(self) -> str:
        return (f"must be a finite number {'>' if self.lo_open else '>='} {self.lo:g} and "
                f"{'<' if self.hi_open else '<='} {self.hi:g}" + (f" ({self.why})" if self.why else ""))

    def holds(self, v: float) -> bool:
        return (math.isfinite(v) and (v > self.lo if self.lo_open else v >= self.lo)
                and (v < self.hi if self.hi_open else v <= self.hi))


YEAR_S = 365.0 * 86_400.0
FRACTION = Domain(0.0, 1.0, why="a fraction")
SPAN_S = Domain(0.0, YEAR_S, why="seconds, at most a year")
POSITIVE_SPAN_S = Domain(1.0, YEAR_S, why="seconds, a divisor: at least 1 s, at most a year")
# Every numeric model parameter's domain, stated once (docs/MODEL.md §10 lists the same bounds).
DOMAINS: dict[str, Domain] = {
    "impact_y": Domain(0.0, 100.0, why="square-root law coefficient; 0.5-1 in the literature"),
    "impact_cap": FRACTION,
    "impact_kappa": Domain(0.0, 10.0, why="exponent of the depth collapse"),
    "impact_beta": Domain(0.0, 1.0, why="1 = a bar's range scaled like a straight move"),
    "impact_ref_s": POSITIVE_SPAN_S,
    "impact_norm_halflife_s": POSITIVE_SPAN_S,
    "clearance_fee": FRACTION,
    "trading_fee": FRACTION,
    "venue_share": FRACTION,
    "oi_volume_ratio": Domain(0.0, 100.0, why="open interest in days of traded volume"),
    "oi_max_age_s": SPAN_S,
    "close_volume_share": Domain(0.0, 1e6, why="closes are capped by close_cap anyway"),
    "open_volume_share": Domain(0.0, 1.0, why="a bar cannot open more than it trades"),
    "close_cap": FRACTION,
    "oi_regrow_s": SPAN_S,
    "takeover_tau_s": SPAN_S,
    "fund_oi_ratio": Domain(0.0, 10.0, why="fund / open interest at the window start; 0 = from the nearest "
                            "listed fund"),
    "prune_frac": Domain(0.0, 1.0, hi_open=True, why="a fraction of a side"),
    "funding_neutral": Domain(0.0, 0.05, why="a funding rate per 8 h; venue caps are a few %"),
    "funding_ref": Domain(1e-6, 0.05, why="a funding rate per 8 h, a divisor"),
    "taker_ref": Domain(1e-4, 0.5, why="a taker-buy share away from 50 %, a divisor"),
    "lev_tilt": FRACTION,
    "lev_median": Domain(0.0, 125.0, lo_open=True, why="leverage"),
    "lev_sigma": Domain(0.01, 10.0, why="log-sd of leverage"),
    "lev_skew": Domain(1.0, 125.0, why="crowded median = median x skew"),
    "endo_decay_s": POSITIVE_SPAN_S,
}
# a parameter added without a row keeps the old rule (finite and >= 0) with a bound that stays finite
DEFAULT_DOMAIN = Domain(0.0, 1e12, why="no stated domain: finite, >= 0")
SIZE_USD = Domain(0.0, 1e12, lo_open=True, why="account notional in USD")


def domains_table() -> str:
    """The allowed values of every numeric parameter as markdown (docs/MODEL.md §10 holds this table)."""
    rows = ["| name | allowed |", "|---|---|"]
    rows += [f"| {k} | {d.text().removeprefix('must be ')} |" for k, d in DOMAINS.items()]
    rows.append(f"| size_usd (each entry) | {SIZE_USD.text().removeprefix('must be ')} |")
    return "\n".join(rows)


def check_domains(p: Params) -> None:
    """Every numeric parameter and list entry inside its :data:`DOMAINS` row, else a one-line UserError."""
    for f in dataclasses.fields(p):
        v = getattr(p, f.name)
        if isinstance(v, float | int) and not isinstance(v, bool) and not f.name.startswith("_"):
            dom = DOMAINS.get(f.name, DEFAULT_DOMAIN)
            if not dom.holds(float(v)):
                raise UserError(f"--set {f.name}={v}: {dom.text()}")
    for x in p.size_usd:
        if not SIZE_USD.holds(x):
            raise UserError(f"--set size_usd={' '.join(f'{y:g}' for y in p.size_usd)}: every entry "
                            f"{SIZE_USD.text()}")


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
    check_domains(p)
    for key in LEV_MIXES:
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
    _weights(bad, "size_share", p.size_share)


def _weights(bad, key: str, w: tuple[float, ...]) -> None:
    if any(not math.isfinite(x) or x < 0 for x in w):
        raise bad(key, "weights must be finite and >= 0")
    if abs(sum(w) - 1.0) > 1e-9:
        raise bad(key, f"weights sum to {sum(w):g}, not 1")
