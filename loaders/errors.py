"""User-facing errors.

Every error a user can cause (bad file, bad option, locked store, network down) is a
``UserError``: the CLI prints its message on one line and exits non-zero. Anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """An error caused by input, options or the environment, with a one-line message."""

    exit_code = 2


class InputError(UserError):
    """A malformed input file; names the file and, where known, the 1-based line."""

    def __init__(self, path: str | Path, message: str, line: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


class ConflictError(UserError):
    """Incoming rows disagree with rows already stored under the same key."""


class ChecksumError(UserError):
    """A file's SHA-256 does not match its published checksum."""


class StoreLockedError(UserError):
    """The DuckDB file is held by another process."""


class SourceError(UserError):
    """A remote source (exchange API, download site) failed after retries or cannot serve a request."""


class RetentionError(SourceError):
    """The venue does not keep history that far back: said explicitly, never an empty result."""
