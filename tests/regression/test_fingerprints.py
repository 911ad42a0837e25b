"""Golden regression: every recorded window x every standard design against its stored fingerprint.

A change that moves a number fails with the list of what moved. If the change is intended, run
``python scripts/regen_fingerprints.py`` and say why in the commit message (docs/CALIBRATION.md §5).
"""

from __future__ import annotations

import json

import pytest

from tests.regression.fingerprint import EVENTS, FINGERPRINTS, diff, fingerprint

pytestmark = [pytest.mark.regression, pytest.mark.archive]

STORED = json.loads(FINGERPRINTS.read_text()) if FINGERPRINTS.exists() else {"cases": {}}


def test_fingerprint_file_covers_every_window_and_design() -> None:
    from backtest.engine.api import design_names

    expected = {f"{e}/{d}" for e in EVENTS for d in design_names()}
    assert set(STORED["cases"]) == expected, "regenerate: python scripts/regen_fingerprints.py"
    assert STORED.get("commit"), "fingerprints must name the commit they were produced on"


@pytest.mark.parametrize("event_id", EVENTS)
def test_fingerprints(recorded, event_id: str) -> None:
    runs = recorded(event_id)
    moved = []
    for design, result in runs.results.items():
        key = f"{event_id}/{design}"
        old = STORED["cases"].get(key)
        new = fingerprint(result)
        if old != new:
            moved.append(f"{key}:" + ("\n  (no stored fingerprint)" if old is None else ""))
            moved += diff(old or {}, new) if old is not None else []
    assert not moved, (
        f"fingerprints moved (stored on commit {STORED.get('commit', '?')}):\n" + "\n".join(moved)
        + "\nIf intended: python scripts/regen_fingerprints.py, and say why in the commit message."
    )
