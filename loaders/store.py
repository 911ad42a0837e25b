"""The DuckDB market store: schema, transactional idempotent upserts, ingest log, reads.

One file holds every dataset. Each table has a primary key, so a write is an upsert: importing
the same rows twice changes nothing, and a row that *disagrees* with a stored one under the same
key is a ``ConflictError`` (naming the source line) unless the caller asks to replace. Writes run
inside one transaction per file or page, so a failed item leaves the store as it was.

Timestamps are naive ``TIMESTAMP`` values in UTC (candle open time, settlement time).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

import duckdb
import polars as pl

from loaders.errors import ConflictError, StoreLockedError, UserError

SCHEMA_VERSION = 1
PRICE_TYPES = ("last", "mark", "index", "spot")


@dataclass(frozen=True)
class Table:
    """A store table: its key columns, value columns and DDL types."""

    name: str
    key: tuple[str, ...]
    values: tuple[str, ...]
    types: dict[str, str]

    @property
    def columns(self) -> tuple[str, ...]:
        return self.key + self.values

    def ddl(self) -> str:
        cols = ", ".join(f"{c} {self.types[c]}" for c in self.columns)
        return f"CREATE TABLE IF NOT EXISTS {self.name} ({cols}, PRIMARY KEY ({', '.join(self.key)}))"


V, T, D, B = "VARCHAR NOT NULL", "TIMESTAMP NOT NULL", "DOUBLE", "BIGINT"

CANDLES = Table(
    "candles",
    ("venue", "symbol", "price_type", "timeframe", "ts"),
    ("open", "high", "low", "close", "volume", "quote_volume", "trades",
     "taker_buy_volume", "taker_buy_quote_volume"),
    {"venue": V, "symbol": V, "price_type": V, "timeframe": V, "ts": T,
     "open": D + " NOT NULL", "high": D + " NOT NULL", "low": D + " NOT NULL", "close": D + " NOT NULL",
     "volume": D, "quote_volume": D, "trades": B, "taker_buy_volume": D, "taker_buy_quote_volume": D},
)
FUNDING = Table(
    "funding",
    ("venue", "symbol", "ts"),
    ("rate", "interval_h", "mark_price"),
    {"venue": V, "symbol": V, "ts": T, "rate": D + " NOT NULL", "interval_h": D, "mark_price": D},
)
OPEN_INTEREST = Table(
    "open_interest",
    ("venue", "symbol", "period", "ts"),
    ("oi_base", "oi_quote"),
    {"venue": V, "symbol": V, "period": V, "ts": T, "oi_base": D, "oi_quote": D},
)
LIQUIDATIONS = Table(
    "liquidations",
    ("venue", "symbol", "ts", "side", "price", "qty"),
    ("avg_price", "filled_qty", "quote_qty", "status"),
    {"venue": V, "symbol": V, "ts": T, "side": V, "price": D + " NOT NULL", "qty": D + " NOT NULL",
     "avg_price": D, "filled_qty": D, "quote_qty": D, "status": "VARCHAR"},
)
INSURANCE_FUND = Table(
    "insurance_fund",
    ("venue", "fund", "currency", "ts"),
    ("balance",),
    {"venue": V, "fund": V, "currency": V, "ts": T, "balance": D + " NOT NULL"},
)
INGEST_LOG = Table(
    "ingest_log",
    ("source", "dataset", "sha256"),
    ("item", "rows", "first_ts", "last_ts", "ingested_at"),
    {"source": V, "dataset": V, "sha256": V, "item": "VARCHAR", "rows": B,
     "first_ts": "TIMESTAMP", "last_ts": "TIMESTAMP", "ingested_at": "TIMESTAMP"},
)
TABLES = {t.name: t for t in (CANDLES, FUNDING, OPEN_INTEREST, LIQUIDATIONS, INSURANCE_FUND, INGEST_LOG)}

#: Relative tolerance under which two stored numbers count as the same value.
REL_TOL = 1e-9


def resolve_db_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """``--db`` beats ``BACKTEST_DB`` beats ``data/market.duckdb`` of the checkout (``loaders.locations``)."""
    from loaders.locations import default_db

    if explicit:
        return Path(explicit)
    env = os.environ.get("BACKTEST_DB")
    return Path(env) if env else default_db()


class Store:
    """A connection to the market store. Use as a context manager; it closes the file on exit."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *, read_only: bool = False) -> None:
        self.path = resolve_db_path(path)
        if read_only and not self.path.exists():
            # A read on a missing store is an empty store, not an error; make it so it can be read.
            read_only = False
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.IOException as exc:
            msg = str(exc)
            if "lock" in msg.lower():
                raise StoreLockedError(
                    f"{self.path}: the store is locked by another process; wait for it to finish "
                    f"or use another --db ({msg.splitlines()[0]})"
                ) from exc
            raise UserError(f"{self.path}: cannot open the store: {msg.splitlines()[0]}") from exc
        except duckdb.Error as exc:
            raise UserError(f"{self.path}: not a readable DuckDB store: {str(exc).splitlines()[0]}") from exc
        self.read_only = read_only
        if not read_only:
            self._migrate()

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.con.close()

    def _migrate(self) -> None:
        self._exec("CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
        for table in TABLES.values():
            self._exec(table.ddl())
        self._exec(
            "INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT DO NOTHING", [str(SCHEMA_VERSION)]
        )

    @contextmanager
    def transaction(self) -> Iterator[Store]:
        """All writes inside succeed together or not at all."""
        self._exec("BEGIN TRANSACTION")
        try:
            yield self
        except BaseException:
            self._exec("ROLLBACK")
            raise
        else:
            self._exec("COMMIT")

    # -- writes ----------------------------------------------------------------------------
    def upsert(
        self,
        table: str | Table,
        frame: pl.DataFrame,
        *,
        on_conflict: Literal["error", "replace"] = "error",
        source: str = "input",
    ) -> int:
        """Insert rows keyed by the table's primary key; return how many keys were new.

        ``frame`` holds the table's key columns, any of its value columns (missing ones are
        NULL) and optionally ``_line``, the source line of each row, used in error messages.
        A stored non-NULL value that differs from an incoming non-NULL value is a conflict:
        ``on_conflict="error"`` raises ``ConflictError`` naming ``source`` and the line;
        ``"replace"`` overwrites. NULLs never overwrite known values (a ccxt candle without
        taker volume does not erase the archive's).
        """
        t = TABLES[table] if isinstance(table, str) else table
        if frame.height == 0:
            return 0
        missing_keys = [k for k in t.key if k not in frame.columns]
        if missing_keys:
            raise ValueError(f"{t.name}: frame lacks key columns {missing_keys}")
        unknown = set(frame.columns) - set(t.columns) - {"_line"}
        if unknown:
            raise ValueError(f"{t.name}: frame has unknown columns {sorted(unknown)}")
        if "_line" not in frame.columns:
            frame = frame.with_row_index("_line", offset=1)
        cols = [c for c in t.columns if c in frame.columns]
        incoming = frame.select([*cols, pl.col("_line").cast(pl.Int64)])

        dup = incoming.filter(pl.struct(list(t.key)).is_duplicated()).sort([*t.key, "_line"])
        if dup.height:
            first = dup.row(0, named=True)
            raise ConflictError(
                f"{source}:{first['_line']}: duplicate key {_fmt_key(t, first)} appears more than once "
                "in this input"
            )

        self.con.register("_incoming", incoming.to_arrow())
        try:
            value_cols = [c for c in t.values if c in cols]
            if on_conflict == "error" and value_cols:
                differs = " OR ".join(
                    f"(i.{c} IS NOT NULL AND s.{c} IS NOT NULL AND "
                    f"abs(i.{c} - s.{c}) > {REL_TOL} * greatest(abs(s.{c}), 1e-300))"
                    if t.types[c].startswith(("DOUBLE", "BIGINT"))
                    else f"(i.{c} IS NOT NULL AND s.{c} IS NOT NULL AND i.{c} <> s.{c})"
                    for c in value_cols
                )
                join = " AND ".join(f"i.{k} = s.{k}" for k in t.key)
                sel = ", ".join([*(f"i.{k}" for k in t.key), "i._line",
                                 *(f"i.{c} AS new_{c}, s.{c} AS old_{c}" for c in value_cols)])
                row = self._one(
                    f"SELECT {sel} FROM _incoming i JOIN {t.name} s ON {join} WHERE {differs} "
                    "ORDER BY i._line LIMIT 1"
                )
                if row is not None:
                    names = [*t.key, "_line", *(f"{p}_{c}" for c in value_cols for p in ("new", "old"))]
                    rec = dict(zip(names, row, strict=True))
                    diffs = ", ".join(
                        f"{c} {rec['old_' + c]} -> {rec['new_' + c]}"
                        for c in value_cols
                        if rec["new_" + c] is not None and rec["old_" + c] is not None
                        and rec["new_" + c] != rec["old_" + c]
                    )
                    raise ConflictError(
                        f"{source}:{rec['_line']}: {_fmt_key(t, rec)} is already stored with other values "
                        f"({diffs}); re-run with --replace to overwrite"
                    )
            before = self._count(t)
            col_list = ", ".join(cols)
            if value_cols:
                if on_conflict == "replace":
                    sets = ", ".join(f"{c} = COALESCE(excluded.{c}, {t.name}.{c})" for c in value_cols)
                else:  # only fill NULL gaps; identical values stay as they are
                    sets = ", ".join(f"{c} = COALESCE({t.name}.{c}, excluded.{c})" for c in value_cols)
                action = f"DO UPDATE SET {sets}"
            else:
                action = "DO NOTHING"
            self._exec(
                f"INSERT INTO {t.name} ({col_list}) SELECT {col_list} FROM _incoming ON CONFLICT {action}"
            )
            return self._count(t) - before
        finally:
            self.con.unregister("_incoming")

    def _exec(self, sql: str, params: list[object] | None = None) -> None:
        """Run a statement and drain its result (DuckDB refuses new work while one is pending)."""
        self.con.execute(sql, params or []).fetchall()

    def _one(self, sql: str, params: list[object] | None = None) -> tuple | None:
        """First row of a query, or None; drains the result."""
        rows = self.con.execute(sql, params or []).fetchall()
        return rows[0] if rows else None

    def _count(self, t: Table) -> int:
        return self._one(f"SELECT count(*) FROM {t.name}")[0]

    def log_ingest(
        self,
        *,
        source: str,
        dataset: str,
        sha256: str,
        item: str,
        rows: int,
        first_ts: datetime | None,
        last_ts: datetime | None,
        at: datetime | None = None,
    ) -> None:
        """Record one imported file or fetched page; the first record for a (source, dataset, sha256) wins."""
        self._exec(
            "INSERT INTO ingest_log VALUES (?, ?, ?, ?, ?, ?, ?, coalesce(?, now()::TIMESTAMP)) "
            "ON CONFLICT DO NOTHING",
            [source, dataset, sha256, item, rows, first_ts, last_ts, at],
        )

    def already_ingested(self, *, source: str, dataset: str, sha256: str) -> bool:
        row = self._one(
            "SELECT 1 FROM ingest_log WHERE source = ? AND dataset = ? AND sha256 = ?",
            [source, dataset, sha256],
        )
        return row is not None

    # -- reads -----------------------------------------------------------------------------
    def query(self, sql: str, params: list[object] | None = None) -> pl.DataFrame:
        """Run a read query and return a polars frame."""
        return self.con.sql(sql, params=params or None).pl()

    def last_ts(self, table: str, **key: str) -> datetime | None:
        """Newest stored timestamp for a series (the resume point of a sync)."""
        where = " AND ".join(f"{k} = ?" for k in key) or "TRUE"
        row = self._one(f"SELECT max(ts) FROM {table} WHERE {where}", list(key.values()))
        return row[0]

    def candles(
        self,
        venue: str,
        symbol: str,
        price_type: str,
        timeframe: str,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> pl.DataFrame:
        """One candle series, ascending by ts, with start <= ts < end."""
        return self._series(CANDLES, dict(venue=venue, symbol=symbol, price_type=price_type,
                                          timeframe=timeframe), start, end)

    def funding(self, venue: str, symbol: str, start: datetime | None = None,
                end: datetime | None = None) -> pl.DataFrame:
        return self._series(FUNDING, dict(venue=venue, symbol=symbol), start, end)

    def open_interest(self, venue: str, symbol: str, start: datetime | None = None,
                      end: datetime | None = None) -> pl.DataFrame:
        return self._series(OPEN_INTEREST, dict(venue=venue, symbol=symbol), start, end)

    def _series(self, t: Table, key: dict[str, str], start: datetime | None,
                end: datetime | None) -> pl.DataFrame:
        clauses = [f"{k} = ?" for k in key]
        params: list[object] = list(key.values())
        if start is not None:
            clauses.append("ts >= ?")
            params.append(start)
        if end is not None:
            clauses.append("ts < ?")
            params.append(end)
        cols = ", ".join(t.columns)
        return self.query(f"SELECT {cols} FROM {t.name} WHERE {' AND '.join(clauses)} ORDER BY ts", params)


def _fmt_key(t: Table, rec: dict[str, object]) -> str:
    return "(" + ", ".join(f"{k}={rec[k]}" for k in t.key) + ")"
