"""The slow, obviously-correct reference replay engine (tests and benchmarks only).

It implements docs/MODEL.md from the page alone, one cohort object at a time, in plain Python
floats and lists, so that the fast numba engine (``backtest/engine``) can be held to it. It shares
NO numeric code with the fast engine: from ``backtest.engine`` it uses only the parameter
dataclass, the input container (``SymbolInputs`` and the column layout of its ``bars`` array,
bracket columns of its ``brackets`` array) and the result container (``Result``), so both engines
take the same inputs and produce comparable outputs.

Readable over fast: every step of MODEL §4 is a function named after the step, loops are explicit.

Where MODEL.md leaves a choice open, the reference decides as follows (see ``INTERPRETATIONS``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from backtest.engine.inputs import SymbolInputs
from backtest.engine.kernels import (  # column layout of SymbolInputs.bars (data layout only)
    B_HIGH,
    B_LOW,
    B_MCLOSE,
    B_MHIGH,
    B_MLOW,
    B_MOPEN,
    B_VOL,
    B_VUSD,
)
from backtest.engine.params import LEVERAGE_BUCKETS, Params
from backtest.engine.results import Result
from backtest.engine.venue_rules import CUM, FLOOR, MAXLEV, MMR  # column layout of a bracket table
from strategies.base import Fund, Market

LONG, SHORT = +1, -1
SQRT_4LN2 = math.sqrt(4.0 * math.log(2.0))

INTERPRETATIONS = {
    # choices MODEL.md now states explicitly (kept here so a spec change shows up as a test change)
    "counterparties": "every alive cohort of side -S is a counterparty (ADL, socialized loss, absorption), "
                      "including the remainder of a cohort partially liquidated in the same bar (§7)",
    "prune": "prune threshold = prune_frac x side total Q after the bar's closes and opens, computed once; "
             "after any prune the bigger side closes |Q_long - Q_short| pro rata at mark_close (§4.10)",
    "dust": "a close of >= (1 - 1e-12) of what it closes from closes all of it (absorption, ADL's last "
            "cohort, voluntary close share, rebalance); ADL stops at 1e-12 x q_adl; |flow| <= 1e-12 x "
            "(X_long + X_short) is 0 (§5.5)",
    "bankrupt_tol": "a piece is bankrupt for the ADL only if E < -1e-9 x q x PF; its bad debt counts either "
                    "way; no ADL-bankrupt piece -> the uncovered loss is unrecovered (§5.4, §7.1)",
    "lp_excess": "the outside LP crosses min(e_long, e_short): equal up to rounding (§7.3)",
    # choices MODEL.md leaves open
    "adl_flow": "market flow (§9) subtracts the quantity ADL actually closed (filled), not the target q_adl",
    "pay_only_bad_debt": "fund.pay is called only for a (symbol, side) with bad debt > 0",
    "window_tick": "a window tick is a clock tick where some symbol's in-window bar opens",
    "active_bar": "the bar active at a tick is the latest bar opened at or before it (forward fill)",
    "oi_start": "a symbol without warm-up bars contributes its OI after bar 0 to oi_start_usd",
    "warmup_on_bar": "fund.on_bar and fund.value are called on warm-up ticks too (§4 step 11 is per tick)",
    "impact_scale": "S_t from the bar's own range; the normal variance rate of bar 0 is its own (§5.3)",
    "regrowth_ref": "Q_ref = anchor / mark_close at the last warm-up bar; none without a warm-up anchor (§6)",
}


# ---------------------------------------------------------------------------------------------
# margin rules (MODEL §2), written out from the formulas


def tier_of(table: list[list[float]], notional: float) -> int:
    """0-based index of the largest tier whose floor is <= notional (the last tier beyond its cap)."""
    k = 0
    for j, row in enumerate(table):
        if row[FLOOR] <= notional:
            k = j
    return k


@dataclass
class Cohort:
    """One cohort: identical accounts of one side, entry bar, leverage bucket and size class (§3)."""

    index: int  # creation index (ADL tie-break)
    side: int
    q: float  # aggregate quantity Q
    qa: float  # quantity of one account
    ep: float
    w: float  # margin per unit of quantity
    tier: int  # 0-based bracket index
    lev: float

    @property
    def alive(self) -> bool:
        return self.q > 0.0

    def liq_price(self, table: list[list[float]]) -> float:
        mmr = table[self.tier][MMR]
        cum = table[self.tier][CUM]
        if self.side == LONG:
            return (self.ep - self.w - cum / self.qa) / (1.0 - mmr)
        return (self.ep + self.w + cum / self.qa) / (1.0 + mmr)

    def bankruptcy_price(self) -> float:
        return self.ep - self.w if self.side == LONG else self.ep + self.w

    def equity_per_unit(self, price: float) -> float:
        return self.w + self.side * (price - self.ep)


@dataclass
class Piece:
    """A liquidated piece of a cohort (§5.1)."""

    cohort: Cohort
    q: float
    trigger: float
    qa_before: float
    partial: bool  # from a stage that cuts the account to a lower bracket (the cohort keeps the rest)
    fill: float = 0.0


@dataclass
class BarRecord:
    """Everything the reference records for one symbol's bar (per side: index 0 long, 1 short)."""

    liq_usd: list[float] = field(default_factory=lambda: [0.0, 0.0])
    x: list[float] = field(default_factory=lambda: [0.0, 0.0])
    bad: list[float] = field(default_factory=lambda: [0.0, 0.0])
    surplus: list[float] = field(default_factory=lambda: [0.0, 0.0])
    qb: list[float] = field(default_factory=lambda: [0.0, 0.0])
    qb_bp: list[float] = field(default_factory=lambda: [0.0, 0.0])
    qb_pf: list[float] = field(default_factory=lambda: [0.0, 0.0])
    events: list[float] = field(default_factory=lambda: [0.0, 0.0])
    accounts: list[float] = field(default_factory=lambda: [0.0, 0.0])
    paid: list[float] = field(default_factory=lambda: [0.0, 0.0])
    uncovered: list[float] = field(default_factory=lambda: [0.0, 0.0])
    adl_q: list[float] = field(default_factory=lambda: [0.0, 0.0])
    adl_usd: list[float] = field(default_factory=lambda: [0.0, 0.0])
    haircut: list[float] = field(default_factory=lambda: [0.0, 0.0])
    unrec: list[float] = field(default_factory=lambda: [0.0, 0.0])
    p_abs: list[float] = field(default_factory=lambda: [0.0, 0.0])
    excess: list[float] = field(default_factory=lambda: [0.0, 0.0])  # §7.3 need beyond the absorbers
    taken: list[float] = field(default_factory=lambda: [0.0, 0.0])  # §5.6 quantity the fund took over
    offloaded: list[float] = field(default_factory=lambda: [0.0, 0.0])  # §5.6 inventory sold in the bar
    inventory: list[float] = field(default_factory=lambda: [0.0, 0.0])  # §5.6 at the end of the bar
    market_usd: list[float] = field(default_factory=lambda: [0.0, 0.0])  # notional of what the bar sold
    flow: float = 0.0
    oi: float = 0.0
    q_long: float = 0.0  # side totals after the bar (state dump for the Q-balance check)
    q_short: float = 0.0
    lp: float = 0.0  # the LP's net position after the bar (§7.3)


