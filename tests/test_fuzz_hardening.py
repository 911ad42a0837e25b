"""Seeded fuzz over the issue-14 mutation classes and parameter values (runs in a few seconds).

Files: a valid kline, funding and BitMEX file each mutated by a seeded choice of class (byte flip,
cut, duplicated / swapped line, hostile field value, price x1000, time shifted off the grid, junk
appended, second JSON document, gzip cut). Every import must end as ``imported`` (and then every
stored row is plausible) or ``failed`` with one line and the store exactly as before; no other
exception may escape. Parameters: seeded sets of model-parameter values (domain edges and hostile
text) are refused with one line or give a replay whose every figure is finite.
"""

from __future__ import annotations

import dataclasses
import gzip
import random
from pathlib import Path

import numpy as np
import pytest

from backtest.engine.params import DOMAINS, Params
from backtest.engine.replay import replay
from backtest.engine.results import summarize
from backtest.finite import check_results
from loaders.archive import import_paths
from loaders.errors import UserError
from loaders.plausibility import FUNDING_MAX_PER_8H
from loaders.store import Store
from strategies.registry import make_design
from tests.backtest.engine.test_replay import path as synthetic_path
from tests.loaders.test_archive import KLINE_HEADER, klines

SEED = 14
HOSTILE = ["nan", "inf", "-inf", "1e400", "1e308", "-1", "0", "1e-300", "abc", ""]
TABLES = ("candles", "funding", "open_interest", "liquidations", "ingest_log")


def _kline_text() -> bytes:
    return ("\n".join([KLINE_HEADER, *klines(40)]) + "\n").encode()


def _funding_text() -> bytes:
    rows = [f"{1621382400000 + i * 28_800_000 + 3},8,{0.0001 * (i % 5 - 2):.8f}" for i in range(30)]
    return ("\n".join(["calc_time,funding_interval_hours,last_funding_rate", *rows]) + "\n").encode()


def _bitmex_text() -> bytes:
    recs = [f'{{"timestamp":"2021-05-{19 + i // 3:02d}T{4 + 8 * (i % 3):02d}:00:00.000Z","symbol":"XBTUSD",'
            f'"fundingInterval":"2000-01-01T08:00:00.000Z","fundingRate":{0.0001 * (i - 3)}}}'
            for i in range(6)]
    return ("[" + ",\n".join(recs) + "]\n").encode()


FILES = {
    "data/futures/um/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2021-05.csv": _kline_text,
    "data/futures/um/monthly/fundingRate/BTCUSDT/BTCUSDT-fundingRate-2021-05.csv": _funding_text,
    "bitmex/funding/XBTUSD-funding.json": _bitmex_text,
}


