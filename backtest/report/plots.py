"""Report figures as PNG bytes (matplotlib, Agg backend: no display, no network).

Every axis carries its unit; times are UTC. Only the event window is drawn (the warm-up only builds
the book). Figures are rendered deterministically (fixed size, dpi, no timestamps in metadata).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from backtest.engine.results import Result
from backtest.report.glyphs import make_figure_displayable

DPI = 110
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f")


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {"font.size": 9, "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
         "axes.spines.right": False, "figure.dpi": DPI, "svg.hashsalt": "report",
         # labels are user text (design labels, event titles): '$' is a dollar, never mathtext
         "text.parse_math": False}
    )
    return plt


def _times(ts: np.ndarray) -> list[datetime]:
    return [datetime.fromtimestamp(int(t), UTC).replace(tzinfo=None) for t in ts]


def _usd_axis(ax: Any, label: str) -> None:
    from matplotlib.ticker import FuncFormatter

    def fmt(x: float, _pos: int) -> str:
        for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
            if abs(x) >= scale:
                return f"{x / scale:g}{suffix}"
        return f"{x:g}"

    ax.yaxis.set_major_formatter(FuncFormatter(fmt))
    ax.set_ylabel(label)


def _time_axis(ax: Any, peak: datetime | None = None) -> None:
    import matplotlib.dates as mdates

    loc = mdates.AutoDateLocator(minticks=4, maxticks=10)
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))
    ax.set_xlabel("time (UTC)")
    if peak is not None:
        ax.axvline(peak, color="0.4", lw=0.8, ls=":")


def render_png(fig: Any) -> bytes:
    """Lay out and render a finished figure; its text is made drawable first, since layout measures it."""
    make_figure_displayable(fig)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", metadata={"Software": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def price_and_flow(
    prices: dict[str, dict[str, np.ndarray]], result: Result, peak: datetime | None = None
) -> bytes:
    """Per symbol: last and mark close (USD) above, forced flow (liquidated notional, USD per minute) below.

    ``prices``: symbol -> {"ts", "dt", "last", "mark"} of the window bars (see :func:`window_prices`);
    the flow comes from ``result``.
    """
    plt = _plt()
    syms = list(prices)
    fig, axes = plt.subplots(2, len(syms), figsize=(5.6 * len(syms), 5.2), sharex="col", squeeze=False,
                             gridspec_kw={"height_ratios": (3, 2)})
    s = result.series
    for j, sym in enumerate(syms):
        p = prices[sym]
        t = _times(p["ts"])
        ax = axes[0][j]
        ax.plot(t, p["last"], color=COLORS[0], lw=0.9, label="last")
        ax.plot(t, p["mark"], color=COLORS[3], lw=0.9, ls="--", label="mark")
        ax.set_title(f"{sym} price", loc="left", fontsize=10)
        _usd_axis(ax, "price (USD)")
        ax.legend(loc="best", fontsize=8)
        if peak is not None:
            ax.axvline(peak, color="0.4", lw=0.8, ls=":")
        ax2 = axes[1][j]
        bts = np.asarray(s[f"{sym}.ts"])
        keep = np.isin(bts, p["ts"])
        dt_min = np.asarray(p["dt"], float) / 60.0
        long_ = np.asarray(s[f"{sym}.liq_long_usd"])[keep] / dt_min
        short = np.asarray(s[f"{sym}.liq_short_usd"])[keep] / dt_min
        tb = _times(bts[keep])
        # one line per bar: 1-minute bars of the crash stay visible next to hourly ones
        ax2.vlines(tb, 0, long_, color=COLORS[1], lw=0.9, label="longs liquidated")
        ax2.vlines(tb, 0, -short, color=COLORS[2], lw=0.9, label="shorts liquidated")
        ax2.axhline(0, color="0.3", lw=0.5)
        _usd_axis(ax2, "forced flow (USD/min)")
        ax2.set_title(f"{sym} forced flow per bar (longs up, shorts down; design {result.record['design']})",
                      loc="left", fontsize=9)
        ax2.legend(loc="lower left", fontsize=8)
        _time_axis(ax2, peak)
    return render_png(fig)


def window_prices(inputs: Sequence[Any]) -> dict[str, dict[str, np.ndarray]]:
    """Window bars of each symbol's engine inputs: open time, length (s), last close, mark close."""
    from backtest.engine import kernels as K

    out = {}
    for inp in inputs:
        w = np.asarray(inp.in_window, bool)
        out[inp.symbol] = {"ts": inp.ts[w], "dt": inp.dt[w], "last": inp.bars[w, K.B_CLOSE],
                           "mark": inp.bars[w, K.B_MCLOSE]}
    return out


def _window(result: Result) -> tuple[list[datetime], np.ndarray]:
    s = result.series
    win = np.asarray(s["in_window"], bool)
    return _times(np.asarray(s["clock"])[win]), win


def fund_value(results: Sequence[Result], peak: datetime | None = None, title: str = "") -> bytes:
    """Fund value (USD) per design over the window."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(11, 4.2))
    for i, r in enumerate(results):
        t, win = _window(r)
        ax.plot(t, np.asarray(r.series["fund_value"])[win], color=COLORS[i % len(COLORS)], lw=1.2,
                ls="-" if i < len(COLORS) else "--", label=str(r.record["design"]), drawstyle="steps-post")
    _usd_axis(ax, "fund value (USD)")
    _time_axis(ax, peak)
    ax.set_title(title or "Fund value per design", loc="left", fontsize=10)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    return render_png(fig)


def cumulative_adl(results: Sequence[Result], peak: datetime | None = None, title: str = "") -> bytes:
    """Cumulative ADL notional (USD, all symbols) per design over the window."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(11, 4.2))
    for i, r in enumerate(results):
        t, win = _window(r)
        ax.plot(t, adl_per_tick(r)[win].cumsum(), color=COLORS[i % len(COLORS)], lw=1.2,
                ls="-" if i < len(COLORS) else "--", label=str(r.record["design"]), drawstyle="steps-post")
    _usd_axis(ax, "cumulative ADL notional (USD)")
    _time_axis(ax, peak)
    ax.set_title(title or "Cumulative auto-deleveraging per design", loc="left", fontsize=10)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    return render_png(fig)


def adl_per_tick(r: Result) -> np.ndarray:
    """ADL notional of the in-window bars starting at each clock tick, summed over symbols."""
    s = r.series
    clock = np.asarray(s["clock"])
    out = np.zeros(clock.shape[0])
    for key in s:
        if key.endswith(".adl_notional_usd"):
            sym = key[: -len(".adl_notional_usd")]
            np.add.at(out, np.searchsorted(clock, np.asarray(s[f"{sym}.ts"])), np.asarray(s[key]))
    return np.where(np.asarray(s["in_window"], bool), out, 0.0)
