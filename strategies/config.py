"""Design parameters: declared once per design, read from ``designs.toml`` and ``--set`` strings, validated.

Each design declares a frozen dataclass whose fields are built with :func:`param` (default, doc, range,
allowed words, source). That dataclass is the ONLY place a default lives; docs/DESIGNS.md and the error
messages are derived from its metadata. User text reaches a design only through :func:`build_params`,
so a typo (unknown key, wrong type, out-of-range value) is a ``UserError`` naming the key and the valid
choices, never a silent fallback to a default.

File format (``designs.toml``)::

    [static]                 # a table per registered design: overrides its defaults
    capital_usd = "event"

    [static-small]           # a named variant: any other label with a `design` key
    design = "static"
    capital_usd = 50e6

``--set`` strings: ``<label>.<key>=<value>`` where label is a design name or a variant label; the value
is read as a TOML value when it parses as one (``1e6``, ``true``, ``"x"``), else as bare text
(``--set static.capital_usd=event``).
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loaders.errors import InputError, UserError

KINDS = ("float", "int", "str", "bool")
#: upper bound of every start capital: 1e12 USD is ~3,000x the largest fund on record (Binance, ~300M in
#: 2021) and keeps capital-cost arithmetic finite; a coin capital is bounded by coins in existence.
MAX_CAPITAL_USD = 1e12
MAX_CAPITAL_COIN = 1e9


def param(default: Any, doc: str, *, kind: str | None = None, lo: float | None = None,
          hi: float | None = None, lo_open: bool = False, hi_open: bool = False,
          choices: Sequence[str] = (), words: Sequence[str] = (), source: str = "") -> Any:
    """A design parameter: a dataclass field whose metadata drives validation and the docs.

    ``kind`` is the value type (inferred from the default); ``lo``/``hi`` bound numbers (``*_open``:
    strict); ``choices`` lists the allowed values of a text parameter; ``words`` are special text
    values a numeric parameter also accepts (e.g. ``"event"``); ``source`` says where the default comes from.
    """
    if kind is None:
        kind = {bool: "bool", int: "int", float: "float", str: "str"}[type(default)]
    if kind not in KINDS:
        raise ValueError(f"param kind must be one of {KINDS}, got {kind}")
    meta = {"doc": doc, "kind": kind, "lo": lo, "hi": hi, "lo_open": lo_open, "hi_open": hi_open,
            "choices": tuple(choices), "words": tuple(words), "source": source}
    return field(default=default, metadata=meta)


def fields_of(params_cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(params_cls)}


def allowed_text(meta: Mapping[str, Any]) -> str:
    """The allowed values of a parameter in words, for error messages and docs."""
    kind = meta["kind"]
    if kind == "bool":
        return "true or false"
    if kind == "str":
        return "one of " + ", ".join(meta["choices"]) if meta["choices"] else "text"
    name = "an integer" if kind == "int" else "a number"
    lo, hi = meta["lo"], meta["hi"]
    if lo is not None and hi is not None:
        rng = f" {lo:g} {'<' if meta['lo_open'] else '<='} x {'<' if meta['hi_open'] else '<='} {hi:g}"
    elif lo is not None:
        rng = f" {'>' if meta['lo_open'] else '>='} {lo:g}"
    elif hi is not None:
        rng = f" {'<' if meta['hi_open'] else '<='} {hi:g}"
    else:
        rng = ""
    words = "".join(f' or "{w}"' for w in meta["words"])
    return f"{name}{rng}{words}"


def check_value(meta: Mapping[str, Any], value: Any) -> Any:
    """``value`` converted to the parameter's kind, or ``ValueError`` with the allowed values."""
    kind = meta["kind"]
    bad = ValueError(f"expected {allowed_text(meta)}")
    if isinstance(value, str) and value in meta["words"]:
        return value
    if kind == "bool":
        if isinstance(value, bool):
            return value
        raise bad
    if kind == "str":
        if not isinstance(value, str) or (meta["choices"] and value not in meta["choices"]):
            raise bad
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad
    if kind == "int":
        if isinstance(value, float) and not value.is_integer():
            raise bad
        value = int(value)
    else:
        value = float(value)
    if not math.isfinite(value):
        raise bad
    lo, hi = meta["lo"], meta["hi"]
    if lo is not None and (value < lo or (meta["lo_open"] and value == lo)):
        raise bad
    if hi is not None and (value > hi or (meta["hi_open"] and value == hi)):
        raise bad
    return value


