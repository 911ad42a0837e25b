"""Metrics record, per-symbol breakdown, per-bar series and the conservation check (MODEL §8, §11)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backtest.engine import kernels as K
from backtest.engine.replay import RunState

RECORD_KEYS = (
    "event",
    "design",
    "bars",
    "cohorts",
    "liq_count",
    "liq_accounts",
    "liq_long_usd",
    "liq_short_usd",
    "peak_liq_usd_per_min",
    "bad_debt_usd",
    "surplus_usd",
    "fund_paid_usd",
    "fund_start_usd",
    "fund_end_usd",
    "fund_min_usd",
    "adl_notional_usd",
    "adl_haircut_usd",
    "unrecovered_usd",
    "oi_start_usd",
    "oi_min_usd",
    "conservation_residual_usd",
    "traded_usd",
    "funding_net_usd",
    "trader_pnl_usd",
    "warmup_fund_change_usd",
)


@dataclass
class Result:
    """One (event, design) run: the flat record, the per-symbol figures and the series for reports."""

    record: dict[str, Any]
    per_symbol: dict[str, dict[str, float]]
    series: dict[str, Any] = field(default_factory=dict)
    assumptions: dict[str, str] = field(default_factory=dict)

    def to_json_dict(self, with_series: bool = False) -> dict[str, Any]:
        out = dict(self.record)
        out["per_symbol"] = self.per_symbol
        out["assumptions"] = self.assumptions
        if with_series:
            out["series"] = {
                k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in self.series.items()
            }
        return out


def inventory_equity(inv: np.ndarray, mark: float) -> float:
    """Unrealised P&L of the fund's take-over inventory at ``mark`` (MODEL §5.6): long + short."""
    return float((inv[0, K.INV_Q] * mark - inv[0, K.INV_C]) - (inv[1, K.INV_Q] * mark - inv[1, K.INV_C]))


def conservation(run: RunState) -> dict[str, float]:
    """Independent accumulators of the money identity; ``residual`` must be ~0 (MODEL §8)."""
    d = wd = fees = unrec = lp = fnet = traded = e = e_inv = 0.0
    for st in run.symbols.values():
        last = st.inp.n - 1
        mark = st.inp.bars[last, K.B_MCLOSE] * st.mult[last]
        e += K.open_equity(mark, st.fs, st.cs, st.cnt, st.sg)
        e_inv += inventory_equity(st.inv, mark)
        lp += float(st.inv[K.INV_LP, K.INV_Q] * mark - st.inv[K.INV_LP, K.INV_C])
        d += K.acc_total(st.acc, K.A_D)
        wd += K.acc_total(st.acc, K.A_WD)
        fees += K.acc_total(st.acc, K.A_F)
        unrec += K.acc_total(st.acc, K.A_UNREC)
        lp += K.acc_total(st.acc, K.A_LP)
        fnet += K.acc_total(st.acc, K.A_FUNDING_NET)
        traded += K.acc_total(st.acc, K.A_TRADED)
    s_in = float(run.fund_received.sum()) + run.sink_received
    p_out = float(run.fund_paid.sum()) + run.sink_paid
    trader_pnl = wd + e - d - fees
    residual = trader_pnl + fees + (s_in - p_out) + lp - unrec + e_inv
    return {
        "deposits": d,
        "withdrawals": wd,
        "open_equity": e,
        "fees": fees,
        "fund_in": s_in,
        "fund_out": p_out,
        "unrecovered": unrec,
        "lp_pnl": lp,
        "fund_inventory_equity": e_inv,
        "funding_net": fnet,
        "traded": traded,
        "trader_pnl": trader_pnl,
        "residual": residual,
    }


