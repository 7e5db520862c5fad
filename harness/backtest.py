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

The per-day Python work is a cooldown check and two boolean reductions over
tokens; all valuation happens afterwards, segment by segment, in bulk.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.contract import MIN_TRADE_FRACTION, POSITION_EPSILON
from harness.plan import Plan


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


class _Book:
    """Cash and positions of one run; mutated in place by trades."""

    def __init__(self, n_tokens: int, capital: float, fee_rate: float) -> None:
        self.cash = float(capital)
        self.qty = np.zeros(n_tokens)
        self.held = np.zeros(n_tokens, dtype=bool)
        self.fee = float(fee_rate)
        self.traded = 0.0

    def sell(self, idx: np.ndarray, quantity: np.ndarray, price: np.ndarray) -> None:
        gross = quantity * price
        self.cash += float(np.sum(gross - gross * self.fee))
        self.traded += float(np.sum(gross))
        self.qty[idx] -= quantity
        closed = idx[self.qty[idx] <= POSITION_EPSILON]
        self.qty[closed] = 0.0
        self.held[closed] = False

    def buy(self, idx: np.ndarray, amount: np.ndarray, price: np.ndarray) -> None:
        """Buy ``amount`` (quote) of each token in order, each capped at the cash left."""
        spent = np.minimum(np.cumsum(amount), self.cash)
        paid = np.diff(spent, prepend=0.0)
        bought = paid > 0
        idx, paid, price = idx[bought], paid[bought], price[bought]
        self.cash -= float(spent[-1]) if spent.size else 0.0
        self.traded += float(np.sum(paid))
        self.qty[idx] += (paid - paid * self.fee) / price
        self.held[idx] = True

    def value(self, price: np.ndarray) -> float:
        return self.cash + float(np.sum(self.qty[self.held] * price[self.held]))


def _rebalance(book: _Book, weights: np.ndarray, priority: np.ndarray, price: np.ndarray, listed: np.ndarray) -> None:
    held = book.held.nonzero()[0]
    held_price = price[held]
    current = book.qty[held] * held_price
    total = book.cash + float(np.sum(current))  # == book.value(price)
    min_trade = total * MIN_TRADE_FRACTION

    excess = current - weights[held] * total
    over = excess > min_trade
    if over.any():
        book.sell(held[over], excess[over] / held_price[over], held_price[over])
        total = book.value(price)
    wanted = ((weights > 0) & listed).nonzero()[0]
    if wanted.size == 0:
        return
    wanted = wanted[np.argsort(-priority[wanted], kind="stable")]
    current = np.where(book.held[wanted], book.qty[wanted] * price[wanted], 0.0)
    amount = total * weights[wanted] - current
    go = amount > min_trade
    if go.any():
        book.buy(wanted[go], amount[go], price[wanted[go]])


def run_backtest(plan: Plan, close: np.ndarray, fee_rate: float, capital: float) -> BacktestTrace:
    """Walk ``plan`` day by day over ``close`` (``days x tokens``, NaN = no candle).

    ``fee_rate`` is charged per trade leg; ``capital`` is the starting cash.
    """
    days, n_tokens = close.shape
    listed = ~np.isnan(close)
    last_close = _forward_fill(close)
    rises = plan.momentum > 0
    falls = plan.momentum < 0
    cooldown = np.asarray(plan.cooldown, dtype=np.int64)
    any_rise, any_fall = rises.any(axis=1), falls.any(axis=1)  # days on which a trigger is possible at all

    # days on which some token lost its candle: the only days a forced sale can happen
    losses = np.zeros(days, dtype=bool)
    losses[1:] = (listed[:-1] & ~listed[1:]).any(axis=1)

    book = _Book(n_tokens, capital, fee_rate)
    ever_held = np.zeros(n_tokens, dtype=bool)
    segments: list[tuple[int, np.ndarray, float]] = []
    rebalances = 0
    last: int | None = None

    for t in range(days):
        changed = t == 0
        if losses[t]:
            gone = (book.held & ~listed[t]).nonzero()[0]
            if gone.size:
                book.sell(gone, book.qty[gone].copy(), last_close[t, gone])
                changed = True

        if t == 0:
            rebalance = True
        elif last is not None and cooldown[t] > 0 and t - last < cooldown[t]:
            rebalance = False
        else:
            held = book.held
            rebalance = bool((any_rise[t] and (rises[t] & ~held).any()) or (any_fall[t] and (falls[t] & held).any()))

        if rebalance:
            _rebalance(book, plan.weights[t], plan.priority[t], close[t], listed[t])
            rebalances += 1
            last = t
            changed = True
            ever_held |= book.held
        if changed:
            segments.append((t, book.qty.copy(), book.cash))

    values, hhi, exposure = _value_segments(segments, close)
    return BacktestTrace(
        values=values,
        hhi=hhi,
        exposure=exposure,
        rebalance_count=rebalances,
        traded_notional=book.traded,
        tokens_held=int(ever_held.sum()),
    )


def _value_segments(segments: list[tuple[int, np.ndarray, float]], close: np.ndarray) -> tuple[np.ndarray, ...]:
    """Daily value, HHI and exposure from the (start day, quantities, cash) segments."""
    days = close.shape[0]
    values = np.empty(days)
    hhi = np.empty(days)
    exposure = np.empty(days)
    bounds = [s[0] for s in segments[1:]] + [days]
    for (start, qty, cash), stop in zip(segments, bounds):
        cols = qty.nonzero()[0]
        held_value = close[start:stop, cols] * qty[cols]
        total = cash + held_value.sum(axis=1)
        values[start:stop] = total
        safe_total = np.where(total > 0, total, 1.0)
        weights = held_value / safe_total[:, None]
        invested = weights.sum(axis=1)
        cash_weight = 1.0 - invested
        hhi[start:stop] = (weights**2).sum(axis=1) + np.where(cash_weight > 1e-9, cash_weight**2, 0.0)
        exposure[start:stop] = invested
    return values, hhi, exposure


def _forward_fill(matrix: np.ndarray) -> np.ndarray:
    """Column-wise forward fill of NaNs (each day's last known value)."""
    rows = np.where(~np.isnan(matrix), np.arange(matrix.shape[0])[:, None], 0)
    np.maximum.accumulate(rows, axis=0, out=rows)
    return matrix[rows, np.arange(matrix.shape[1])]
