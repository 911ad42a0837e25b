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
from backtest.report.tables import money

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


def bar_length_text(dt_s: np.ndarray) -> str:
    """The bar lengths present, e.g. '1m and 1h bars' (resolution is stated on every per-bar panel)."""
    names = []
    for d in sorted({float(x) for x in np.asarray(dt_s, float)}):
        names.append(f"{d / 3600:g}h" if d >= 3600 else f"{d / 60:g}m" if d >= 60 else f"{d:g}s")
    if not names:
        return "no bars"
    return (names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]) + " bars"


def hourly(ts: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-bar amounts summed into UTC hours (bar open time): one resolution for 1m, 15m and 1h bars."""
    hours = (np.asarray(ts, np.int64) // 3600) * 3600
    keys, inv = np.unique(hours, return_inverse=True)
    out = np.zeros(keys.shape[0])
    np.add.at(out, inv, np.asarray(values, float))
    return keys, out


def _bars(
    ax: Any, start_s: np.ndarray, length_s: np.ndarray, values: np.ndarray, color: str, label: str
) -> None:
    """Bars from each start over its own length as ONE filled step patch (fast for thousands of 1m bars);
    gaps between bars drop to 0."""
    import matplotlib.dates as mdates

    start = np.asarray(start_s, np.int64)
    end = start + np.asarray(length_s, float).astype(np.int64)
    if start.size == 0:
        return
    edges = [start[0]]
    vals: list[float] = []
    for i in range(start.size):
        if start[i] > edges[-1]:
            vals.append(0.0)
            edges.append(start[i])
        vals.append(float(values[i]))
        edges.append(end[i])
    days = mdates.date2num(_times(np.asarray(edges)))
    ax.stairs(vals, days, fill=True, color=color, label=label, baseline=0.0)


def price_and_flow(
    prices: dict[str, dict[str, np.ndarray]], result: Result, peak: datetime | None = None
) -> bytes:
    """Per symbol: last and mark close (USD) above, forced flow (liquidated notional per UTC hour) below.

    ``prices``: symbol -> {"ts", "dt", "last", "mark"} of the window bars (see :func:`window_prices`);
    the flow comes from ``result``. Bars of any length are summed into hours, so a symbol on 1m crash-day
    bars and one on 1h bars are drawn at the same resolution; the title gives each symbol's bad debt.
    """
    plt = _plt()
    syms = list(prices)
    fig, axes = plt.subplots(2, len(syms), figsize=(5.6 * len(syms), 5.4), sharex="col", squeeze=False,
                             gridspec_kw={"height_ratios": (3, 2)})
    s = result.series
    for j, sym in enumerate(syms):
        p = prices[sym]
        t = _times(p["ts"])
        ax = axes[0][j]
        ax.plot(t, p["last"], color=COLORS[0], lw=0.9, label="last")
        ax.plot(t, p["mark"], color=COLORS[3], lw=0.9, ls="--", label="mark")
        ax.set_title(f"{sym} price ({bar_length_text(p['dt'])})", loc="left", fontsize=10)
        _usd_axis(ax, "price (USD)")
        ax.legend(loc="best", fontsize=8)
        if peak is not None:
            ax.axvline(peak, color="0.4", lw=0.8, ls=":")
        ax2 = axes[1][j]
        bts = np.asarray(s[f"{sym}.ts"])
        keep = np.isin(bts, p["ts"])
        hl, long_ = hourly(bts[keep], np.asarray(s[f"{sym}.liq_long_usd"])[keep])
        _, short = hourly(bts[keep], np.asarray(s[f"{sym}.liq_short_usd"])[keep])
        bad = float(np.asarray(s[f"{sym}.bad_debt_usd"])[keep].sum())
        _bars(ax2, hl, np.full(hl.shape[0], 3600.0), long_, COLORS[1], "longs liquidated")
        _bars(ax2, hl, np.full(hl.shape[0], 3600.0), -short, COLORS[2], "shorts liquidated")
        ax2.axhline(0, color="0.3", lw=0.5)
        _usd_axis(ax2, "liquidated (USD per hour)")
        ax2.set_title(f"{sym} forced flow per UTC hour · bad debt {money(bad)}", loc="left", fontsize=9)
        ax2.legend(loc="lower left", fontsize=8)
        _time_axis(ax2, peak)
    fig.suptitle(f"Design {result.record['design']}'s replay", x=0.01, ha="left", fontsize=9, color="0.35")
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
        adl = adl_per_tick(r)[win]
        ax.plot(t, adl.cumsum(), color=COLORS[i % len(COLORS)], lw=1.2, ls="-" if i < len(COLORS) else "--",
                label=f"{r.record['design']} {money(float(adl.sum()))}", drawstyle="steps-post")
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


def _capital_results(results: Sequence[Result]) -> list[Result]:
    """Designs with a start capital (value as % of start is defined)."""
    return [r for r in results if float(r.record.get("fund_start_usd") or 0.0) > 0.0]


def _pct(r: Result, win: np.ndarray) -> np.ndarray:
    return np.asarray(r.series["fund_value"], float)[win] / float(r.record["fund_start_usd"]) * 100.0


def fund_panels(results: Sequence[Result], peak: datetime | None = None) -> bytes:
    """One small panel per design: fund value as % of its own start, each on its own scale, so a 2 %
    drawdown is as visible as a 60 % one; the title gives start, lowest and end value."""
    from matplotlib.ticker import FuncFormatter

    plt = _plt()
    rs = _capital_results(results)
    cols = 3
    rows = max(1, -(-len(rs) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(11.5, 2.5 * rows), squeeze=False, sharex=True)
    for i, r in enumerate(rs):
        ax = axes[i // cols][i % cols]
        t, win = _window(r)
        v = _pct(r, win)
        rec = r.record
        ax.plot(t, v, color=COLORS[i % len(COLORS)], lw=1.2, drawstyle="steps-post")
        ax.axhline(100.0, color="0.5", lw=0.6, ls="--")
        lo = float(v.min()) if v.size else 100.0
        ax.set_title(f"{rec['design']}: start {money(rec['fund_start_usd'])}\nlowest {lo:.1f} % · end "
                     f"{(float(v[-1]) if v.size else 100.0):.1f} %", loc="left", fontsize=8.5)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda x, _p: f"{x:g} %"))
        if v.size and np.ptp(v) < 0.2:  # a flat line: show ±0.1 % around it rather than noise
            mid = float(v.mean())
            ax.set_ylim(mid - 0.1, mid + 0.1)
        _time_axis(ax, peak)
        ax.set_xlabel("")
    for k in range(len(rs), rows * cols):
        axes[k // cols][k % cols].axis("off")
    fig.supylabel("fund value, % of its start", fontsize=9)
    return render_png(fig)


def crash_window(results: Sequence[Result], peak: datetime | None, hours: float) -> tuple[int, int]:
    """[from, to) epoch seconds of the crash zoom: ``peak`` ± ``hours``; without a peak, around the tick
    with the most liquidated notional per minute."""
    if peak is not None:
        centre = int(peak.replace(tzinfo=UTC).timestamp())
    else:
        s = results[0].series
        clock = np.asarray(s["clock"])
        rate = np.where(np.asarray(s["in_window"], bool), np.asarray(s["liq_usd_per_min"], float), -1.0)
        centre = int(clock[int(np.argmax(rate))]) if clock.size else 0
    h = int(hours * 3600)
    return centre - h, centre + h


def crash_zoom(
    prices: dict[str, dict[str, np.ndarray]], results: Sequence[Result], peak: datetime | None,
    hours: float = 6.0,
) -> bytes:
    """The hours that decide the outcome: price, forced flow per bar (its resolution stated), fund value
    (% of start) and cumulative ADL per design, peak ± ``hours``."""
    plt = _plt()
    lo, hi = crash_window(results, peak, hours)
    syms = list(prices)
    ncol = max(1, len(syms))
    fig = plt.figure(figsize=(5.8 * ncol, 10.5))
    gs = fig.add_gridspec(4, ncol, height_ratios=(2.2, 1.8, 2.2, 1.8))
    first = results[0]
    s = first.series
    share = None
    for j, sym in enumerate(syms):
        p = prices[sym]
        ts = np.asarray(p["ts"])
        m = (ts >= lo) & (ts < hi)
        ax = fig.add_subplot(gs[0, j], sharex=share)
        share = share or ax
        ax.plot(_times(ts[m]), np.asarray(p["last"])[m], color=COLORS[0], lw=1.0, label="last")
        ax.plot(_times(ts[m]), np.asarray(p["mark"])[m], color=COLORS[3], lw=1.0, ls="--", label="mark")
        ax.set_title(f"{sym} price ({bar_length_text(np.asarray(p['dt'])[m])})", loc="left", fontsize=9.5)
        _usd_axis(ax, "price (USD)")
        ax.legend(loc="best", fontsize=8)
        _time_axis(ax, peak)
        ax.set_xlabel("")
        ax2 = fig.add_subplot(gs[1, j], sharex=share)
        bts = np.asarray(s[f"{sym}.ts"])
        keep = (bts >= lo) & (bts < hi) & np.isin(bts, ts)
        dt_min = np.asarray(p["dt"], float)[np.isin(ts, bts[keep])] / 60.0
        long_ = np.asarray(s[f"{sym}.liq_long_usd"])[keep] / dt_min
        short = np.asarray(s[f"{sym}.liq_short_usd"])[keep] / dt_min
        _bars(ax2, bts[keep], dt_min * 60.0, long_, COLORS[1], "longs")  # each bar over its own length
        _bars(ax2, bts[keep], dt_min * 60.0, -short, COLORS[2], "shorts")
        ax2.axhline(0, color="0.3", lw=0.5)
        _usd_axis(ax2, "USD per minute")
        ax2.set_title(f"{sym} forced flow per bar ({bar_length_text(dt_min * 60.0)}), USD/min",
                      loc="left", fontsize=9)
        ax2.legend(loc="lower left", fontsize=7.5)
        _time_axis(ax2, peak)
        ax2.set_xlabel("")
    ax3 = fig.add_subplot(gs[2, :], sharex=share)
    ax4 = fig.add_subplot(gs[3, :], sharex=share)
    for i, r in enumerate(results):
        clock = np.asarray(r.series["clock"])
        win = np.asarray(r.series["in_window"], bool) & (clock >= lo) & (clock < hi)
        color, ls = COLORS[i % len(COLORS)], "-" if i < len(COLORS) else "--"
        label = str(r.record["design"])
        if float(r.record.get("fund_start_usd") or 0.0) > 0.0:
            ax3.plot(_times(clock[win]), _pct(r, win), color=color, ls=ls, lw=1.2, label=label,
                     drawstyle="steps-post")
        adl = adl_per_tick(r)
        ax4.plot(_times(clock[win]), adl[win].cumsum(), color=color, ls=ls, lw=1.2,
                 label=f"{label} {money(float(adl[win].sum()))}", drawstyle="steps-post")
    ax3.set_ylabel("fund value, % of start")
    ax3.set_title(f"Fund value per design, peak ± {hours:g} h", loc="left", fontsize=9.5)
    if ax3.get_legend_handles_labels()[0]:  # only designs with a start capital are drawn here
        ax3.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    _time_axis(ax3, peak)
    ax3.set_xlabel("")
    _usd_axis(ax4, "cumulative ADL (USD)")
    ax4.set_title(f"ADL notional per design from {_times(np.array([lo]))[0]:%m-%d %H:%M} UTC (all symbols)",
                  loc="left", fontsize=9.5)
    ax4.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    _time_axis(ax4, peak)
    return render_png(fig)


def bad_debt_and_surplus(results: Sequence[Result], peak: datetime | None = None) -> bytes:
    """Cumulative bad debt offered to each design's fund and cumulative liquidation surplus it received."""
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11.5, 3.8), sharex=True)
    for i, r in enumerate(results):
        t, win = _window(r)
        color, ls = COLORS[i % len(COLORS)], "-" if i < len(COLORS) else "--"
        bad = np.asarray(r.series["fund_asked"], float)[win].cumsum()
        sur = np.asarray(r.series["fund_received"], float)[win].cumsum()
        d = str(r.record["design"])
        a1.plot(t, bad, color=color, ls=ls, lw=1.2, drawstyle="steps-post",
                label=f"{d} {money(float(bad[-1]) if bad.size else 0.0)}")
        a2.plot(t, sur, color=color, ls=ls, lw=1.2, drawstyle="steps-post",
                label=f"{d} {money(float(sur[-1]) if sur.size else 0.0)}")
    _usd_axis(a1, "cumulative bad debt (USD)")
    a1.set_title("Bad debt offered to the fund", loc="left", fontsize=9.5)
    _usd_axis(a2, "cumulative surplus (USD)")
    a2.set_title("Liquidation surplus received", loc="left", fontsize=9.5)
    for ax in (a1, a2):
        ax.legend(loc="upper left", fontsize=7.5)
        _time_axis(ax, peak)
    return render_png(fig)