DUST_REL = 1e-12  # MODEL §5.5: a close of >= (1 - DUST_REL) of what it closes from closes all of it
BANKRUPT_TOL = 1e-9  # MODEL §5.4: bankrupt for the ADL only if E < -BANKRUPT_TOL x q x PF


def _si(side: int) -> int:
    return 0 if side == LONG else 1


class SymbolBook:
    """One symbol's cohorts, accumulators and per-bar records."""

    def __init__(self, inp: SymbolInputs, p: Params) -> None:
        self.inp = inp
        self.p = p
        self.table = [[float(v) for v in row] for row in inp.brackets]
        self.cohorts: list[Cohort] = []
        self.records = [BarRecord() for _ in range(inp.n)]
        self.mult = [1.0] * inp.n
        self.pieces: list[Piece] = []
        self.scale = self.impact_scales()
        self.q_ref = self.regrowth_reference()
        # §5.6: the fund's take-over inventory per side [quantity, cost USD] and the offload share per bar
        self.inv = [[0.0, 0.0], [0.0, 0.0]]
        self.lp = [0.0, 0.0]  # §7.3: the outside liquidity provider's net position (long > 0) and its cost
        tau = p.takeover_tau_s
        self.f_sell = [1.0 if tau <= 0.0 else -math.expm1(-float(dt) / tau) for dt in inp.dt]
        # conservation accumulators (§8)
        self.deposits = 0.0
        self.withdrawals = 0.0
        self.fees = 0.0
        self.unrec = 0.0
        self.lp_pnl = 0.0
        self.funding_net = 0.0
        self.traded = 0.0
        self.pruned = 0

    # ---- per-bar model inputs written out from the spec (§5.3 impact scale, §6 regrowth)
    def impact_scales(self) -> list[float]:
        """S_t = sigma_t (sigma_t / sigma_N,t)^kappa (ref / dt_t)^beta, sigma_N from an EWMA of sigma^2/dt."""
        p, inp = self.p, self.inp
        hi, lo = (B_MHIGH, B_MLOW) if p.impact_range == "mark" else (B_HIGH, B_LOW)
        sigmas = []
        for t in range(inp.n):
            h, low = float(inp.bars[t, hi]), float(inp.bars[t, lo])
            sigma = math.log(h / low) / SQRT_4LN2 if low > 0.0 else 0.0
            sigmas.append(sigma if sigma > 0.0 else 0.0)
        out = []
        normal = None
        for t in range(inp.n):
            dt = float(inp.dt[t])
            rate = sigmas[t] * sigmas[t] / dt
            if normal is None:
                normal = rate  # bar 0: nothing before it, its own rate
            scale = sigmas[t]
            if p.impact_kappa != 0.0:
                sigma_n = math.sqrt(normal * dt)
                ratio = sigmas[t] / sigma_n if sigma_n > 0.0 else 1.0
                scale = scale * math.pow(ratio, p.impact_kappa)
            if p.impact_beta != 0.0:
                scale = scale * math.pow(p.impact_ref_s / dt, p.impact_beta)
            out.append(scale)
            weight = 1.0 - math.exp(-(dt * math.log(2.0)) / p.impact_norm_halflife_s)
            normal = normal + weight * (sigmas[t] * sigmas[t] / dt - normal)
        return out

    def regrowth_reference(self) -> float:
        """Q_ref: the anchor at the last warm-up bar in base units (0: no regrowth)."""
        inp = self.inp
        last = None
        for t in range(inp.n):
            if not inp.in_window[t]:
                last = t
        if self.p.oi_regrow_s <= 0.0 or last is None:
            return 0.0
        target, mark = float(inp.target[last]), float(inp.bars[last, B_MCLOSE])
        if math.isnan(target) or mark <= 0.0:
            return 0.0
        return target / mark

    def regrow_rate(self, t: int) -> float:
        """1 - exp(-dt / oi_regrow_s) on a free in-window bar when there is a reference, else 0."""
        if self.q_ref <= 0.0 or not self.inp.in_window[t] or not math.isnan(float(self.inp.target[t])):
            return 0.0
        return 1.0 - math.exp(-float(self.inp.dt[t]) / self.p.oi_regrow_s)

    # ---- helpers
    def alive(self, side: int | None = None) -> list[Cohort]:
        return [c for c in self.cohorts if c.q > 0.0 and (side is None or c.side == side)]

    def side_q(self, side: int) -> float:
        total = 0.0
        for c in self.alive(side):
            total += c.q
        return total

    def bar(self, t: int, col: int) -> float:
        """A price of bar t on this run's path (§9: last and mark OHLC times the multiplier)."""
        return float(self.inp.bars[t, col]) * self.mult[t]

    def close(self, c: Cohort, a: float, price: float, fee: bool = True) -> None:
        """Close quantity a of c at price: equity back to the trader, trading fee outside (§8)."""
        self.withdrawals += a * c.equity_per_unit(price)
        if fee:
            self.fees += self.p.trading_fee * a * price
        self.traded += a * price
        c.q -= a

    # ---- steps 1-4
    def funding(self, t: int) -> None:
        rate = float(self.inp.funding[t])
        if rate == 0.0:
            return
        mark_open = self.bar(t, B_MOPEN)
        for c in self.alive():
            c.w = c.w - c.side * rate * mark_open
            self.funding_net += c.side * rate * mark_open * c.q
        for i in (0, 1):  # §5.6: the fund's inventory pays (long) or earns (short): booked into its cost
            if self.inv[i][0] > 0.0:
                self.inv[i][1] += rate * mark_open * self.inv[i][0]
        if self.lp[0] != 0.0:  # §7.3: the LP's position too (signed)
            self.lp[1] += rate * mark_open * self.lp[0]

    def liquidate(self, t: int) -> None:
        """Trigger stages (§5.1), impact and fills (§5.3), surplus and bad debt (§5.4)."""
        mark_open, mark_low, mark_high = self.bar(t, B_MOPEN), self.bar(t, B_MLOW), self.bar(t, B_MHIGH)
        pieces: list[Piece] = []
        for c in self.alive():
            while c.q > 0.0:
                lp = c.liq_price(self.table)
                if c.side == LONG:
                    if not mark_low <= lp:
                        break
                    trigger = min(lp, mark_open)
                else:
                    if not mark_high >= lp:
                        break
                    trigger = max(lp, mark_open)
                if c.tier == 0:
                    pieces.append(Piece(c, c.q, trigger, c.qa, partial=False))
                    c.q = 0.0
                    break
                qa_new = min(c.qa, self.table[c.tier][FLOOR] / trigger)
                piece = c.q * (1.0 - qa_new / c.qa)
                keeps = c.q * (qa_new / c.qa) > 0.0  # §5.4: a partial piece leaves the cohort a remainder
                pieces.append(Piece(c, piece, trigger, c.qa, partial=keeps))
                c.q = c.q * (qa_new / c.qa)
                c.qa = qa_new
                c.tier -= 1
        rec = self.records[t]
        f_sell = self.f_sell[t]
        # §5.6: the bar sells the carried inventory's share, partial pieces whole, last pieces' share
        offload = [self.inv[0][0] * f_sell, self.inv[1][0] * f_sell]
        rec.x = list(offload)
        for pc in pieces:
            rec.x[_si(pc.cohort.side)] += pc.q if pc.partial else pc.q * f_sell
        volume = float(self.inp.bars[t, B_VOL])
        scale = self.scale[t]
        impact = [self.impact(scale, volume, rec.x[0]), self.impact(scale, volume, rec.x[1])]
        for i, side in ((0, LONG), (1, SHORT)):
            if offload[i] > 0.0:
                fill = mark_open * (1.0 - impact[0]) if side == LONG else mark_open * (1.0 + impact[1])
                self.offload(rec, i, side, offload[i], fill, f_sell)
        for pc in pieces:
            if pc.q <= 0.0:
                continue
            c, i = pc.cohort, _si(pc.cohort.side)
            pc.fill = pc.trigger * (1.0 - impact[0]) if c.side == LONG else pc.trigger * (1.0 + impact[1])
            rec.liq_usd[i] += pc.q * pc.fill
            rec.events[i] += 1.0
            rec.accounts[i] += pc.q / pc.qa_before
            q = pc.q
            if not pc.partial:  # §5.6: the fund takes over what the bar does not sell, at BP
                kept = q - q * f_sell
                if kept > 0.0:
                    self.inv[i][0] += kept
                    self.inv[i][1] += kept * c.bankruptcy_price()
                    rec.taken[i] += kept
                    q = q - kept
                    if q <= 0.0:
                        continue
            leftover = q * c.equity_per_unit(pc.fill)
            rec.market_usd[i] += q * pc.fill
            self.traded += q * pc.fill
            if leftover >= 0.0:
                # §5.4: margin -> all to the fund; fee -> the clearance fee; venue -> the fee for a partial
                # piece, all of it for the last piece (closed at the bankruptcy price, taken over)
                mode = self.p.surplus_mode
                takes_all = mode == "margin" or (mode == "venue" and not pc.partial)
                if takes_all:
                    rec.surplus[i] += leftover
                else:
                    rate = self.inp.clearance_rate if self.p.surplus_mode == "venue" else self.p.clearance_fee
                    to_fund = min(leftover, rate * q * pc.fill)
                    rec.surplus[i] += to_fund
                    self.withdrawals += leftover - to_fund
            else:
                rec.bad[i] += -leftover
                if leftover < -BANKRUPT_TOL * q * pc.fill:  # bankrupt for the ADL (§5.4)
                    rec.qb[i] += q
                    rec.qb_bp[i] += q * c.bankruptcy_price()
                    rec.qb_pf[i] += q * pc.fill
        rec.inventory = [self.inv[0][0], self.inv[1][0]]
        self.pieces = pieces

    def offload(self, rec: BarRecord, i: int, side: int, u: float, fill: float, f_sell: float) -> None:
        """§5.6: sell u of the fund's inventory at fill; P&L against its average cost is surplus or bad
        debt, a loss beyond the tolerance an ADL-eligible piece at that cost."""
        q_inv, cost_usd = self.inv[i]
        cost = cost_usd / q_inv
        self.inv[i] = [0.0, 0.0] if f_sell >= 1.0 - DUST_REL else [q_inv - u, cost_usd - u * cost]
        pnl = u * side * (fill - cost)
        rec.offloaded[i] += u
        rec.market_usd[i] += u * fill
        self.traded += u * fill
        if pnl >= 0.0:
            rec.surplus[i] += pnl
        else:
            rec.bad[i] += -pnl
            if pnl < -BANKRUPT_TOL * u * fill:
                rec.qb[i] += u
                rec.qb_bp[i] += u * cost
                rec.qb_pf[i] += u * fill

    def impact(self, scale: float, volume: float, x: float) -> float:
        if x <= 0.0:
            return 0.0
        if volume <= 0.0:
            return self.p.impact_cap
        return min(self.p.impact_cap, self.p.impact_y * scale * math.sqrt(x / volume))

    # ---- steps 6-10
    def adl(self, t: int, s_liq: int, loss: float) -> tuple[float, float]:
        """§7.1: the winners of side -S close at the pieces' bankruptcy price. Returns (filled, VWAP_b)."""
        rec, i = self.records[t], _si(s_liq)
        phi = loss / rec.bad[i]
        q_adl = phi * rec.qb[i]
        p_adl = rec.qb_bp[i] / rec.qb[i]
        vwap_b = rec.qb_pf[i] / rec.qb[i]
        ranked = []
        for c in self.alive(-s_liq):
            u = c.side * (p_adl - c.ep)
            if u > 0.0:
                pnl_pct = u / max(c.w, 1e-9 * c.ep)
                eff_lev = p_adl / (c.w + u)
                ranked.append((-(pnl_pct * eff_lev), c.index, c))
        ranked.sort(key=lambda r: (r[0], r[1]))
        filled = 0.0
        for _, _, c in ranked:
            rest = q_adl - filled
            if rest <= DUST_REL * q_adl:  # §5.5: nothing left but dust
                break
            whole = c.q * (1.0 - DUST_REL) <= rest  # §5.5: the last cohort closes whole within dust
            a = c.q if whole else rest
            self.close(c, a, p_adl, fee=False)  # ADL: no trading fee (MECHANICS §1.6)
            filled += a
        haircut = filled * abs(p_adl - vwap_b)
        rec.adl_q[i] = filled
        rec.adl_usd[i] = filled * p_adl
        rec.haircut[i] = haircut
        rec.unrec[i] = loss - haircut
        self.unrec += loss - haircut
        return filled, vwap_b

    def socialize(self, t: int, s_liq: int, loss: float) -> None:
        """§7.2: charge the loss to side -S's profits at mark_close, pro rata."""
        rec, i = self.records[t], _si(s_liq)
        mark_close = self.bar(t, B_MCLOSE)
        winners = []
        for c in self.alive(-s_liq):
            profit = c.q * c.side * (mark_close - c.ep)
            if profit > 0.0:
                winners.append((c, profit))
        total = 0.0
        for _, profit in winners:
            total += profit
        charged = min(loss, total)
        for c, profit in winners:
            charge = charged * profit / total
            c.w = c.w - charge / c.q
        rec.haircut[i] = charged
        rec.unrec[i] = loss - charged
        self.unrec += loss - charged

    def waterfall_and_absorb(self, t: int) -> None:
        """§7: per liquidated side (longs first), the uncovered loss, then absorption of the rest."""
        rec = self.records[t]
        excess = [0.0, 0.0]
        for s_liq in (LONG, SHORT):
            i = _si(s_liq)
            if rec.x[i] <= 0.0:
                continue
            loss = rec.uncovered[i]
            filled, vwap_b = 0.0, 0.0
            if loss > 0.0:
                if self.p.waterfall == "socialized":
                    self.socialize(t, s_liq, loss)
                elif rec.qb[i] > 0.0:
                    filled, vwap_b = self.adl(t, s_liq, loss)
                else:  # §7.1: no piece bankrupt for the ADL, the uncovered loss stays with the venue
                    rec.unrec[i] = loss
                    self.unrec += loss
            need = rec.x[i] - filled
            if need <= 0.0:
                continue
            p_abs = (rec.market_usd[i] - filled * vwap_b) / need
            rec.p_abs[i] = p_abs
            takers = self.alive(-s_liq)  # §7.3: every alive cohort, also a partially liquidated one
            avail = 0.0
            for c in takers:
                avail += c.q
            # §5.5: within DUST_REL of the larger of the side and the bar's liquidated quantity
            whole = need >= avail - DUST_REL * max(avail, rec.x[i])
            for c in takers:
                self.close(c, c.q if whole else c.q * (need / avail), p_abs)
            if need > avail:
                excess[i] = need - avail
        rec.excess = excess
        e = 0.0
        if excess[0] > 0.0 and excess[1] > 0.0:
            e = min(excess[0], excess[1])
            self.lp_pnl += e * (rec.p_abs[1] - rec.p_abs[0])
        # §7.3: beyond the crossing (the excesses differ by the fund's net inventory change), the LP holds
        dust = DUST_REL * (rec.x[0] + rec.x[1])
        if excess[0] - e > dust:
            self.lp = [self.lp[0] + (excess[0] - e), self.lp[1] + (excess[0] - e) * rec.p_abs[0]]
        if excess[1] - e > dust:
            self.lp = [self.lp[0] - (excess[1] - e), self.lp[1] - (excess[1] - e) * rec.p_abs[1]]
        flow = (rec.x[1] - rec.adl_q[1]) - (rec.x[0] - rec.adl_q[0])
        dust = DUST_REL * (rec.x[0] + rec.x[1])
        rec.flow = 0.0 if abs(flow) <= dust else flow  # §5.5

    def book_flows(self, t: int) -> None:
        """§6: voluntary closes, opens, then prune (§4.10), all at mark_close."""
        p, rec = self.p, self.records[t]
        mark_close = self.bar(t, B_MCLOSE)
        vusd = float(self.inp.bars[t, B_VUSD])
        oi = self.side_q(LONG) * mark_close
        c_share = min(p.close_cap, p.close_volume_share * vusd / oi) if oi > 0.0 else 0.0
        if c_share >= 1.0 - DUST_REL:  # §5.5
            c_share = 1.0
        if c_share > 0.0:
            # §6, §5.6: closes are trades between the sides; with positions held outside the book the
            # sides differ and both close c x the smaller side
            share = {LONG: c_share, SHORT: c_share}
            if self.inv[0][0] != 0.0 or self.inv[1][0] != 0.0 or self.lp[0] != 0.0:
                q_long, q_short = self.side_q(LONG), self.side_q(SHORT)
                smaller = min(q_long, q_short)
                for side, q_side in ((LONG, q_long), (SHORT, q_short)):
                    sh = c_share * (smaller / q_side) if q_side > 0.0 else 0.0
                    share[side] = 1.0 if sh >= 1.0 - DUST_REL else sh
            for c in self.alive():
                self.close(c, share[c.side] * c.q, mark_close)
        target = float(self.inp.target[t])
        if math.isnan(target):
            n_open = p.open_volume_share * vusd
            rate = self.regrow_rate(t)
            if rate > 0.0:  # §6: regrowth toward the pre-window book, in base units at today's mark
                level = self.q_ref * mark_close
                gap = level - self.side_q(LONG) * mark_close
                if gap > DUST_REL * level:  # §5.5: a gap of rounding size is none
                    n_open += rate * gap
        else:
            n_open = target - self.side_q(LONG) * mark_close
            if n_open <= DUST_REL * target:  # §5.5: the book is at its anchor up to rounding
                n_open = 0.0
        if n_open > 0.0:
            self.open(t, n_open, mark_close)
        self.prune(mark_close)
        rec.q_long, rec.q_short = self.side_q(LONG), self.side_q(SHORT)
        rec.lp = self.lp[0]
        rec.oi = rec.q_long * mark_close

    def open(self, t: int, n_open: float, price: float) -> None:
        p = self.p
        x = ((float(self.inp.f_last[t]) - p.funding_neutral) / p.funding_ref
             + (float(self.inp.tb[t]) - 0.5) / p.taker_ref)
        x = min(1.0, max(-1.0, x))
        for side in (LONG, SHORT):
            xs = x if side == LONG else -x
            a_plus = p.lev_tilt * max(xs, 0.0)
            a_minus = p.lev_tilt * max(-xs, 0.0)
            for b, bucket in enumerate(LEVERAGE_BUCKETS):
                weight = (p.lev_neutral[b] + a_plus * (p.lev_crowded[b] - p.lev_neutral[b])
                          + a_minus * (p.lev_hedger[b] - p.lev_neutral[b]))
                for z, size in enumerate(p.size_usd):
                    notional = n_open * weight * p.size_share[z]
                    if notional <= 0.0:
                        continue
                    k = tier_of(self.table, size)
                    lev = min(bucket, self.table[k][MAXLEV])
                    c = Cohort(index=len(self.cohorts), side=side, q=notional / price, qa=size / price,
                               ep=price, w=price / lev, tier=k, lev=lev)
                    self.cohorts.append(c)
                    self.deposits += c.q * c.w
                    self.fees += p.trading_fee * notional
                    self.traded += notional

    def prune(self, price: float) -> None:
        frac = self.p.prune_frac
        threshold = {LONG: frac * self.side_q(LONG), SHORT: frac * self.side_q(SHORT)}
        pruned = 0
        for c in self.alive():
            if c.q < threshold[c.side]:
                self.close(c, c.q, price)
                c.q = 0.0
                pruned += 1
        if pruned:
            self.pruned += pruned
            q_long, q_short = self.side_q(LONG), self.side_q(SHORT)
            # §5.6: long Q + the fund's long inventory = short Q + its short inventory
            held_long, held_short = q_long + self.inv[0][0] + self.lp[0], q_short + self.inv[1][0]
            big = LONG if held_long > held_short else SHORT
            total = q_long if big == LONG else q_short
            diff = abs(held_long - held_short)
            if diff > 0.0 and total > 0.0:
                share = diff / total
                for c in self.alive(big):
                    self.close(c, c.q if share >= 1.0 - DUST_REL else share * c.q, price)  # §5.5

    def inventory_equity(self) -> float:
        """§5.6: unrealised P&L of the fund's inventory at the last mark close."""
        mark = self.bar(self.inp.n - 1, B_MCLOSE)
        return (self.inv[0][0] * mark - self.inv[0][1]) - (self.inv[1][0] * mark - self.inv[1][1])

    def open_equity(self) -> float:
        mark = self.bar(self.inp.n - 1, B_MCLOSE)
        e = 0.0
        for c in self.alive():
            e += c.q * c.equity_per_unit(mark)
        return e


