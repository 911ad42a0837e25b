"""Numba kernels over cohort arrays: funding, liquidation + execution, waterfall + book flows.

Arrays only — no I/O, no polars, no Python objects — so each bar is a few compiled loops over the
live cohorts (docs/MODEL.md §4). Layouts (column indices) are the constants below; ``replay.py``
owns the arrays and calls these kernels once per symbol and bar.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# cohort float state fs[:, i] (one contiguous row per field: the passes stream a few fields)
Q, QA, EP, W, LEV, LP = range(6)
NFS = 6
# cohort int state cs[:, i]
SIDE, TIER, TRIG = range(3)  # TRIG: last bar in which a liquidation stage fired (diagnostic only)
NCS = 3
# bar inputs bars[t, :]
B_OPEN, B_HIGH, B_LOW, B_CLOSE, B_VOL, B_VUSD, B_MOPEN, B_MHIGH, B_MLOW, B_MCLOSE = range(10)
NB = 10
# pieces pc[k, :]: cohort, q, trigger price, qa before, Q after, qa after, tier after
P_I, P_Q, P_PT, P_QA, P_QAFTER, P_QAAFTER, P_TIER = range(7)
NPC = 7
# per-bar outputs out[t, :]; side-specific blocks start at O_LONG / O_SHORT
(
    O_LIQ_USD,
    O_X,
    O_BAD,
    O_SURPLUS,
    O_RETURNED,
    O_QB,
    O_QBBP,
    O_QBPF,
    O_EVENTS,
    O_ACCOUNTS,
    O_IMPACT,
    O_ADL_Q,
    O_ADL_USD,
    O_HAIRCUT,
    O_UNREC,
    O_PABS,
) = range(16)
O_LONG, O_SHORT = 0, 16
O_FLOW, O_OI, O_OPEN_USD, O_CLOSE_SHARE = 32, 33, 34, 35
# the fund's take-over inventory (MODEL §5.6), one column per side (+0 long, +1 short): quantity taken
# over in the bar, quantity offloaded in the bar, inventory at the end of the bar, and the market
# notional of what the bar sold (sold parts of pieces + offload: the absorbers' VWAP numerator)
O_TK, O_OFF, O_INV, O_MKT = 36, 38, 40, 42
NOUT = 44
# positions held outside the trader book inv[row, :]: rows 0 / 1 the fund's take-over inventory of
# long / short positions (quantity >= 0), row INV_LP the outside liquidity provider's net position
# (signed, long > 0; MODEL §7.3). Long Q + inv[0] + inv[LP] = short Q + inv[1] in base units.
INV_Q, INV_C = 0, 1  # quantity (base units), cost (USD: sum of q x entry price, plus funding paid)
INV_LP = 2
NINV = 3
# accumulators acc[:]
A_D, A_WD, A_F, A_UNREC, A_LP, A_FUNDING_NET, A_TRADED, A_PRUNED, A_QL, A_QS = range(10)
NACC = 10  # A_QL/A_QS: side totals of Q at the end of the last bar (G x running sum; an output)
# acc[NACC + k]: Neumaier compensation of money accumulator k (read totals with ``acc_total``)
ACC_SIZE = 2 * NACC

DUST_REL = 1e-12
"""Relative dust floor (MODEL §5.5). A close of at least (1 - DUST_REL) of what it closes from closes
all of it, and a market flow within DUST_REL of the bar's liquidated quantity is 0: otherwise rounding
decides whether ~1e-16 of a cohort survives (a later pruned cohort or liquidation piece, so the counts
of two correct engines would differ) or whether a flow of ~1e-12 exists (a full ``impact_cap`` price
move on the endogenous path when the bar's volume is 0)."""

BANKRUPT_TOL = 1e-9
"""A liquidated piece is bankrupt for the ADL only if its leftover E < -BANKRUPT_TOL x q x PF (MODEL §5.4).
A fill exactly on the bankruptcy price (impact_cap = tier-1 MMR puts PF = BP) is then not bankrupt
whatever the rounding: a bankrupt piece brings its WHOLE quantity into q_adl, so without the tolerance
the last bit of E would decide an ADL of the whole piece."""
# per-side scale and aggregates sg[side, :] (side 0 long, 1 short), MODEL §4 "lazy scaling":
# a cohort's quantity in base units is fs[Q, i] * sg[side, G]. Pro-rata operations on a whole side
# (voluntary close, absorption, prune rebalance) only change G, so they cost O(1) instead of a pass
# over 10^5 cohorts; their money follows from the side's sums of q, q*W and q*EP (scaled units).
G, SQ, SQW, SQE = range(4)
NSG = 4
RENORM_BELOW = 1e-100
"""When G falls below this, the side's q are multiplied out and G reset to 1 (keeps q finite)."""
NEAR_ALL = 1e-6
"""A pro-rata close of at least (1 - NEAR_ALL) of a side first re-sums the side directly, so the dust
floor (DUST_REL) is decided on the same total as a direct sum (the reference engine's)."""
CANCEL_GUARD = 1e-3
"""A side whose running sum of q fell below this fraction of its value before the bar's liquidations is
summed again directly (its rounding error would otherwise exceed ~1e-13 relative)."""
C_ROWS, C_NCOH, C_DEAD = range(3)
NCNT = 3
# C_ROWS: rows in use; C_NCOH: cohorts created; C_DEAD: closed rows not yet compacted. Rows hold the
# cohorts in creation order; a closed cohort keeps its row (q = 0, skipped by every pass) until
# ``_compact`` moves the open rows down, once a quarter of the rows are closed.
# Block index bst[:, b] over rows [b * BLOCK, (b + 1) * BLOCK) (a zone map): the smallest q of the
# open longs / shorts and the highest LP of the open longs / lowest LP of the open shorts, never
# tighter than the truth. The trigger and prune scans skip a block the bar cannot touch; cohorts of
# one block were opened within a few bars at one price, so a crash bar reaches few blocks.
BQL, BQS, BLPL, BLPS = range(4)
NBST = 4
BLOCK_SHIFT = 7
BLOCK = 1 << BLOCK_SHIFT
# params pf[:]
(
    PF_Y,
    PF_CAP,
    PF_SURPLUS,
    PF_CLEAR_FEE,
    PF_TRADE_FEE,
    PF_SOCIAL,
    PF_CVS,
    PF_OVS,
    PF_CLOSE_CAP,
    PF_PRUNE,
) = range(10)
NPF = 10
# pf[PF_SURPLUS]: the surplus rule (MODEL §5.4)
SURPLUS_MARGIN, SURPLUS_FEE, SURPLUS_VENUE = 0, 1, 2



@njit(cache=True)
def _add(acc, k, v):
    """acc[k] += v, Neumaier-compensated: runs add millions of tiny closes (absorption spread pro rata
    over 10^5 cohorts) into totals of 10^11 USD, which plain addition would round away (MODEL §8)."""
    t = acc[k] + v
    if abs(acc[k]) >= abs(v):
        acc[NACC + k] += (acc[k] - t) + v
    else:
        acc[NACC + k] += (v - t) + acc[k]
    acc[k] = t


def acc_total(acc: np.ndarray, k: int) -> float:
    """The compensated value of money accumulator k."""
    return float(acc[k] + acc[NACC + k])


@njit(cache=True)
def new_scale():
    """A fresh sg array: scale 1, empty sums."""
    sg = np.zeros((2, NSG))
    sg[0, G] = 1.0
    sg[1, G] = 1.0
    return sg


@njit(cache=True)
def _si(s):
    return 0 if s > 0 else 1


@njit(cache=True)
def _aggregate(fs, cs, cnt, sg, side):
    """Recompute the scaled sums of one side (side = 1 or -1) by a direct pass (after ADL, socialized
    loss: rare bars that change single cohorts' q or W)."""
    si = _si(side)
    sq = 0.0
    sqw = 0.0
    sqe = 0.0
    for i in range(cnt[C_ROWS]):
        if cs[SIDE, i] == side and fs[Q, i] > 0.0:
            q = fs[Q, i]
            sq += q
            sqw += q * fs[W, i]
            sqe += q * fs[EP, i]
    sg[si, SQ] = sq
    sg[si, SQW] = sqw
    sg[si, SQE] = sqe


@njit(cache=True)
def _equity_sum(sg, si, s, price):
    """Sum over side si of q * (W + s * (price - EP)) in scaled units (multiply by G for USD)."""
    return sg[si, SQW] + s * (price * sg[si, SQ] - sg[si, SQE])


@njit(cache=True)
def _block_clear(bst, b):
    bst[BQL, b] = np.inf
    bst[BQS, b] = np.inf
    bst[BLPL, b] = -np.inf
    bst[BLPS, b] = np.inf


@njit(cache=True)
def _block_widen(bst, i, s, q, lp):
    """Row i (side s) now has quantity q and liquidation price lp: keep its block's bounds true."""
    b = i >> BLOCK_SHIFT
    if s > 0:
        if q < bst[BQL, b]:
            bst[BQL, b] = q
        if lp > bst[BLPL, b]:
            bst[BLPL, b] = lp
    else:
        if q < bst[BQS, b]:
            bst[BQS, b] = q
        if lp < bst[BLPS, b]:
            bst[BLPS, b] = lp


@njit(cache=True)
def _blocks_rebuild(fs, cs, cnt, bst):
    """Exact bounds of every block from the open rows (after funding, socialized loss, compaction)."""
    for b in range(bst.shape[1]):
        _block_clear(bst, b)
    for i in range(cnt[C_ROWS]):
        q = fs[Q, i]
        if q > 0.0:
            _block_widen(bst, i, cs[SIDE, i], q, fs[LP, i])


@njit(cache=True)
def _zero_side(side, price, fs, cs, cnt, sg):
    """Close every cohort of one side at price; returns (equity back, quantity) in base units."""
    si = _si(side)
    g = sg[si, G]
    wd = 0.0
    qc = 0.0
    for i in range(cnt[C_ROWS]):
        if cs[SIDE, i] == side and fs[Q, i] > 0.0:
            a = fs[Q, i] * g
            wd += a * (fs[W, i] + side * (price - fs[EP, i]))
            qc += a
            fs[Q, i] = 0.0
            cnt[C_DEAD] += 1
    sg[si, G] = 1.0
    sg[si, SQ] = 0.0
    sg[si, SQW] = 0.0
    sg[si, SQE] = 0.0
    return wd, qc


@njit(cache=True)
def _renormalize(fs, cs, cnt, sg, bst):
    """Multiply G into the stored q of a side whose G has become tiny (rare)."""
    for si in range(2):
        g = sg[si, G]
        if g >= RENORM_BELOW:
            continue
        side = 1 if si == 0 else -1
        for i in range(cnt[C_ROWS]):
            if cs[SIDE, i] == side:
                fs[Q, i] *= g
        for b in range(bst.shape[1]):
            bst[BQL + si, b] *= g  # the same product as the q: the bound stays a bound
        sg[si, G] = 1.0
        _aggregate(fs, cs, cnt, sg, side)


@njit(cache=True)
def _compact(fs, cs, cnt, bst):
    """Move the open cohorts' rows down over the closed ones (creation order kept)."""
    m = 0
    for i in range(cnt[C_ROWS]):
        if fs[Q, i] > 0.0:
            if m != i:
                for f in range(NFS):
                    fs[f, m] = fs[f, i]
                for f in range(NCS):
                    cs[f, m] = cs[f, i]
            m += 1
    cnt[C_ROWS] = m
    cnt[C_DEAD] = 0
    _blocks_rebuild(fs, cs, cnt, bst)


def compact(fs: np.ndarray, cs: np.ndarray, cnt: np.ndarray, bst: np.ndarray) -> None:
    """Leave only open cohorts in rows [0, cnt[C_ROWS]) (end of a run: state dumps, tests)."""
    _compact(fs, cs, cnt, bst)


def base_quantities(fs: np.ndarray, cs: np.ndarray, cnt: np.ndarray,
                    sg: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Open cohorts' rows, sides and quantities in base units (for reports and tests)."""
    idx = np.arange(cnt[C_ROWS])
    idx = idx[fs[Q, idx] > 0.0]
    side = cs[SIDE, idx]
    q = fs[Q, idx] * np.where(side > 0, sg[0, G], sg[1, G])
    return idx, side, q


@njit(cache=True)
def liq_price(side, ep, w, qa, mmr, cum):
    if side > 0:
        return (ep - w - cum / qa) / (1.0 - mmr)
    return (ep + w + cum / qa) / (1.0 + mmr)


@njit(cache=True)
def apply_funding(rate, mark, fs, cs, cnt, brackets, acc, sg, bst):
    """Funding settlement at the bar open (MODEL §4.1): longs pay shorts when rate > 0."""
    per_unit = rate * mark
    net = 0.0
    gl = sg[0, G]
    gs = sg[1, G]
    sums = np.zeros((2, 3))  # q, q*W, q*EP per side: W moved, so the side sums are taken again here
    for b in range(bst.shape[1]):  # every LP moves: the block bounds are rebuilt in the same pass
        _block_clear(bst, b)
    for i in range(cnt[C_ROWS]):
        q = fs[Q, i]
        if q <= 0.0:
            continue
        s = cs[SIDE, i]
        fs[W, i] -= s * per_unit
        si = 0 if s > 0 else 1
        net += s * per_unit * q * (gl if s > 0 else gs)
        sums[si, 0] += q
        sums[si, 1] += q * fs[W, i]
        sums[si, 2] += q * fs[EP, i]
        _set_lp(i, fs, cs, brackets)
        _block_widen(bst, i, s, q, fs[LP, i])
    for si in range(2):
        sg[si, SQ] = sums[si, 0]
        sg[si, SQW] = sums[si, 1]
        sg[si, SQE] = sums[si, 2]
    _add(acc, A_FUNDING_NET, net)


@njit(cache=True)
def _set_lp(i, fs, cs, brackets):
    k = cs[TIER, i]
    fs[LP, i] = liq_price(cs[SIDE, i], fs[EP, i], fs[W, i], fs[QA, i], brackets[k, 3], brackets[k, 4])


@njit(cache=True)
def impact(y, cap, scale, vol, x):
    """Square-root impact of x base units in a bar whose depth scale is ``scale`` (MODEL §5.3:
    ``liquidity.impact_scale``)."""
    if x <= 0.0:
        return 0.0
    if vol <= 0.0:
        return cap
    v = y * scale * math.sqrt(x / vol)
    return v if v < cap else cap


@njit(cache=True)
def _triggered(fs, cs, n, mlow, mhigh, cand, bst):
    """Rows whose liquidation price the bar's mark extremes reach, into cand; returns their count.

    Skips the blocks whose LP bounds the bar does not reach and tightens the bounds of the blocks it
    scans (open rows only). Kept apart from the piece logic so the compiler gets a tight loop.
    """
    m = 0
    for b in range((n + BLOCK - 1) >> BLOCK_SHIFT):
        if bst[BLPL, b] < mlow and bst[BLPS, b] > mhigh:
            continue
        lo = b << BLOCK_SHIFT
        hi = lo + BLOCK if lo + BLOCK < n else n
        lpl = -np.inf
        lps = np.inf
        for i in range(lo, hi):
            lp = fs[LP, i]
            if cs[SIDE, i] > 0:
                if lp >= mlow:
                    cand[m] = i
                    m += 1
                if fs[Q, i] > 0.0 and lp > lpl:
                    lpl = lp
            else:
                if lp <= mhigh:
                    cand[m] = i
                    m += 1
                if fs[Q, i] > 0.0 and lp < lps:
                    lps = lp
        bst[BLPL, b] = lpl
        bst[BLPS, b] = lps
    return m


@njit(cache=True)
def _prunable(fs, cs, n, thr_l, thr_s, cand, bst):
    """Open rows below their side's prune threshold, into cand; returns their count.

    Skips the blocks whose smallest q is above both thresholds and tightens the bounds of the blocks
    it scans (to the rows that stay open)."""
    m = 0
    for b in range((n + BLOCK - 1) >> BLOCK_SHIFT):
        if bst[BQL, b] >= thr_l and bst[BQS, b] >= thr_s:
            continue
        lo = b << BLOCK_SHIFT
        hi = lo + BLOCK if lo + BLOCK < n else n
        ql = np.inf
        qs = np.inf
        for i in range(lo, hi):
            q = fs[Q, i]
            if q <= 0.0:
                continue
            if cs[SIDE, i] > 0:
                if q < thr_l:
                    cand[m] = i
                    m += 1
                elif q < ql:
                    ql = q
            else:
                if q < thr_s:
                    cand[m] = i
                    m += 1
                elif q < qs:
                    qs = q
        bst[BQL, b] = ql
        bst[BQS, b] = qs
    return m


@njit(cache=True)
def liquidate(t, mult, bars, imp, fs, cs, cnt, pc, brackets, pf, out, acc, sg, cand, bst, inv, f_sell):
    """Trigger, partial liquidation, execution, surplus and bad debt of bar t (MODEL §5).

    Returns the number of pieces. If it exceeds ``len(pc)`` nothing was changed and the caller must
    grow ``pc`` and call again (pass 1 only reads the state). Pieces hold base units (P_Q) and the
    cohort's scaled q after the piece (P_QAFTER). ``f_sell``: the bar's offload share (MODEL §5.6): a
    last piece sells ``f_sell`` of itself at its fill, the fund takes the rest over at the bankruptcy
    price, and the inventory carried into the bar sells ``f_sell`` of itself from the mark open.
    """
    mopen = bars[t, B_MOPEN] * mult
    mlow = bars[t, B_MLOW] * mult
    mhigh = bars[t, B_MHIGH] * mult
    cap_pc = pc.shape[0]
    gl = sg[0, G]
    gs = sg[1, G]
    n = 0
    for r in range(_triggered(fs, cs, cnt[C_ROWS], mlow, mhigh, cand, bst)):
        i = cand[r]
        s = cs[SIDE, i]
        q_s = fs[Q, i]
        ep = fs[EP, i]
        w = fs[W, i]
        g = gl if s > 0 else gs
        k = cs[TIER, i]
        qa = fs[QA, i]
        while q_s > 0.0:
            lp = liq_price(s, ep, w, qa, brackets[k, 3], brackets[k, 4])
            if s > 0:
                if mlow > lp:
                    break
                pt = lp if lp < mopen else mopen
            else:
                if mhigh < lp:
                    break
                pt = lp if lp > mopen else mopen
            if k == 0:
                q_after, qa_after, k_after = 0.0, qa, 0
            else:
                cut = brackets[k, 0] / pt
                qa_after = qa if qa < cut else cut
                q_after = q_s * (qa_after / qa)
                k_after = k - 1
            if n < cap_pc:
                pc[n, P_I] = i
                pc[n, P_Q] = (q_s - q_after) * g
                pc[n, P_PT] = pt
                pc[n, P_QA] = qa
                pc[n, P_QAFTER] = q_after
                pc[n, P_QAAFTER] = qa_after
                pc[n, P_TIER] = k_after
            n += 1
            q_s, qa, k = q_after, qa_after, k_after
    if n > cap_pc:
        return n
    sq_before_l = sg[0, SQ]
    sq_before_s = sg[1, SQ]
    # side totals of what the bar sells -> impact: partial pieces whole, the sold share of last
    # pieces, and the offload of the inventory carried into the bar (MODEL §5.6)
    u_long = inv[0, INV_Q] * f_sell
    u_short = inv[1, INV_Q] * f_sell
    x_long = u_long
    x_short = u_short
    for m in range(n):
        q_m = pc[m, P_Q] if pc[m, P_QAFTER] > 0.0 else pc[m, P_Q] * f_sell
        if cs[SIDE, int(pc[m, P_I])] > 0:
            x_long += q_m
        else:
            x_short += q_m
    vol = bars[t, B_VOL]
    i_long = impact(pf[PF_Y], pf[PF_CAP], imp[t], vol, x_long)
    i_short = impact(pf[PF_Y], pf[PF_CAP], imp[t], vol, x_short)
    out[t, O_LONG + O_X] = x_long
    out[t, O_SHORT + O_X] = x_short
    out[t, O_LONG + O_IMPACT] = i_long
    out[t, O_SHORT + O_IMPACT] = i_short
    mode = int(pf[PF_SURPLUS])
    if u_long > 0.0:
        _offload(t, 0, u_long, mopen * (1.0 - i_long), f_sell, inv, out, acc)
    if u_short > 0.0:
        _offload(t, 1, u_short, mopen * (1.0 + i_short), f_sell, inv, out, acc)
    for m in range(n):
        i = int(pc[m, P_I])
        s = cs[SIDE, i]
        q = pc[m, P_Q]
        cs[TRIG, i] = t
        si = _si(s)
        dq = fs[Q, i] - pc[m, P_QAFTER]
        sg[si, SQ] -= dq
        sg[si, SQW] -= dq * fs[W, i]
        sg[si, SQE] -= dq * fs[EP, i]
        if pc[m, P_QAFTER] <= 0.0 < fs[Q, i]:
            cnt[C_DEAD] += 1
        fs[Q, i] = pc[m, P_QAFTER]
        fs[QA, i] = pc[m, P_QAAFTER]
        cs[TIER, i] = int(pc[m, P_TIER])
        _set_lp(i, fs, cs, brackets)
        if fs[Q, i] > 0.0:
            _block_widen(bst, i, s, fs[Q, i], fs[LP, i])
        if q <= 0.0:
            continue
        o = O_LONG if s > 0 else O_SHORT
        ep = fs[EP, i]
        w = fs[W, i]
        bp = ep - w if s > 0 else ep + w
        fill = pc[m, P_PT] * (1.0 - i_long) if s > 0 else pc[m, P_PT] * (1.0 + i_short)
        out[t, o + O_LIQ_USD] += q * fill
        out[t, o + O_EVENTS] += 1.0
        out[t, o + O_ACCOUNTS] += q / pc[m, P_QA]
        if pc[m, P_QAFTER] <= 0.0:
            # the last piece: the fund takes over the part it does not sell in this bar, at the
            # bankruptcy price (the trader's equity there is 0: nothing is paid either way)
            q_k = q - q * f_sell
            if q_k > 0.0:
                inv[si, INV_Q] += q_k
                inv[si, INV_C] += q_k * bp
                out[t, O_TK + si] += q_k
                q = q - q_k
                if q <= 0.0:
                    continue
        e = q * s * (fill - bp)
        out[t, O_MKT + si] += q * fill
        _add(acc, A_TRADED, q * fill)
        if e >= 0.0:
            # fee mode: every piece pays the clearance fee; venue mode: only a partial-liquidation
            # piece (the cohort keeps a remainder), the last piece is taken over with its margin (§5.4)
            if mode == SURPLUS_FEE or (mode == SURPLUS_VENUE and pc[m, P_QAFTER] > 0.0):
                fee = pf[PF_CLEAR_FEE] * q * fill
                to_fund = e if e < fee else fee
                out[t, o + O_SURPLUS] += to_fund
                out[t, o + O_RETURNED] += e - to_fund
                _add(acc, A_WD, e - to_fund)
            else:
                out[t, o + O_SURPLUS] += e
        else:
            out[t, o + O_BAD] -= e
            if e < -BANKRUPT_TOL * q * fill:  # bankrupt for the ADL (MODEL §5.4)
                out[t, o + O_QB] += q
                out[t, o + O_QBBP] += q * bp
                out[t, o + O_QBPF] += q * fill
    out[t, O_INV] = inv[0, INV_Q]
    out[t, O_INV + 1] = inv[1, INV_Q]
    # running sums lose a tiny cohort when a large one beside it is subtracted: recompute a side
    # that lost most of its quantity (MODEL §4.10)
    if sg[0, SQ] < CANCEL_GUARD * sq_before_l:
        _aggregate(fs, cs, cnt, sg, 1)
    if sg[1, SQ] < CANCEL_GUARD * sq_before_s:
        _aggregate(fs, cs, cnt, sg, -1)
    return n


@njit(cache=True)
def _offload(t, si, u, fill, f_sell, inv, out, acc):
    """Sell u of the fund's inventory of side si at ``fill`` (MODEL §5.6): the realised P&L against the
    inventory's average cost is the fund's surplus or bad debt, and a loss beyond BANKRUPT_TOL is an
    ADL-eligible piece whose bankruptcy price is that average cost."""
    s = 1 if si == 0 else -1
    o = O_LONG if si == 0 else O_SHORT
    cost = inv[si, INV_C] / inv[si, INV_Q]
    if f_sell >= 1.0 - DUST_REL:  # the whole inventory (dust floor, §5.5)
        inv[si, INV_Q] = 0.0
        inv[si, INV_C] = 0.0
    else:
        inv[si, INV_Q] -= u
        inv[si, INV_C] -= u * cost
    e = u * s * (fill - cost)
    out[t, O_OFF + si] += u
    out[t, O_MKT + si] += u * fill
    _add(acc, A_TRADED, u * fill)
    if e >= 0.0:
        out[t, o + O_SURPLUS] += e
    else:
        out[t, o + O_BAD] -= e
        if e < -BANKRUPT_TOL * u * fill:
            out[t, o + O_QB] += u
            out[t, o + O_QBBP] += u * cost
            out[t, o + O_QBPF] += u * fill


@njit(cache=True)
def _book_closes(acc, q_closed, wd, price, fee_rate):
    """Book a group of closes at one price: equity back to the traders (wd, summed by the caller over
    the group so 10^5 tiny closes are added to the run totals once), fee outside the position."""
    _add(acc, A_WD, wd)
    _add(acc, A_F, q_closed * price * fee_rate)
    _add(acc, A_TRADED, q_closed * price)


@njit(cache=True)
def _adl(t, opp, u_loss, o, fs, cs, cnt, out, acc, sg, bst):
    """Close top-ranked profitable cohorts of side opp at the bankruptcy price (MODEL §7.1)."""
    qb = out[t, o + O_QB]
    bad = out[t, o + O_BAD]
    phi = u_loss / bad
    q_adl = phi * qb
    p_adl = out[t, o + O_QBBP] / qb
    vwap_b = out[t, o + O_QBPF] / qb
    g = sg[_si(opp), G]
    nl = cnt[C_ROWS]
    idx = np.empty(nl, np.int64)
    neg = np.empty(nl, np.float64)
    m = 0
    for i in range(nl):
        if cs[SIDE, i] != opp or fs[Q, i] <= 0.0:
            continue
        ep = fs[EP, i]
        u = opp * (p_adl - ep)
        if u <= 0.0:
            continue
        w = fs[W, i]
        wd = w if w > 1e-9 * ep else 1e-9 * ep
        pnl_pct = u / wd
        eff_lev = p_adl / (w + u)
        idx[m] = i
        neg[m] = -(pnl_pct * eff_lev)
        m += 1
    order = np.argsort(neg[:m], kind="mergesort")
    filled = 0.0
    for r in range(m):
        rem = q_adl - filled
        if rem <= DUST_REL * q_adl:
            break
        i = idx[order[r]]
        a = fs[Q, i] * g
        if a * (1.0 - DUST_REL) > rem:  # partial close of the last cohort (whole within dust, §5.5)
            a = rem
            fs[Q, i] -= a / g
            _block_widen(bst, i, opp, fs[Q, i], fs[LP, i])
        else:
            fs[Q, i] = 0.0
            cnt[C_DEAD] += 1
        _add(acc, A_WD, a * (fs[W, i] + opp * (p_adl - fs[EP, i])))
        _add(acc, A_TRADED, a * p_adl)
        filled += a
    _aggregate(fs, cs, cnt, sg, opp)
    haircut = filled * abs(p_adl - vwap_b)
    out[t, o + O_ADL_Q] = filled
    out[t, o + O_ADL_USD] = filled * p_adl
    out[t, o + O_HAIRCUT] = haircut
    out[t, o + O_UNREC] = u_loss - haircut
    _add(acc, A_UNREC, u_loss - haircut)
    return filled, vwap_b


@njit(cache=True)
def _socialize(t, opp, u_loss, o, mclose, fs, cs, cnt, brackets, out, acc, sg, bst):
    """Charge the uncovered loss to side opp's profits, pro rata (MODEL §7.2)."""
    g = sg[_si(opp), G]
    total = 0.0
    for i in range(cnt[C_ROWS]):
        if cs[SIDE, i] != opp or fs[Q, i] <= 0.0:
            continue
        p = fs[Q, i] * g * opp * (mclose - fs[EP, i])
        if p > 0.0:
            total += p
    charged = u_loss if u_loss < total else total
    if charged > 0.0:
        for i in range(cnt[C_ROWS]):
            if cs[SIDE, i] != opp or fs[Q, i] <= 0.0:
                continue
            q = fs[Q, i] * g
            p = q * opp * (mclose - fs[EP, i])
            if p > 0.0:
                fs[W, i] -= charged * (p / total) / q
                _set_lp(i, fs, cs, brackets)
        _aggregate(fs, cs, cnt, sg, opp)
        _blocks_rebuild(fs, cs, cnt, bst)
    out[t, o + O_HAIRCUT] = charged
    out[t, o + O_UNREC] = u_loss - charged
    _add(acc, A_UNREC, u_loss - charged)


@njit(cache=True)
def settle(
    t,
    mult,
    bars,
    u_long,
    u_short,
    target,
    q_ref,
    rg_rate,
    fs,
    cs,
    cnt,
    brackets,
    wl,
    ws,
    size_usd,
    size_share,
    size_tier,
    lev_eff,
    pf,
    out,
    acc,
    sg,
    cand,
    bst,
    inv,
):
    """Waterfall, absorption, voluntary closes, opens and pruning of bar t (MODEL §7, §6, §4.10).

    Pro-rata closes of a whole side (absorption, voluntary close, prune rebalance) scale the side's G;
    the only pass over every cohort is the prune + compaction pass at the end.
    """
    mclose = bars[t, B_MCLOSE] * mult
    vusd = bars[t, B_VUSD]
    social = pf[PF_SOCIAL] > 0.5
    fee = pf[PF_TRADE_FEE]
    excess_long = 0.0
    excess_short = 0.0
    for side_i in range(2):
        s_liq = 1 if side_i == 0 else -1
        o = O_LONG if side_i == 0 else O_SHORT
        x = out[t, o + O_X]
        if x <= 0.0:
            continue
        opp = -s_liq
        u_loss = u_long if side_i == 0 else u_short
        filled = 0.0
        vwap_b = 0.0
        if u_loss > 0.0 and out[t, o + O_BAD] > 0.0:
            if social:
                _socialize(t, opp, u_loss, o, mclose, fs, cs, cnt, brackets, out, acc, sg, bst)
            elif out[t, o + O_QB] > 0.0:
                filled, vwap_b = _adl(t, opp, u_loss, o, fs, cs, cnt, out, acc, sg, bst)
            else:  # only pieces within BANKRUPT_TOL of their bankruptcy price: nothing to ADL (§7.1)
                out[t, o + O_UNREC] = u_loss
                _add(acc, A_UNREC, u_loss)
        need = x - filled
        if need <= 0.0:
            continue
        p_abs = (out[t, O_MKT + side_i] - filled * vwap_b) / need
        out[t, o + O_PABS] = p_abs
        # every alive cohort of the other side absorbs, also the remainder of one partially liquidated
        # in this bar (MODEL §7.3): the excess is then equal on both sides and long Q = short Q holds
        oi_ = side_i ^ 1
        g = sg[oi_, G]
        avail = g * sg[oi_, SQ]
        tol = DUST_REL * (avail if avail > x else x)
        if need >= avail * (1.0 - NEAR_ALL) - tol:
            # a (near-)total close: decide the dust floor on the side's exact sum, not on the running
            # sum, whose absolute rounding error comes from the side's larger past (MODEL §5.5, §12)
            _aggregate(fs, cs, cnt, sg, opp)
            avail = g * sg[oi_, SQ]
            tol = DUST_REL * (avail if avail > x else x)
        if avail > 0.0:
            # dust floor (§5.5): within DUST_REL of the larger of the side and the bar's liquidated
            # quantity, the need closes the side out (the ADL before it worked on quantities of size x)
            if need >= avail - tol:
                wd, q_closed = _zero_side(opp, p_abs, fs, cs, cnt, sg)
            else:
                share = need / avail
                q_closed = share * avail
                wd = share * g * _equity_sum(sg, oi_, opp, p_abs)
                sg[oi_, G] = g * (1.0 - share)
            _book_closes(acc, q_closed, wd, p_abs, fee)
        if need > avail:
            if side_i == 0:
                excess_long = need - avail
            else:
                excess_short = need - avail
    e = 0.0
    if excess_long > 0.0 and excess_short > 0.0:
        e = excess_long if excess_long < excess_short else excess_short
        _add(acc, A_LP, e * (out[t, O_SHORT + O_PABS] - out[t, O_LONG + O_PABS]))
    # with the fund's inventory the two excesses differ by its net change (MODEL §7.3): what one side
    # sells beyond every counterparty the outside liquidity provider holds as a position
    dust = DUST_REL * (out[t, O_LONG + O_X] + out[t, O_SHORT + O_X])
    if excess_long - e > dust:
        inv[INV_LP, INV_Q] += excess_long - e
        inv[INV_LP, INV_C] += (excess_long - e) * out[t, O_LONG + O_PABS]
    if excess_short - e > dust:
        inv[INV_LP, INV_Q] -= excess_short - e
        inv[INV_LP, INV_C] -= (excess_short - e) * out[t, O_SHORT + O_PABS]
    x_long = out[t, O_LONG + O_X]
    x_short = out[t, O_SHORT + O_X]
    flow = (x_short - out[t, O_SHORT + O_ADL_Q]) - (x_long - out[t, O_LONG + O_ADL_Q])
    if abs(flow) <= DUST_REL * (x_long + x_short):
        flow = 0.0  # dust (§5.5)
    out[t, O_FLOW] = flow
    # voluntary close share, from the long side total (MODEL §6)
    ql_old = sg[0, G] * sg[0, SQ]
    qs_old = sg[1, G] * sg[1, SQ]
    oi = ql_old * mclose
    c = 0.0
    if oi > 0.0:
        c = pf[PF_CVS] * vusd / oi
        if c > pf[PF_CLOSE_CAP]:
            c = pf[PF_CLOSE_CAP]
        if c >= 1.0 - DUST_REL:
            c = 1.0  # dust (§5.5)
    out[t, O_CLOSE_SHARE] = c
    # the close share applies to the existing cohorts, before the opens are appended. Closes are
    # trades between the sides: with positions held outside the book (§5.6) the sides differ, and
    # both close the same quantity, c x the smaller side
    c_l = c
    c_s = c
    if c > 0.0 and (inv[0, INV_Q] != 0.0 or inv[1, INV_Q] != 0.0 or inv[INV_LP, INV_Q] != 0.0):
        m = ql_old if ql_old < qs_old else qs_old
        c_l = c * (m / ql_old) if ql_old > 0.0 else 0.0
        c_s = c * (m / qs_old) if qs_old > 0.0 else 0.0
        if c_l >= 1.0 - DUST_REL:
            c_l = 1.0
        if c_s >= 1.0 - DUST_REL:
            c_s = 1.0
    if not math.isnan(target):
        n_open = target - oi * (1.0 - c_l)
        if n_open <= DUST_REL * target:  # the book is at its anchor up to rounding (§5.5)
            n_open = 0.0
    else:
        n_open = pf[PF_OVS] * vusd
        if rg_rate > 0.0:  # regrowth toward the pre-window book (MODEL §6)
            level = q_ref * mclose
            gap = level - oi * (1.0 - c_l)
            if gap > DUST_REL * level:  # dust (§5.5)
                n_open += rg_rate * gap
    out[t, O_OPEN_USD] = n_open
    if c > 0.0:
        wd = 0.0
        closed_q = 0.0
        for si in range(2):
            s = 1 if si == 0 else -1
            cc = c_l if si == 0 else c_s
            if cc <= 0.0:
                continue
            if cc >= 1.0:
                w_, q_ = _zero_side(s, mclose, fs, cs, cnt, sg)
                wd += w_
                closed_q += q_
            else:
                g = sg[si, G]
                wd += cc * g * _equity_sum(sg, si, s, mclose)
                closed_q += cc * g * sg[si, SQ]
                sg[si, G] = g * (1.0 - cc)
        _book_closes(acc, closed_q, wd, mclose, fee)
    ql_new = ql_old * (1.0 - c_l)
    qs_new = qs_old * (1.0 - c_s)
    nl = cnt[C_ROWS]
    nc = cnt[C_NCOH]
    if n_open > 0.0 and mclose > 0.0:
        for side_i in range(2):
            s = 1 if side_i == 0 else -1
            g = sg[side_i, G]
            for b in range(wl.shape[1]):
                wb = wl[t, b] if side_i == 0 else ws[t, b]
                if wb <= 0.0:
                    continue
                for z in range(size_usd.shape[0]):
                    notional = n_open * wb * size_share[z]
                    if notional <= 0.0:
                        continue
                    lev = lev_eff[b, z]
                    q_true = notional / mclose
                    q = q_true / g
                    fs[Q, nl] = q
                    fs[QA, nl] = size_usd[z] / mclose
                    fs[EP, nl] = mclose
                    fs[W, nl] = mclose / lev
                    fs[LEV, nl] = lev
                    cs[SIDE, nl] = s
                    cs[TIER, nl] = size_tier[z]
                    cs[TRIG, nl] = -1
                    _set_lp(nl, fs, cs, brackets)
                    if (nl & (BLOCK - 1)) == 0:
                        _block_clear(bst, nl >> BLOCK_SHIFT)  # a fresh block (rows past the end)
                    _block_widen(bst, nl, s, q, fs[LP, nl])
                    sg[side_i, SQ] += q
                    sg[side_i, SQW] += q * fs[W, nl]
                    sg[side_i, SQE] += q * mclose
                    _add(acc, A_D, q_true * fs[W, nl])
                    _add(acc, A_F, notional * fee)
                    _add(acc, A_TRADED, notional)
                    if s > 0:
                        ql_new += q_true
                    else:
                        qs_new += q_true
                    nl += 1
                    nc += 1
    cnt[C_NCOH] = nc
    cnt[C_ROWS] = nl
    # one pass: prune (threshold on the totals after closes and opens, in each side's scaled units);
    # pruned cohorts leave the running sums; closed rows are counted for the compaction
    gl = sg[0, G]
    gs = sg[1, G]
    thr_l = pf[PF_PRUNE] * ql_new / gl
    thr_s = pf[PF_PRUNE] * qs_new / gs
    pruned = _prunable(fs, cs, nl, thr_l, thr_s, cand, bst)
    wd = 0.0
    closed_q = 0.0
    for r in range(pruned):
        i = cand[r]
        qi = fs[Q, i]
        s = cs[SIDE, i]
        si = _si(s)
        a = qi * (gl if s > 0 else gs)
        wd += a * (fs[W, i] + s * (mclose - fs[EP, i]))
        closed_q += a
        sg[si, SQ] -= qi
        sg[si, SQW] -= qi * fs[W, i]
        sg[si, SQE] -= qi * fs[EP, i]
        fs[Q, i] = 0.0
    cnt[C_DEAD] += pruned
    _book_closes(acc, closed_q, wd, mclose, fee)
    if 4 * cnt[C_DEAD] > nl + 64:  # amortised: each row moves O(1) times on average
        _compact(fs, cs, cnt, bst)
    if pruned > 0 and (sg[0, SQ] <= 0.0 or sg[1, SQ] <= 0.0):  # a side pruned out: no rounding rest
        _aggregate(fs, cs, cnt, sg, 1)
        _aggregate(fs, cs, cnt, sg, -1)
    ql = gl * sg[0, SQ]
    qs = gs * sg[1, SQ]
    if pruned > 0:
        # rebalance so that long Q + the fund's long inventory = short Q + its short inventory (§5.6)
        acc[A_PRUNED] += pruned
        hl = ql + inv[0, INV_Q] + inv[INV_LP, INV_Q]
        hs = qs + inv[1, INV_Q]
        big = 1 if hl > hs else -1
        bi = _si(big)
        diff = abs(hl - hs)
        tot = ql if big > 0 else qs
        if diff > 0.0 and tot > 0.0:
            sh = diff / tot
            if sh >= 1.0 - DUST_REL:  # dust (§5.5)
                w_, q_closed = _zero_side(big, mclose, fs, cs, cnt, sg)
                _book_closes(acc, q_closed, w_, mclose, fee)
                q_big = 0.0
            else:
                g = sg[bi, G]
                _book_closes(acc, sh * tot, sh * g * _equity_sum(sg, bi, big, mclose), mclose, fee)
                sg[bi, G] = g * (1.0 - sh)
                q_big = sg[bi, G] * sg[bi, SQ]
            if big > 0:
                ql = q_big
            else:
                qs = q_big
    _renormalize(fs, cs, cnt, sg, bst)
    acc[A_QL] = ql
    acc[A_QS] = qs
    out[t, O_OI] = ql * mclose


@njit(cache=True)
def open_equity(mark, fs, cs, cnt, sg):
    """Equity of all open positions at one mark price (conservation, MODEL §8)."""
    e = 0.0
    for i in range(cnt[C_ROWS]):
        s = cs[SIDE, i]
        e += fs[Q, i] * sg[_si(s), G] * (fs[W, i] + s * (mark - fs[EP, i]))
    return e
