"""Progress for a log or a pipe: plain, timestamped-free lines on stderr, at most one every few seconds.

On a terminal the commands draw rich progress bars; those draw nothing when stderr is a pipe or a CI
log, so a cold first run looked stalled for many seconds. Off a terminal the same steps are reported
here as plain lines instead (``--quiet`` silences both).
"""

from __future__ import annotations

import sys
import time

#: Least seconds between two throttled lines (the first and the last always print).
EVERY_S = 5.0


def stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


def line(text: str) -> None:
    """One progress line on stderr, flushed at once (a pipe would otherwise buffer it)."""
    print(text, file=sys.stderr, flush=True)


class Throttled:
    """``update(text)`` prints at most one line per ``every`` seconds; ``finish(text)`` always prints."""

    def __init__(self, every: float = EVERY_S, clock: object = time.monotonic) -> None:
        self.every = every
        self.clock = clock
        self._last: float | None = None

    def update(self, text: str) -> None:
        now = self.clock()  # type: ignore[operator]
        if self._last is None or now - self._last >= self.every:
            self._last = now
            line(text)

    def finish(self, text: str) -> None:
        line(text)