# ---------------------------------------------------------------------------------------------
# the clock (MODEL §4, §9)


@dataclass
class ReferenceRun:
    """What a reference replay leaves behind: books, per-tick fund series, and the summary."""

    params: Params
    books: dict[str, SymbolBook]
    clock: list[int]
    bar_at: dict[str, list[int]]  # symbol -> bar index opening at each tick, or -1
    window_tick: list[bool]
    fund_value: list[float]
    fund_received: list[float]
    fund_paid: list[float]
    sink_received: float
    sink_paid: float
    capital: float


def _endogenous_multiplier(book: SymbolBook, t: int, baseline: list[float], p: Params) -> float:
    """exp(A_t), A_t = sum over u < t of c_u exp(-(ts_t - ts_u)/decay), written as the plain sum (§9)."""
    inp = book.inp
    a_t = 0.0
    for u in range(t):
        flow = book.records[u].flow
        base = float(baseline[u]) if baseline is not None else 0.0
        d = flow - base
        if abs(d) <= DUST_REL * (abs(flow) + abs(base)):  # §5.5: equal up to rounding
            continue
        vol = float(inp.bars[u, B_VOL])
        size = (p.impact_cap if vol <= 0.0
                else min(p.impact_cap, p.impact_y * book.scale[u] * math.sqrt(abs(d) / vol)))
        a_t += math.copysign(size, d) * math.exp(-(float(inp.ts[t]) - float(inp.ts[u])) / p.endo_decay_s)
    return math.exp(a_t)


