"""``backtest sweep`` end to end: option errors (nothing written), a real-archive sweep, resume, report."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from backtest.cli.sweep_cmd import sweep
from loaders.errors import UserError


def invoke(args):
    return CliRunner().invoke(sweep, args, catch_exceptions=True)


@pytest.mark.parametrize(
    ("args", "msg"),
    [
        (
            ["--design", "static", "--grid", "static.capital_usd=1:2"],
            "--grid static.capital_usd=1:2: malformed",
        ),
        (
            ["--design", "static", "--grid", "static.capitl=1,2"],
            "unknown parameter 'capitl' of design 'static'",
        ),
        (["--design", "statik", "--grid", "impact_y=1,2"], "--design statik: unknown design"),
        (["--design", "static", "--grid", "static.capital_usd=1,2", "--events", "nope"], "nope"),
        (["--design", "static", "--grid", "static.capital_usd=1,2", "--set", "impact_y=abc"], "impact_y"),
        (["--design", "static", "--grid", "static.capital_usd=1,2", "--sample", "0"], "--sample 0"),
        (["--design", "static", "--grid", "static.capital_usd=1,2", "--frontier", "dynamic.k"], "--frontier"),
        # issue 14: limits checked before any point is built (these used to allocate until killed)
        (["--design", "static", "--grid", "static.capital_usd=1e6:1e9:log1000000000"],
         "1000000000 points exceed the limit of 10,000"),
        (["--design", "static", "--grid", "static.capital_usd=1e6:1e9:log99999999999999999999999"],
         "exceed the limit of 10,000"),
        (["--design", "dynamic", "--grid", "dynamic.k=1:10:lin1000", "--grid",
          "dynamic.cap_mult=1:10:lin1000", "--grid", "impact_y=0:1:lin1000", "--events", "may2021"],
         "the sweep has 1,000,000,000 points"),
        (["--design", "static", "--grid", "static.capital_usd=1e6:1e9:log", "--sample", "1000000000",
          "--events", "may2021"], "--sample 1000000000: 1,000,000,000 points"),
        (["--design", "static", "--grid", "static.capital_usd=1e6:1e9:log10", "--events", "all",
          "--max-points", "69"], "the sweep has 70 points (design points x 7 event(s)), above the limit"),
        (
            [
                "--design",
                "static",
                "--grid",
                "static.capital_usd=1,2",
                "--executor",
                "ray",
                "--address",
                "127.0.0.1:9",
            ],
            "--address 127.0.0.1:9: Ray cluster not reachable",
        ),
    ],
)
def test_bad_options_are_one_line_errors_and_write_nothing(tmp_path, args, msg):
    if "ray" in args:
        pytest.importorskip("ray")
    out = tmp_path / "s.duckdb"
    r = invoke([*args, "--out", str(out), "--quiet"])
    assert isinstance(r.exception, UserError), r.output
    assert msg in str(r.exception) and "\n" not in str(r.exception)
    assert not out.exists()


@pytest.mark.archive
def test_real_window_sweep_resumes_and_reports(archive_dir, tmp_path):
    out, rep = tmp_path / "s.duckdb", tmp_path / "rep"
    args = [
        "--design",
        "static",
        "--grid",
        "static.capital_usd=1e3,1e10",
        "--events",
        "may2021",
        "--executor",
        "inprocess",
        "--out",
        str(out),
        "--archive",
        str(archive_dir),
        "--db",
        str(tmp_path / "m.duckdb"),
        "--report",
        str(rep),
        "--format",
        "json",
    ]
    r = invoke(args)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    rows = {x["params_hash"]: x for x in doc["rows"]}
    assert len(rows) == 2
    small, big = sorted(rows.values(), key=lambda x: x["fund_start_usd"])
    assert (small["adl_free"], small["method"]) == (False, "resumed") and small["adl_notional_usd"] > 0
    assert (big["adl_free"], big["method"]) == (True, "fast") and big["adl_notional_usd"] == 0
    # user text says what happened, never the internal method names ("resumed" reads as a resumed sweep)
    assert "2 evaluations (1 paid in full without a replay, 1 replayed from the first claim paid short)" \
        in r.stderr
    front = [x for x in doc["frontier"] if x["event"] == "ALL"]
    assert front[0]["frontier"] == 1e10
    assert (rep / "frontier.html").read_text().count("data:image/png;base64,") == 1
    assert (rep / "sweep.parquet").exists() and (rep / "frontier.parquet").exists()
    again = invoke([*args[:-2], "--format", "table"])
    assert again.exit_code == 0, again.output
    assert "nothing to evaluate, all 2 point(s) already stored" in again.stderr
    from backtest.sweep.store import SweepStore

    with SweepStore(out) as st:
        assert st.frame(doc["sweep_id"]).height == 2


@pytest.mark.parametrize("failure", [UserError("--events may2021: no data"), KeyboardInterrupt()])
def test_a_failed_first_sweep_leaves_no_results_file(tmp_path, monkeypatch, failure):
    import backtest.sweep.runner

    def fail(*_a, **_k):
        raise failure

    monkeypatch.setattr(backtest.sweep.runner, "load_payloads", fail)
    out = tmp_path / "s.duckdb"
    r = invoke(["--design", "static", "--grid", "static.capital_usd=1e6,1e8", "--events", "may2021",
                "--out", str(out), "--quiet"])
    assert r.exit_code != 0
    assert not out.exists() and not (tmp_path / "s.duckdb.wal").exists()


@pytest.mark.archive
def test_two_design_sweep_reports_both_and_its_command_reruns_as_printed(archive_dir, tmp_path, monkeypatch,
                                                                         capsys):
    """static swept, dynamic not: both reported; the lowest grid value passes in may2021 -> "≤";
    user text never says "resumed"; the command in frontier.html runs as printed (flags without values)."""
    import html
    import re
    import shlex

    from tests.support.cli import run_cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BACKTEST_ARCHIVE", str(archive_dir))
    monkeypatch.setenv("BACKTEST_DB", str(tmp_path / "m.duckdb"))
    rep = tmp_path / "rep"
    code, out, err = run_cli(["sweep", "--design", "static,dynamic", "--grid", "static.capital_usd=2e9,4e9",
                              "--events", "may2021", "--executor", "inprocess", "--refine", "--report",
                              str(rep)], capsys)
    assert code == 0, err
    (summary,) = [ln for ln in err.splitlines() if " evaluations (" in ln]
    assert "resumed" not in summary and "3 paid in full without a replay" in summary
    assert "sweep: 3/3 evaluations, " in err  # piped: plain progress lines instead of a bar
    assert "≤ 2.00B" in out and "widen --grid static.capital_usd below 2.00B" in out
    assert "Designs without one swept number" in out and "dynamic" in out
    page = (rep / "frontier.html").read_text()
    assert "<td>dynamic</td><td>may2021</td>" in page and "fund start at design frontier" in page
    (command,) = re.findall(r"<code>([^<]*)</code>", page)
    command = html.unescape(command)
    assert command.startswith("backtest sweep ") and "--refine" in command and "False" not in command
    code, out, err = run_cli(shlex.split(command)[1:], capsys)
    assert code == 0, err
    assert "nothing to evaluate, all 3 point(s) already stored" in err


@pytest.mark.archive
def test_sweep_without_a_grid_says_what_it_did(archive_dir, tmp_path):
    args = ["--design", "static", "--events", "may2021", "--executor", "inprocess", "--out",
            str(tmp_path / "s.duckdb"), "--archive", str(archive_dir), "--db", str(tmp_path / "m.duckdb")]
    r = invoke(args)
    assert r.exit_code == 0, r.output
    assert "no --grid: one point per design and event, at its configured parameters" in r.stderr
    assert "static" in r.stdout and "may2021" in r.stdout and "as configured" in r.stdout
    again = invoke(args)
    assert again.exit_code == 0, again.output
    assert "0 evaluations" not in again.stderr and "(none)" not in again.stderr
    assert "nothing to evaluate, all 1 point(s) already stored" in again.stderr
    assert "as configured" in again.stdout
