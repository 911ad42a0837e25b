"""Spell report text with characters the report's fonts can draw.

Binance names its futures venue "USDⓈ-M" with U+24C8 (CIRCLED LATIN CAPITAL LETTER S), and the event
catalog keeps that spelling. Neither DejaVu Sans (the font matplotlib bundles and uses by default) nor any
font of a fresh Debian install has the glyph, so figures warn "Glyph 9416 missing" and draw a box, and a
browser shows tofu in the HTML. Binance's own plain spelling is "USDS-M". Only displayed text is rewritten;
catalog and stored names keep the original character.
"""

from __future__ import annotations

from typing import Any

#: Character -> plain replacement, for characters no guaranteed font has.
FALLBACKS: dict[str, str] = {"\u24c8": "S"}
_TABLE = str.maketrans(FALLBACKS)


def displayable(text: str) -> str:
    """``text`` with every character of FALLBACKS replaced ("USDⓈ-M" -> "USDS-M")."""
    return text.translate(_TABLE)


def make_figure_displayable(fig: Any) -> None:
    """Rewrite every text artist of a matplotlib figure (titles, labels, legends, annotations) in place.

    Done once just before rendering, so no plotting function has to remember to do it.
    """
    from matplotlib.text import Text

    for artist in fig.findobj(Text):
        text = artist.get_text()
        shown = displayable(text)
        if shown != text:
            artist.set_text(shown)