def summarize(
    run: RunState, event: str = "", design: str = "", assumptions: dict[str, str] | None = None
) -> Result:
    """Window metrics (in-window bars only) + whole-run conservation."""
    cons = conservation(run)
    n = run.clock.shape[0]
    rate = np.zeros(n)  # liquidated USD per minute at each tick, all symbols
    oi_tick = np.zeros(n)
    per_symbol: dict[str, dict[str, float]] = {}
    totals = dict.fromkeys(
        (
            "liq_count",
            "liq_accounts",
            "liq_long_usd",
            "liq_short_usd",
            "bad_debt_usd",
            "surplus_usd",
            "fund_paid_usd",
            "adl_notional_usd",
            "adl_haircut_usd",
            "unrecovered_usd",
            "oi_start_usd",
        ),
        0.0,
    )
    series: dict[str, Any] = {
        "clock": run.clock,
        "fund_value": run.fund_value,
        "in_window": run.clock_in_window,
    }
    bars = cohorts = 0
    inv_end = inv_pnl = 0.0
    for sym, st in run.symbols.items():
        inp, out = st.inp, st.out
        w = inp.in_window
        liq = out[:, K.O_LONG + K.O_LIQ_USD] + out[:, K.O_SHORT + K.O_LIQ_USD]
        # the bar active at each tick (forward fill of the bar index)
        at = run.bar_at_tick[sym]
        active = np.maximum.accumulate(np.where(at >= 0, at, -1))
        has = active >= 0
        a = np.clip(active, 0, None)
        rate += np.where(has & w[a], liq[a] / (inp.dt[a] / 60.0), 0.0)
        oi_tick += np.where(has, out[a, K.O_OI], 0.0)
        warm = np.flatnonzero(~w)
        i0 = warm[-1] if warm.size else 0
        sym_fig = {
            "bars": float(inp.n),
            "cohorts": float(st.cnt[K.C_NCOH]),
            "liq_count": float(out[w, K.O_LONG + K.O_EVENTS].sum() + out[w, K.O_SHORT + K.O_EVENTS].sum()),
            "liq_accounts": float(
                out[w, K.O_LONG + K.O_ACCOUNTS].sum() + out[w, K.O_SHORT + K.O_ACCOUNTS].sum()
            ),
            "liq_long_usd": float(out[w, K.O_LONG + K.O_LIQ_USD].sum()),
            "liq_short_usd": float(out[w, K.O_SHORT + K.O_LIQ_USD].sum()),
            "bad_debt_usd": float(out[w, K.O_LONG + K.O_BAD].sum() + out[w, K.O_SHORT + K.O_BAD].sum()),
            "surplus_usd": float(
                out[w, K.O_LONG + K.O_SURPLUS].sum() + out[w, K.O_SHORT + K.O_SURPLUS].sum()
            ),
            "fund_paid_usd": float(st.paid[w].sum()),
            "adl_notional_usd": float(
                out[w, K.O_LONG + K.O_ADL_USD].sum() + out[w, K.O_SHORT + K.O_ADL_USD].sum()
            ),
            "adl_haircut_usd": float(
                out[w, K.O_LONG + K.O_HAIRCUT].sum() + out[w, K.O_SHORT + K.O_HAIRCUT].sum()
            ),
            "unrecovered_usd": float(
                out[w, K.O_LONG + K.O_UNREC].sum() + out[w, K.O_SHORT + K.O_UNREC].sum()
            ),
            "oi_start_usd": float(out[i0, K.O_OI]),
            "oi_min_usd": float(out[w, K.O_OI].min()) if w.any() else float("nan"),
            "peak_liq_usd_per_min": float((liq[w] / (inp.dt[w] / 60.0)).max()) if w.any() else 0.0,
            "pruned_cohorts": float(st.acc[K.A_PRUNED]),
        }
        per_symbol[sym] = sym_fig
        for key in totals:
            totals[key] += sym_fig[key]
        bars += inp.n
        cohorts += int(st.cnt[K.C_NCOH])
        series[f"{sym}.ts"] = inp.ts
        series[f"{sym}.liq_long_usd"] = out[:, K.O_LONG + K.O_LIQ_USD]
        series[f"{sym}.liq_short_usd"] = out[:, K.O_SHORT + K.O_LIQ_USD]
        series[f"{sym}.bad_debt_usd"] = out[:, K.O_LONG + K.O_BAD] + out[:, K.O_SHORT + K.O_BAD]
        series[f"{sym}.adl_notional_usd"] = out[:, K.O_LONG + K.O_ADL_USD] + out[:, K.O_SHORT + K.O_ADL_USD]
        series[f"{sym}.market_flow"] = out[:, K.O_FLOW]
        series[f"{sym}.oi_usd"] = out[:, K.O_OI]
        series[f"{sym}.open_usd"] = out[:, K.O_OPEN_USD]  # new notional per side (leverage shares)
        series[f"{sym}.price_mult"] = st.mult
        mclose = inp.bars[:, K.B_MCLOSE] * st.mult
        series[f"{sym}.inventory_usd"] = (out[:, K.O_INV] + out[:, K.O_INV + 1]) * mclose
        last = inp.n - 1
        inv_end += float((st.inv[0, K.INV_Q] + st.inv[1, K.INV_Q]) * mclose[last])
        inv_pnl += inventory_equity(st.inv, float(mclose[last]))
    win = run.clock_in_window
    fv = run.fund_value[win] if win.any() else run.fund_value
    first_win = int(np.argmax(win)) if win.any() else 0
    record: dict[str, Any] = {
        "event": event,
        "design": design,
        "bars": bars,
        "cohorts": cohorts,
        "liq_count": totals["liq_count"],
        "liq_accounts": totals["liq_accounts"],
        "liq_long_usd": totals["liq_long_usd"],
        "liq_short_usd": totals["liq_short_usd"],
        "peak_liq_usd_per_min": float(rate[win].max()) if win.any() else 0.0,
        "bad_debt_usd": totals["bad_debt_usd"],
        "surplus_usd": totals["surplus_usd"],
        "fund_paid_usd": totals["fund_paid_usd"],
        "fund_start_usd": float(run.fund.capital_usd)
        if first_win == 0
        else float(run.fund_value[first_win - 1]),
        "fund_end_usd": float(run.fund_value[-1]) if n else 0.0,
        "fund_min_usd": float(fv.min()) if fv.size else 0.0,
        "adl_notional_usd": totals["adl_notional_usd"],
        "adl_haircut_usd": totals["adl_haircut_usd"],
        "unrecovered_usd": totals["unrecovered_usd"],
        "oi_start_usd": totals["oi_start_usd"],
        "oi_min_usd": float(oi_tick[win].min()) if win.any() else float("nan"),
        "conservation_residual_usd": cons["residual"],
        "traded_usd": cons["traded"],
        "funding_net_usd": cons["funding_net"],
        "trader_pnl_usd": cons["trader_pnl"],
        "warmup_fund_change_usd": run.sink_received - run.sink_paid,
        "fund_inventory_end_usd": inv_end,
        "fund_inventory_pnl_usd": inv_pnl,
    }
    series["liq_usd_per_min"] = rate
    series["oi_usd"] = oi_tick
    series["fund_received"] = run.fund_received
    series["fund_paid"] = run.fund_paid
    all_assumptions = dict(run.params.assumptions())
    all_assumptions.update(assumptions or {})
    record["assumptions"] = all_assumptions
    return Result(record=record, per_symbol=per_symbol, series=series, assumptions=all_assumptions)