def build_params(params_cls: type, values: Mapping[str, Any], *, where: str = "--set") -> Any:
    """The design's params dataclass with ``values`` applied; unknown keys and bad values -> UserError."""
    fields = fields_of(params_cls)
    kwargs = {}
    for key, raw in values.items():
        if key not in fields:
            raise UserError(f"{where}: unknown parameter '{key}'; valid: {', '.join(fields) or '(none)'}")
        try:
            kwargs[key] = check_value(fields[key].metadata, raw)
        except ValueError as e:
            raise UserError(f"{where}: {key} = {raw!r}: {e}") from None
    obj = params_cls(**kwargs)
    check = getattr(obj, "check", None)
    if check is not None:
        msg = check()
        if msg:
            raise UserError(f"{where}: {msg}")
    return obj


def fmt_default(value: Any) -> str:
    """A default as the docs show it: text quoted, numbers with thousands separators."""
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:,.12g}"


def markdown_table(params_cls: type) -> str:
    """The parameter table of a design for docs/DESIGNS.md (a test keeps the doc equal to this)."""
    rows = ["| parameter | default | allowed | meaning | source of the default |", "|---|---|---|---|---|"]
    for f in dataclasses.fields(params_cls):
        m = f.metadata
        cells = (f"`{f.name}`", fmt_default(f.default), allowed_text(m), m["doc"], m["source"])
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def parse_set(text: str) -> tuple[str, str, Any]:
    """``label.key=value`` -> (label, key, value); the value is TOML if it parses, else bare text."""
    m = re.fullmatch(r"\s*([A-Za-z0-9_-]+)\.([A-Za-z0-9_]+)\s*=(.*)", text, re.S)
    if not m:
        raise UserError(f"--set {text}: expected <design>.<parameter>=<value>, e.g. static.capital_usd=1e8")
    label, key, raw = m.group(1), m.group(2), m.group(3).strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return label, key, value


@dataclass(frozen=True)
class DesignSpec:
    """One design to run: the label shown in results, the registered design, its validated parameters."""

    label: str
    design: str
    params: Any
    triggers: Any

    def to_dict(self) -> dict[str, Any]:
        """Every parameter (design's and ADL trigger's), for the result's assumptions."""
        return {**dataclasses.asdict(self.params), **dataclasses.asdict(self.triggers)}


