"""The block index (kernels.py: bst) may only ever be looser than the truth, never tighter.

The trigger and prune scans skip a block of rows on its bounds; a bound tighter than the rows it
covers would silently skip a liquidation or a prune. Checked after every tick of multi-symbol
replays (crash, spike, funding, socialized loss, heavy pruning), plus the compaction bookkeeping.
"""

from __future__ import annotations

import pytest

from backtest.engine import kernels as K
from backtest.engine.params import Params
from backtest.engine.replay import Replay
from strategies.base import NoFund
from tests.backtest.engine.test_replay import path


def _check_bounds(st) -> None:
    n = int(st.cnt[K.C_ROWS])
    q, lp, side = st.fs[K.Q, :n], st.fs[K.LP, :n], st.cs[K.SIDE, :n]
    assert int(st.cnt[K.C_DEAD]) == int((q <= 0.0).sum())  # closed rows awaiting compaction
    for b in range((n + K.BLOCK - 1) // K.BLOCK):
        rows = slice(b * K.BLOCK, min((b + 1) * K.BLOCK, n))
        open_ = q[rows] > 0.0
        longs, shorts = open_ & (side[rows] > 0), open_ & (side[rows] < 0)
        if longs.any():
            assert st.bst[K.BQL, b] <= q[rows][longs].min()
            assert st.bst[K.BLPL, b] >= lp[rows][longs].max()
        if shorts.any():
            assert st.bst[K.BQS, b] <= q[rows][shorts].min()
            assert st.bst[K.BLPS, b] <= lp[rows][shorts].min()


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"waterfall": "socialized", "prune_frac": "1e-4"},
        {"close_volume_share": "0.5", "close_cap": "1", "prune_frac": "1e-3"},
    ],
)
def test_block_bounds_hold_after_every_tick(overrides):
    p = Params.from_overrides(overrides)
    inputs = [path("BTCUSDT", 3), path("ETHUSDT", 4, scale=2500.0)]
    run = Replay(inputs, p, None)
    fund = NoFund()
    rows_seen = 0
    for k in range(run.n):
        run.step(k, fund, False)
        for st in run.states.values():
            _check_bounds(st)
            rows_seen = max(rows_seen, int(st.cnt[K.C_ROWS]))
    assert rows_seen > 4 * K.BLOCK  # the book spans many blocks, so skipping is exercised
    finished = run.finish(fund)
    for st in finished.symbols.values():  # compacted at the end: no closed rows left
        assert st.cnt[K.C_DEAD] == 0
        assert (st.fs[K.Q, : st.cnt[K.C_ROWS]] > 0.0).all()


def test_tiny_side_scale_is_multiplied_out_and_matches_the_reference():
    """Closing 90 % of the book every bar drives G below RENORM_BELOW within ~100 bars; the q are then
    rescaled (and the prune bounds with them) and the run still matches the per-cohort reference."""
    from backtest.engine.replay import replay
    from backtest.engine.results import summarize
    from tests.reference_engine import compare_results, replay_reference, summarize_reference

    p = Params.from_overrides({"close_volume_share": "1e6", "close_cap": "0.9"})
    inputs = [path("BTCUSDT", 5, n=160, crash_at=120, warm=60)]
    run = Replay(inputs, p, None)
    fund = NoFund()
    smallest = 1.0
    for k in range(run.n):
        st = run.states["BTCUSDT"]
        smallest = min(smallest, float(st.sg[:, K.G].min()))  # before this tick's renormalisation
        run.step(k, fund, False)
        assert (st.sg[:, K.G] >= K.RENORM_BELOW).all()
        _check_bounds(st)
    assert smallest < 1e-90  # G really came close to the threshold, so it was multiplied out
    fast = summarize(replay(inputs, NoFund(), p))
    ref = summarize_reference(replay_reference(inputs, NoFund(), p))
    assert compare_results(fast, ref) == []
