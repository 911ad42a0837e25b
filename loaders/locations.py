"""Where the tool keeps its files by default, found the same way from any working directory.

The store, the download cache and the sweep results used to be ``data/...`` relative to the current
directory, so a run started from another folder silently created a second empty store there and
imported the archive again. The default is now the ``data/`` folder of the checkout the code runs from
(where ``events.toml`` lives and ``.gitignore`` expects the store); an installed copy (no checkout) uses
the user's data directory (``$XDG_DATA_HOME/crash-backtest``, else ``~/.local/share/crash-backtest``).
``BACKTEST_DATA_DIR`` moves all three at once; ``--db`` / ``BACKTEST_DB`` and the other options still win.
"""

from __future__ import annotations

import os
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """The default folder for the store, the download cache and sweep results (absolute)."""
    env = os.environ.get("BACKTEST_DATA_DIR")
    if env:
        return Path(env).absolute()
    if (_CHECKOUT / "pyproject.toml").is_file() and (_CHECKOUT / "data").is_dir():
        return _CHECKOUT / "data"
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "crash-backtest"


def default_db() -> Path:
    return data_dir() / "market.duckdb"


def default_cache_dir() -> Path:
    return data_dir() / "cache" / "binance-vision"


def default_sweeps() -> Path:
    return data_dir() / "sweeps.duckdb"
