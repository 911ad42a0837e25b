"""The crash-window catalog: which windows exist, and what was reported about each.

The catalog is a TOML file (``data/events.toml``) so that adding a window needs no code; users
merge their own file over it (same id replaces). Validation is strict because a typo in a key
(``wramup_days``) would otherwise silently fall back to a default and change every result.
Reported figures carry scope, source and confidence so a reconstruction can be compared with
them honestly (CEX liquidation totals after April 2021 are lower bounds, flagged as such).
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from backtest.paths import builtin_events_file
from loaders.errors import InputError, UserError

#: Kinds of reported figure; the catalog table shows the first figure of each kind.
KINDS = ("liquidations", "long_share", "oi_change", "funding_extreme", "price_move", "adl", "fund_change")
CONFIDENCES = ("H", "M", "L")
DEFAULT_WARMUP = timedelta(days=30)
MAX_WARMUP_DAYS = 365  # the book is rebuilt over the warm-up; a year is far beyond the 30-day default

_EVENT_REQUIRED = ("title", "start", "end", "symbols", "venues")
_EVENT_OPTIONAL = ("warmup_days", "peak", "peak_note", "gaps", "reported", "fund_before")
_REPORTED_REQUIRED = ("kind", "unit", "scope", "source", "confidence")
_REPORTED_OPTIONAL = ("value", "before", "after", "at", "lower_bound", "note", "measured_from", "measured_to",
                      "measured_why", "change_bound", "change_bound_sense", "outside_window",
                      "venue", "fund", "fund_symbols")
#: An insurance-fund outcome: which fund (only this kind takes these keys) ...
_FUND_CHANGE_KEYS = ("venue", "fund", "fund_symbols")
#: ... and what it needs: both balances and the interval they span (calibrate replays exactly that).
_FUND_CHANGE_REQUIRED = (*_FUND_CHANGE_KEYS, "before", "after", "measured_from", "measured_to")
#: Currencies of a fund calibrate can replay (the replayed funds hold USD).
FUND_UNITS = ("USD", "USDT", "USDC")
#: How a change stated only as a bound reads: ``at_most`` -0.5 = "more than halved".
BOUND_SENSES = ("at_most", "at_least")
#: Figure kinds whose reported change calibrate can take as a bound.
_BOUND_KINDS = ("oi_change",)
_FUND_REQUIRED = ("venue", "fund", "balance", "currency", "source")
_FUND_OPTIONAL = ("date", "confidence", "note")
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


@dataclass(frozen=True)
class Reported:
    """One published figure about a window, with what it covers and how far to trust it."""

    name: str
    kind: str
    unit: str
    scope: str
    source: str
    confidence: str
    value: float | None = None
    before: float | None = None
    after: float | None = None
    at: datetime | None = None
    lower_bound: bool = False
    note: str = ""
    #: the replay interval the figure is measured over, and why (read off the scope text)
    measured_from: datetime | None = None
    measured_to: datetime | None = None
    measured_why: str = ""
    #: a change reported only as a bound ("more than halved"): the bound and its sense (BOUND_SENSES)
    change_bound: float | None = None
    change_bound_sense: str = ""
    #: why the figure is not about the window: shown by calibrate, not scored
    outside_window: str = ""
    #: fund_change only: the venue (ccxt id), the fund's name and the exchange symbols it covers
    venue: str = ""
    fund: str = ""
    fund_symbols: tuple[str, ...] = ()

    @property
    def measured(self) -> tuple[datetime, datetime, str] | None:
        """(start, end, why) of the catalog-stated interval, or None for the default rule."""
        if self.measured_from is None or self.measured_to is None:
            return None
        return self.measured_from, self.measured_to, self.measured_why

    @property
    def change(self) -> float | None:
        """Relative change: the stated value for moves, else after/before - 1 when both levels are known."""
        if self.before and self.after is not None:
            return self.after / self.before - 1.0
        if self.value is not None and self.unit == "fraction" and self.kind in ("oi_change", "price_move"):
            return self.value
        return None

    @property
    def delta(self) -> float | None:
        """Absolute change ``after - before`` when both levels are known (a fund's balance change)."""
        if self.before is None or self.after is None:
            return None
        return self.after - self.before

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        if self.kind == "fund_change":
            out.update(venue=self.venue, fund=self.fund, fund_symbols=list(self.fund_symbols))
        for k in ("value", "before", "after"):
            if getattr(self, k) is not None:
                out[k] = getattr(self, k)
        out["unit"] = self.unit
        if self.at is not None:
            out["at"] = _iso(self.at)
        out.update(scope=self.scope, source=self.source, confidence=self.confidence,
                   lower_bound=self.lower_bound)
        if self.note:
            out["note"] = self.note
        if self.measured_from is not None and self.measured_to is not None:
            out.update(measured_from=_iso(self.measured_from), measured_to=_iso(self.measured_to),
                       measured_why=self.measured_why)
        if self.change_bound is not None:
            out.update(change_bound=self.change_bound, change_bound_sense=self.change_bound_sense)
        if self.outside_window:
            out["outside_window"] = self.outside_window
        return out


@dataclass(frozen=True)
class FundRecord:
    """An insurance-fund balance just before a window: the natural starting capital of a venue-like design."""

    venue: str
    fund: str
    balance: float
    currency: str
    source: str
    date: date | None = None
    confidence: str = ""
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"venue": self.venue, "fund": self.fund, "balance": self.balance,
                               "currency": self.currency}
        if self.date is not None:
            out["date"] = self.date.isoformat()
        out["source"] = self.source
        if self.confidence:
            out["confidence"] = self.confidence
        if self.note:
            out["note"] = self.note
        return out


