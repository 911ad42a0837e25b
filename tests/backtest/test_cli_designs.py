"""``backtest designs``: every design and variant with the parameter values a run would use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import run_cli

CONFIG = """\
[static]
capital_usd = 1e8

[static-small]
design = "static"
capital_usd = 5e7
adl_drawdown = 0.3
"""


def test_lists_designs_variants_and_resolved_values(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "designs.toml"
    cfg.write_text(CONFIG)
    code, out, err = run_cli(["designs", "--config", str(cfg), "--set", "dynamic.k=5", "--format", "json"],
                             capsys)
    assert code == 0, err
    rows = {r["label"]: r for r in json.loads(out)}
    assert list(rows)[:7] == ["none", "static", "static-coin", "dynamic", "hedged", "tranched", "reinsured"]
    assert rows["static-small"]["design"] == "static"
    small = {p["name"]: p for p in rows["static-small"]["parameters"]}
    assert small["capital_usd"]["value"] == 5e7 and small["capital_usd"]["changed"]
    assert small["capital_usd"]["from"] == f"{cfg}:6"
    assert small["adl_drawdown"]["value"] == 0.3 and small["adl_drawdown"]["from"] == f"{cfg}:7"
    static = {p["name"]: p for p in rows["static"]["parameters"]}
    assert static["capital_usd"]["value"] == 1e8 and static["capital_usd"]["default"] == "event"
    assert "adl_drawdown" not in static  # trigger keys only where set
    k = next(p for p in rows["dynamic"]["parameters"] if p["name"] == "k")
    assert (k["value"], k["changed"], k["from"]) == (5, True, "--set")
    assert rows["none"]["parameters"] == []

    code, out, _ = run_cli(["designs", "--config", str(cfg), "--designs", "static-small"], capsys)
    assert code == 0
    assert "static-small (static)" in out and "50,000,000 *" in out


def test_unknown_design_and_bad_value_are_one_line_errors(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["designs", "--designs", "statik"], capsys)
    assert code == 2 and "unknown design 'statik'" in err and err.count("\n") == 1
    code, _, err = run_cli(["designs", "--set", "static.capital_usd=-1"], capsys)
    assert code == 2 and "--set static.capital_usd" in err


def test_designs_doc_describes_the_config_file() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "DESIGNS.md").read_text(encoding="utf-8")
    assert "## The designs file (`--config designs.toml`)" in doc
    assert "backtest designs" in doc and 'design = "static"' in doc
