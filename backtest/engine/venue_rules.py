"""Venue margin rules as data: maintenance-margin brackets by period, plus LP/BP formulas.

A second venue is one more ``VenueRules`` entry (its tables and snapshot dates); the formulas are
the isolated-margin ones of docs/MODEL.md §2, shared by every venue that uses tiered MMR + cum.
Tables are MECHANICS.md §1.1 (Binance BTCUSDT snapshots from freqtrade's leverage-tier dumps).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import numpy as np

from loaders.errors import UserError

# Columns of a bracket array: floor, cap, max leverage, MMR, cum (USDT).
FLOOR, CAP, MAXLEV, MMR, CUM = range(5)


def _table(rows: list[tuple[float, float, float, float]]) -> np.ndarray:
    """Rows (floor, cap, maxlev, mmr) -> bracket array with cum computed as Binance defines it.

    cum_n = cum_(n-1) + floor_n (MMR_n - MMR_(n-1)) keeps maintenance margin continuous; computing
    it (rather than copying) checks the published cum values against the published MMRs.
    """
    out = np.zeros((len(rows), 5))
    cum = 0.0
    for i, (lo, hi, lev, mmr) in enumerate(rows):
        if i:
            cum += lo * (mmr - rows[i - 1][3])
        out[i] = (lo, hi, lev, mmr, round(cum, 6))
    return out


M = 1e6
TABLE_A = _table(
    [
        (0, 50e3, 125, 0.004),
        (50e3, 250e3, 100, 0.005),
        (250e3, 1 * M, 50, 0.01),
        (1 * M, 10 * M, 20, 0.025),
        (10 * M, 20 * M, 10, 0.05),
        (20 * M, 50 * M, 5, 0.10),
        (50 * M, 100 * M, 4, 0.125),
        (100 * M, 200 * M, 3, 0.15),
        (200 * M, 300 * M, 2, 0.25),
        (300 * M, 500 * M, 1, 0.50),
    ]
)
TABLE_A1 = TABLE_A.copy()
TABLE_A1[2, MAXLEV], TABLE_A1[3, MAXLEV] = 25, 15
TABLE_A2 = _table(
    [
        (0, 50e3, 125, 0.004),
        (50e3, 250e3, 100, 0.005),
        (250e3, 3 * M, 50, 0.01),
        (3 * M, 15 * M, 20, 0.025),
        (15 * M, 30 * M, 10, 0.05),
        (30 * M, 80 * M, 5, 0.10),
        (80 * M, 100 * M, 4, 0.125),
        (100 * M, 200 * M, 3, 0.15),
        (200 * M, 300 * M, 2, 0.25),
        (300 * M, 500 * M, 1, 0.50),
    ]
)
TABLE_B = _table(
    [
        (0, 50e3, 125, 0.004),
        (50e3, 500e3, 100, 0.005),
        (500e3, 10 * M, 50, 0.01),
        (10 * M, 80 * M, 20, 0.025),
        (80 * M, 150 * M, 10, 0.05),
        (150 * M, 300 * M, 5, 0.10),
        (300 * M, 450 * M, 4, 0.125),
        (450 * M, 600 * M, 3, 0.15),
        (600 * M, 800 * M, 2, 0.25),
        (800 * M, 1000 * M, 1, 0.50),
    ]
)
TABLE_C = _table(
    [
        (0, 50e3, 125, 0.004),
        (50e3, 600e3, 100, 0.005),
        (600e3, 3 * M, 75, 0.0065),
        (3 * M, 12 * M, 50, 0.01),
        (12 * M, 70 * M, 25, 0.02),
        (70 * M, 100 * M, 20, 0.025),
        (100 * M, 230 * M, 10, 0.05),
        (230 * M, 480 * M, 5, 0.10),
        (480 * M, 600 * M, 4, 0.125),
        (600 * M, 800 * M, 3, 0.15),
        (800 * M, 1200 * M, 2, 0.25),
        (1200 * M, 1800 * M, 1, 0.50),
    ]
)


@dataclass(frozen=True)
class Snapshot:
    """A bracket table in force from ``since`` (the snapshot's date: 'in force no later than')."""

    since: date
    name: str
    table: np.ndarray
    note: str


@dataclass(frozen=True)
class VenueRules:
    """Margin rules of one venue: bracket snapshots (oldest first) and what is assumed about them."""

    venue: str
    snapshots: tuple[Snapshot, ...]
    other_symbols_note: str

    def brackets(self, symbol: str, when: datetime | date) -> tuple[np.ndarray, str]:
        """The bracket table in force at ``when`` and a one-line note of where it comes from.

        The latest snapshot dated on or before ``when``; the first one before its own date.
        """
        d = when.date() if isinstance(when, datetime) else when
        snap = self.snapshots[0]
        for s in self.snapshots:
            if s.since <= d:
                snap = s
        note = f"{self.venue} brackets: table {snap.name} ({snap.note})"
        if symbol != "BTCUSDT":
            note += f"; {symbol}: {self.other_symbols_note}"
        return snap.table.copy(), note


VENUES: dict[str, VenueRules] = {
    "binanceusdm": VenueRules(
        "binanceusdm",
        (
            Snapshot(
                date(2021, 3, 26),
                "A",
                TABLE_A,
                "BTCUSDT, 2021-03 gist and 2022 snapshots; used earlier too (mar2020 [M])",
            ),
            Snapshot(date(2022, 11, 25), "A'", TABLE_A1, "BTCUSDT snapshot 2022-11-25"),
            Snapshot(date(2023, 3, 13), "A2", TABLE_A2, "BTCUSDT snapshot 2023-03-13"),
            Snapshot(date(2023, 12, 12), "B", TABLE_B, "BTCUSDT snapshot 2024-02-03 values"),
            Snapshot(
                date(2024, 5, 30),
                "C",
                TABLE_C,
                "BTCUSDT snapshots 2024-05-30..2024-10-24; assumed still in force later (oct2025 gap)",
            ),
        ),
        "the BTCUSDT table is used (assumption: other symbols' brackets not recovered)",
    ),
}


def venue_rules(venue: str) -> VenueRules:
    """Rules of a venue; an unknown venue is a user error listing the known ones."""
    try:
        return VENUES[venue]
    except KeyError:
        raise UserError(
            f"--venue {venue}: no margin rules for this venue; valid: {', '.join(VENUES)}"
        ) from None


def tier_of(table: np.ndarray, notional: float) -> int:
    """0-based bracket index of an account notional: the last tier whose floor is <= notional."""
    k = int(np.searchsorted(table[:, FLOOR], notional, side="right")) - 1
    return max(0, min(k, len(table) - 1))


def liquidation_price(side: int, ep: float, w: float, qa: float, mmr: float, cum: float) -> float:
    """Isolated LP of one account (MODEL §2): equity q(w + s(P - EP)) equals q P mmr - cum."""
    if side > 0:
        return (ep - w - cum / qa) / (1.0 - mmr)
    return (ep + w + cum / qa) / (1.0 + mmr)


def bankruptcy_price(side: int, ep: float, w: float) -> float:
    """Price at which the isolated equity is zero."""
    return ep - w if side > 0 else ep + w
