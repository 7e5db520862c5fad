"""Performance metrics and the scalar ``ensemble_score``.

Metric names and units follow the trader-research harness (percent for
``*_pct`` keys, ratios otherwise); extra keys are new. The score works in
fraction units.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from harness.backtest import _JIT, BacktestTrace, pairwise_sum
from harness.contract import (
    DAYS_PER_YEAR,
    DIVERSIFICATION_WEIGHT,
    DRAWDOWN_FREE_ZONE,
    REJECT_ANNUALIZED_BELOW,
    TRADING_DAYS_PER_YEAR,
)

ORIGINAL_KEYS = (
    "total_return_pct",
    "annualized_return_pct",
    "max_drawdown_pct",
    "sharpe_ratio",
    "sortino_ratio",
    "calmar_ratio",
    "rebalance_count",
    "hhi",
    "final_value",
)
"""The trader-research metric keys, kept verbatim for comparability."""

EXTRA_KEYS = ("avg_hhi", "turnover", "tokens_held", "exposure", "days")
"""Keys added by gemsearch (see :func:`compute_metrics`)."""


def _empty_metrics(days: int) -> dict[str, float]:
    """The original's answer for fewer than two recorded days."""
    metrics: dict[str, float] = dict.fromkeys(ORIGINAL_KEYS, 0.0)
    metrics.update(rebalance_count=0, hhi=1.0, avg_hhi=1.0, turnover=0.0, tokens_held=0, exposure=0.0, days=days)
    return metrics


@njit(**_JIT)
def _mean(values: np.ndarray) -> float:
    """``np.mean(values)``, bit for bit."""
    return pairwise_sum(values, 0, values.size) / values.size


@njit(**_JIT)
def _path_statistics(values: np.ndarray) -> tuple[float, float, float, float]:
    """``(max drawdown, mean daily return, its population std, sum of squared negative returns)`` (fractions).

    numpy's arithmetic (``np.maximum.accumulate``, ``np.diff``, ``np.mean``, ``np.std``, ``np.sum``), compiled.
    """
    n = values.size
    peak, max_drawdown = values[0], -np.inf
    for i in range(n):  # NaN propagates, as in np.maximum and np.max
        peak = peak if peak >= values[i] or peak != peak else values[i]
        drawdown = (peak - values[i]) / peak
        max_drawdown = max_drawdown if max_drawdown >= drawdown or max_drawdown != max_drawdown else drawdown
    returns = (values[1:] - values[:-1]) / values[:-1]
    mean = _mean(returns)
    deviation = returns - mean
    std = np.sqrt(_mean(deviation * deviation))
    downside = returns[returns < 0]
    return max_drawdown, mean, std, pairwise_sum(downside * downside, 0, downside.size)


def compute_metrics(trace: BacktestTrace) -> dict[str, float]:
    """Metrics of one backtest.

    * ``total_return_pct``: from the first recorded value (after day 0's trades).
    * ``annualized_return_pct``: ``(1 + total) ** (365 / days) - 1``, in percent.
    * ``max_drawdown_pct``: deepest fall from the running peak, as a negative percent.
    * ``sharpe_ratio`` / ``sortino_ratio``: mean daily return over its (population)
      standard deviation / over the downside deviation computed across all days,
      times ``sqrt(252)``; 0 when the deviation is ~0.
    * ``calmar_ratio``: annualised return / max drawdown (fractions), 0 without drawdown.
    * ``hhi``: Herfindahl index of the final day's weights, cash counted (all cash = 1).
    * ``avg_hhi``: the same averaged over all days. ``exposure``: mean invested fraction.
    * ``turnover``: gross traded amount / mean portfolio value / years (times per year).
    * ``tokens_held``: distinct tokens ever held. ``days``: recorded days.
    """
    values = trace.values
    days = int(values.size)
    if days < 2:
        return _empty_metrics(days)

    initial, final = float(values[0]), float(values[-1])
    total_return = (final - initial) / initial
    years = days / DAYS_PER_YEAR
    annualized = (1.0 + total_return) ** (1.0 / max(years, 1e-9)) - 1.0

    max_drawdown, mean_r, std_r, downside_squares = (float(v) for v in _path_statistics(values))
    sharpe = mean_r / std_r * math.sqrt(TRADING_DAYS_PER_YEAR) if std_r > 1e-12 else 0.0
    downside_dev = math.sqrt(downside_squares / (days - 1))
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
        "avg_hhi": float(_mean(trace.hhi)),
        "turnover": trace.traded_notional / float(_mean(values)) / years,
        "tokens_held": trace.tokens_held,
        "exposure": float(_mean(trace.exposure)),
        "days": days,
    }


def ensemble_score(base: dict[str, float], stress: dict[str, float]) -> float:
    """``annualised x drawdown dampener x diversification bonus`` (fractions), or ``-inf``.

    Hard rejection (``-inf``) when the base run's annualised return is below
    -50% or the stress run's Calmar ratio is negative. Otherwise
    ``annualised * 1 / (1 + max(0, dd - 0.15))**2 * (1 + 0.1 * (1 - hhi))`` with
    ``dd`` the base run's max drawdown and ``hhi`` its final-day HHI.
    """
    annualized = base["annualized_return_pct"] / 100.0
    if annualized < REJECT_ANNUALIZED_BELOW or stress["calmar_ratio"] < 0.0:
        return float("-inf")
    drawdown = abs(base["max_drawdown_pct"]) / 100.0
    dampener = 1.0 / (1.0 + max(0.0, drawdown - DRAWDOWN_FREE_ZONE)) ** 2
    bonus = 1.0 + DIVERSIFICATION_WEIGHT * (1.0 - base["hhi"])
    return annualized * dampener * bonus
