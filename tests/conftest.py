"""Shared fixtures. Tests that need the recorded archive skip without it, and fail under CI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from backtest.paths import SIBLING_ARCHIVE

ON_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _archive_dir() -> Path | None:
    env = os.environ.get("BACKTEST_ARCHIVE")
    if env:
        return Path(env) if Path(env).is_dir() else None
    return SIBLING_ARCHIVE if SIBLING_ARCHIVE.is_dir() else None


@pytest.fixture(scope="session")
def archive_dir() -> Path:
    """The recorded crash-window archive (shared/data)."""
    path = _archive_dir()
    if path is None:
        reason = "recorded archive not found: set BACKTEST_ARCHIVE or place shared/data beside the checkout"
        if ON_CI:
            pytest.fail(reason + " (CI=true: the archive is required)")
        pytest.skip(reason)
    return path


@pytest.fixture()
def db_path(tmp_path: Path) -> Path:
    """A fresh store file per test."""
    return tmp_path / "market.duckdb"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests never touch the user's store, sweep file or download cache; BACKTEST_ARCHIVE stays as set."""
    monkeypatch.setenv("BACKTEST_DB", str(tmp_path / "env-default.duckdb"))
    monkeypatch.setenv("BACKTEST_DATA_DIR", str(tmp_path / "data-dir"))


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection to a non-loopback address fails the test that made it."""
    import ipaddress
    import socket

    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> object:
        host = address[0] if isinstance(address, tuple) else None
        if host is not None and self.family in (socket.AF_INET, socket.AF_INET6):
            try:
                ok = ipaddress.ip_address(host).is_loopback
            except ValueError:
                ok = host == "localhost"
            if not ok:
                pytest.fail(f"non-loopback network access attempted: {address!r}")
        return real_connect(self, address)

    real_getaddrinfo = socket.getaddrinfo

    def guarded_lookup(host: object, *args: object, **kwargs: object) -> object:
        name = host.decode() if isinstance(host, bytes) else host
        if name not in (None, "localhost"):
            try:
                ok = ipaddress.ip_address(name).is_loopback
            except ValueError:
                ok = False
            if not ok:
                pytest.fail(f"non-loopback name lookup attempted: {name!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_lookup)
