"""The compiled backtest day loop and metrics are bit-identical to the numpy formulations they replaced.

``_reference_backtest`` and ``_reference_metrics`` below are those formulations (contract 1.0.2),
verbatim: a ``_Book`` of cash and positions mutated by numpy calls, daily segments valued in bulk
afterwards, and numpy reductions over the daily values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from harness.backtest import pairwise_sum, run_backtest
from harness.contract import (
    DAYS_PER_YEAR,
    FEE_RATE,
    INITIAL_CAPITAL,
    MIN_TRADE_FRACTION,
    POSITION_EPSILON,
    TRADING_DAYS_PER_YEAR,
)
from harness.metrics import compute_metrics
from harness.plan import Plan


# --------------------------------------------------------------------------- the numpy reference (contract 1.0.2)
@dataclass(frozen=True)
class _Trace:
    values: np.ndarray
    hhi: np.ndarray
    exposure: np.ndarray
    rebalance_count: int
    traded_notional: float
    tokens_held: int


class _Book:
    def __init__(self, n_tokens: int, capital: float, fee_rate: float) -> None:
        self.cash = float(capital)
        self.qty = np.zeros(n_tokens)
        self.held = np.zeros(n_tokens, dtype=bool)
        self.fee = float(fee_rate)
        self.traded = 0.0

    def sell(self, idx, quantity, price) -> None:
        gross = quantity * price
        self.cash += float(np.sum(gross - gross * self.fee))
        self.traded += float(np.sum(gross))
        self.qty[idx] -= quantity
        closed = idx[self.qty[idx] <= POSITION_EPSILON]
        self.qty[closed] = 0.0
        self.held[closed] = False

    def buy(self, idx, amount, price) -> None:
        spent = np.minimum(np.cumsum(amount), self.cash)
        paid = np.diff(spent, prepend=0.0)
        bought = paid > 0
        idx, paid, price = idx[bought], paid[bought], price[bought]
        self.cash -= float(spent[-1]) if spent.size else 0.0
        self.traded += float(np.sum(paid))
        self.qty[idx] += (paid - paid * self.fee) / price
        self.held[idx] = True

    def value(self, price) -> float:
        return self.cash + float(np.sum(self.qty[self.held] * price[self.held]))


def _reference_rebalance(book, weights, priority, price, listed) -> None:
    held = book.held.nonzero()[0]
    held_price = price[held]
    current = book.qty[held] * held_price
    total = book.cash + float(np.sum(current))
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


def _reference_backtest(plan: Plan, close: np.ndarray, fee_rate: float, capital: float) -> _Trace:
    days, n_tokens = close.shape
    listed = ~np.isnan(close)
    rows = np.where(listed, np.arange(days)[:, None], 0)
    np.maximum.accumulate(rows, axis=0, out=rows)
    last_close = close[rows, np.arange(n_tokens)]
    rises, falls = plan.momentum > 0, plan.momentum < 0
    cooldown = np.asarray(plan.cooldown, dtype=np.int64)
    any_rise, any_fall = rises.any(axis=1), falls.any(axis=1)
    losses = np.zeros(days, dtype=bool)
    losses[1:] = (listed[:-1] & ~listed[1:]).any(axis=1)
    book = _Book(n_tokens, capital, fee_rate)
    ever_held = np.zeros(n_tokens, dtype=bool)
    segments = []
    rebalances, last = 0, None
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
            _reference_rebalance(book, plan.weights[t], plan.priority[t], close[t], listed[t])
            rebalances += 1
            last = t
            changed = True
            ever_held |= book.held
        if changed:
            segments.append((t, book.qty.copy(), book.cash))
    values, hhi, exposure = np.empty(days), np.empty(days), np.empty(days)
    bounds = [s[0] for s in segments[1:]] + [days]
    for (start, qty, cash), stop in zip(segments, bounds):
        cols = qty.nonzero()[0]
        held_value = close[start:stop, cols] * qty[cols]
        total = cash + held_value.sum(axis=1)
        values[start:stop] = total
        weights = held_value / np.where(total > 0, total, 1.0)[:, None]
        invested = weights.sum(axis=1)
        cash_weight = 1.0 - invested
        hhi[start:stop] = (weights**2).sum(axis=1) + np.where(cash_weight > 1e-9, cash_weight**2, 0.0)
        exposure[start:stop] = invested
    return _Trace(values, hhi, exposure, rebalances, book.traded, int(ever_held.sum()))


def _reference_metrics(trace) -> dict[str, float]:
    values = trace.values
    days = int(values.size)
    if days < 2:
        return compute_metrics(trace)

    initial, final = float(values[0]), float(values[-1])
    total_return = (final - initial) / initial
    years = days / DAYS_PER_YEAR
    annualized = (1.0 + total_return) ** (1.0 / max(years, 1e-9)) - 1.0

    peak = np.maximum.accumulate(values)
    max_drawdown = float(np.max((peak - values) / peak))

    returns = np.diff(values) / values[:-1]
    mean_r = float(np.mean(returns))
    std_r = float(np.std(returns))
    sharpe = mean_r / std_r * math.sqrt(TRADING_DAYS_PER_YEAR) if std_r > 1e-12 else 0.0
    downside = returns[returns < 0]
    downside_dev = math.sqrt(float(np.sum(downside**2)) / returns.size)
    sortino = mean_r / downside_dev * math.sqrt(TRADING_DAYS_PER_YEAR) if downside_dev > 1e-12 else 0.0
    calmar = annualized / max_drawdown if max_drawdown > 1e-12 else 0.0

    return {
        "total_return_pct": total_return * 100,
        "annualized_return_pct": annualized * 100,
        "max_drawdown_pct": -max_drawdown * 100,
        "sharpe_ratio": sharpe,
        "sortino_ratio": sortino,
        "calmar_ratio": calmar,
        "rebalance_count": trace.rebalance_count,
        "hhi": float(trace.hhi[-1]),
        "final_value": final,
        "avg_hhi": float(np.mean(trace.hhi)),
        "turnover": trace.traded_notional / float(np.mean(values)) / years,
        "tokens_held": trace.tokens_held,
        "exposure": float(np.mean(trace.exposure)),
        "days": days,
    }


# --------------------------------------------------------------------------- equivalence
def _random_plan(rng: np.random.Generator, close: np.ndarray) -> Plan:
    """Weights on a random subset (rows sum <= 1), momentum of both signs with NaN, tied priorities, cooldowns."""
    days, tokens = close.shape
    weights = rng.uniform(0, 1, (days, tokens)) * (rng.uniform(0, 1, (days, tokens)) < rng.uniform(0.1, 0.9))
    weights /= np.maximum(weights.sum(axis=1, keepdims=True), 1.0) * rng.uniform(1.0, 1.3, (days, 1))
    momentum = rng.normal(0.0, 1.0, (days, tokens))
    momentum[rng.uniform(0, 1, (days, tokens)) < 0.2] = np.nan
    priority = np.where(weights > 0, np.round(rng.normal(0, 1, (days, tokens)), 1), 0.0)  # many ties
    cooldown = rng.integers(0, 6, days)
    return Plan(weights=weights, momentum=momentum, priority=priority, cooldown=cooldown)


def _assert_identical(fast, ref) -> None:
    for name in ("values", "hhi", "exposure"):
        np.testing.assert_array_equal(getattr(fast, name), getattr(ref, name), err_msg=name)
    assert (fast.rebalance_count, fast.traded_notional, fast.tokens_held) == (
        ref.rebalance_count, ref.traded_notional, ref.tokens_held)
    assert compute_metrics(fast) == _reference_metrics(ref)


def _random_close(rng: np.random.Generator, days: int, tokens: int) -> np.ndarray:
    """Random-walk closes with late listings, delistings and one-day gaps (NaN = no candle)."""
    close = 10.0 * np.exp(np.cumsum(rng.normal(0.0, 0.04, (days, tokens)), axis=0))
    listed_from = rng.integers(0, max(days // 2, 1), tokens) * (rng.uniform(0, 1, tokens) < 0.5)
    listed_to = np.where(rng.uniform(0, 1, tokens) < 0.3, rng.integers(1, days + 1, tokens), days)
    day = np.arange(days)[:, None]
    close[(day < listed_from) | (day >= listed_to) | (rng.uniform(0, 1, (days, tokens)) < 0.03)] = np.nan
    return close


@pytest.mark.parametrize("seed", range(16))
def test_day_loop_is_bit_identical_to_the_numpy_formulation(seed):
    """Random plans (up to 60 tokens, so more than 8 held: both of numpy's summation orders occur)."""
    rng = np.random.default_rng(seed)
    close = _random_close(rng, days=int(rng.integers(1, 250)), tokens=int(rng.integers(1, 60)))
    plan = _random_plan(rng, close)
    for fee in (FEE_RATE, FEE_RATE * 1.5, 0.0):
        _assert_identical(run_backtest(plan, close, fee, INITIAL_CAPITAL),
                          _reference_backtest(plan, close, fee, INITIAL_CAPITAL))


def test_day_loop_is_bit_identical_on_the_full_ensemble():
    """437 tokens, long sums (pairwise blocks beyond 128 elements), the real plan of the full stack."""
    from data import load_universe
    from strategy import PRESETS, STRATEGIES

    candles = load_universe("synthetic-small")
    strategy = STRATEGIES["ensemble"]
    for preset in PRESETS.values():
        plan = strategy.portfolio_fn(strategy.fit_fn(candles, preset), preset)
        _assert_identical(run_backtest(plan, candles.close, FEE_RATE, INITIAL_CAPITAL),
                          _reference_backtest(plan, candles.close, FEE_RATE, INITIAL_CAPITAL))


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 15, 16, 17, 127, 128, 129, 255, 256, 300, 437, 1000, 2193])
def test_pairwise_sum_is_numpy_sum_bit_for_bit(n):
    rng = np.random.default_rng(n)
    values = rng.normal(size=n + 5) * rng.uniform(0, 1e6, size=n + 5)
    assert pairwise_sum(values, 3, n) == np.sum(values[3 : 3 + n])