@dataclass(frozen=True)
class Event:
    """A crash window: [start, end) in naive UTC, loaded from ``start - warmup``."""

    id: str
    title: str
    start: datetime
    end: datetime
    warmup: timedelta
    peak: datetime | None
    symbols: tuple[str, ...]
    venues: tuple[str, ...]
    reported: dict[str, Reported] = field(default_factory=dict)
    fund_before: list[FundRecord] = field(default_factory=list)
    gaps: tuple[str, ...] = ()
    peak_note: str = ""
    source_file: str = ""

    @property
    def load_start(self) -> datetime:
        return self.start - self.warmup

    def first(self, kind: str) -> Reported | None:
        """The headline figure of a kind (the first one listed in the catalog)."""
        return next((r for r in self.reported.values() if r.kind == kind), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "start": _iso(self.start),
            "end": _iso(self.end),
            "warmup_days": self.warmup / timedelta(days=1),
            "load_start": _iso(self.load_start),
            "peak": _iso(self.peak) if self.peak else None,
            "peak_note": self.peak_note,
            "symbols": list(self.symbols),
            "venues": list(self.venues),
            "reported": {k: r.to_dict() for k, r in self.reported.items()},
            "fund_before": [f.to_dict() for f in self.fund_before],
            "gaps": list(self.gaps),
            "source_file": self.source_file,
        }


@dataclass
class Catalog:
    """The ordered set of windows: built-ins first, then user windows (same id replaces in place)."""

    events: list[Event]
    files: list[Path] = field(default_factory=list)

    @property
    def ids(self) -> list[str]:
        return [e.id for e in self.events]

    def get(self, event_id: str) -> Event:
        for e in self.events:
            if e.id == event_id:
                return e
        raise UserError(f"unknown event '{event_id}'; valid ids: {', '.join(self.ids)}")

    def select(self, spec: str, option: str = "--events") -> list[Event]:
        """Events named by a comma-separated id list, or ``all``; bad lists name ``option``."""
        ids = [e.strip() for e in spec.split(",") if e.strip()]
        if not ids:
            raise UserError(f"{option}: no event given")
        if ids == ["all"]:
            return list(self.events)
        if "all" in ids:
            raise UserError(f"{option}: 'all' cannot be combined with ids")
        if len(set(ids)) != len(ids):
            raise UserError(f"{option} {spec}: an event is repeated")
        return [self.get(i) for i in ids]

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self.events)

    def __contains__(self, event_id: object) -> bool:
        return event_id in self.ids

    def to_json(self) -> str:
        from backtest.finite import dumps

        return dumps([e.to_dict() for e in self.events], indent=2, ensure_ascii=False)