def replay_reference(inputs: list[SymbolInputs], fund: Fund, params: Params | None = None, *,
                     baseline_flow: dict[str, Any] | None = None) -> ReferenceRun:
    """Replay the symbols on one clock with one shared fund, the slow way."""
    p = params or Params()
    books = {inp.symbol: SymbolBook(inp, p) for inp in inputs}
    if len(books) != len(inputs):
        raise ValueError("each symbol may appear once")
    clock = sorted({int(ts) for inp in inputs for ts in inp.ts})
    bar_at = {}
    for sym, book in books.items():
        where = {int(ts): t for t, ts in enumerate(book.inp.ts)}
        bar_at[sym] = [where.get(tick, -1) for tick in clock]
    n = len(clock)
    window_tick = [any(bar_at[s][k] >= 0 and bool(books[s].inp.in_window[bar_at[s][k]]) for s in books)
                   for k in range(n)]
    fund_value, fund_received, fund_paid = [0.0] * n, [0.0] * n, [0.0] * n
    sink_received = sink_paid = 0.0
    for k in range(n):
        active = [(sym, books[sym], bar_at[sym][k]) for sym in books if bar_at[sym][k] >= 0]
        for sym, book, t in active:  # steps 1-4
            if baseline_flow is not None:
                book.mult[t] = _endogenous_multiplier(book, t, baseline_flow.get(sym), p)
            book.funding(t)
            book.liquidate(t)
        surplus = 0.0  # step 5
        for _sym, book, t in active:
            rec = book.records[t]
            if book.inp.in_window[t]:
                surplus += rec.surplus[0] + rec.surplus[1]
            else:
                sink_received += rec.surplus[0] + rec.surplus[1]
        if surplus > 0.0:
            fund.receive(k, surplus)
            fund_received[k] = surplus
        for _sym, book, t in active:
            rec = book.records[t]
            for i in (0, 1):
                if rec.bad[i] <= 0.0:
                    continue
                if book.inp.in_window[t]:
                    paid = float(fund.pay(k, rec.bad[i]))
                    if not 0.0 <= paid <= rec.bad[i]:
                        raise ValueError(f"fund {fund.name}: pay returned {paid} for {rec.bad[i]}")
                    fund_paid[k] += paid
                else:
                    paid = rec.bad[i]
                    sink_paid += paid
                rec.paid[i] = paid
                rec.uncovered[i] = rec.bad[i] - paid
        for _sym, book, t in active:  # steps 6-10
            book.waterfall_and_absorb(t)
            book.book_flows(t)
        market = Market(tick=k, ts=float(clock[k]), in_window=window_tick[k],
                        mark={sym: book.bar(t, B_MCLOSE) for sym, book, t in active},
                        oi_usd={sym: book.records[t].oi for sym, book, t in active},
                        liq_usd={sym: book.records[t].liq_usd[0] + book.records[t].liq_usd[1]
                                 for sym, book, t in active},
                        funding_rate={sym: float(book.inp.funding[t]) for sym, book, t in active})
        fund.on_bar(k, market)  # step 11
        fund_value[k] = float(fund.value(k))
    return ReferenceRun(p, books, clock, bar_at, window_tick, fund_value, fund_received, fund_paid,
                        sink_received, sink_paid, fund.capital_usd)


