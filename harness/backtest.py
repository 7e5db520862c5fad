"""The backtest skeleton: a causal day loop over a ``Plan``, with fee bookkeeping.

Semantics (the trader-research harness's, made point-in-time):

* Day 0 always rebalances. Later days rebalance only outside the cooldown and
  only when an unheld token has momentum > 0 or a held token momentum < 0.
* A rebalance sells overweight positions first (each sale of ``q`` units at
  price ``p`` receives ``q * p * (1 - fee)``), then buys in plan priority order
  (a buy of amount ``A`` pays ``A`` and receives ``(A - A * fee) / p`` units),
  skipping trades smaller than ``MIN_TRADE_FRACTION`` of portfolio value and
  capping buys at the available cash. Trades happen at the day's close; then the
  day's value is recorded.
* Point-in-time: a held token without a candle on a day (delisted, or a gap) is
  sold at its last close, paying the fee, before that day's decision. Such a
  forced sale is not counted as a rebalance. Tokens without a candle are never
  bought.

The day loop is compiled (numba). Its arithmetic is numpy's, operation for
operation: every sum over tokens is :func:`pairwise_sum` (numpy's summation
order) over the tokens in ascending column order, so the results are
bit-identical to the numpy formulation of contract 1.0.2 (``tests/test_speed_backtest.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from harness.contract import MIN_TRADE_FRACTION, POSITION_EPSILON
from harness.plan import Plan

_JIT = dict(cache=True, error_model="numpy", nogil=True)
"""Compiled once per machine (on-disk cache); float division by zero gives inf/NaN as in numpy."""


def readonly(array: np.ndarray, dtype: type = np.float64) -> np.ndarray:
    """``array`` as a read-only, C-contiguous view of ``dtype`` (copied only if it must be converted).

    Compiled kernels get one signature per array type; handing them read-only views whatever
    the caller passed (sealed candles, fresh plans) compiles each kernel once.
    """
    if array.dtype == dtype and array.flags.c_contiguous and not array.flags.writeable:
        return array
    view = np.ascontiguousarray(array, dtype=dtype).view()
    view.flags.writeable = False
    return view


@dataclass(frozen=True)
class BacktestTrace:
    """Daily outcome of one backtest over ``days`` scored days.

    Attributes:
        values: ``(days,)`` portfolio value (quote currency) at each day's close.
        hhi: ``(days,)`` Herfindahl index of weights with cash counted as a weight.
        exposure: ``(days,)`` fraction of value invested in tokens.
        rebalance_count: rebalances performed (day 0 included).
        traded_notional: total quote amount bought plus sold (gross), forced sales included.
        tokens_held: distinct tokens held at any time.
    """

    values: np.ndarray
    hhi: np.ndarray
    exposure: np.ndarray
    rebalance_count: int
    traded_notional: float
    tokens_held: int


@njit(**_JIT)
def _block_sum(values: np.ndarray, start: int, n: int) -> float:
    """numpy's sum of ``values[start:start + n]`` for ``n <= 128``: 8 partial sums, then the remainder."""
    if n < 8:
        total = 0.0
        for i in range(start, start + n):
            total += values[i]
        return total
    r0, r1, r2, r3 = values[start], values[start + 1], values[start + 2], values[start + 3]
    r4, r5, r6, r7 = values[start + 4], values[start + 5], values[start + 6], values[start + 7]
    whole = start + n - n % 8
    for i in range(start + 8, whole, 8):
        r0 += values[i]
        r1 += values[i + 1]
        r2 += values[i + 2]
        r3 += values[i + 3]
        r4 += values[i + 4]
        r5 += values[i + 5]
        r6 += values[i + 6]
        r7 += values[i + 7]
    total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    for i in range(whole, start + n):
        total += values[i]
    return total


@njit(**_JIT)
def pairwise_sum(values: np.ndarray, start: int, n: int) -> float:
    """``np.sum(values[start:start + n])`` bit for bit (float64): numpy's pairwise summation.

    numpy halves a range longer than 128 (the first half a multiple of 8 long) and sums the
    halves separately; the tree is walked here with an explicit stack, because numba's on-disk
    cache cannot hold a recursive function.
    """
    if n <= 128:
        return _block_sum(values, start, n)
    lo, size = np.empty(64, np.int64), np.empty(64, np.int64)
    left, right_pending = np.empty(64), np.zeros(64, np.bool_)
    depth, lo[0], size[0] = 0, start, n
    while True:
        while size[depth] > 128:  # descend to the leftmost leaf
            half = size[depth] // 2 - (size[depth] // 2) % 8
            lo[depth + 1], size[depth + 1] = lo[depth], half
            right_pending[depth] = True
            depth += 1
        value = _block_sum(values, lo[depth], size[depth])
        while True:  # climb: a left half waits for its sibling, a right half completes its parent
            if depth == 0:
                return value
            depth -= 1
            if right_pending[depth]:
                right_pending[depth] = False
                left[depth] = value
                half = size[depth] // 2 - (size[depth] // 2) % 8
                lo[depth + 1], size[depth + 1] = lo[depth] + half, size[depth] - half
                depth += 1
                break
            value = left[depth] + value


