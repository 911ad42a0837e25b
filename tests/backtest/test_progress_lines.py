"""Plain progress lines for pipes and logs: throttled, but the last one always printed."""

from __future__ import annotations

import pytest

from backtest.progress_lines import Throttled


def test_throttled_prints_the_first_then_one_per_interval_and_always_the_last(
        capsys: pytest.CaptureFixture[str]) -> None:
    now = [0.0]
    t = Throttled(every=5.0, clock=lambda: now[0])
    for i, at in enumerate((0.0, 1.0, 4.9, 5.0, 6.0, 11.0)):
        now[0] = at
        t.update(f"step {i}")
    t.finish("done")
    assert capsys.readouterr().err.splitlines() == ["step 0", "step 3", "step 5", "done"]