# ---------------------------------------------------------------------------------------------
# metrics (MODEL §8, §11)


def conservation(run: ReferenceRun) -> dict[str, float]:
    d = wd = fees = unrec = lp = fnet = traded = e = e_inv = 0.0
    for book in run.books.values():
        d += book.deposits
        wd += book.withdrawals
        fees += book.fees
        unrec += book.unrec
        lp += book.lp_pnl
        fnet += book.funding_net
        traded += book.traded
        e += book.open_equity()
        e_inv += book.inventory_equity()
        lp += book.lp[0] * book.bar(book.inp.n - 1, B_MCLOSE) - book.lp[1]
    s_in = sum(run.fund_received) + run.sink_received
    p_out = sum(run.fund_paid) + run.sink_paid
    trader_pnl = wd + e - d - fees
    residual = trader_pnl + fees + (s_in - p_out) + lp - unrec + e_inv
    return {"deposits": d, "withdrawals": wd, "open_equity": e, "fees": fees, "fund_in": s_in,
            "fund_out": p_out, "unrecovered": unrec, "lp_pnl": lp, "fund_inventory_equity": e_inv,
            "funding_net": fnet, "traded": traded,
            "trader_pnl": trader_pnl, "residual": residual}


def _both(values: list[float]) -> float:
    return values[0] + values[1]