@njit(**_JIT)
def _sell(cols, quantity, price, qty, held, fee, scratch):
    """Sell ``quantity[k]`` units of token ``cols[k]`` at ``price[k]``; returns ``(cash received, gross traded)``."""
    n = cols.size
    for k in range(n):
        gross = quantity[k] * price[k]
        scratch[k] = gross - gross * fee
    received = pairwise_sum(scratch, 0, n)
    for k in range(n):
        scratch[k] = quantity[k] * price[k]
    traded = pairwise_sum(scratch, 0, n)
    for k in range(n):
        j = cols[k]
        qty[j] -= quantity[k]
        if qty[j] <= POSITION_EPSILON:
            qty[j] = 0.0
            held[j] = False
    return received, traded


@njit(**_JIT)
def _buy(cols, amount, price, cash, qty, held, fee, scratch):
    """Buy ``amount[k]`` (quote) of token ``cols[k]`` in order, each capped at the cash left.

    Returns ``(spent, traded)``.
    """
    n = cols.size
    spent = 0.0  # running min(cumsum(amount), cash)
    cumulative = 0.0
    bought = 0
    for k in range(n):
        cumulative = amount[k] if k == 0 else cumulative + amount[k]
        capped = min(cumulative, cash)
        paid = capped - spent
        spent = capped
        if paid > 0:
            scratch[bought] = paid
            bought += 1
            j = cols[k]
            qty[j] += (paid - paid * fee) / price[k]
            held[j] = True
    return spent, pairwise_sum(scratch, 0, bought)


@njit(**_JIT)
def _portfolio_value(cash, qty, held, price, scratch):
    """Cash plus the held positions at ``price``."""
    cols = np.flatnonzero(held)
    for k in range(cols.size):
        scratch[k] = qty[cols[k]] * price[cols[k]]
    return cash + pairwise_sum(scratch, 0, cols.size)


@njit(**_JIT)
def _rebalance(weights, priority, price, cash, traded, qty, held, fee, scratch):
    """Move towards ``weights`` at ``price`` (sells first, then buys by priority).

    Returns the new ``(cash, traded)``.
    """
    cols = np.flatnonzero(held)
    current = np.empty(cols.size)
    for k in range(cols.size):
        current[k] = qty[cols[k]] * price[cols[k]]
    total = cash + pairwise_sum(current, 0, cols.size)
    min_trade = total * MIN_TRADE_FRACTION

    over = np.zeros(cols.size, dtype=np.bool_)
    excess = np.empty(cols.size)
    for k in range(cols.size):
        excess[k] = current[k] - weights[cols[k]] * total
        over[k] = excess[k] > min_trade
    if over.any():
        sold = cols[over]
        sold_price = price[sold]
        received, gross = _sell(sold, excess[over] / sold_price, sold_price, qty, held, fee, scratch)
        cash += received
        traded += gross
        total = _portfolio_value(cash, qty, held, price, scratch)

    wanted = np.flatnonzero((weights > 0) & ~np.isnan(price))
    if wanted.size == 0:
        return cash, traded
    wanted = wanted[np.argsort(-priority[wanted], kind="mergesort")]  # stable: ties keep column order
    amount = np.empty(wanted.size)
    for k in range(wanted.size):
        j = wanted[k]
        current_value = qty[j] * price[j] if held[j] else 0.0
        amount[k] = total * weights[j] - current_value
    go = amount > min_trade
    if go.any():
        spent, gross = _buy(wanted[go], amount[go], price[wanted[go]], cash, qty, held, fee, scratch)
        cash -= spent
        traded += gross
    return cash, traded


