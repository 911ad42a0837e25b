"""The one rich console every command prints its stdout tables through.

Rich sizes a console from the terminal; when stdout is a pipe, a file or a CI log it falls back to 80
columns and folds or cuts every table to fit, which makes piped output (``backtest events | less``,
``> out.txt``) unreadable. Off a terminal we therefore let tables take their natural width instead.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

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


def _text_width(cell: object) -> int:
    """Display width of a cell as rendered (plain strings and rich Text)."""
    from rich.cells import cell_len
    from rich.text import Text

    text = cell.plain if isinstance(cell, Text) else str(cell)
    return max((cell_len(line) for line in text.splitlines()), default=0)


def stacked(table: Any, width: int, keep: int = 1) -> list[Any]:
    """``table`` as it is if it fits ``width``, else several tables stacked vertically: each repeats the
    first ``keep`` (label) columns and takes as many of the others as fit, so no cell is cut to "st…"."""
    from rich.table import Table

    cols = list(table.columns)
    widths = [max(_text_width(c.header), *(_text_width(x) for x in c.cells), 1) + 3 for c in cols]
    if sum(widths) + 1 <= width or len(cols) <= keep + 1:
        return [table]
    fixed = sum(widths[:keep]) + 1
    groups: list[list[int]] = [[]]
    used = fixed
    for i in range(keep, len(cols)):
        if groups[-1] and used + widths[i] > width:
            groups.append([])
            used = fixed
        groups[-1].append(i)
        used += widths[i]
    out = []
    for n, group in enumerate(groups, start=1):
        idx = list(range(keep)) + group
        part = Table(
            title=f"{table.title} ({n}/{len(groups)})" if table.title else None,
            title_justify=table.title_justify,
            caption=table.caption if n == len(groups) else None,
            caption_justify=table.caption_justify,
        )
        for i in idx:
            c = cols[i]
            part.add_column(c.header, justify=c.justify, no_wrap=c.no_wrap)
        cells = [list(cols[i].cells) for i in idx]
        for r, row in enumerate(table.rows):
            part.add_row(*(cells[k][r] for k in range(len(idx))), end_section=row.end_section)
        out.append(part)
    return out


def print_table(console: Console, table: Any, keep: int = 1) -> None:
    """Print a table whole when it fits the console, else stacked (see ``stacked``)."""
    for part in stacked(table, console.width, keep):
        console.print(part)
