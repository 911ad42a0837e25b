"""The one rich console every command prints its stdout tables through.

Rich sizes a console from the terminal; when stdout is a pipe, a file or a CI log it falls back to 80
columns and folds or cuts every table to fit, which makes piped output (``backtest events | less``,
``> out.txt``) unreadable. Off a terminal we therefore let tables take their natural width instead.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

# Wide enough for any table the CLI prints; tables do not expand, so they still take their natural width.
UNBOUNDED_WIDTH = 10_000


def stdout_console() -> Console:
    """Console for a command's stdout: the terminal's width on a TTY, never folded when piped or captured.

    An explicit ``COLUMNS`` still wins off a terminal, so a user who wants a fixed width can ask for it.
    """
    from rich.console import Console

    console = Console()
    if console.is_terminal:
        return console
    columns = os.environ.get("COLUMNS", "")
    return Console(width=int(columns) if columns.isdigit() and int(columns) > 0 else UNBOUNDED_WIDTH)
