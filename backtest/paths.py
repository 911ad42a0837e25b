"""Where things live: the repository root, the built-in catalog, the recorded archive."""

from __future__ import annotations

import os
from pathlib import Path

from loaders.errors import UserError

REPO_ROOT = Path(__file__).resolve().parents[1]
SIBLING_ARCHIVE = REPO_ROOT.parent / "shared" / "data"


def builtin_events_file() -> Path:
    """``data/events.toml`` in a checkout; the copy packed into the wheel otherwise."""
    in_repo = REPO_ROOT / "data" / "events.toml"
    if in_repo.exists():
        return in_repo
    return Path(__file__).resolve().parent / "_catalog" / "events.toml"


def resolve_archive(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The recorded archive directory, or None when none is configured or found.

    ``--archive`` beats ``BACKTEST_ARCHIVE``; a configured path that does not exist is an error
    (a typo must not silently fall back to the network). Unconfigured, a ``shared/data`` folder
    beside the checkout (where this project's recorded crash windows live) is used if present.
    """
    for label, value in (("--archive", explicit), ("BACKTEST_ARCHIVE", os.environ.get("BACKTEST_ARCHIVE"))):
        if value:
            path = Path(value)
            if not path.is_dir():
                raise UserError(f"{label}={value}: no such archive directory")
            return path
    return SIBLING_ARCHIVE if SIBLING_ARCHIVE.is_dir() else None