@njit(**_JIT)
def _day_loop(weights, momentum, priority, cooldown, close, fee, capital):
    """The day loop; returns ``(values, hhi, exposure, rebalances, traded, tokens held)`` (see :func:`run_backtest`)."""
    days, n_tokens = close.shape
    cash = capital
    qty = np.zeros(n_tokens)
    held = np.zeros(n_tokens, dtype=np.bool_)
    ever_held = np.zeros(n_tokens, dtype=np.bool_)
    scratch, gone = np.empty(n_tokens), np.empty(n_tokens, np.int64)
    # segments of days without trades: first day, cash and quantities (rows are written on trading days only)
    seg_start, seg_cash, seg_qty = np.empty(days, np.int64), np.empty(days), np.empty((days, n_tokens))
    n_seg = 0
    traded = 0.0
    rebalances = 0
    last = -1
    for t in range(days):
        changed = t == 0
        # forced sales: a held token was listed yesterday (bought while listed, or kept by yesterday's check),
        # so yesterday's close is its last close
        n_gone = 0
        for j in range(n_tokens):
            if held[j] and np.isnan(close[t, j]):
                gone[n_gone] = j
                n_gone += 1
        if n_gone:
            cols = gone[:n_gone].copy()
            received, gross = _sell(cols, qty[cols].copy(), close[t - 1, cols], qty, held, fee, scratch)
            cash += received
            traded += gross
            changed = True

        if t == 0:
            rebalance = True
        elif last >= 0 and cooldown[t] > 0 and t - last < cooldown[t]:
            rebalance = False
        else:
            rebalance = False
            for j in range(n_tokens):
                m = momentum[t, j]
                if (m > 0 and not held[j]) or (m < 0 and held[j]):
                    rebalance = True
                    break
        if rebalance:
            cash, traded = _rebalance(weights[t], priority[t], close[t], cash, traded, qty, held, fee, scratch)
            rebalances += 1
            last = t
            changed = True
            ever_held |= held
        if changed:
            seg_start[n_seg], seg_cash[n_seg] = t, cash
            seg_qty[n_seg] = qty
            n_seg += 1
    values, hhi, exposure = _value_segments(seg_start[:n_seg], seg_cash[:n_seg], seg_qty[:n_seg], close)
    return values, hhi, exposure, rebalances, traded, ever_held.sum()


@njit(**_JIT)
def _sequential_sum(values: np.ndarray, n: int) -> float:
    """``values[0] + values[1] + ...`` left to right."""
    total = 0.0
    for i in range(n):
        total += values[i]
    return total


@njit(**_JIT)
def _value_segments(seg_start, seg_cash, seg_qty, close):
    """Daily value, HHI (cash counted as a weight) and exposure of the positions in each segment.

    Sums run over the nonzero positions in column order. As in the numpy formulation, whose
    ``close[start:stop, cols]`` block is Fortran-ordered for a segment of two or more days,
    a longer segment's rows are summed left to right and a single day's pairwise.
    """
    days = close.shape[0]
    values, hhi, exposure = np.empty(days), np.empty(days), np.empty(days)
    held_value, weight = np.empty(close.shape[1]), np.empty(close.shape[1])
    for seg in range(seg_start.size):
        start = seg_start[seg]
        stop = seg_start[seg + 1] if seg + 1 < seg_start.size else days
        cols = np.flatnonzero(seg_qty[seg])
        k = cols.size
        pairwise = stop - start == 1
        for t in range(start, stop):
            for i in range(k):
                held_value[i] = close[t, cols[i]] * seg_qty[seg, cols[i]]
            total = seg_cash[seg] + (pairwise_sum(held_value, 0, k) if pairwise else _sequential_sum(held_value, k))
            safe_total = total if total > 0 else 1.0
            for i in range(k):
                weight[i] = held_value[i] / safe_total
            invested = pairwise_sum(weight, 0, k) if pairwise else _sequential_sum(weight, k)
            for i in range(k):
                weight[i] = weight[i] * weight[i]
            concentration = pairwise_sum(weight, 0, k) if pairwise else _sequential_sum(weight, k)
            cash_weight = 1.0 - invested
            values[t] = total
            hhi[t] = concentration + (cash_weight * cash_weight if cash_weight > 1e-9 else 0.0)
            exposure[t] = invested
    return values, hhi, exposure


def run_backtest(plan: Plan, close: np.ndarray, fee_rate: float, capital: float) -> BacktestTrace:
    """Walk ``plan`` day by day over ``close`` (``days x tokens``, NaN = no candle).

    ``fee_rate`` is charged per trade leg; ``capital`` is the starting cash.
    """
    values, hhi, exposure, rebalances, traded, tokens_held = _day_loop(
        readonly(plan.weights), readonly(plan.momentum), readonly(plan.priority),
        readonly(plan.cooldown, np.int64), readonly(close), float(fee_rate), float(capital))
    return BacktestTrace(values=values, hhi=hhi, exposure=exposure, rebalance_count=int(rebalances),
                         traded_notional=float(traded), tokens_held=int(tokens_held))
