"""``backtest run``: option errors exit 2 naming the option and write nothing; a real window runs."""

from __future__ import annotations

import json

import pytest

from tests.support.cli import run_cli


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--event", "nope"], "unknown event 'nope'"),
        (["--event", "may2021", "--designs", "static9"], "--designs static9: unknown design"),
        (["--event", "may2021", "--symbols", "DOGEUSDT"], "--symbols DOGEUSDT"),
        (["--event", "may2021", "--venue", "okx"], "--venue okx"),
        (["--event", "may2021", "--set", "lev_tilt=-1"], "--set lev_tilt"),
        (["--event", "may2021", "--set", "size_share=0.9,0.9,0"], "size_share"),
        (["--event", "may2021", "--set", "oops"], "expected PARAM=VALUE"),
        # issue 14: values that made NaN/Infinity results or tracebacks
        (["--event", "may2021", "--set", "funding_ref=0"], "--set funding_ref=0.0: must be a finite number"),
        (["--event", "may2021", "--set", "taker_ref=0"], "--set taker_ref=0.0"),
        (["--event", "may2021", "--set", "oi_volume_ratio=1e308"], "--set oi_volume_ratio"),
        (["--event", "may2021", "--set", "open_volume_share=1e308"], "--set open_volume_share"),
        (["--event", "may2021", "--set", "size_usd=nan 100000 2000000"], "--set size_usd=nan"),
        (["--event", "may2021", "--set", "static.capital_usd=1e308"], "--set static.capital_usd"),
        (["--event", "may2021", "--set", "dynamic.k=0"], "--set dynamic.k"),
    ],
)
def test_bad_options_exit_2_and_write_nothing(tmp_path, capsys, extra, needle):
    db = tmp_path / "m.duckdb"
    code, _, err = run_cli(["run", "--db", str(db), "--quiet", *extra], capsys)
    assert code == 2
    assert needle in err and err.startswith("error: ")
    assert not db.exists()


@pytest.mark.archive
def test_run_may2021_json(archive_dir, tmp_path, capsys):
    db = tmp_path / "m.duckdb"
    code, out, err = run_cli(
        [
            "run",
            "--event",
            "may2021",
            "--designs",
            "none",
            "--db",
            str(db),
            "--archive",
            str(archive_dir),
            "--format",
            "json",
        ],
        capsys,
    )
    assert code == 0
    # stderr is not a terminal here: plain progress lines, and a word on what was imported from where
    lines = err.splitlines()
    assert lines[0].startswith("may2021: importing ")
    assert f"from the archive {archive_dir} into {db}" in lines[0]
    assert any(x.startswith("may2021: imported ") and x.endswith(f"new rows) into {db}") for x in lines)
    assert "may2021 [1/4] loading BTCUSDT (" in err and "may2021 [4/4] none (" in err
    (rec,) = json.loads(out, parse_constant=lambda t: pytest.fail(f"non-standard JSON token {t}"))
    assert rec["event"] == "may2021" and rec["design"] == "none"
    assert set(rec["per_symbol"]) == {"BTCUSDT", "ETHUSDT"}
    assert rec["cohorts"] >= 100_000
    assert rec["liq_long_usd"] > rec["liq_short_usd"] > 0  # a long-side crash
    assert abs(rec["conservation_residual_usd"]) <= 1e-6 * rec["traded_usd"]
    assert rec["fund_paid_usd"] == 0.0 and rec["adl_haircut_usd"] > 0  # none: all bad debt to ADL
    assert "param.impact_y" in rec["assumptions"] and "BTCUSDT.brackets" in rec["assumptions"]