def _mutate(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    lines = data.split(b"\n")
    kind = rng.choice(["flip", "cut", "dup", "swap", "field", "huge", "x1000", "offgrid", "junk", "json2",
                       "gzcut"])
    i = rng.randrange(1, max(2, len(lines) - 1))
    if kind == "flip":
        b = bytearray(data)
        b[rng.randrange(len(b))] = rng.randrange(256)
        return kind, bytes(b)
    if kind == "cut":
        return kind, data[: rng.randrange(1, len(data))]
    if kind == "dup":
        return kind, b"\n".join([*lines[: i + 1], lines[i], *lines[i + 1:]])
    if kind == "swap" and i + 1 < len(lines) - 1:
        lines[i], lines[i + 1] = lines[i + 1], lines[i]
        return kind, b"\n".join(lines)
    if kind in ("field", "huge", "x1000", "offgrid"):
        fields = lines[i].split(b",")
        j = rng.randrange(len(fields))
        if kind == "field":
            fields[j] = rng.choice(HOSTILE).encode()
        elif kind == "huge":  # a well-formed but implausible number: rate 5.0, interval 1e9, taker 10x
            j = rng.randrange(1, len(fields))
            fields[j] = rng.choice([b"5.0", b"1e300", b"1000000000", b"100.0"])
        elif kind == "x1000":
            try:
                fields[j] = repr(float(fields[j]) * 1000).encode()
            except ValueError:
                fields[j] = b"1e308"
        else:
            try:
                fields[0] = str(int(fields[0]) + 30_000).encode()
            except ValueError:
                fields[0] = b"0"
        lines[i] = b",".join(fields)
        return kind, b"\n".join(lines)
    if kind == "junk":
        return kind, data + rng.choice([b"garbage", b"\x00\xff", b"]", b"1,2,3"])
    if kind == "json2":
        return kind, data + data
    return "gzcut", gzip.compress(data, mtime=0)[: rng.randrange(10, 60)]


def _counts(store: Store) -> dict[str, int]:
    return {t: int(store.query(f"SELECT count(*) AS n FROM {t}")["n"][0]) for t in TABLES}


def _stored_rows_are_plausible(store: Store) -> None:
    bad = store.query(
        "SELECT count(*) AS n FROM candles WHERE NOT (isfinite(open) AND isfinite(high) AND isfinite(low) "
        "AND isfinite(close) AND low > 0 AND low <= least(open, close) AND high >= greatest(open, close) "
        "AND coalesce(taker_buy_volume, 0) <= volume * (1 + 1e-9) + 1e-12 "
        "AND epoch_ms(ts) % 60000 = 0)")["n"][0]
    assert bad == 0, "an implausible candle was stored"
    jumps = store.query(
        "SELECT count(*) AS n FROM (SELECT *, lag(close) OVER (PARTITION BY venue, symbol, price_type, "
        "timeframe ORDER BY ts) AS pc FROM candles) WHERE greatest(high / pc, pc / low) > 10")["n"][0]
    assert jumps == 0, "a price 10x its neighbour was stored"
    bad = store.query(f"SELECT count(*) AS n FROM funding WHERE NOT (isfinite(rate) AND abs(rate) * 8 / "
                      f"coalesce(interval_h, 8) <= {FUNDING_MAX_PER_8H} AND coalesce(interval_h, 8) <= 24)"
                      )["n"][0]
    assert bad == 0, "an implausible funding rate was stored"


def test_mutated_files_never_store_a_bad_row_or_escape(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    db = tmp_path / "fuzz.duckdb"
    seen: dict[str, int] = {}
    with Store(db) as store:
        for n in range(120):
            rel = rng.choice(list(FILES))
            kind, data = _mutate(rng, FILES[rel]())
            seen[kind] = seen.get(kind, 0) + 1
            name = rel + (".gz" if kind == "gzcut" else "")
            path = tmp_path / f"m{n}" / name
            path.parent.mkdir(parents=True)
            path.write_bytes(data)
            before = _counts(store)
            report = import_paths(store, [path])  # anything but a report is an escape
            (f,) = report.files
            assert f.status in ("imported", "failed", "unchanged"), (kind, f.status, f.reason)
            if f.status == "failed":
                assert f.reason and "\n" not in f.reason and "Traceback" not in f.reason, (kind, f.reason)
                assert _counts(store) == before, f"{kind}: a failed import changed the store"
            else:
                _stored_rows_are_plausible(store)
    assert len(seen) >= 9  # the seed covers (nearly) every mutation class


NUMERIC = [f.name for f in dataclasses.fields(Params) if f.type == "float"]


def _values(rng: random.Random, key: str) -> str:
    d = DOMAINS[key]
    edges = [d.lo, d.hi, d.lo + (d.hi - d.lo) * rng.random(), d.lo * 1.000001 if d.lo else 1e-300]
    return str(rng.choice(edges)) if rng.random() < 0.85 else rng.choice(HOSTILE)


@pytest.fixture(scope="module")
def inputs():
    return [synthetic_path("BTCUSDT", 3, n=120, warm=60, crash_at=80),
            synthetic_path("ETHUSDT", 4, n=120, warm=60, crash_at=80, scale=2500.0)]


def test_parameter_values_are_refused_or_give_finite_results(inputs) -> None:
    rng = random.Random(SEED)
    ran = refused = 0
    for _ in range(60):
        overrides = {k: _values(rng, k) for k in rng.sample(NUMERIC, 3)}
        try:
            p = Params.from_overrides(overrides)
            fund = make_design("static", {"capital_usd": rng.choice([0.0, 1e6, 1e12])})
        except UserError as e:
            assert "\n" not in str(e)
            refused += 1
            continue
        res = summarize(replay(inputs, fund, p), "fuzz", "static")
        check_results([res], context=str(overrides))  # raises naming the figure if one is not finite
        assert np.isfinite(res.series.get("fund_value", np.zeros(1))).all()
        ran += 1
    assert ran >= 20 and refused >= 10, (ran, refused)
