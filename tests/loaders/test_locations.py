"""The default store, download cache and sweep file are found the same way from any working directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from loaders import locations
from loaders.store import resolve_db_path

CHECKOUT = Path(__file__).resolve().parents[2]


def test_defaults_are_the_checkouts_data_folder_from_any_cwd(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BACKTEST_DB", raising=False)
    monkeypatch.delenv("BACKTEST_DATA_DIR", raising=False)
    want = CHECKOUT / "data" / "market.duckdb"
    for cwd in (CHECKOUT, tmp_path):
        monkeypatch.chdir(cwd)
        assert resolve_db_path() == want and resolve_db_path().is_absolute()
        assert locations.default_cache_dir() == CHECKOUT / "data" / "cache" / "binance-vision"
        assert locations.default_sweeps() == CHECKOUT / "data" / "sweeps.duckdb"
    assert not (tmp_path / "data").exists()
    monkeypatch.setenv("BACKTEST_DB", "elsewhere.duckdb")
    assert resolve_db_path() == Path("elsewhere.duckdb")
    assert resolve_db_path("x.duckdb") == Path("x.duckdb")


def test_an_installed_copy_uses_the_users_data_directory(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BACKTEST_DATA_DIR", raising=False)
    monkeypatch.setattr(locations, "_CHECKOUT", tmp_path / "site-packages")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert locations.default_db() == tmp_path / "xdg" / "crash-backtest" / "market.duckdb"


def test_backtest_data_dir_moves_all_three(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BACKTEST_DB", raising=False)
    monkeypatch.setenv("BACKTEST_DATA_DIR", str(tmp_path / "d"))
    assert resolve_db_path() == tmp_path / "d" / "market.duckdb"
    assert locations.default_sweeps() == tmp_path / "d" / "sweeps.duckdb"
    assert locations.default_cache_dir() == tmp_path / "d" / "cache" / "binance-vision"
