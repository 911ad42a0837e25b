"""``backtest compare``: bad options exit 2 and write nothing; the designs × events matrix on real windows."""

from __future__ import annotations

import json

import pytest

from backtest.cli import cli
from tests.support.cli import run_cli


@pytest.fixture(autouse=True)
def _registered(monkeypatch):
    # the command is registered in backtest/cli/__init__.py by the lead; make sure the tests see it either way
    monkeypatch.setitem(cli.lazy, "compare", ("backtest.cli.compare_cmd", "compare"))


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--events", "may2021,nope"], "unknown event 'nope'"),
        (["--events", "all,may2021"], "'all' cannot be combined"),
        (["--events", "may2021,may2021"], "repeated"),
        (["--events", ","], "no event given"),
        (["--events", "may2021", "--designs", "static9"], "--designs static9: unknown design"),
        (["--events", "may2021", "--set", "dynamic.k=-3"], "k = -3"),
        (["--events", "may2021", "--venue", "okx"], "--venue okx"),
    ],
)
def test_bad_options_exit_2_and_write_nothing(tmp_path, capsys, extra, needle):
    db = tmp_path / "m.duckdb"
    out = tmp_path / "rep"
    code, _, err = run_cli(["compare", "--db", str(db), "--out", str(out), "--quiet", *extra], capsys)
    assert code == 2, err
    assert needle in err and err.startswith("error: ")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def two_event_db(tmp_path_factory, archive_dir):
    from backtest.ensure import ensure_window
    from backtest.events import load_catalog

    db = tmp_path_factory.mktemp("store") / "m.duckdb"
    cat = load_catalog()
    for eid in ("may2021", "luna2022"):
        ev = cat.get(eid)
        ensure_window(db, ev, "binanceusdm", list(ev.symbols), archive=archive_dir, progress=False)
    return db


@pytest.mark.archive
def test_matrix_table_json_and_report(two_event_db, tmp_path, capsys):
    base = ["compare", "--events", "may2021,luna2022", "--designs", "none,static,reinsured", "--db",
            str(two_event_db), "--quiet"]  # fmt: skip
    out = tmp_path / "rep"
    code, stdout, err = run_cli([*base, "--out", str(out)], capsys)
    assert code == 0, err
    assert stdout.lstrip().startswith("Designs × events")  # the answer first, not ~170 lines of detail
    assert "fund start" not in stdout and "comparison" not in stdout
    matrix = stdout[stdout.index("Designs × events") :]
    lines = {ln.split("│")[1].strip(): ln for ln in matrix.splitlines() if ln.startswith("│")}
    assert set(lines) == {"none", "static", "reinsured"}
    assert lines["none"].count("NO ·") == 2  # no fund: every window needs ADL
    html = (out / "report.html").read_text(encoding="utf-8")
    assert 'id="matrix"' in html and 'id="comparison-may2021"' in html and 'id="comparison-luna2022"' in html
    toc = html[html.index('<nav class="toc"') : html.index("</nav>")]
    assert [x for x in ("#designs-x-events", "#event-may2021", "#event-luna2022") if x in toc] == [
        "#designs-x-events", "#event-may2021", "#event-luna2022"]
    assert 'id="event-may2021"' in html and 'id="designs-x-events"' in html
    code, verbose, _ = run_cli([*base, "--verbose"], capsys)
    assert code == 0
    assert verbose.index("Designs × events") < verbose.index("may2021: ") < verbose.index("luna2022: ")
    assert verbose.count("fund start") == 2
    import polars as pl

    frame = pl.read_parquet(out / "results.parquet")
    assert frame.height == 6 and sorted(set(frame["event"])) == ["luna2022", "may2021"]

    code, stdout, _ = run_cli([*base, "--format", "json"], capsys)
    assert code == 0
    recs = json.loads(stdout)
    assert [(r["event"], r["design"]) for r in recs] == [
        (e, d) for e in ("may2021", "luna2022") for d in ("none", "static", "reinsured")
    ]
    by = {(r["event"], r["design"]): r for r in recs}
    # the table's cell text agrees with the records
    for d in ("static", "reinsured"):
        r = by[("may2021", d)]
        ok = r["adl_notional_usd"] == 0 and r["adl_haircut_usd"] == 0
        assert ("yes ·" if ok else "NO ·") in lines[d].split("│")[2], (d, lines[d])
        pct = r["fund_min_usd"] / r["fund_start_usd"] * 100
        assert f"min {pct:.1f}%" in lines[d].split("│")[2]
