"""The sweep results table: a DuckDB file keyed by (sweep_id, event, design, params_hash, seed).

Each finished task is written in ONE transaction with ``ON CONFLICT DO NOTHING``, so an interrupted
sweep keeps every task it finished, a resumed one skips their keys (:meth:`SweepStore.done`), and a
task retried after a worker died can never add a second row.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from backtest.sweep.tasks import ROW_METRICS
from loaders.errors import StoreLockedError, UserError

KEY = ("sweep_id", "event", "design", "params_hash", "seed")
COLUMNS: tuple[tuple[str, str], ...] = (
    ("sweep_id", "VARCHAR"),
    ("event", "VARCHAR"),
    ("design", "VARCHAR"),
    ("params_hash", "VARCHAR"),
    ("seed", "BIGINT"),
    ("params", "VARCHAR"),
    ("model", "VARCHAR"),
    *((m, "DOUBLE") for m in ROW_METRICS),
    ("adl_free", "BOOLEAN"),
    ("depleted", "BOOLEAN"),
    ("depleted_at", "VARCHAR"),
    ("method", "VARCHAR"),
    ("fail_tick", "BIGINT"),
    ("fail_ts", "BIGINT"),
)
NAMES = tuple(c for c, _ in COLUMNS)


class SweepStore:
    """Open (create) the results file; one writer at a time (a second one gets StoreLockedError)."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *, read_only: bool = False) -> None:
        import duckdb

        from loaders.locations import default_sweeps

        self.path = Path(path) if path is not None else default_sweeps()
        if read_only and not self.path.exists():
            raise UserError(f"{self.path}: no sweep results file")
        if not read_only:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise UserError(
                    f"--out {self.path}: cannot create its directory ({e.strerror or e})"
                ) from None
        try:
            self.con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.IOException as e:
            if "lock" in str(e).lower():
                raise StoreLockedError(
                    f"{self.path}: the sweep results file is in use by another process; wait for it to finish"
                ) from None
            raise UserError(
                f"{self.path}: cannot open the sweep results file ({str(e).splitlines()[0]})"
            ) from None
        except duckdb.Error as e:
            raise UserError(f"{self.path}: not a DuckDB file ({str(e).splitlines()[0]})") from None
        if not read_only:
            cols = ", ".join(f"{c} {t}" for c, t in COLUMNS)
            self.con.execute(
                f"CREATE TABLE IF NOT EXISTS sweep_results ({cols}, PRIMARY KEY ({', '.join(KEY)}))"
            ).fetchall()
            self.con.execute(
                "CREATE TABLE IF NOT EXISTS sweeps (sweep_id VARCHAR PRIMARY KEY, "
                "created TIMESTAMP, spec VARCHAR)"
            ).fetchall()

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> SweepStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def register(self, sweep_id: str, spec: Mapping[str, Any]) -> bool:
        """Record the sweep's definition; False if it existed (a resumed sweep)."""
        old = self.con.execute("SELECT spec FROM sweeps WHERE sweep_id = ?", [sweep_id]).fetchall()
        if old:
            return False
        now = datetime.now(UTC).replace(tzinfo=None)
        self.con.execute(
            "INSERT INTO sweeps VALUES (?, ?, ?)",
            [sweep_id, now, json.dumps(spec, sort_keys=True, default=str)],
        ).fetchall()
        return True

    def done(self, sweep_id: str) -> set[tuple[str, str, str, int]]:
        """Keys (event, design, params_hash, seed) already stored for the sweep."""
        rows = self.con.execute(
            "SELECT event, design, params_hash, seed FROM sweep_results WHERE sweep_id = ?", [sweep_id]
        ).fetchall()
        return {(e, d, h, int(s)) for e, d, h, s in rows}

    def insert(self, sweep_id: str, rows: Iterable[Mapping[str, Any]]) -> int:
        """Insert one task's rows in one transaction; present rows are left alone. Returns new rows."""
        data = [[sweep_id, *(r.get(c) for c in NAMES[1:])] for r in rows]
        if not data:
            return 0
        before = self._count(sweep_id)
        marks = ", ".join("?" for _ in NAMES)
        self.con.execute("BEGIN TRANSACTION").fetchall()
        try:
            self.con.executemany(
                f"INSERT INTO sweep_results ({', '.join(NAMES)}) VALUES ({marks}) ON CONFLICT DO NOTHING",
                data,
            )
            self.con.execute("COMMIT").fetchall()
        except BaseException:
            self.con.execute("ROLLBACK").fetchall()
            raise
        return self._count(sweep_id) - before

    def _count(self, sweep_id: str) -> int:
        return int(
            self.con.execute("SELECT count(*) FROM sweep_results WHERE sweep_id = ?", [sweep_id]).fetchall()[
                0
            ][0]
        )

    def frame(self, sweep_id: str | None = None) -> Any:
        """The results (one sweep, or all) as a polars frame, ordered by key."""
        where, params = ("WHERE sweep_id = ?", [sweep_id]) if sweep_id else ("", [])
        return self.con.sql(
            f"SELECT * FROM sweep_results {where} ORDER BY {', '.join(KEY)}", params=params
        ).pl()

    def sweeps(self) -> list[tuple[str, str]]:
        return [
            (s, j)
            for s, j in self.con.execute("SELECT sweep_id, spec FROM sweeps ORDER BY created").fetchall()
        ]
