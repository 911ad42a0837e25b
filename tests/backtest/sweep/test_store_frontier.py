"""Results table (idempotent per-task inserts, resume keys, lock) and the frontier from stored rows."""

from __future__ import annotations

import json

import pytest

from backtest.sweep.frontier import frontiers, refine, render, table_rows
from backtest.sweep.store import SweepStore
from loaders.errors import StoreLockedError, UserError


def row(event, cap, adl, free, design="static", seed=0):
    return {"event": event, "design": design, "params_hash": f"h{cap:g}", "seed": seed,
            "params": json.dumps({"capital_usd": cap, "adl_drawdown": 0.0}), "model": "{}",
            "adl_notional_usd": adl, "adl_free": free, "fund_start_usd": cap, "capital_cost_usd": cap * 0.001,
            "method": "fast" if free else "resumed", "depleted": not free}


def test_inserts_are_idempotent_and_resume_keys_are_kept(tmp_path):
    path = tmp_path / "s.duckdb"
    with SweepStore(path) as st:
        assert st.register("sw", {"a": 1}) is True
        assert st.register("sw", {"a": 1}) is False
        assert st.insert("sw", [row("e1", 1.0, 5.0, False), row("e1", 2.0, 0.0, True)]) == 2
        assert st.insert("sw", [row("e1", 2.0, 0.0, True), row("e1", 3.0, 0.0, True)]) == 1  # retried task
        assert st.done("sw") == {("e1", "static", f"h{c}", 0) for c in (1, 2, 3)}
        assert st.done("other") == set()
    with SweepStore(path) as st:
        assert st.frame("sw").height == 3


def test_failed_insert_leaves_the_table_unchanged(tmp_path):
    with SweepStore(tmp_path / "s.duckdb") as st:
        st.insert("sw", [row("e1", 1.0, 5.0, False)])
        bad = row("e1", 9.0, 0.0, True)
        bad["seed"] = "not a number"
        with pytest.raises(Exception):  # noqa: B017 - duckdb's conversion error
            st.insert("sw", [row("e1", 8.0, 0.0, True), bad])
        assert st.frame("sw").height == 1