def summarize_reference(run: ReferenceRun, event: str = "", design: str = "") -> Result:
    """The same record / per-symbol / series keys as ``backtest.engine.results.summarize``."""
    cons = conservation(run)
    n = len(run.clock)
    win_ticks = [k for k in range(n) if run.window_tick[k]]
    per_symbol: dict[str, dict[str, float]] = {}
    series: dict[str, Any] = {"clock": list(run.clock), "fund_value": list(run.fund_value),
                              "in_window": list(run.window_tick)}
    rate = [0.0] * n
    oi_tick = [0.0] * n
    inv_end = inv_pnl = 0.0
    for sym, book in run.books.items():
        inp, recs = book.inp, book.records
        win = [t for t in range(inp.n) if inp.in_window[t]]
        warm = [t for t in range(inp.n) if not inp.in_window[t]]
        last = -1
        for k in range(n):
            if run.bar_at[sym][k] >= 0:
                last = run.bar_at[sym][k]
            if last >= 0:
                oi_tick[k] += recs[last].oi
                if inp.in_window[last]:
                    rate[k] += _both(recs[last].liq_usd) / (float(inp.dt[last]) / 60.0)

        def wsum(get, win=win, recs=recs) -> float:
            total = 0.0
            for t in win:
                total += get(recs[t])
            return total

        fig = {
            "bars": float(inp.n),
            "cohorts": float(len(book.cohorts)),
            "liq_count": wsum(lambda r: _both(r.events)),
            "liq_accounts": wsum(lambda r: _both(r.accounts)),
            "liq_long_usd": wsum(lambda r: r.liq_usd[0]),
            "liq_short_usd": wsum(lambda r: r.liq_usd[1]),
            "bad_debt_usd": wsum(lambda r: _both(r.bad)),
            "surplus_usd": wsum(lambda r: _both(r.surplus)),
            "fund_paid_usd": wsum(lambda r: _both(r.paid)),
            "adl_notional_usd": wsum(lambda r: _both(r.adl_usd)),
            "adl_haircut_usd": wsum(lambda r: _both(r.haircut)),
            "unrecovered_usd": wsum(lambda r: _both(r.unrec)),
            "oi_start_usd": recs[warm[-1] if warm else 0].oi,
            "oi_min_usd": min(recs[t].oi for t in win) if win else float("nan"),
            "peak_liq_usd_per_min": max((_both(recs[t].liq_usd) / (float(inp.dt[t]) / 60.0) for t in win),
                                        default=0.0),
            "pruned_cohorts": float(book.pruned),
        }
        per_symbol[sym] = fig
        series[f"{sym}.ts"] = [int(x) for x in inp.ts]
        series[f"{sym}.liq_long_usd"] = [r.liq_usd[0] for r in recs]
        series[f"{sym}.liq_short_usd"] = [r.liq_usd[1] for r in recs]
        series[f"{sym}.bad_debt_usd"] = [_both(r.bad) for r in recs]
        series[f"{sym}.adl_notional_usd"] = [_both(r.adl_usd) for r in recs]
        series[f"{sym}.market_flow"] = [r.flow for r in recs]
        series[f"{sym}.oi_usd"] = [r.oi for r in recs]
        series[f"{sym}.price_mult"] = list(book.mult)
        series[f"{sym}.inventory_usd"] = [_both(r.inventory) * book.bar(t, B_MCLOSE)
                                          for t, r in enumerate(recs)]
        last_mark = book.bar(inp.n - 1, B_MCLOSE)
        inv_end += (book.inv[0][0] + book.inv[1][0]) * last_mark
        inv_pnl += book.inventory_equity()

    def total(key: str) -> float:
        out = 0.0
        for fig in per_symbol.values():
            out += fig[key]
        return out

    first_win = win_ticks[0] if win_ticks else 0
    fund_win = [run.fund_value[k] for k in win_ticks] if win_ticks else list(run.fund_value)
    record: dict[str, Any] = {
        "event": event, "design": design,
        "bars": sum(b.inp.n for b in run.books.values()),
        "cohorts": sum(len(b.cohorts) for b in run.books.values()),
        **{key: total(key) for key in ("liq_count", "liq_accounts", "liq_long_usd", "liq_short_usd")},
        "peak_liq_usd_per_min": max((rate[k] for k in win_ticks), default=0.0),
        **{key: total(key) for key in ("bad_debt_usd", "surplus_usd", "fund_paid_usd")},
        "fund_start_usd": run.capital if first_win == 0 else run.fund_value[first_win - 1],
        "fund_end_usd": run.fund_value[-1] if n else 0.0,
        "fund_min_usd": min(fund_win) if fund_win else 0.0,
        **{key: total(key) for key in ("adl_notional_usd", "adl_haircut_usd", "unrecovered_usd",
                                       "oi_start_usd")},
        "oi_min_usd": min((oi_tick[k] for k in win_ticks), default=float("nan")),
        "conservation_residual_usd": cons["residual"], "traded_usd": cons["traded"],
        "funding_net_usd": cons["funding_net"], "trader_pnl_usd": cons["trader_pnl"],
        "warmup_fund_change_usd": run.sink_received - run.sink_paid,
        "fund_inventory_end_usd": inv_end, "fund_inventory_pnl_usd": inv_pnl,
    }
    series["liq_usd_per_min"] = rate
    series["oi_usd"] = oi_tick
    series["fund_received"] = list(run.fund_received)
    series["fund_paid"] = list(run.fund_paid)
    assumptions = dict(run.params.assumptions())
    assumptions.update({f"reference.{k}": v for k, v in INTERPRETATIONS.items()})
    record["assumptions"] = assumptions
    return Result(record=record, per_symbol=per_symbol, series=series, assumptions=assumptions)