@dataclass
class DesignConfig:
    """Every runnable label (each registered design with its defaults, plus variants) and its overrides."""

    raw: dict[str, dict[str, Any]] = field(default_factory=dict)  # label -> {key: value} incl. 'design'
    origin: dict[tuple[str, str], tuple[Path, int | None]] = field(default_factory=dict)  # from a file

    @property
    def labels(self) -> list[str]:
        from strategies.registry import names

        return list(dict.fromkeys([*names(), *self.raw]))

    def _error(self, label: str, key: str, msg: str) -> UserError:
        """Names the file and line the value came from, else the --set option."""
        if (label, key) in self.origin:
            path, line = self.origin[(label, key)]
            return InputError(path, f"[{label}] {msg}", line)
        return UserError(f"--set {label}.{key}: {msg}")

    def get(self, label: str) -> DesignSpec:
        """The validated spec of a label (unknown label -> UserError listing the valid ones)."""
        from strategies.registry import entry, names
        from strategies.triggers import TriggerParams

        values = dict(self.raw.get(label, {}))
        design = values.pop("design", label)
        if design not in names():
            raise UserError(f"unknown design '{label}'; valid: {', '.join(self.labels)}")
        e = entry(design)
        own, trig = fields_of(e.params), fields_of(TriggerParams)
        mine: dict[str, Any] = {}
        theirs: dict[str, Any] = {}
        for key, raw in values.items():
            target = mine if key in own else theirs if key in trig else None
            if target is None:
                raise self._error(label, key, f"unknown parameter '{key}' of design '{design}'; "
                                               f"valid: {', '.join([*own, *trig])}")
            meta = (own.get(key) or trig[key]).metadata
            try:
                target[key] = check_value(meta, raw)
            except ValueError as err:
                raise self._error(label, key, f"{key} = {raw!r}: {err}") from None
        for cls, vals in ((e.params, mine), (TriggerParams, theirs)):
            msg = getattr(cls(**vals), "check", lambda: "")()
            if msg:
                key = next(iter(vals), "design")
                raise self._error(label, key, msg)
        return DesignSpec(label=label, design=design, params=e.params(**mine),
                          triggers=TriggerParams(**theirs))

    def apply_sets(self, sets: Iterable[str]) -> None:
        for text in sets:
            label, key, value = parse_set(text)
            if label not in self.labels:
                raise UserError(f"--set {text}: unknown design '{label}'; valid: {', '.join(self.labels)}")
            if key == "design":
                raise UserError(f"--set {text}: a variant's design is set in the designs file only")
            self.raw.setdefault(label, {})[key] = value
            self.origin.pop((label, key), None)
            self.get(label)  # fail now, naming this --set

    def specs(self, labels: Iterable[str] | None = None) -> list[DesignSpec]:
        """Validated specs of ``labels`` (default: every label) in the order given."""
        return [self.get(x) for x in (self.labels if labels is None else labels)]


def load_config(path: str | Path | None = None, sets: Iterable[str] = ()) -> DesignConfig:
    """Defaults of every registered design, then the TOML file (if any), then ``--set`` strings."""
    cfg = DesignConfig()
    if path is not None:
        _read_file(cfg, Path(path))
    cfg.apply_sets(sets)
    return cfg


def _read_file(cfg: DesignConfig, path: Path) -> None:
    from strategies.registry import names

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise InputError(path, f"cannot read designs file: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raw = path.read_bytes()
        raise InputError(path, f"not UTF-8 text ({e.reason}); a designs file is TOML",
                         raw[:e.start].count(b"\n") + 1) from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"at line (\d+)", str(e))
        raise InputError(path, f"not valid TOML: {str(e).split(' (at line')[0]}",
                         int(m.group(1)) if m else None) from None
    lines = text.splitlines()
    for label, table in doc.items():
        line = _line_of(lines, label, None)
        if not isinstance(table, dict):
            raise InputError(path, f"'{label}' must be a table [{label}] of parameters", line)
        if "design" in table:
            dline = _line_of(lines, label, "design")
            if not isinstance(table["design"], str) or table["design"] not in names():
                raise InputError(path, f"[{label}] design = {table['design']!r}: unknown design; "
                                       f"valid: {', '.join(names())}", dline)
            if label in names() and table["design"] != label:
                raise InputError(path, f"[{label}] is a registered design's name; a variant needs its "
                                       f"own label", dline)
        elif label not in names():
            raise InputError(path, f"[{label}]: unknown design; valid: {', '.join(names())} "
                                   f"(a variant needs design = \"<name>\")", line)
        cfg.raw[label] = dict(table)
        for key in table:
            cfg.origin[(label, key)] = (path, _line_of(lines, label, key))
        cfg.get(label)


def _line_of(lines: list[str], label: str, key: str | None) -> int | None:
    """1-based line of ``[label]`` (or of ``key`` inside it): tomllib gives no positions."""
    header = re.compile(r"\s*\[\s*\"?" + re.escape(label) + r"\"?\s*\]")
    start = next((i for i, s in enumerate(lines) if header.match(s)), None)
    if start is None:
        return None
    if key is None:
        return start + 1
    pat = re.compile(r"\s*\"?" + re.escape(key) + r"\"?\s*=")
    for i in range(start + 1, len(lines)):
        if lines[i].lstrip().startswith("["):
            break
        if pat.match(lines[i]):
            return i + 1
    return start + 1
