"""One replay per recorded window, shared by the fingerprint and invariant tests (session cache)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.regression.fingerprint import EventRuns, run_recorded


@pytest.fixture(scope="session")
def recorded(archive_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """``recorded(event_id) -> EventRuns``: every standard design on the window, computed once."""
    db = tmp_path_factory.mktemp("regression") / "market.duckdb"
    cache: dict[str, EventRuns] = {}

    def get(event_id: str) -> EventRuns:
        if event_id not in cache:
            cache[event_id] = run_recorded(event_id, db, archive_dir)
        return cache[event_id]

    return get