def run_reference(inputs: list[SymbolInputs], fund: Fund, params: Params | None = None, *,
                  baseline_flow: dict[str, Any] | None = None, event: str = "", design: str = "") -> Result:
    """Replay + summary in one call (the reference counterpart of replay + summarize)."""
    run = replay_reference(inputs, fund, params, baseline_flow=baseline_flow)
    return summarize_reference(run, event, design)


# ---------------------------------------------------------------------------------------------
# test helpers shared by the engine tests and the benchmark


class CappedFund(Fund):
    """A simple fund for tests: starts with ``capital_usd``, pays at most ``pay_cap`` per tick, and
    pays out (to the venue) whatever exceeds ``max_balance`` after each tick."""

    name = "capped"

    def __init__(self, capital_usd: float = 0.0, pay_cap: float = math.inf,
                 max_balance: float = math.inf) -> None:
        super().__init__(capital_usd)
        self.balance = float(capital_usd)
        self.pay_cap = pay_cap
        self.max_balance = max_balance
        self._tick = -1
        self._paid_this_tick = 0.0

    def receive(self, tick: int, usd: float) -> None:
        self.balance += usd

    def pay(self, tick: int, usd: float) -> float:
        if tick != self._tick:
            self._tick, self._paid_this_tick = tick, 0.0
        paid = max(0.0, min(usd, self.balance, self.pay_cap - self._paid_this_tick))
        self.balance -= paid
        self._paid_this_tick += paid
        return paid

    def on_bar(self, tick: int, market: Market) -> None:
        self.balance = min(self.balance, self.max_balance)

    def value(self, tick: int) -> float:
        return self.balance