def waterfall(results: Sequence[Result]) -> bytes:
    """Per design, the money identity as a waterfall of the change from the start: + each inflow,
    − each outflow, ± own P&L, = net change (start and end in the title); rounded labels, own scale."""
    plt = _plt()
    rs = [r for r in results if r.record.get("money_identity")]
    cols = 2
    rows = max(1, -(-len(rs) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(11.5, 2.7 * rows), squeeze=False)
    for i, r in enumerate(rs):
        ax = axes[i // cols][i % cols]
        mi = r.record["money_identity"]
        steps = [(f"+ {k}", v) for k, v in mi["inflows"].items() if v]
        steps += [(f"− {k}", -v) for k, v in mi["outflows"].items() if v]
        steps += [(f"± {k}", v) for k, v in mi["pnl"].items() if v]
        net = mi["end"] - mi["start"]
        labels = [k for k, _ in steps] + ["= change"]
        level = 0.0
        lefts, widths, colors = [], [], []
        for _, v in steps:
            lefts.append(min(level, level + v))
            widths.append(abs(v))
            colors.append("#2ca02c" if v >= 0 else "#d62728")
            level += v
        lefts.append(min(0.0, net))
        widths.append(abs(net))
        colors.append("#1f77b4")
        y = np.arange(len(labels))[::-1]
        ax.barh(y, widths, left=lefts, color=colors, height=0.6)
        vals = [v for _, v in steps] + [net]
        span = max([abs(x) for x in (*lefts, *(a + w for a, w in zip(lefts, widths, strict=True)))] + [1.0])
        for yy, left, w, v in zip(y, lefts, widths, vals, strict=True):
            txt = ("+" if v >= 0 else "−") + money(abs(v))
            ax.text(left + w + span * 0.01, yy, txt, va="center", ha="left", fontsize=7.5)
        ax.axvline(0, color="0.3", lw=0.6)
        ax.set_yticks(y, labels, fontsize=8)
        _x_usd(ax)
        ax.set_xlim(min(min(lefts), 0.0) - span * 0.05, max(a + w for a, w in zip(lefts, widths, strict=True))
                    + span * 0.3)
        pct = net / mi["start"] * 100.0 if mi["start"] else float("nan")
        ax.set_title(f"{r.record['design']}: start {money(mi['start'])} → end {money(mi['end'])} "
                     f"({pct:+.2f} %)", loc="left", fontsize=9)
    for k in range(len(rs), rows * cols):
        axes[k // cols][k % cols].axis("off")
    return render_png(fig)


def _x_usd(ax: Any) -> None:
    from matplotlib.ticker import FuncFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _p: money(x).replace(".00", "")))
    ax.set_xlabel("change from the start (USD)")
