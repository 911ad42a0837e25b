from __future__ import annotations

from pathlib import Path

import pytest

from loaders.errors import InputError, UserError
from strategies.config import load_config, parse_set
from strategies.registry import entry, names

DOC = Path(__file__).resolve().parents[2] / "docs" / "DESIGNS.md"


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "designs.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_defaults_for_every_design() -> None:
    cfg = load_config()
    assert cfg.labels == names()
    for spec in cfg.specs():
        assert spec.params == entry(spec.design).params()
        assert not spec.triggers.enabled


def test_file_and_sets_override_and_variants(tmp_path: Path) -> None:
    path = write(tmp_path, '[static]\ncapital_usd = "event"\n\n[small]\ndesign = "static"\n'
                           'capital_usd = 5e7\n\n[dynamic]\nk = 2\nadl_drawdown = 0.3\n')
    cfg = load_config(path, ["small.capital_usd=1e6", "dynamic.target_mode=max"])
    assert cfg.get("static").params.capital_usd == "event"
    small = cfg.get("small")
    assert (small.design, small.params.capital_usd) == ("static", 1e6)
    dyn = cfg.get("dynamic")
    assert (dyn.params.k, dyn.params.target_mode, dyn.triggers.adl_drawdown) == (2.0, "max", 0.3)
    assert "small" in cfg.labels and dyn.to_dict()["adl_window_h"] == 8.0


def test_unknown_key_in_file_lists_valid_keys_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "# comment\n[static]\ncapital_usd = 1e6\ncapitol_usd = 2e6\n")
    with pytest.raises(InputError) as e:
        load_config(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}:4: [static] unknown parameter 'capitol_usd'")
    assert "valid: capital_usd, adl_drawdown, adl_window_h, adl_resume, adl_cooldown_h" in msg


def test_out_of_range_names_key_and_range(tmp_path: Path) -> None:
    path = write(tmp_path, "[hedged]\nhedge_leverage = 0\n")
    with pytest.raises(InputError, match=r":2: \[hedged\] hedge_leverage = 0: expected a number 0 < x <= 12"):
        load_config(path)
    with pytest.raises(UserError, match=r"--set tranched.junior_share: junior_share = 1.5: expected a number "
                                        r"0 <= x <= 1"):
        load_config(sets=["tranched.junior_share=1.5"])
    with pytest.raises(UserError, match=r'static.capital_usd: capital_usd = \'lots\': expected a number '
                                        r'0 <= x <= 1e\+12 or "event"'):
        load_config(sets=["static.capital_usd=lots"])
    with pytest.raises(UserError, match="target_mode = 'VOL': expected one of vol, cvar, max"):
        load_config(sets=["dynamic.target_mode=VOL"])
    with pytest.raises(UserError, match="expected a number"):
        load_config(sets=["static.capital_usd=true"])


def test_toml_typo_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[static]\ncapital_usd = 1e6\nk = = 2\n")
    with pytest.raises(InputError, match=r"designs.toml:3: not valid TOML"):
        load_config(path)


def test_unknown_design_table_and_variant(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r":1: \[statik\]: unknown design; valid: none, static, static-coin"):
        load_config(write(tmp_path, "[statik]\ncapital_usd = 1\n"))
    with pytest.raises(InputError, match=r":2: \[big\] design = 'huge': unknown design"):
        load_config(write(tmp_path, "[big]\ndesign = 'huge'\n"))
    with pytest.raises(UserError, match="--set statik.capital_usd=1: unknown design 'statik'; valid: none"):
        load_config(sets=["statik.capital_usd=1"])
    with pytest.raises(UserError, match="unknown design 'nope'; valid: none, static"):
        load_config().get("nope")


def test_parse_set_forms() -> None:
    assert parse_set("static.capital_usd=1e6") == ("static", "capital_usd", 1e6)
    assert parse_set("static.capital_usd = event") == ("static", "capital_usd", "event")
    assert parse_set('dynamic.target_mode="cvar"') == ("dynamic", "target_mode", "cvar")
    with pytest.raises(UserError, match="expected <design>.<parameter>=<value>"):
        parse_set("capital_usd=1")


def test_docs_carry_the_generated_parameter_tables() -> None:
    """docs/DESIGNS.md shows each design's parameters exactly as declared in code (defaults in one place)."""
    from strategies.config import markdown_table
    from strategies.triggers import TriggerParams

    text = DOC.read_text(encoding="utf-8")
    for name in names():
        assert f"`{name}`" in text
        if name != "none":
            assert markdown_table(entry(name).params) in text, f"regenerate the {name} table"
    assert markdown_table(TriggerParams) in text