def _numbers(x: Any) -> list[float] | None:
    try:
        return [float(v) for v in x]
    except TypeError:
        return None


COUNT_KEYS = ("bars", "cohorts", "liq_count", "pruned_cohorts")  # integers: compared exactly


def compare_results(fast: Result, ref: Result, *, rel: float = 1e-9, floor: float | None = None) -> list[str]:
    """Every metric, per-symbol figure and per-bar series of two results. Counts must be equal; other
    values agree within ``rel`` relative or an absolute floor for values near 0: ``floor`` (default
    1e-9 x traded notional) for scalars, for a series ``rel`` x its largest magnitude or 1e-12 x traded
    notional. Returns the mismatches as text."""
    traded = max(abs(float(ref.record["traded_usd"])), 1.0)
    if floor is None:
        floor = 1e-9 * traded
    bad: list[str] = []

    def check(name: str, a: Any, b: Any, near_zero: float, exact: bool = False) -> None:
        if isinstance(a, str) or isinstance(b, str) or exact:
            if a != b:
                bad.append(f"{name}: fast {a!r} != reference {b!r}")
            return
        a, b = float(a), float(b)
        if math.isnan(a) and math.isnan(b):
            return
        if not abs(a - b) <= max(rel * max(abs(a), abs(b)), near_zero):
            bad.append(f"{name}: fast {a!r} != reference {b!r}")

    for key, value in ref.record.items():
        if key == "assumptions":
            continue
        if key not in fast.record:
            bad.append(f"record key {key} missing in the fast result")
            continue
        check(key, fast.record[key], value, floor, key in COUNT_KEYS)
    if set(fast.per_symbol) != set(ref.per_symbol):
        bad.append(f"symbols differ: {sorted(fast.per_symbol)} vs {sorted(ref.per_symbol)}")
    for sym, fig in ref.per_symbol.items():
        for key, value in fig.items():
            got = fast.per_symbol.get(sym, {}).get(key, math.inf)
            check(f"{sym}.{key}", got, value, floor, key in COUNT_KEYS)
    for key, values in ref.series.items():
        if key not in fast.series:
            bad.append(f"series {key} missing in the fast result")
            continue
        a, b = _numbers(fast.series[key]), _numbers(values)
        if a is None or b is None or len(a) != len(b):
            bad.append(f"series {key}: shapes differ")
            continue
        near_zero = max(rel * max((abs(x) for x in b if not math.isnan(x)), default=0.0), 1e-12 * traded)
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            before = len(bad)
            check(f"series {key}[{i}]", x, y, near_zero)
            if len(bad) > before:
                break  # first differing bar per series is enough
    return bad


def unbalanced_bars(run: ReferenceRun, rel: float = 1e-9) -> list[tuple[str, int]]:
    """Bars after which the positions do not balance: long Q + the fund's long inventory + the LP's
    position = short Q + the fund's short inventory (MODEL §5.6, §7.3); the tests assert this list is
    empty. (Absorption by every alive cohort makes the two sides' excess equal when nothing is held
    outside the book; with a take-over inventory they differ by its net change, which the LP holds.)
    """
    out = []
    for sym, book in run.books.items():
        scale = max([max(r.q_long, r.q_short, r.x[0], r.x[1]) for r in book.records], default=0.0)
        for t, rec in enumerate(book.records):
            gap = rec.q_long + rec.inventory[0] + rec.lp - rec.q_short - rec.inventory[1]
            if abs(gap) > rel * scale:
                out.append((sym, t))
    return out