def load_catalog(extra_file: str | Path | None = None) -> Catalog:
    """The built-in catalog, with ``extra_file`` (same schema) merged over it."""
    builtin = builtin_events_file()
    events = parse_file(builtin)
    files = [builtin]
    if extra_file is not None:
        extra = Path(extra_file)
        by_id = {e.id: i for i, e in enumerate(events)}
        for e in parse_file(extra):
            if e.id in by_id:
                events[by_id[e.id]] = e
            else:
                by_id[e.id] = len(events)
                events.append(e)
        files.append(extra)
    return Catalog(events, files)


def parse_file(path: str | Path) -> list[Event]:
    """Parse and validate one catalog file; any problem is an ``InputError`` naming file, event and key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(path, "no such events file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read events file: {exc}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r"\(at line (\d+), column \d+\)", msg)
        line = int(m.group(1)) if m else None
        reason = re.sub(r" ?\(at line.*\)", "", msg)
        raise InputError(path, f"not valid TOML: {reason}", line) from None
    return [_parse_event(_Ctx(path, text, eid), eid, body) for eid, body in doc.items()]


# -- validation ------------------------------------------------------------------------------

class _Ctx:
    """Where we are in the file, so errors name file, line, event and key."""

    def __init__(self, path: Path, text: str, event_id: str) -> None:
        self.path, self.lines, self.event_id = path, text.splitlines(), event_id

    def error(self, msg: str, key: str | None = None, section: str | None = None) -> InputError:
        section = section or self.event_id
        where = f"event '{self.event_id}'" + (f", key '{key}'" if key else "")
        line = self._line(section, key.split(".")[-1] if key else None)
        return InputError(self.path, f"{where}: {msg}", line)

    def _line(self, section: str, key: str | None) -> int | None:
        header = re.compile(r"^\s*\[\[?\s*" + re.escape(section) + r"\s*\]\]?\s*(#.*)?$")
        start = next((i for i, ln in enumerate(self.lines) if header.match(ln)), None)
        if start is None:
            return None
        if key is None:
            return start + 1
        keyre = re.compile(r"^\s*" + re.escape(key) + r"\s*=")
        for i in range(start + 1, len(self.lines)):
            if self.lines[i].lstrip().startswith("["):
                break
            if keyre.match(self.lines[i]):
                return i + 1
        return start + 1


def _check_keys(ctx: _Ctx, body: dict, required: tuple[str, ...], optional: tuple[str, ...],
                prefix: str, section: str) -> None:
    valid = required + optional
    for k in body:
        if k not in valid:
            raise ctx.error(f"unknown key; valid keys: {', '.join(valid)}", f"{prefix}{k}", section)
    for k in required:
        if k not in body:
            raise ctx.error("required key is missing", f"{prefix}{k}", section)


def _parse_event(ctx: _Ctx, eid: str, body: Any) -> Event:
    if not isinstance(body, dict):
        msg = f"top-level key '{eid}' is not an event table ([{eid}] with title, start, end, ...)"
        raise InputError(ctx.path, msg)
    if not _ID_RE.match(eid):
        raise ctx.error("event id must be lower-case letters, digits, '-' or '_'")
    _check_keys(ctx, body, _EVENT_REQUIRED, _EVENT_OPTIONAL, "", eid)
    title = _text(ctx, body["title"], "title", eid)
    start = _when(ctx, body["start"], "start", eid)
    end = _when(ctx, body["end"], "end", eid)
    if start >= end:
        raise ctx.error(f"start {_iso(start)} must be before end {_iso(end)}", "start")
    warmup_days = body.get("warmup_days", DEFAULT_WARMUP.days)
    if not _is_number(warmup_days) or not 0 <= warmup_days <= MAX_WARMUP_DAYS:
        raise ctx.error(f"must be a number of days from 0 to {MAX_WARMUP_DAYS}, not {warmup_days!r}",
                        "warmup_days")
    peak = _when(ctx, body["peak"], "peak", eid) if "peak" in body else None
    if peak is not None and not start <= peak < end:
        raise ctx.error(f"peak {_iso(peak)} lies outside the window [{_iso(start)}, {_iso(end)})", "peak")
    reported_body = body.get("reported", {})
    if not isinstance(reported_body, dict):
        raise ctx.error("must be a table of named figures ([<id>.reported.<name>])", "reported")
    reported = {name: _parse_reported(ctx, name, r) for name, r in reported_body.items()}
    load_start = start - timedelta(days=warmup_days)
    for name, r in reported.items():
        if r.measured is not None and not (load_start <= r.measured[0] and r.measured[1] <= end):
            msg = (f"interval {_iso(r.measured_from)} -> {_iso(r.measured_to)} lies outside the replayed "
                   f"range [{_iso(load_start)}, {_iso(end)}] (start - warmup_days, end)")
            raise ctx.error(msg, f"reported.{name}.measured_from", f"{eid}.reported.{name}")
    symbols = _names(ctx, body["symbols"], "symbols", eid)
    for name, r in reported.items():
        outside = [s for s in r.fund_symbols if s not in symbols]
        if outside:
            msg = (f"{', '.join(outside)} not among the event's symbols ({', '.join(symbols)}); a fund "
                   "covers symbols the window replays")
            raise ctx.error(msg, f"reported.{name}.fund_symbols", f"{eid}.reported.{name}")
    funds_body = body.get("fund_before", [])
    if not isinstance(funds_body, list):
        raise ctx.error("must be an array of tables ([[<id>.fund_before]])", "fund_before")
    funds = [_parse_fund(ctx, i, f) for i, f in enumerate(funds_body)]
    return Event(
        id=eid,
        title=title,
        start=start,
        end=end,
        warmup=timedelta(days=warmup_days),
        peak=peak,
        symbols=symbols,
        venues=_names(ctx, body["venues"], "venues", eid),
        reported=reported,
        fund_before=funds,
        gaps=tuple(_text(ctx, g, "gaps", eid) for g in _list(ctx, body.get("gaps", []), "gaps", eid)),
        peak_note=_text(ctx, body.get("peak_note", ""), "peak_note", eid, allow_empty=True),
        source_file=str(ctx.path),
    )


def _parse_reported(ctx: _Ctx, name: str, body: Any) -> Reported:
    section = f"{ctx.event_id}.reported.{name}"
    prefix = f"reported.{name}."
    if not isinstance(body, dict):
        raise ctx.error("must be a table", prefix.rstrip("."))
    _check_keys(ctx, body, _REPORTED_REQUIRED, _REPORTED_OPTIONAL, prefix, section)
    kind = body["kind"]
    if kind not in KINDS:
        raise ctx.error(f"kind {kind!r} is not one of {', '.join(KINDS)}", prefix + "kind", section)
    nums = {}
    for k in ("value", "before", "after"):
        if k in body:
            if not _is_number(body[k]):
                raise ctx.error(f"must be a number, not {body[k]!r}", prefix + k, section)
            nums[k] = float(body[k])
    if not nums:
        raise ctx.error("a figure needs 'value' or 'before'/'after'", prefix + "value", section)
    conf = body["confidence"]
    if conf not in CONFIDENCES:
        raise ctx.error(f"confidence {conf!r} is not one of H, M, L", prefix + "confidence", section)
    lb = body.get("lower_bound", False)
    if not isinstance(lb, bool):
        raise ctx.error(f"must be true or false, not {lb!r}", prefix + "lower_bound", section)
    fund = _fund_change(ctx, body, kind, nums, prefix, section)
    return Reported(
        name=name,
        kind=kind,
        **_measurement(ctx, body, kind, prefix, section),
        **fund,
        unit=_text(ctx, body["unit"], prefix + "unit", section),
        scope=_text(ctx, body["scope"], prefix + "scope", section),
        source=_text(ctx, body["source"], prefix + "source", section),
        confidence=conf,
        at=_when(ctx, body["at"], prefix + "at", section) if "at" in body else None,
        lower_bound=lb,
        note=_text(ctx, body.get("note", ""), prefix + "note", section, allow_empty=True),
        **nums,
    )


def _fund_change(ctx: _Ctx, body: dict, kind: str, nums: dict[str, float], prefix: str,
                 section: str) -> dict[str, Any]:
    """The keys of an insurance-fund outcome: only ``fund_change`` takes them, and it needs all of them
    (calibrate replays a fund started at ``before`` over exactly the stated interval)."""
    if kind != "fund_change":
        for k in _FUND_CHANGE_KEYS:
            if k in body:
                raise ctx.error(f"only fund_change figures take '{k}', not {kind!r}", prefix + k, section)
        return {}
    for k in _FUND_CHANGE_REQUIRED:
        if k not in body:
            raise ctx.error(f"a fund_change figure needs '{k}' ({', '.join(_FUND_CHANGE_REQUIRED)})",
                            prefix + k, section)
    if "value" in body:
        raise ctx.error("a fund_change figure takes no 'value': its change is after - before",
                        prefix + "value", section)
    if "lower_bound" in body:
        raise ctx.error("a fund_change figure takes no 'lower_bound' (it is compared as reported); "
                        "say in 'note' if a balance is only a bound", prefix + "lower_bound", section)
    if not (math.isfinite(nums["before"]) and nums["before"] > 0):
        raise ctx.error(f"a fund's balance before must be a positive number, not {body['before']!r}",
                        prefix + "before", section)
    if not (math.isfinite(nums["after"]) and nums["after"] >= 0):
        raise ctx.error(f"a fund's balance after must be a non-negative number, not {body['after']!r}",
                        prefix + "after", section)
    if body["unit"] not in FUND_UNITS:
        raise ctx.error(f"unit {body['unit']!r} is not one of {', '.join(FUND_UNITS)} (calibrate replays a "
                        "USD fund)", prefix + "unit", section)
    symbols = _names(ctx, body["fund_symbols"], prefix + "fund_symbols", section)
    if len(set(symbols)) != len(symbols):
        raise ctx.error(f"a symbol is repeated in {list(symbols)}", prefix + "fund_symbols", section)
    return dict(venue=_text(ctx, body["venue"], prefix + "venue", section),
                fund=_text(ctx, body["fund"], prefix + "fund", section),
                fund_symbols=symbols)


def _measurement(ctx: _Ctx, body: dict, kind: str, prefix: str, section: str) -> dict[str, Any]:
    """The optional keys that say how calibrate measures a figure; a half-stated one is an error,
    because calibrate would silently fall back to its default rule."""
    out: dict[str, Any] = {}
    has_from, has_to = "measured_from" in body, "measured_to" in body
    if has_from != has_to:
        given, missing = ("measured_from", "measured_to") if has_from else ("measured_to", "measured_from")
        raise ctx.error(f"needs '{missing}' too (an interval has both ends)", prefix + given, section)
    if has_from:
        start = _when(ctx, body["measured_from"], prefix + "measured_from", section)
        end = _when(ctx, body["measured_to"], prefix + "measured_to", section)
        if start >= end:
            raise ctx.error(f"measured_from {_iso(start)} must be before measured_to {_iso(end)}",
                            prefix + "measured_from", section)
        if "measured_why" not in body:
            raise ctx.error("an interval needs 'measured_why' (printed with the row)",
                            prefix + "measured_why", section)
        out.update(measured_from=start, measured_to=end,
                   measured_why=_text(ctx, body["measured_why"], prefix + "measured_why", section))
    elif "measured_why" in body:
        raise ctx.error("needs 'measured_from' and 'measured_to'", prefix + "measured_why", section)
    has_bound, has_sense = "change_bound" in body, "change_bound_sense" in body
    if has_sense and not has_bound:
        raise ctx.error("needs 'change_bound'", prefix + "change_bound_sense", section)
    if has_bound:
        bound = body["change_bound"]
        if not _is_number(bound) or not bound > -1:
            raise ctx.error(f"must be a relative change above -1 (-100%), not {bound!r}",
                            prefix + "change_bound", section)
        if kind not in _BOUND_KINDS:
            raise ctx.error(f"only {', '.join(_BOUND_KINDS)} figures take a change bound, not {kind!r}",
                            prefix + "change_bound", section)
        if not has_sense:
            raise ctx.error(f"needs 'change_bound_sense' ({' | '.join(BOUND_SENSES)})",
                            prefix + "change_bound", section)
        sense = body["change_bound_sense"]
        if sense not in BOUND_SENSES:
            raise ctx.error(f"sense {sense!r} is not one of {', '.join(BOUND_SENSES)}",
                            prefix + "change_bound_sense", section)
        out.update(change_bound=float(bound), change_bound_sense=sense)
    if "outside_window" in body:
        if has_bound:
            raise ctx.error("a figure outside the window is not scored, so it takes no 'change_bound'",
                            prefix + "outside_window", section)
        out["outside_window"] = _text(ctx, body["outside_window"], prefix + "outside_window", section)
    return out


def _parse_fund(ctx: _Ctx, i: int, body: Any) -> FundRecord:
    section = f"{ctx.event_id}.fund_before"
    prefix = f"fund_before[{i}]."
    if not isinstance(body, dict):
        raise ctx.error("must be a table", prefix.rstrip("."))
    _check_keys(ctx, body, _FUND_REQUIRED, _FUND_OPTIONAL, prefix, section)
    if not _is_number(body["balance"]) or body["balance"] < 0:
        bad = body["balance"]
        raise ctx.error(f"must be a non-negative number, not {bad!r}", prefix + "balance", section)
    conf = body.get("confidence", "")
    if conf and conf not in CONFIDENCES:
        raise ctx.error(f"confidence {conf!r} is not one of H, M, L", prefix + "confidence", section)
    day = None
    if "date" in body:
        day = _when(ctx, body["date"], prefix + "date", section).date()
    return FundRecord(
        venue=_text(ctx, body["venue"], prefix + "venue", section),
        fund=_text(ctx, body["fund"], prefix + "fund", section),
        balance=float(body["balance"]),
        currency=_text(ctx, body["currency"], prefix + "currency", section),
        source=_text(ctx, body["source"], prefix + "source", section),
        date=day,
        confidence=conf,
        note=_text(ctx, body.get("note", ""), prefix + "note", section, allow_empty=True),
    )


def _is_number(v: Any) -> bool:
    """A finite number (TOML allows nan and inf, which no figure or balance can be)."""
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _text(ctx: _Ctx, v: Any, key: str, section: str, *, allow_empty: bool = False) -> str:
    if not isinstance(v, str) or (not allow_empty and not v.strip()):
        raise ctx.error(f"must be a non-empty string, not {v!r}", key, section)
    return v


def _list(ctx: _Ctx, v: Any, key: str, section: str) -> list:
    if not isinstance(v, list):
        raise ctx.error(f"must be a list, not {v!r}", key, section)
    return v


def _names(ctx: _Ctx, v: Any, key: str, section: str) -> tuple[str, ...]:
    items = _list(ctx, v, key, section)
    if not items:
        raise ctx.error("must list at least one name", key, section)
    return tuple(_text(ctx, x, key, section) for x in items)


def _when(ctx: _Ctx, v: Any, key: str, section: str) -> datetime:
    """A TOML datetime / date or ISO string as naive UTC; naive input is taken as UTC."""
    if isinstance(v, str):
        try:
            v = datetime.fromisoformat(v.strip())
        except ValueError:
            raise ctx.error(f"bad date {v!r}; write e.g. 2021-05-19T13:10:00Z", key, section) from None
    if isinstance(v, datetime):
        return v.astimezone(UTC).replace(tzinfo=None) if v.tzinfo else v
    if isinstance(v, date):
        return datetime.combine(v, time())
    raise ctx.error(f"bad date {v!r}; write e.g. 2021-05-19T13:10:00Z", key, section)


def _iso(ts: datetime) -> str:
    return ts.isoformat() + "Z"
