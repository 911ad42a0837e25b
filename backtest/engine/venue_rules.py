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
class SurplusRule:
    """What the fund takes from a liquidation that leaves margin over, in force from ``since``.

    A piece of a partial liquidation (the IOC order that cuts an account to a lower bracket) pays the
    clearance fee ``rate`` x its filled notional, at most the margin it leaves; the account keeps the
    rest. The last piece (the whole remaining position) is closed at the bankruptcy price and taken
    over by the fund, which keeps all of the margin left (MODEL §5.4, ``surplus_mode = venue``).
    """

    since: date
    rate: float
    note: str


@dataclass(frozen=True)
class VenueRules:
    """Margin rules of one venue: bracket snapshots (oldest first) and what is assumed about them,
    and the liquidation-surplus rules by period (oldest first)."""

    venue: str
    snapshots: tuple[Snapshot, ...]
    other_symbols_note: str
    surplus: tuple[SurplusRule, ...] = ()

    def surplus_rule(self, when: datetime | date | None = None) -> tuple[float, str]:
        """(clearance-fee rate, note) of the surplus rule in force at ``when`` (None: the latest)."""
        if not self.surplus:
            raise UserError(f"--set surplus_mode=venue: no liquidation-surplus rule known for {self.venue}")
        rule = self.surplus[-1] if when is None else self.surplus[0]
        early = ""
        if when is not None:
            d = when.date() if isinstance(when, datetime) else when
            for r in self.surplus:
                if r.since <= d:
                    rule = r
            if d < self.surplus[0].since:
                early = f" (assumed for {d}, before the first known rule)"
        return rule.rate, f"{self.venue} liquidation surplus since {rule.since}{early}: {rule.note}"

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
        (
            SurplusRule(
                date(2019, 9, 9),
                0.005,
                "partial-liquidation pieces pay a clearance fee of 0.5 % of the filled notional, at most the "
                "margin left ('the insurance fund will collect up to 0.5 % fees from clients in "
                "liquidations that do not result in client bankruptcy', Binance FAQ 'Insurance Fund' "
                "2019-09-09 [H]); the last piece is closed at the bankruptcy price and taken over by the "
                "fund, which keeps the margin left (liquidation protocol, TraderWagon copy [M]); later "
                "pages name an 'insurance clearance fee' without a rate: 0.5 % assumed since [gap]",
            ),
        ),
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
