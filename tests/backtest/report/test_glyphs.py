"""Report text only uses characters the fonts can draw: no "Glyph ... missing" warning, no tofu in HTML.

The catalog spells Binance's venue "USDⓈ-M" (U+24C8), which neither DejaVu Sans (matplotlib's bundled
font) nor a fresh Debian's fonts have.
"""

from __future__ import annotations

import warnings

import pytest

from backtest.engine.api import run_event
from backtest.engine.params import Params
from backtest.events import load_catalog
from backtest.metrics import add_fund_metrics
from backtest.report import plots
from backtest.report.glyphs import displayable
from backtest.report.html import EventSection, render
from loaders.venues import VENUES
from tests.backtest.test_run_designs import FakeEvent, FakeFund, synthetic_inputs

VENUE = "Binance USDⓈ-M perpetuals"


def _missing_glyph_warnings(build) -> list[str]:  # noqa: ANN001
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        build()
    return [str(w.message) for w in caught if "missing from" in str(w.message)]


def _dejavu_charmap() -> set[int]:
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    path = font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans"), fallback_to_default=False)
    return set(FT2Font(path).get_charmap())


@pytest.fixture(scope="module")
def results():
    ev = FakeEvent(title=f"synthetic crash on {VENUE}",
                   fund_before=[FakeFund("binanceusdm", "BTC/ETH USDⓈ-M insurance fund", 3e6, "USDT")])
    inputs = synthetic_inputs()
    res = run_event(ev, None, inputs, Params())
    add_fund_metrics(res, window_s=(ev.end - ev.start).total_seconds(), risk_free=0.04)
    for r in res:  # a design label carrying the character reaches legends and titles too
        r.record["design"] = f"{r.record['design']} ({VENUE})"
    return ev, inputs, res


def test_plain_matplotlib_would_miss_the_glyph():
    """Control: the detection below works, and the fallback is still needed."""
    if 0x24C8 in _dejavu_charmap():
        pytest.skip("this matplotlib's DejaVu Sans draws U+24C8; the fallback is harmless but unneeded")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    def build() -> None:
        fig = Figure()
        fig.add_subplot().set_title(VENUE)
        FigureCanvasAgg(fig).draw()

    assert _missing_glyph_warnings(build)


def test_figures_have_no_missing_glyph(results):
    ev, inputs, res = results
    prices = plots.window_prices(inputs)
    assert _missing_glyph_warnings(lambda: [
        plots.price_and_flow(prices, res[0]),
        plots.fund_value(res, title=f"Fund value, {VENUE}"),
        plots.cumulative_adl(res, title=f"Cumulative ADL, {VENUE}"),
    ]) == []


def test_html_report_spells_the_venue_plainly(results):
    ev, inputs, res = results
    section = EventSection(ev, res, plots.window_prices(inputs), "binanceusdm", Params(), 0.04)
    pages = []
    assert _missing_glyph_warnings(lambda: pages.append(render([section], title=VENUE, command="x"))) == []
    page = pages[0]
    assert "Ⓢ" not in page
    assert "<title>Binance USDS-M perpetuals</title>" in page
    assert "BTC/ETH USDS-M insurance fund" in page
    # the catalog/data name itself is untouched
    assert ev.fund_before[0].fund == "BTC/ETH USDⓈ-M insurance fund"


def test_catalog_and_venue_names_are_drawable_once_displayable():
    """Every name a report shows from the catalog or venue table is in DejaVu Sans after the fallback."""
    charmap = _dejavu_charmap()
    texts = [v.title for v in VENUES.values()]
    for e in load_catalog().events:
        texts += [e.title, e.peak_note, *e.symbols, *e.venues]
        texts += [t for f in e.fund_before for t in (f.venue, f.fund, f.currency)]
    missing = {(c, t) for t in texts for c in displayable(t) if ord(c) not in charmap}
    assert not missing
    assert any("Ⓢ" in t for t in texts)  # the case this guards is really in the data


def test_displayable_only_rewrites_the_fallback_characters():
    assert displayable("USDⓈ-M ≥$8B → 12%") == "USDS-M ≥$8B → 12%"