def test_second_writer_gets_a_clear_error(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "s.duckdb"
    SweepStore(path).close()
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb,sys,time; c=duckdb.connect(sys.argv[1]); "
                               "print('ok', flush=True); time.sleep(30)", str(path)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b"ok"
        with pytest.raises(StoreLockedError, match="in use by another process"):
            SweepStore(path)
    finally:
        holder.kill()
        holder.wait()


def test_not_a_duckdb_file(tmp_path):
    p = tmp_path / "x.duckdb"
    p.write_text("hello")
    with pytest.raises(UserError):
        SweepStore(p)


def test_frontier_is_the_least_value_from_which_all_larger_pass(tmp_path):
    import polars as pl

    rows = [row("e1", 1.0, 9.0, False), row("e1", 2.0, 4.0, False), row("e1", 4.0, 0.0, True),
            row("e1", 8.0, 0.0, True),
            # non-monotone: 2 passes but 4 fails -> frontier 8
            row("e2", 1.0, 9.0, False), row("e2", 2.0, 0.0, True), row("e2", 4.0, 1.0, False),
            row("e2", 8.0, 0.0, True)]
    frame = pl.DataFrame(rows)
    (d,) = frontiers(frame)
    assert d.key == "capital_usd"
    assert (d.events["e1"].frontier, d.events["e1"].below) == (4.0, 2.0)
    assert (d.events["e2"].frontier, d.events["e2"].below) == (8.0, 4.0)
    assert d.frontier == 8.0
    assert d.events["e1"].start_usd == 8.0 and d.capital_cost_usd == pytest.approx(0.016)
    out = table_rows([d])
    assert out[-1]["event"] == "ALL" and out[-1]["frontier"] == 8.0
    page = render([d], title="t", command="backtest sweep")
    assert "data:image/png;base64," in page and "ALL" in page


def test_frontier_not_reached_when_the_top_value_fails():
    import polars as pl

    (d,) = frontiers(pl.DataFrame([row("e1", 1.0, 9.0, False), row("e1", 2.0, 3.0, False)]))
    assert d.frontier is None and d.capital_cost_usd is None


def test_refine_bisects_to_the_threshold():
    calls = []

    def short(v):
        calls.append(v)
        return None if v >= 3.7 else 1

    assert refine(short, 1.0, 10.0, rtol=1e-6) == pytest.approx(3.7, rel=1e-6)
    with pytest.raises(ValueError):
        refine(short, 1.0, 2.0)


def test_frontier_plot_draws_every_glyph():
    """The sweep's figure goes through the reports' renderer, so a venue-style name draws plainly."""
    import warnings

    from backtest.sweep.frontier import DesignFrontier, EventFrontier, plot

    d = DesignFrontier("static", "capital_usd")
    d.events["USDⓈ-M may2021"] = EventFrontier("USDⓈ-M may2021", [1e6, 1e7, 1e8], [5e8, 1e8, 0.0],
                                               [False, False, True], 1e8, 1e7)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        png = plot(d)
    assert png.startswith(b"\x89PNG")
    assert not [w for w in caught if "Glyph" in str(w.message)]


def test_a_frontier_at_a_grid_edge_is_shown_as_a_bound_with_a_hint():
    """Lowest grid value already ADL-free -> "≤ x" (the frontier may be lower); top still failing -> "> x"."""
    import polars as pl

    from backtest.sweep.frontier import _cells, notes

    frame = pl.DataFrame([
        row("low", 1e7, 0.0, True), row("low", 1e8, 0.0, True),  # passes everywhere: censored below
        row("mid", 1e7, 5.0, False), row("mid", 1e8, 0.0, True),
        row("top", 1e7, 9.0, False), row("top", 1e8, 3.0, False),  # never passes: censored above
    ])
    (d,) = frontiers(frame)
    assert (d.events["low"].censored, d.events["mid"].censored, d.events["top"].censored) == (
        "below", None, "above")
    rows = {r["event"]: r for r in table_rows([d])}
    assert rows["low"]["frontier_censored"] == "at_lowest_grid_value"
    assert rows["top"]["frontier_censored"] == "above_highest_grid_value"
    assert rows["mid"]["frontier_censored"] is None
    assert _cells(rows["low"])[3] == "≤ 10.00M" and _cells(rows["mid"])[3] == "100.00M"
    assert _cells(rows["top"])[3] == "> 100.00M" and _cells(rows["ALL"])[3] == "> 100.00M"
    hint = notes([d])
    assert any(h.startswith("static low: ≤ 10.00M") and "widen --grid static.capital_usd below 10.00M" in h
               for h in hint)
    assert any(h.startswith("static top: > 100.00M") for h in hint) and len(hint) == 2
    page = render([d], title="t", command="backtest sweep")
    assert "≤ 10.00M" in page and "widen --grid" in page

    (only_low,) = frontiers(frame.filter(pl.col("event") == "low"))
    assert only_low.censored == "below" and _cells(table_rows([only_low])[-1])[3] == "≤ 10.00M"


def test_headers_say_the_start_and_cost_columns_are_at_the_design_frontier():
    """oct2025 passes at 10M but the design's frontier is 63M: the start column is the 63M point's, so
    its header says so, and the ALL row's refined cell stays empty when nothing was refined."""
    import polars as pl

    from backtest.sweep.frontier import HEADERS, _cells, rich_table

    frame = pl.DataFrame([row("may", 1e7, 9.0, False), row("may", 6.31e7, 0.0, True),
                          row("oct", 1e7, 0.0, True), row("oct", 6.31e7, 0.0, True)])
    (d,) = frontiers(frame)
    rows = {r["event"]: r for r in table_rows([d])}
    assert rows["oct"]["frontier"] == 1e7 and rows["oct"]["start_usd_at_design_frontier"] == 6.31e7
    assert "fund start at design frontier" in HEADERS and "capital cost at design frontier" in HEADERS
    assert [c.header for c in rich_table([d], "t").columns] == list(HEADERS)
    assert "<th>fund start at design frontier</th>" in render([d], title="t", command="c")
    assert _cells(rows["ALL"])[4] == ""


def test_designs_without_a_swept_number_are_reported_not_dropped():
    import polars as pl

    from backtest.cli.sweep_cmd import _frontiers

    fixed = {**row("may", 3e8, 0.0, True, design="dynamic"), "fund_min_usd": 2.5e8}
    frame = pl.DataFrame([{**row("may", 1e7, 9.0, False), "fund_min_usd": 0.0},
                          {**row("may", 1e8, 0.0, True), "fund_min_usd": 1e7}, fixed])
    fronts, points = _frontiers(frame, {}, None, None)
    assert [d.design for d in fronts] == ["static"]
    assert points == [{"design": "dynamic", "event": "may", "parameters": "", "adl_free": True,
                       "adl_notional_usd": 0.0, "fund_start_usd": 3e8, "fund_min_usd": 2.5e8,
                       "capital_cost_usd": 3e5}]
    page = render(fronts, title="t", command="c", points=points)
    assert "<td>dynamic</td><td>may</td><td>as configured</td><td>yes</td>" in page
